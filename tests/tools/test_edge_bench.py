"""`smartgate bench batching`: the ONNX sessions timed per item at several batch sizes."""

from __future__ import annotations

import json

import pytest

from smartgate.cli import main
from tools.bench.edge import BATCH_INPUTS, RunResult, lanes_per_box


@pytest.mark.slow
def test_bench_batching_prints_ms_per_item_for_every_session(capsys) -> None:
    assert main(["bench", "batching", "--batches", "2,1", "--seconds", "0.01", "--json"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    result = json.loads(out[-1])
    assert set(result["ms_per_item"]) == set(BATCH_INPUTS)
    for timings in result["ms_per_item"].values():
        assert set(timings) == {"1", "2"} and all(ms > 0 for ms in timings.values())
    assert any(line.startswith("det 160x640") for line in out)  # the table before the JSON


def test_lanes_per_box_is_the_most_lanes_within_budget_all_read_right() -> None:
    def run(p95: float, correct: int, expected: int = 4) -> RunResult:
        return RunResult(10.0, 100, 4, expected, expected, correct, 0, 1.0, [p95] * 20)

    rows = [(1, run(300, 4)), (2, run(800, 4)), (4, run(900, 3)), (8, run(2500, 4))]
    assert lanes_per_box(rows) == 2  # 4 lanes misread one passage, 8 are too slow
    assert lanes_per_box([(1, run(1200, 4))]) == 0
    assert lanes_per_box([(1, run(100, 0, expected=0))]) == 0  # nothing to judge


def test_full_frame_gate_scene_holds_the_plate_among_other_text() -> None:
    from edge.recognition.plates import PlateReader
    from tools.synth.plates import render_gate_scene

    scene, (x1, y1, x2, y2) = render_gate_scene("29C12345", "vn", 1, seed=4, lane=2)
    assert scene.shape == (1080, 1920, 3)
    again, _ = render_gate_scene("29C12345", "vn", 1, seed=4, lane=2)
    assert (again == scene).all()
    reader = PlateReader(regions=("vn",))
    boxes = reader.detector.detect([scene])[0]
    away = [b for b in boxes if b.bbox[2] < x1 or b.bbox[0] > x2 or b.bbox[3] < y1]
    assert len(away) >= 3  # signs, livery, the timestamp: text that is not a plate
    found = reader.read_frames([scene])[0]
    assert found[0].text == "29C12345"


@pytest.mark.slow
def test_bench_edge_full_frame_sweep_prints_lanes_per_box(capsys) -> None:
    assert main(["bench", "edge", "--full-frame", "--sweep", "--max-lanes", "1", "--cameras",
                 "1", "--fps", "2", "--seconds", "6", "--json"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    result = json.loads(out[-1])
    assert result["full_frame"] and [row["lanes"] for row in result["sweep"]] == [1]
    row = result["sweep"][0]
    assert row["passages_expected"] >= 1 and row["frames_per_s"] > 0
    assert result["lanes_per_box"] == (1 if row["plates_correct"] == row["passages_expected"]
                                       and row["p95_ms"] <= 1000 else 0)
    assert any(line.startswith("lanes_per_box:") for line in out)


def test_two_segments_of_a_mode_add_up_field_by_field() -> None:
    from collections import defaultdict

    a = RunResult(10.0, 20, 4, 4, 4, 3, 5, 2.0, [100.0], busy_s=8.0, cpu_s=6.0, skipped=50,
                  misread=[("29C12345", "")], onnx_s=defaultdict(float, {"det": 4.0}))
    b = RunResult(10.0, 10, 2, 2, 3, 2, 1, 1.0, [300.0], busy_s=4.0, cpu_s=3.0, skipped=25,
                  onnx_s=defaultdict(float, {"det": 1.0, "rec": 2.0}))
    both = a + b
    assert (both.frames, both.correct, both.passages_expected, both.skipped) == (30, 5, 7, 75)
    assert both.cpu_s == 9.0 and both.busy_s == 12.0 and both.misread == [("29C12345", "")]
    assert dict(both.onnx_s) == {"det": 5.0, "rec": 2.0} and both.latencies_ms == [100.0, 300.0]
    assert both.mean_batch == 30 / 20  # 10 + 10 batches
    assert both.frames_per_passage == 30 / 7 and both.cpu_ms_per_frame == 300.0
