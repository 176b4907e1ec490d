"""Commands of the tools that never run at a gate: demo, benchmarks, evaluation, synthetic data."""

from __future__ import annotations

import argparse
import sys

from smartgate.cli import CommandGroups, subcommands
from tools import demo
from tools.bench import central, cli_edge, cli_evidence, cli_faults
from tools.eval import cli_containers, cli_eval


def write_sample_declarations(args: argparse.Namespace) -> int:
    """Write generated declarations as CSV to stdout."""
    from central.domain.declarations import write_csv
    from tools.synth.declarations import generate_declarations

    write_csv(generate_declarations(args.count, args.seed, gate=args.gate), sys.stdout)
    return 0


def register(commands: CommandGroups) -> None:
    """Attach `smartgate demo`, `eval`, `synth declarations` and the benchmarks."""
    demo.register(commands)
    for module in (cli_eval, cli_containers, cli_edge, central, cli_evidence, cli_faults):
        module.register(commands)
    sub = subcommands(commands.top.add_parser("synth", help="synthetic data"), "synth_command")
    sample = sub.add_parser("declarations", help="print generated declarations as CSV")
    sample.add_argument("--count", type=int, default=1000, help="how many (default 1000)")
    sample.add_argument("--seed", type=int, default=0, help="random seed (same seed, same rows)")
    sample.add_argument("--gate", default="huunghi", help="site id of the gate")
    sample.set_defaults(func=write_sample_declarations)
