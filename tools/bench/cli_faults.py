"""`smartgate bench faults`: passages from simulated edges into central while faults strike."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

from smartgate.cli import CommandGroups
from tools.bench.faults import FAULT_KINDS
from tools.broker import mosquitto_binary
from tools.postgres import postgres_bin


def bench_faults(args: argparse.Namespace) -> int:
    """Run the fault bench and print a table per fault and the reconciliation."""
    from tools.bench.faults import BenchPlan, run_faults

    kinds = tuple(args.faults.split(",")) if args.faults else FAULT_KINDS
    unknown = [k for k in kinds if k not in FAULT_KINDS]
    if unknown:
        print(f"error: unknown fault kinds {unknown}; known: {', '.join(FAULT_KINDS)}",
              file=sys.stderr)
        return 2
    if mosquitto_binary() is None:
        print("error: bench faults needs Debian's mosquitto (apt-get install mosquitto); "
              "it restarts the broker as one of its faults", file=sys.stderr)
        return 2
    if args.postgres_temp and postgres_bin() is None:
        print("error: --postgres-temp needs PostgreSQL installed (apt-get install postgresql)",
              file=sys.stderr)
        return 2
    plan = BenchPlan(passages=args.passages, edges=args.edges, workers=args.workers,
                     rate=args.rate, kinds=kinds, images_per_passage=args.images)
    with tempfile.TemporaryDirectory(prefix="smartgate-faults-") as tmp:
        folder = Path(tmp)
        result = run_faults(plan, folder, args.database_url, args.postgres_temp,
                            show_progress=sys.stderr.isatty())
    print(f"database: {result.database}; {args.edges} edges, {args.workers} ingest worker(s); "
          f"{result.elapsed_s} s")
    print(f"{'fault':<14}{'target':<34}{'at s':>8}{'down s':>8}{'recovery s':>12}")
    for f in result.faults:
        rec = "-" if f["recovery_s"] is None else f"{f['recovery_s']:.2f}"
        print(f"{f['kind']:<14}{f['target']:<34}{f['at_s']:>8}{f['down_s']:>8}{rec:>12}")
    print(f"passages sent (spooled by the edges): {result.passages_sent}; stored: "
          f"{result.passages_stored}; lost: {result.lost}; duplicated: {result.duplicated}; "
          f"stored but never spooled: {result.unexpected}")
    print(f"redeliveries deduplicated by central (workers' final counts): "
          f"{result.redeliveries}; recovery max: {result.recovery_s_max} s")
    print(f"evidence images named by stored passages: {result.evidence_images}; missing at "
          f"central: {result.evidence_missing}; hash mismatch: {result.evidence_corrupt}")
    if args.json:
        print(json.dumps(asdict(result)))
    ok = (result.lost == 0 and result.duplicated == 0 and result.unexpected == 0
          and result.evidence_missing == 0 and result.evidence_corrupt == 0)
    return 0 if ok and result.passages_sent == args.passages else 1


def register(commands: CommandGroups) -> None:
    """Attach `smartgate bench faults`."""
    bench = commands.bench.add_parser(
        "faults", help="edges -> mosquitto -> central under broker/central/edge/DB/network faults")
    bench.add_argument("--passages", type=int, default=10_000, help="passages in all")
    bench.add_argument("--edges", type=int, default=4, help="simulated edge nodes")
    bench.add_argument("--workers", type=int, default=1, help="central ingest workers")
    bench.add_argument("--rate", type=float, default=100.0, help="passages per second, all edges")
    bench.add_argument("--faults", help=f"comma-separated subset of {','.join(FAULT_KINDS)} "
                       "(default: all, in that order)")
    db = bench.add_mutually_exclusive_group()
    db.add_argument("--database-url",
                    help="PostgreSQL cluster to create a fresh database in (default: SQLite)")
    db.add_argument("--postgres-temp", action="store_true",
                    help="start a throwaway PostgreSQL cluster (as the postgres user when "
                    "root); the DB fault restarts it")
    bench.add_argument("--images", type=int, default=2,
                       help="evidence JPEGs per passage, uploaded to central's HTTP side; 0: none")
    bench.add_argument("--json", action="store_true", help="last line: one JSON object")
    bench.set_defaults(func=bench_faults)
