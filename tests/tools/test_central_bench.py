"""`smartgate bench central` smoke test: a tiny run over each broker loses nothing."""

from __future__ import annotations

import json

import pytest

from smartgate.cli import main
from tools.broker import mosquitto_binary


@pytest.mark.parametrize("broker", ["mosquitto", "amqtt"])
def test_bench_central_tiny_run(broker: str, capsys) -> None:
    if broker == "mosquitto" and mosquitto_binary() is None:
        pytest.skip("mosquitto is not installed")
    argv = ["bench", "central", "--passages", "40", "--declarations", "800", "--broker", broker,
            "--window", "10", "--json"]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["passages"] == 40 and result["declarations"] == 800
    assert result["lost"] == 0 and result["broker"] == broker
    assert sum(result["actions"].values()) == 40
    assert result["passages_per_s"] > 0 and 0 < result["p50_ms"] <= result["p99_ms"]


def test_bench_central_steady_rate(capsys) -> None:
    """`--rate`: passages go out at that pace (the run takes about passages / rate seconds)."""
    if mosquitto_binary() is None:
        pytest.skip("mosquitto is not installed")
    argv = ["bench", "central", "--passages", "30", "--declarations", "500", "--rate", "20",
            "--json"]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["rate"] == 20.0 and result["lost"] == 0
    assert result["passages_per_s"] <= 21  # paced, not as fast as possible
    assert result["cpu_ms_per_passage"] > 0 and 0 < result["p50_ms"] <= result["p99_ms"]


def test_bench_central_rejects_a_bad_rate(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["bench", "central", "--rate", "0"])
    assert "--rate must be passages/s" in capsys.readouterr().err


@pytest.mark.slow
def test_bench_central_two_workers(capsys) -> None:
    """`--workers 2`: two ingest processes share the subscription and lose nothing."""
    if mosquitto_binary() is None:
        pytest.skip("mosquitto is not installed")
    argv = ["bench", "central", "--passages", "40", "--declarations", "800", "--workers", "2",
            "--window", "10", "--json"]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["workers"] == 2 and result["lost"] == 0
    assert sum(result["actions"].values()) == 40 and result["cpu_ms_per_passage"] > 0
