"""Commands of the tools that never run at a gate: demo, benchmarks, evaluation, synthetic data."""

from __future__ import annotations

import argparse
import sys

from smartgate.cli import CommandGroups, subcommands
from tools import demo
from tools.bench import central, cli_edge, cli_evidence, cli_faults, yard
from tools.eval import cli_containers, cli_eval


def write_sample_declarations(args: argparse.Namespace) -> int:
    """Write generated declarations as CSV to stdout."""
    from central.domain.declarations import write_csv
    from tools.synth.declarations import generate_declarations

    write_csv(generate_declarations(args.count, args.seed, gate=args.gate), sys.stdout)
    return 0


def run_embedded_broker(args: argparse.Namespace) -> int:
    """Run the embedded amqtt broker (anonymous, MQTT 3.1.1) until Ctrl-C or SIGTERM."""
    import signal
    import threading

    from tools.broker import EmbeddedBroker

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    broker = EmbeddedBroker(args.host, args.port).start()
    print(f"embedded MQTT broker (amqtt, MQTT 3.1.1, anonymous: demos and tests only) on "
          f"{broker.host}:{broker.port}; Ctrl-C stops it", flush=True)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print("warning: it accepts anyone; a site broker is mosquitto with "
              "`smartgate broker config` (docs/deploy.md)", file=sys.stderr)
    stop.wait()
    broker.stop()
    return 0


def register(commands: CommandGroups) -> None:
    """Attach `smartgate demo`, `eval`, `synth declarations`, `broker run` and the benchmarks."""
    demo.register(commands)
    run = commands.broker.add_parser("run", help="run the embedded MQTT broker (amqtt; demos, "
                                                 "tests)")
    run.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    run.add_argument("--port", type=int, default=1883, help="listen port (default 1883)")
    run.set_defaults(func=run_embedded_broker)
    for module in (cli_eval, cli_containers, cli_edge, central, cli_evidence, cli_faults, yard):
        module.register(commands)
    sub = subcommands(commands.top.add_parser("synth", help="synthetic data"), "synth_command")
    sample = sub.add_parser("declarations", help="print generated declarations as CSV")
    sample.add_argument("--count", type=int, default=1000, help="how many (default 1000)")
    sample.add_argument("--seed", type=int, default=0, help="random seed (same seed, same rows)")
    sample.add_argument("--gate", default="huunghi", help="site id of the gate")
    sample.set_defaults(func=write_sample_declarations)
