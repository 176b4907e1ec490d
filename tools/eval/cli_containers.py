"""`smartgate bench containers`: container-code accuracy and speed on synthetic faces or a labelled
folder; with `--vs-rapidocr`, rapidocr's own pipeline (`RapidOCR()`) is timed on the same images,
alternated image by image with ours so a machine whose load drifts favours neither."""

from __future__ import annotations

import argparse
import csv
import json
import logging
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2

from smartgate.cli import CommandGroups
from smartgate.iso6346 import is_valid

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Score:
    """Exact-match accuracy of a run."""

    name: str
    total: int
    correct: int
    seconds: float
    failures: tuple[tuple[str, str, str], ...]  # (item, expected, got)
    label_errors: tuple[str, ...] = ()
    ms: tuple[float, ...] = ()  # per scored image, ours
    rapidocr_ms: tuple[float, ...] = ()  # per scored image, rapidocr's pipeline

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "set": self.name,
            "total": self.total,
            "correct": self.correct,
            "accuracy": round(self.accuracy, 4),
            "seconds": round(self.seconds, 2),
            "failures": [list(f) for f in self.failures],
            "label_errors": list(self.label_errors),
        }
        if self.ms:
            out["median_ms_per_image"] = round(statistics.median(self.ms), 1)
        if self.rapidocr_ms:
            theirs = statistics.median(self.rapidocr_ms)
            out["rapidocr_median_ms_per_image"] = round(theirs, 1)
            out["speedup_vs_rapidocr"] = round(theirs / statistics.median(self.ms), 2)
        return out


def score_synthetic(n: int, seed: int, batch: int = 8) -> Score:
    """Render `n` synthetic faces and read each as a whole frame; best result must match."""
    from edge.recognition.containers import default_reader
    from tools.synth.containers import generate

    reader = default_reader()
    faces = list(generate(n, seed))
    start = time.perf_counter()
    failures = []
    correct = 0
    for i in range(0, n, batch):
        chunk = faces[i : i + batch]
        for j, (face, found) in enumerate(
            zip(chunk, reader.read_frames([f.image for f in chunk]), strict=True)
        ):
            got = found[0].code if found else ""
            if got == face.code:
                correct += 1
            else:
                failures.append((f"{i + j}:{face.layout}", face.code, got))
    return Score(f"synthetic(seed={seed})", n, correct, time.perf_counter() - start,
                 tuple(failures))  # fmt: skip


def score_folder(folder: Path, rapidocr: Callable | None = None) -> Score:
    """Read a labelled folder (`labels.csv`, `images/`): whole photos when a box is labelled,
    crops otherwise. Labels failing the check digit are reported as label errors, not scored.
    Each image is timed; `rapidocr` (a `RapidOCR()` engine) is timed on it right after ours."""
    from edge.recognition.containers import default_reader

    reader = default_reader()
    with (folder / "labels.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    start = time.perf_counter()
    failures, label_errors = [], []
    ms: list[float] = []
    theirs: list[float] = []
    correct = total = 0
    for row in rows:
        if not is_valid(row["text"]):
            label_errors.append(row["file"])
            continue
        image = cv2.imread(str(folder / "images" / row["file"]), cv2.IMREAD_COLOR)
        if image is None:
            raise FileNotFoundError(f"cannot read image {row['file']} in {folder}")
        started = time.perf_counter()
        if row.get("x1"):
            found = reader.read_frames([image])[0]
            got = found[0].code if found else ""
        else:
            result = reader.read_crops([image])[0]
            got = result.code if result else ""
        ms.append(1000 * (time.perf_counter() - started))
        if rapidocr is not None:
            started = time.perf_counter()
            rapidocr(image)
            theirs.append(1000 * (time.perf_counter() - started))
        total += 1
        if got == row["text"]:
            correct += 1
        else:
            failures.append((row["file"], row["text"], got))
    return Score(folder.name, total, correct, time.perf_counter() - start, tuple(failures),
                 tuple(label_errors), tuple(ms), tuple(theirs))  # fmt: skip


def _bench(args: argparse.Namespace) -> int:
    scores = []
    if args.synthetic:
        scores.append(score_synthetic(args.synthetic, args.seed))
    engine = None
    if args.vs_rapidocr:
        from rapidocr import RapidOCR

        engine = RapidOCR()
    for folder in args.data:
        scores.append(score_folder(Path(folder), engine))
    if not scores:
        log.error("nothing to measure: give --synthetic N and/or --data DIR")
        return 2
    if args.json:
        print(json.dumps([s.as_dict() for s in scores], indent=2))
    else:
        for s in scores:
            print(f"{s.name}: {s.correct}/{s.total} = {s.accuracy:.1%} exact in {s.seconds:.1f}s")
            timing = s.as_dict()
            if "median_ms_per_image" in timing:
                print(f"  median {timing['median_ms_per_image']} ms/image"
                      + (f", rapidocr {timing['rapidocr_median_ms_per_image']} ms/image "
                         f"(speedup {timing['speedup_vs_rapidocr']})"
                         if "speedup_vs_rapidocr" in timing else ""))
            for item, want, got in s.failures:
                print(f"  {item}: expected {want}, got {got or '-'}")
            for item in s.label_errors:
                print(f"  {item}: label fails its check digit, not scored")
    return 0


def register(commands: CommandGroups) -> None:
    """Attach `bench containers`."""
    p = commands.bench.add_parser(
        "containers", help="container-code exact-match accuracy (synthetic faces, labelled data)"
    )
    p.add_argument("--synthetic", type=int, default=0, metavar="N", help="render N faces")
    p.add_argument("--seed", type=int, default=0, help="synthetic generator seed")
    p.add_argument("--data", action="append", default=[], metavar="DIR",
                   help="labelled folder with labels.csv and images/ (repeatable)")  # fmt: skip
    p.add_argument("--vs-rapidocr", action="store_true",
                   help="also time rapidocr's own pipeline on every --data image (side by side)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_bench)
