"""The `smartgate` command line: each package registers its own subcommands here.

A package contributes commands through a `register(commands: CommandGroups)` function in its
`cli` or `cli_*` module (a package without one contributes none); a handler is a function `(argparse.Namespace) -> int` set with `set_defaults`.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys
from dataclasses import dataclass

COMMAND_PACKAGES = ("edge", "central", "hardware", "models", "tools")


@dataclass(frozen=True)
class CommandGroups:
    """Where packages attach their subcommands: top level, under `smartgate bench` and under
    `smartgate broker` (central writes the config, tools run the embedded broker)."""

    top: argparse._SubParsersAction
    bench: argparse._SubParsersAction
    broker: argparse._SubParsersAction


def subcommands(
    parser: argparse.ArgumentParser, dest: str, metavar: str = "ACTION"
) -> argparse._SubParsersAction:
    """Required subcommands under `parser` (e.g. the `run` of `smartgate edge run`)."""
    sub = parser.add_subparsers(dest=dest, metavar=metavar)
    sub.required = True
    return sub


def command_modules() -> list[str]:
    """Every `cli` or `cli_*` module of the packages, in a stable order."""
    names: list[str] = []
    for package in COMMAND_PACKAGES:
        path = importlib.import_module(package).__path__
        names += sorted(
            f"{package}.{m.name}"
            for m in pkgutil.iter_modules(path)
            if m.name == "cli" or m.name.startswith("cli_")
        )
    return names


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every package's subcommands attached."""
    parser = argparse.ArgumentParser(prog="smartgate", description=__doc__.splitlines()[0])
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR")
    top = subcommands(parser, "command", "COMMAND")
    bench = subcommands(top.add_parser("bench", help="benchmarks that print numbers"), "bench",
                        "BENCHMARK")
    broker = subcommands(top.add_parser("broker", help="site MQTT broker tooling"),
                         "broker_command")
    groups = CommandGroups(top=top, bench=bench, broker=broker)
    for name in command_modules():
        importlib.import_module(name).register(groups)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `smartgate` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("transitions", "amqtt", "pymodbus"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.root.level))
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
