"""`smartgate bench yard`: the simulation's ground truth, and a small day end to end over mosquitto
and central's real ingest (journeys, live occupancy, forecast)."""

from __future__ import annotations

import json
import random
from collections import Counter

import pytest

from central.domain.plate_similarity import plate_distance
from smartgate.cli import main
from tools.bench.yard import misread, simulate
from tools.broker import mosquitto_binary


def test_simulated_day_is_consistent() -> None:
    trucks = simulate(400, seed=3, misread_rate=0.05, lanes=3)
    assert simulate(400, seed=3, misread_rate=0.05, lanes=3)[7].plate == trucks[7].plate
    roles = Counter(tuple(p.role for p in t.passages) for t in trucks)
    assert set(roles) <= {("yard_entry", "inspection", "border_exit"), ("yard_entry", "yard_exit")}
    assert roles[("yard_entry", "inspection", "border_exit")] > 380
    for t in trucks:
        times = [p.start for p in t.passages]
        assert times == sorted(times) and all(p.start <= p.end for p in t.passages)
    busy: dict[str, list] = {}
    for t in trucks:
        for p in t.passages:
            if p.role == "inspection":
                busy.setdefault(p.lane, []).append((p.start, p.end))
    for spans in busy.values():  # a lane serves one truck at a time
        spans.sort()
        assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:], strict=False))
    reads = [p for t in trucks for p in t.passages]
    wrong = sum(p.read != trucks[p.truck].plate for p in reads)
    assert 0.02 < wrong / len(reads) < 0.08


def test_misreads_are_plausible() -> None:
    rng = random.Random(1)
    for plate in ("12C34567", "桂FA1234", "29LD01234"):
        for _ in range(50):
            wrong = misread(plate, rng)
            assert wrong != plate and plate_distance(wrong, plate) <= 1.0


@pytest.mark.slow
def test_small_day_over_mosquitto(capsys) -> None:  # type: ignore[no-untyped-def]
    if mosquitto_binary() is None:
        pytest.skip("mosquitto is not installed")
    argv = ["bench", "yard", "--trucks", "150", "--lanes", "2", "--misread-rate", "0.08",
            "--sample-min", "30", "--outage-min", "40", "--broker", "mosquitto", "--json"]
    assert main(argv) == 0
    r = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert r["trucks"] == 150 and r["lost"] == 0 and r["misreads"] > 0
    assert r["journeys_exact"] >= 0.98 * 150 and r["journeys_swapped"] == 0
    assert r["occupancy_max_abs_error"] <= 2 and r["occupancy_samples"] >= 40
    assert r["outage_min"] == 40  # the E2 entries sent late still joined their journeys
    assert r["forecast_samples"] > 0 and r["dwell_p50_error_s"] <= 60
    for key in ("forecast_mae_s", "forecast_naive_mae_s", "dwell_p50_error_s"):
        assert r[key] >= 0
