"""Store-and-forward: the spool survives kill -9 of the edge; every event arrives once, in order.

The edge runs as a subprocess (`smartgate edge run`) against a real mosquitto that is stopped
while the edge spools and started again before a second edge process drains the spool.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import paho.mqtt.client as mqtt
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from edge.config import MqttConfig
from edge.runtime.publisher import EdgePublisher
from edge.runtime.spool import Spool
from smartgate import contract
from smartgate.contract import PassageEvent
from tests.conftest import wait_until
from tests.test_contract import make_event


def _spooled(db: Path) -> list[str]:
    if not db.exists():
        return []
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as conn:
            return [r[0] for r in conn.execute("SELECT event_id FROM outbox ORDER BY seq")]
    except sqlite3.OperationalError:
        return []


class Collector:
    """A subscriber recording every passage event id it receives; with `receipts` it answers
    each with a `PassageReceipt`, as central does once a passage is stored."""

    def __init__(self, host: str, port: int, persistent: bool = False,
                 receipts: bool = True) -> None:
        self.ids: list[str] = []
        self.receipts = receipts
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="collector",
                                  clean_session=not persistent)
        self.client.reconnect_delay_set(0.1, 1)
        self.client.on_message = self._on_message
        self.client.connect(host, port)
        self.client.subscribe(f"{contract.TOPIC_ROOT}/+/+/passage", qos=1)
        self.client.loop_start()
        time.sleep(0.3)

    def _on_message(self, _client, _userdata, msg) -> None:  # type: ignore[no-untyped-def]
        event = contract.parse_passage(msg.payload)
        self.ids.append(event.event_id)
        if self.receipts:
            self.receipt(event)

    def receipt(self, event: PassageEvent) -> None:
        """Confirm `event` to its edge."""
        receipt = contract.PassageReceipt(event_id=event.event_id, site=event.site,
                                          lane=event.lane, status="stored")
        self.client.publish(contract.receipt_topic(event.site, event.lane), receipt.to_json(),
                            qos=1)

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def _folder(tmp_path: Path) -> Path:
    from tools.synth.plates import render_scene

    folder = tmp_path / "camera"
    folder.mkdir()
    empty = np.full((720, 1280, 3), 90, np.uint8)
    for k, text in enumerate(["29C12345", "51D67890", "30H98765", "15C24680", "88C13579"]):
        cv2.imwrite(str(folder / f"{k:02d}a.jpg"), render_scene(text, "vn", 1, seed=k))
        cv2.imwrite(str(folder / f"{k:02d}b.jpg"), empty)
    return folder


@pytest.mark.slow
def test_spool_survives_kill_9_and_drains_exactly_once(tmp_path: Path, mosquitto) -> None:
    config = {
        "site": "huunghi", "node_id": "edge-k9", "data_dir": str(tmp_path / "edge"),
        "mqtt": {"host": mosquitto.host, "port": mosquitto.port, "keepalive_s": 5},
        "inference": {"det_limit_side": 360, "max_batch": 2},
        "lanes": [{"lane": "L1", "cameras": [
            {"name": "front", "source": str(_folder(tmp_path)), "fps": 5, "scale": 0.5}],
            "trigger": {"type": "plate", "gap_frames": 1}}],
    }
    path = tmp_path / "edge.yaml"
    path.write_text(yaml.safe_dump(config))
    db = tmp_path / "edge" / "spool.db"
    cmd = [sys.executable, "-m", "smartgate.cli", "edge", "run", "--config", str(path), "--fast",
           "--drain-timeout", "20"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}

    mosquitto.stop()  # broker away: events pile up in the spool
    first = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 90
    while len(_spooled(db)) < 2 and time.monotonic() < deadline and first.poll() is None:
        time.sleep(0.1)
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    spooled = _spooled(db)
    assert len(spooled) >= 2, first.stdout.read().decode() if first.stdout else ""

    mosquitto.start()
    collector = Collector(mosquitto.host, mosquitto.port)
    second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert second.returncode == 0, second.stdout + second.stderr
    emitted = int(second.stdout.split("edge edge-k9: ")[1].split()[0])
    deadline = time.monotonic() + 60  # a bound against hanging, not a duration under test
    while len(collector.ids) < len(spooled) + emitted and time.monotonic() < deadline:
        time.sleep(0.1)
    collector.stop()
    assert collector.ids[: len(spooled)] == spooled  # the old ones first, in order
    assert len(collector.ids) == len(set(collector.ids)) == len(spooled) + emitted
    assert _spooled(db) == []


def test_pipelined_drain_keeps_order_across_a_broker_restart(tmp_path: Path, mosquitto) -> None:
    spool = Spool(tmp_path / "spool.db")
    publisher = EdgePublisher("huunghi", "edge-p", [], MqttConfig(
        host=mosquitto.host, port=mosquitto.port, keepalive_s=5, inflight=8), spool)
    # a persistent subscriber: the broker keeps its session and queued messages over a restart
    collector = Collector(mosquitto.host, mosquitto.port, persistent=True)
    publisher.start()
    assert publisher.connected.wait(10)
    events = [make_event() for _ in range(60)]
    topic = contract.passage_topic("huunghi", "L1")
    for e in events[:30]:
        spool.put(e.event_id, topic, e.to_json())
        publisher.notify()
    assert publisher.connected.is_set()
    deadline = time.monotonic() + 60  # a bound against hanging, not a duration under test
    while spool.depth() and time.monotonic() < deadline:
        time.sleep(0.05)
    while len(collector.ids) < 30 and time.monotonic() < deadline:
        time.sleep(0.05)
    first_half = list(collector.ids)
    mosquitto.stop(graceful=True)
    for e in events[30:]:
        spool.put(e.event_id, topic, e.to_json())
        publisher.notify()
    time.sleep(0.5)
    assert spool.depth() == 30  # nothing lost while the broker is away
    mosquitto.start()
    deadline = time.monotonic() + 60
    while (spool.depth() or len(collector.ids) < 60) and time.monotonic() < deadline:
        time.sleep(0.05)
    publisher.stop()
    collector.stop()
    assert spool.depth() == 0
    assert first_half == [e.event_id for e in events[:30]]
    assert collector.ids[30:] == [e.event_id for e in events[30:]]
    spool.close()


def test_spool_keeps_a_sent_message_until_its_receipt(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db")
    for k in range(3):
        spool.put(f"event-{k:04d}", "t", b"p")

    def due(now: float, skip: list[int] | None = None) -> list[int]:
        return [m.seq for m in spool.due(10, now, timeout_s=10.0, skip=skip or [])]

    assert [m.event_id for m in spool.due(10, 0.0, 10.0)] == [
        "event-0000", "event-0001", "event-0002"]
    assert due(0.0, skip=[1]) == [2, 3]
    spool.mark_sent(1, at=100.0)
    assert due(105.0) == [2, 3]  # sent, receipt not overdue
    assert due(111.0) == [1, 2, 3]  # overdue: again, in order
    spool.mark_sent(1, at=200.0)
    assert due(215.0) == [2, 3]  # the second send waits twice as long
    assert due(221.0) == [1, 2, 3]
    assert spool.depth() == 3
    assert spool.receipted("event-0000") and not spool.receipted("event-0000")
    spool.mark_sent(2, at=100.0)
    assert spool.unsend_all() == 1  # a reconnect: publish every unreceipted one now
    assert due(100.0) == [2, 3]
    assert spool.depth() == 2
    spool.close()


def test_overtaken_messages_are_sent_again_early(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db")
    for k in range(4):
        spool.put(f"event-{k}", "t", b"p")
    for seq, at in ((1, 100.0), (2, 101.0), (3, 108.0), (4, 120.0)):
        spool.mark_sent(seq, at=at)

    def due() -> list[int]:
        return [m.seq for m in spool.due(10, 121.0, timeout_s=300.0, overtaken_s=10.0)]

    assert due() == []  # nothing receipted yet: central may only be behind
    assert spool.receipted("event-2")  # sent at 108: overtakes nothing by 10 s
    assert due() == []
    assert spool.receipted("event-3")  # sent at 120: 1 and 2 went 19-20 s before it
    assert due() == [1, 2]
    assert [m.seq for m in spool.due(10, 121.0, timeout_s=300.0)] == []  # rule is opt-in
    spool.close()


def test_no_timer_resend_while_central_is_still_receipting(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db")
    for k in range(2):
        spool.put(f"event-{k}", "t", b"p")
    spool.mark_sent(1, at=100.0)
    spool.mark_sent(2, at=100.0)
    assert spool.receipted("event-1", at=105.0)  # central is working through a backlog

    def due(now: float) -> list[int]:
        return [m.seq for m in spool.due(10, now, timeout_s=10.0)]

    assert due(111.0) == []  # overdue, but a receipt came 6 s ago: central is only behind
    assert due(116.0) == [1]  # 11 s without any receipt: publish it again
    spool.close()


def test_edge_republishes_until_central_receipts(tmp_path: Path, mosquitto) -> None:
    spool = Spool(tmp_path / "spool.db")
    publisher = EdgePublisher("huunghi", "edge-r", [], MqttConfig(
        host=mosquitto.host, port=mosquitto.port, inflight=4, receipt_timeout_s=1.0), spool)
    silent = Collector(mosquitto.host, mosquitto.port, receipts=False)
    publisher.start()
    try:
        assert publisher.connected.wait(10)
        events = [make_event(lane=f"L{k % 2 + 1}") for k in range(3)]
        for e in events:
            spool.put(e.event_id, contract.passage_topic(e.site, e.lane), e.to_json())
        publisher.notify()
        ids = [e.event_id for e in events]
        assert wait_until(lambda: silent.ids == ids, 30)
        assert wait_until(lambda: publisher.published >= 3, 30)
        assert spool.depth() == 3  # the broker's PUBACK alone removes nothing
        assert wait_until(lambda: len(silent.ids) >= 6, 30)  # no receipt in 1 s: sent again
        assert silent.ids[3:6] == ids  # in order
        for e in events[:2]:
            silent.receipt(e)
        assert wait_until(lambda: spool.depth() == 1, 30)
        assert [m.event_id for m in spool.due(10, float("inf"), 0.0)] == ids[2:]
        silent.receipt(events[2])
        assert wait_until(lambda: spool.depth() == 0, 30)
        assert publisher.receipts == 3
        seen = len(silent.ids)
        time.sleep(1.5)
        assert len(silent.ids) == seen  # receipted: never sent again
    finally:
        publisher.stop(drain_timeout_s=0)
        silent.stop()
        spool.close()


def test_rejected_passage_is_kept_visible_and_never_resent(tmp_path: Path, mosquitto) -> None:
    """Central (the real ingest) answers a bad passage with a rejected receipt: the edge marks
    it rejected in its spool, stops sending it, and keeps sending the good ones."""
    from central.db import make_engine, session_factory, upgrade_database
    from central.ingest import MqttIngest

    engine = make_engine(f"sqlite:///{tmp_path / 'central.db'}")
    upgrade_database(engine)
    ingest = MqttIngest(session_factory(engine), mosquitto.host, mosquitto.port,
                        client_id="central-rej")
    ingest.start()
    spool = Spool(tmp_path / "spool.db")
    publisher = EdgePublisher("huunghi", "edge-1", [], MqttConfig(
        host=mosquitto.host, port=mosquitto.port, receipt_timeout_s=0.5,
        receipt_overtaken_s=0.5), spool)
    publisher.start()
    try:
        assert ingest.connected.wait(10) and publisher.connected.wait(10)
        good, wrong_lane = make_event(), make_event(lane="L2")
        spool.put(good.event_id, contract.passage_topic("huunghi", "L1"), good.to_json())
        # published on L1's topic but says L2: central rejects it (topic_mismatch)
        spool.put(wrong_lane.event_id, contract.passage_topic("huunghi", "L1"),
                  wrong_lane.to_json())
        too_big = make_event()
        spool.put(too_big.event_id, contract.passage_topic("huunghi", "L1"),
                  b" " * (contract.MAX_PAYLOAD_BYTES + 1))
        publisher.notify()
        assert wait_until(lambda: spool.depth() == 0 and spool.rejected_count() == 2, 30)
        time.sleep(2.0)  # several receipt timeouts: a rejected passage must not come back
        assert ingest.stats["rejected"] == 1 and ingest.stats["stored"] == 1
        assert publisher.rejected == 2 and publisher.receipts == 1
        rejected = {r.event_id: r.reason for r in spool.list_rejected()}
        assert rejected == {wrong_lane.event_id: "topic_mismatch", too_big.event_id: "too_large"}
    finally:
        publisher.stop(drain_timeout_s=0)
        ingest.stop()
        spool.close()
        engine.dispose()
    from edge.runtime.metrics import EdgeMetrics, NodeCounts

    reopened = Spool(tmp_path / "spool.db")  # kept across a restart, still not due
    assert reopened.rejected_count() == 2 and reopened.due(10, float("inf"), 0.0) == []
    metrics = EdgeMetrics(lambda: NodeCounts(spool_rejected=reopened.rejected_count()))
    assert "smartgate_edge_spool_rejected 2.0" in metrics.render().decode()
    reopened.close()
