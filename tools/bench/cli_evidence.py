"""`smartgate bench evidence`: evidence JPEG upload latency and throughput, edge to central."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

from smartgate.cli import CommandGroups


def bench_evidence(args: argparse.Namespace) -> int:
    """Run the upload bench and print its numbers."""
    from tools.bench.evidence import run_evidence_bench

    width, height = (int(v) for v in args.size.lower().split("x"))
    r = run_evidence_bench(args.images, (width, height))
    print(f"{r.images} JPEGs of {args.size} (mean {r.image_kb_mean} KiB), one at a time: "
          f"latency p50 {r.latency_ms_p50} ms, p95 {r.latency_ms_p95} ms, max "
          f"{r.latency_ms_max} ms; {r.images_per_s} images/s, {r.mb_per_s} MB/s")
    if args.json:
        print(json.dumps(asdict(r)))
    return 0


def register(commands: CommandGroups) -> None:
    """Attach `smartgate bench evidence`."""
    p = commands.bench.add_parser("evidence", help="evidence upload latency/throughput to central")
    p.add_argument("--images", type=int, default=200, help="JPEGs to upload")
    p.add_argument("--size", default="1920x1080", help="frame size WxH")
    p.add_argument("--json", action="store_true", help="last line: one JSON object")
    p.set_defaults(func=bench_evidence)
