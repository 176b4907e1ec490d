"""`smartgate bench edge --workers`: the node's inference workers side by side."""

from __future__ import annotations

import json

import pytest

from smartgate.cli import main


@pytest.mark.slow
def test_bench_edge_reads_every_passage_with_two_workers_and_reports_them(capsys) -> None:
    assert main(["bench", "edge", "--lanes", "2", "--cameras", "2", "--seconds", "6",
                 "--rounds", "1", "--workers", "2", "--threads", "1", "--json"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    result = json.loads(out[-1])
    assert (result["workers"], result["threads"]) == (2, 1)
    assert result["passages_expected"] >= 2
    assert result["plates_correct"] == result["passages"] == result["passages_expected"]
    assert any("2 inference worker(s) x 1 intra-op thread(s)" in line for line in out)
