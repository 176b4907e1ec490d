"""Scale-out: two ingest worker processes on MQTT 5 shared subscriptions store every passage once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from central.db import CommandRow, DecisionRow, Passage, make_engine, session_factory
from edge.config import MqttConfig
from edge.runtime.publisher import EdgePublisher
from edge.runtime.spool import Spool
from smartgate import contract
from tests.test_contract import make_event

REPO = Path(__file__).resolve().parents[2]


def _worker(worker_id: str, url: str, port: int, log: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-m", "smartgate.cli", "central", "ingest", "--worker-id", worker_id,
         "--database-url", url, "--mqtt-port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=log.open("ab"),
    )


def _count(sessions, column) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """(rows, distinct passage ids) of a table."""
    with sessions() as s:
        return (int(s.scalar(select(func.count(column)))),
                int(s.scalar(select(func.count(func.distinct(column))))))


@pytest.mark.slow
def test_two_workers_store_every_passage_exactly_once(tmp_path: Path, mosquitto, pg_database) -> None:
    logs = {w: tmp_path / f"{w}.log" for w in ("w1", "w2")}
    procs = {w: _worker(w, pg_database, mosquitto.port, logs[w]) for w in logs}
    engine = make_engine(pg_database)
    sessions = session_factory(engine)
    spool = Spool(tmp_path / "spool.db")
    edge = EdgePublisher("huunghi", "edge-w", [], MqttConfig(port=mosquitto.port, inflight=32),
                         spool)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not all(
                "connected to" in p.read_text() for p in logs.values()):
            time.sleep(0.1)
        edge.start()
        events = [make_event(lane=f"L{k % 4 + 1}") for k in range(300)]
        for k, event in enumerate(events):
            spool.put(event.event_id, contract.passage_topic(event.site, event.lane),
                      event.to_json())
            edge.notify()
            if k == 150:  # a worker dies mid-stream; its session keeps what was queued for it
                procs["w2"].send_signal(signal.SIGKILL)
                procs["w2"].wait(5)
                procs["w2"] = _worker("w2", pg_database, mosquitto.port, logs["w2"])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and _count(sessions, Passage.event_id)[0] < 300:
            time.sleep(0.2)
        time.sleep(0.5)  # anything more would be a second copy
        assert _count(sessions, Passage.event_id) == (300, 300)
        assert _count(sessions, DecisionRow.passage_event_id) == (300, 300)
        assert _count(sessions, CommandRow.passage_event_id) == (300, 300)
        with sessions() as s:
            stored = set(s.scalars(select(Passage.event_id)))
        assert stored == {e.event_id for e in events}
    finally:
        edge.stop(drain_timeout_s=1)
        spool.close()
        for proc in procs.values():
            proc.terminate()
        for proc in procs.values():
            proc.wait(20)
        engine.dispose()
    shares = [p.read_text().count("ingest worker") for p in logs.values()]
    assert all(shares), shares
    stopped = [line for p in logs.values() for line in p.read_text().splitlines()
               if "stopped:" in line]
    stored_by = [int(line.split("'stored': ")[1].split(",")[0].rstrip("}"))
                 for line in stopped if "'stored'" in line]
    assert len(stored_by) >= 2 and all(n > 0 for n in stored_by), stopped  # both took a share
