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
