"""`smartgate bench batching`: the ONNX sessions timed per item at several batch sizes."""

from __future__ import annotations

import json

import pytest

from smartgate.cli import main
from tools.bench.edge import BATCH_INPUTS


@pytest.mark.slow
def test_bench_batching_prints_ms_per_item_for_every_session(capsys) -> None:
    assert main(["bench", "batching", "--batches", "2,1", "--seconds", "0.01", "--json"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    result = json.loads(out[-1])
    assert set(result["ms_per_item"]) == set(BATCH_INPUTS)
    for timings in result["ms_per_item"].values():
        assert set(timings) == {"1", "2"} and all(ms > 0 for ms in timings.values())
    assert any(line.startswith("det 160x640") for line in out)  # the table before the JSON
