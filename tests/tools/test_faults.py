"""Reliability: the fault bench (broker and central killed), DB outages, messages that fail."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import func, select

from central.config import CentralSettings
from central.db import Passage, RejectedMessage, session_factory, upgrade_database
from central.decisions import PassageDecided
from central.ingest import MqttIngest
from central.worker import ingest_engine
from smartgate import contract
from tests.conftest import wait_until
from tests.test_contract import make_event
from tools.bench.faults import BenchPlan, reconcile, run_faults
from tools.broker import mosquitto_binary

# the fault bench starts (and kills) its own mosquitto; without it these tests skip
needs_mosquitto = pytest.mark.skipif(
    mosquitto_binary() is None, reason="mosquitto is not installed (scripts/test installs it)"
)


def _count(sessions, model) -> int:  # type: ignore[no-untyped-def]
    with sessions() as s:
        return int(s.scalar(select(func.count()).select_from(model)))



def _publisher(broker) -> mqtt.Client:  # type: ignore[no-untyped-def]
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="edge-faults")
    client.connect(broker.host, broker.port)
    client.loop_start()
    return client


def test_reconcile_counts_lost_duplicated_and_unexpected() -> None:
    result = reconcile(["a", "b", "c", "c"], ["a", "c", "x"], {"a": 1, "c": 3})
    assert (result.sent, result.stored, result.lost, result.duplicated, result.unexpected) == (
        3, 2, 1, 2, 1)


@pytest.mark.slow
@needs_mosquitto
def test_fault_bench_broker_and_central_killed_loses_nothing(tmp_path: Path) -> None:
    plan = BenchPlan(passages=300, edges=3, rate=100.0, kinds=("broker_kill", "central_kill"),
                     broker_down_s=2.0, central_down_s=1.5, settle_timeout_s=90.0)
    # settle_timeout_s is how long nothing may move: on a loaded 2-core box central's first
    # start can take longer than 30 s, which counted every passage as lost before it stored one
    result = run_faults(plan, tmp_path)
    assert result.passages_sent == 300
    assert (result.lost, result.duplicated, result.unexpected) == (0, 0, 0)
    assert result.passages_stored == 300
    # every stored passage has its images at central, uploaded through the kills
    assert (result.evidence_images, result.evidence_missing, result.evidence_corrupt) == (
        600, 0, 0)
    assert [f["kind"] for f in result.faults] == ["broker_kill", "central_kill"]
    assert all(f["recovery_s"] is not None for f in result.faults)


@pytest.mark.slow
@needs_mosquitto
def test_fault_bench_two_workers_broker_killed_loses_nothing(tmp_path: Path,
                                                             postgres_url: str) -> None:
    # mosquitto forgets the workers' shared subscriptions in the restart: what the edges publish
    # before the workers subscribe again is PUBACKed and delivered to nobody; the edges keep it
    # until central's receipt and publish it again
    plan = BenchPlan(passages=400, edges=2, workers=2, rate=100.0, kinds=("broker_kill",),
                     broker_down_s=2.0, settle_timeout_s=30.0)
    result = run_faults(plan, tmp_path, database_url=postgres_url)
    assert result.database == "postgresql"
    assert (result.passages_sent, result.passages_stored) == (400, 400)
    assert (result.lost, result.duplicated, result.unexpected) == (0, 0, 0)


def test_locked_database_is_retried_in_place_and_nothing_is_lost(tmp_path: Path,
                                                                 mosquitto) -> None:
    url = f"sqlite:///{tmp_path / 'central.db'}"
    engine = ingest_engine(CentralSettings(database_url=url, ingest_sqlite_busy_s=0.2))
    upgrade_database(engine)
    sessions = session_factory(engine)
    ingest = MqttIngest(sessions, mosquitto.host, mosquitto.port, client_id="central-lock")
    ingest.start()
    assert ingest.connected.wait(10)
    lock = sqlite3.connect(tmp_path / "central.db", timeout=5)
    lock.execute("BEGIN EXCLUSIVE")
    pub = _publisher(mosquitto)
    events = [make_event() for _ in range(5)]
    for event in events:
        pub.publish(contract.passage_topic("huunghi", "L1"), event.to_json(),
                    qos=1).wait_for_publish(5)
    assert wait_until(lambda: ingest.stats["db_errors"] >= 2, 20)
    assert ingest.stats["stored"] == 0
    lock.rollback()
    lock.close()
    assert wait_until(lambda: ingest.stats["stored"] == 5, 20)
    ingest.stop()
    pub.loop_stop()
    assert _count(sessions, Passage) == 5
    assert _count(sessions, RejectedMessage) == 0
    # everything was acknowledged: the same persistent session gets nothing again
    again = MqttIngest(sessions, mosquitto.host, mosquitto.port, client_id="central-lock")
    again.start()
    assert again.connected.wait(10)
    time.sleep(1.0)
    again.stop()
    assert sum(again.stats.values()) == 0, again.stats
    engine.dispose()


def test_a_message_that_breaks_storage_is_kept_and_does_not_block(tmp_path: Path,
                                                                  mosquitto) -> None:
    url = f"sqlite:///{tmp_path / 'central.db'}"
    engine = ingest_engine(CentralSettings(database_url=url))
    upgrade_database(engine)
    sessions = session_factory(engine)
    events = [make_event() for _ in range(6)]
    poison = events[2].event_id

    def decide(_session, event):  # type: ignore[no-untyped-def]
        if event.event_id == poison:
            raise RuntimeError("a bug in the decision for this one passage")
        return PassageDecided("cleared", None)

    ingest = MqttIngest(sessions, mosquitto.host, mosquitto.port, client_id="central-poison",
                        on_passage=decide)
    ingest.start()
    assert ingest.connected.wait(10)
    pub = _publisher(mosquitto)
    for event in events:
        pub.publish(contract.passage_topic("huunghi", "L1"), event.to_json(), qos=1)
    assert wait_until(lambda: ingest.stats["stored"] == 5 and ingest.stats["rejected"] == 1, 20)
    ingest.stop()
    pub.loop_stop()
    with sessions() as s:
        stored = set(s.scalars(select(Passage.event_id)))
        reasons = list(s.scalars(select(RejectedMessage.reason)))
    assert stored == {e.event_id for e in events} - {poison}
    assert reasons == ["storage_error: RuntimeError"]
    assert ingest.reject_reasons["storage_error"] == 1
    engine.dispose()


def test_bench_faults_without_mosquitto_is_a_one_line_error(monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    from smartgate.cli import main
    from tools.bench import cli_faults

    monkeypatch.setattr(cli_faults, "mosquitto_binary", lambda: None)
    assert main(["bench", "faults", "--passages", "10"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: bench faults needs Debian's mosquitto")
