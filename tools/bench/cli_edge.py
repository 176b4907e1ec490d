"""`smartgate bench edge` (the whole edge pipeline on synthetic lanes, batched vs unbatched) and
`smartgate bench batching` (the ONNX sessions alone, per item at several batch sizes)."""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from typing import TYPE_CHECKING

from smartgate.cli import CommandGroups

if TYPE_CHECKING:
    from tools.bench.edge import BenchSetup


def run_bench_edge(args: argparse.Namespace) -> int:
    """Run the scripted lanes batched and unbatched (alternated) and print both side by side."""
    from tqdm import tqdm

    from tools.bench.edge import BenchSetup, render_trucks, run_modes

    logging.getLogger("edge").setLevel(logging.WARNING)
    logging.getLogger("hardware").setLevel(logging.WARNING)
    setup = BenchSetup(lanes=args.lanes, cameras=args.cameras, seconds=args.seconds,
                       fps=args.fps, max_batch=args.max_batch, max_delay_ms=args.max_delay_ms,
                       threads=args.threads, workers=args.workers, roi=not args.no_roi,
                       scale=args.scale, det_limit_side=args.det_side, rounds=args.rounds,
                       full_frame=args.full_frame, plate_locator=args.plate_locator,
                       settle_reads=args.settle_reads,
                       max_batch_pixels=args.max_batch_pixels or None)
    trucks = render_trucks(setup.cameras, setup.full_frame)
    if args.sweep:
        return _run_sweep(args, setup, trucks)
    with tqdm(total=round(2 * setup.seconds), desc=f"batch {setup.max_batch} vs 1", unit="s",
              leave=False, disable=args.json) as bar:
        results = run_modes(setup, trucks, lambda s: bar.update(max(0, int(s) - bar.n)))
    b, u = results[True], results[False]
    speedup = b.frames_per_s / u.frames_per_s if u.frames_per_s else float("inf")
    print(f"edge pipeline: {setup.lanes} lanes x {setup.cameras} cameras, {setup.fps:g} fps each, "
          f"{setup.seconds:g} s per mode in {setup.rounds} rounds, "
          f"roi={'on' if setup.roi and not setup.full_frame else 'off'}, "
          f"{'full frame 1920x1080, ' if setup.full_frame else ''}"
          f"scale {1.0 if setup.full_frame else setup.scale:g}, "
          f"det side {setup.det_limit_side if setup.roi and not setup.full_frame else 736}, "
          f"plate locator {setup.plate_locator}, {_policy(setup)}, {_workers(setup)}")
    print(f"{'':22}{'batched':>12}{'unbatched':>12}{'ratio':>8}")
    rows = [("frames/s", b.frames_per_s, u.frames_per_s),
            ("plates/s", b.plates_per_s, u.plates_per_s),
            ("mean batch", b.mean_batch, u.mean_batch),
            ("det ms/frame", b.ms_per_frame(b.onnx_s["det"]), u.ms_per_frame(u.onnx_s["det"])),
            ("rec ms/frame", b.ms_per_frame(b.onnx_s["rec"]), u.ms_per_frame(u.onnx_s["rec"])),
            ("other ms/frame", b.ms_per_frame(b.other_s), u.ms_per_frame(u.other_s)),
            ("cpu ms/frame", b.cpu_ms_per_frame, u.cpu_ms_per_frame),
            ("p50 trigger->event ms", b.percentile(50), u.percentile(50)),
            ("p95 trigger->event ms", b.percentile(95), u.percentile(95)),
            ("passages", b.passages, u.passages),
            ("passages expected", b.passages_expected, u.passages_expected),
            ("plates correct", b.correct, u.correct),
            ("frames dropped", b.dropped, u.dropped),
            ("frames not inferred", b.skipped, u.skipped),
            ("frames per passage", b.frames_per_passage, u.frames_per_passage)]
    for name, x, y in rows:
        ratio = f"{x / y:8.2f}" if y else f"{'-':>8}"
        print(f"{name:22}{x:12.2f}{y:12.2f}{ratio}")
    if args.json:
        print(json.dumps({
            "lanes": setup.lanes, "cameras": setup.cameras, "seconds": setup.seconds,
            "full_frame": setup.full_frame, "plate_locator": setup.plate_locator,
            "settle_reads": setup.settle_reads, "max_batch_pixels": setup.max_batch_pixels,
            "workers": _resolved(setup)[0], "threads": _resolved(setup)[1],
            "frames_per_s": round(b.frames_per_s, 3), "plates_per_s": round(b.plates_per_s, 3),
            "unbatched_frames_per_s": round(u.frames_per_s, 3),
            "unbatched_plates_per_s": round(u.plates_per_s, 3),
            "batched_speedup": round(speedup, 3), "mean_batch": round(b.mean_batch, 2),
            "p50_ms": round(b.percentile(50), 1), "p95_ms": round(b.percentile(95), 1),
            "unbatched_p50_ms": round(u.percentile(50), 1),
            "unbatched_p95_ms": round(u.percentile(95), 1),
            "passages": b.passages, "passages_expected": b.passages_expected,
            "plates_correct": b.correct, "frames_dropped": b.dropped,
            "frames_not_inferred": b.skipped,
            "frames_per_passage": _number(b.frames_per_passage), "misread": b.misread,
            "ms_per_frame": {mode: {"det": round(r.ms_per_frame(r.onnx_s["det"]), 1),
                                    "rec": round(r.ms_per_frame(r.onnx_s["rec"]), 1),
                                    "other": round(r.ms_per_frame(r.other_s), 1),
                                    "cpu": round(r.cpu_ms_per_frame, 1)}
                             for mode, r in (("batched", b), ("unbatched", u))},
        }))
    return 0


def _policy(setup: BenchSetup) -> str:
    """The frame policy of the run, in words."""
    if setup.settle_reads is None:
        return "frame policy: node default"
    return f"frame policy: settle_reads {setup.settle_reads}" + (
        " (every frame inferred)" if setup.settle_reads == 0 else "")


def _resolved(setup: BenchSetup) -> tuple[int, int]:
    """(inference workers, intra-op threads per session run) the node of `setup` runs with."""
    from edge.app import inference_threads
    from edge.config import InferenceConfig

    return inference_threads(InferenceConfig(threads=setup.threads, workers=setup.workers))


def _workers(setup: BenchSetup) -> str:
    """The inference workers and threads of the run, in words."""
    workers, threads = _resolved(setup)
    return f"{workers} inference worker(s) x {threads} intra-op thread(s)"


def _number(x: float) -> float | None:
    """`x` rounded to 0.1, or None (JSON null) where no frame or passage made it a number."""
    return None if math.isnan(x) else round(x, 1)


def _run_sweep(args: argparse.Namespace, setup: BenchSetup, trucks: list) -> int:
    """`--sweep`: the batched node at 1, 2, 4, 8, ... lanes; lanes_per_box and frames_per_s."""
    from tools.bench.edge import LATENCY_BUDGET_MS, lanes_per_box, sweep

    rows = sweep(setup, trucks, args.max_lanes,
                 lambda n: print(f"{n} lanes ...", file=sys.stderr) if not args.json else None)
    best = lanes_per_box(rows)
    at_best = next((r for n, r in rows if n == best), None)
    print(f"edge sweep: {setup.cameras} cameras per lane at {setup.fps:g} fps, "
          f"{setup.seconds:g} s per run, {'full frame 1920x1080' if setup.full_frame else 'ROI'}, "
          f"plate locator {setup.plate_locator}, {_policy(setup)}, {_workers(setup)}")
    print(f"{'lanes':>6}{'frames/s':>10}{'cpu ms/fr':>10}{'fr/pass':>8}{'p95 ms':>9}"
          f"{'correct':>9}{'expected':>9}{'dropped':>9}{'not inf.':>9}")
    for n, r in rows:
        print(f"{n:6d}{r.frames_per_s:10.2f}{r.cpu_ms_per_frame:10.0f}"
              f"{r.frames_per_passage:8.1f}{r.percentile(95):9.0f}"
              f"{r.correct:9d}{r.passages_expected:9d}{r.dropped:9d}{r.skipped:9d}")
    frames_per_s = at_best.frames_per_s if at_best else rows[0][1].frames_per_s
    print(f"lanes_per_box: {best} (p95 trigger->event <= {LATENCY_BUDGET_MS:g} ms, every passage "
          f"read right); frames_per_s: {frames_per_s:.2f}")
    if args.json:
        print(json.dumps({
            "cameras": setup.cameras, "fps": setup.fps, "seconds": setup.seconds,
            "full_frame": setup.full_frame, "plate_locator": setup.plate_locator,
            "settle_reads": setup.settle_reads, "max_batch_pixels": setup.max_batch_pixels,
            "workers": _resolved(setup)[0], "threads": _resolved(setup)[1],
            "lanes_per_box": best,
            "frames_per_s": round(frames_per_s, 3),
            "sweep": [{"lanes": n, "frames_per_s": round(r.frames_per_s, 3),
                       "p95_ms": _number(r.percentile(95)), "plates_correct": r.correct,
                       "passages_expected": r.passages_expected, "frames_dropped": r.dropped,
                       "frames_not_inferred": r.skipped,
                       "frames_per_passage": _number(r.frames_per_passage),
                       "misread": r.misread,
                       "ms_per_frame": {"det": _number(r.ms_per_frame(r.onnx_s["det"])),
                                        "rec": _number(r.ms_per_frame(r.onnx_s["rec"])),
                                        "other": _number(r.ms_per_frame(r.other_s)),
                                        "cpu": _number(r.cpu_ms_per_frame)}}
                      for n, r in rows],
        }))
    return 0


def run_bench_batching(args: argparse.Namespace) -> int:
    """Time the ONNX sessions alone per item at several batch sizes: what batching can gain."""
    from tqdm import tqdm

    from models.registry import create_session, get_spec
    from tools.bench.edge import BATCH_INPUTS, time_batches

    batches = sorted({int(b) for b in args.batches.split(",")})
    rows = {}
    for label, (model, shape) in tqdm(BATCH_INPUTS.items(), desc="sessions", disable=args.json):
        session = create_session(get_spec(model).path, args.threads)
        rows[label] = time_batches(session, shape, batches, args.seconds)
    print(f"ms per item, {args.threads or 'auto'} intra-op threads; ratio = batch 1 / largest")
    print(f"{'':14}" + "".join(f"{f'batch {b}':>10}" for b in batches) + f"{'ratio':>8}")
    for label, ms in rows.items():
        ratio = ms[batches[0]] / ms[batches[-1]]
        print(f"{label:14}" + "".join(f"{ms[b]:10.2f}" for b in batches) + f"{ratio:8.2f}")
    if args.json:
        print(json.dumps({"threads": args.threads, "ms_per_item": {
            label: {str(b): round(v, 3) for b, v in ms.items()} for label, ms in rows.items()}}))
    return 0


def register(commands: CommandGroups) -> None:
    """Attach `smartgate bench edge` and `smartgate bench batching`."""
    p = commands.bench.add_parser("batching", help="ONNX ms per item at several batch sizes")
    p.add_argument("--batches", default="1,2,4,8", help="batch sizes, comma-separated")
    p.add_argument("--threads", type=int, default=0, help="ONNX intra-op threads (0: auto)")
    p.add_argument("--seconds", type=float, default=2.0, help="timing per batch size")
    p.add_argument("--json", action="store_true", help="last line: one JSON object")
    p.set_defaults(func=run_bench_batching)

    p = commands.bench.add_parser("edge", help="whole edge pipeline, batched vs unbatched")
    p.add_argument("--lanes", type=int, default=4, help="lanes")
    p.add_argument("--cameras", type=int, default=4, help="cameras per lane")
    p.add_argument("--seconds", type=float, default=30.0, help="length of each run")
    p.add_argument("--rounds", type=int, default=2,
                   help="segments per mode, alternated ABBA (seconds is per mode)")
    p.add_argument("--fps", type=float, default=5.0, help="frames per second per camera")
    p.add_argument("--max-batch", type=int, default=4, help="batch size of the batched run")
    p.add_argument("--max-delay-ms", type=float, default=20.0, help="batching deadline")
    p.add_argument("--max-batch-pixels", type=int, default=2_500_000,
                   help="image pixels per batch at most (0: no limit)")
    p.add_argument("--threads", type=int, default=0, help="ONNX intra-op threads (0: auto)")
    p.add_argument("--workers", type=int, default=0,
                   help="inference workers (inference.workers; 0: one per CPU of the CPU set)")
    p.add_argument("--scale", type=float, default=0.5, help="inference scale of the ROI")
    p.add_argument("--det-side", type=int, default=144, help="detector input side with the ROI")
    p.add_argument("--no-roi", action="store_true", help="infer on whole frames")
    p.add_argument("--full-frame", action="store_true",
                   help="1920x1080 gate scenes (vehicles, signs, non-plate text), no ROI, "
                   "scale 1, every lane's first truck in the same second")
    p.add_argument("--sweep", action="store_true",
                   help="batched runs at 1, 2, 4, 8, ... lanes: prints lanes_per_box, frames_per_s")
    p.add_argument("--max-lanes", type=int, default=16, help="largest lane count of --sweep")
    p.add_argument("--plate-locator", choices=("cascade", "detector"), default="cascade",
                   help="inference.plate_locator of the node: the text-detector cascade, or the "
                   "plate detector first")
    p.add_argument("--settle-reads", type=int, default=None,
                   help="frame policy (lanes.*.frames.settle_reads): frames agreeing on a plate "
                   "that settle its role's cameras; 0: infer every frame (default: the node's)")
    p.add_argument("--json", action="store_true", help="last line: one JSON object")
    p.set_defaults(func=run_bench_edge)
