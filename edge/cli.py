"""`smartgate edge ...` commands."""

from __future__ import annotations

import argparse
import logging
import signal

from smartgate.cli import CommandGroups, subcommands

log = logging.getLogger(__name__)


def run_edge(args: argparse.Namespace) -> int:
    """Run an edge node from a YAML configuration until its sources end or Ctrl-C."""
    from edge.app import EdgeNode
    from edge.config import ConfigError, load_edge_config

    try:
        config = load_edge_config(args.config)
    except ConfigError as exc:
        print(f"error: {exc}")
        return 2
    if args.validate:
        print(f"{args.config}: configuration is valid")
        return 0
    node = EdgeNode(config, realtime=not args.fast)
    signal.signal(signal.SIGTERM, lambda *_: node.stop_event.set())
    node.start()
    try:
        node.run()
        if not node.stop_event.is_set():
            node.wait_drained(args.drain_timeout)
    except KeyboardInterrupt:
        pass
    finally:
        node.stop()
    print(f"edge {config.node_id}: {node.passages_emitted} passages, "
          f"{node.publisher.published} published, {node.spool_depth_at_stop} still spooled",
          flush=True)
    return 0


def register(commands: CommandGroups) -> None:
    """Attach `smartgate edge run`."""
    sub = subcommands(commands.top.add_parser("edge", help="the edge node"), "edge_command")
    run = sub.add_parser("run", help="run an edge node")
    run.add_argument("--config", required=True, help="edge YAML configuration")
    run.add_argument("--validate", action="store_true", help="only validate the configuration")
    run.add_argument("--fast", action="store_true",
                     help="read files and folders as fast as inference goes (no frame drops)")
    run.add_argument("--drain-timeout", type=float, default=30.0,
                     help="seconds to wait for the spool to drain when sources end")
    run.set_defaults(func=run_edge)
