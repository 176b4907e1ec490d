"""Smoke tests on real container photos from ../shared/data (skipped when absent)."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import pytest

from edge.recognition.containers import default_reader
from smartgate.iso6346 import is_valid
from tools.eval.cli_containers import score_folder

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
MARSA = DATA / "containers-marsa-maroc"
REAL = DATA / "containers-real"


def _need(folder: Path) -> None:
    if not (folder / "labels.csv").is_file():
        pytest.skip(f"real evaluation data not present at {folder}")


def _rows(folder: Path) -> list[dict[str, str]]:
    with (folder / "labels.csv").open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_marsa_crops_vertical_and_horizontal() -> None:
    _need(MARSA)
    score = score_folder(MARSA)
    assert score.total >= 10
    assert score.accuracy >= 0.9, score.failures


def test_real_photos_first_rows_smoke() -> None:
    _need(REAL)
    rows = _rows(REAL)[:6]
    frames = [cv2.imread(str(REAL / "images" / r["file"])) for r in rows]
    found = default_reader().read_frames(frames)
    hits = sum(bool(f) and f[0].code == r["text"] for f, r in zip(found, rows, strict=True))
    assert hits >= 5
    for f in found:
        assert all(r.check_digit_ok == is_valid(r.code) for r in f)


@pytest.mark.slow
def test_real_photos_whole_set() -> None:
    _need(REAL)
    score = score_folder(REAL)
    assert score.accuracy >= 0.9, score.failures
