"""Central ingest against a real mosquitto: stores passages once, rejects garbage, keeps going."""

from __future__ import annotations

import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import func, select

from central.db import Passage, RejectedMessage, make_engine, session_factory, upgrade_database
from central.ingest import MqttIngest, handle_message
from smartgate import contract
from tests.test_contract import make_event


def _sessions(tmp_path: Path):
    engine = make_engine(f"sqlite:///{tmp_path / 'central.db'}")
    upgrade_database(engine)
    return session_factory(engine)


def _count(sessions, model) -> int:
    with sessions() as s:
        return int(s.scalar(select(func.count()).select_from(model)))


def test_handle_message_is_idempotent_and_keeps_rejects(tmp_path: Path) -> None:
    sessions = _sessions(tmp_path)
    event = make_event()
    topic = contract.passage_topic(event.site, event.lane)
    kinds = []
    for payload in (event.to_json(), event.to_json(), b"{broken"):
        with sessions() as s, s.begin():
            kinds.append(handle_message(s, topic, payload).kind)
    assert kinds == ["stored", "duplicate", "rejected"]
    assert _count(sessions, Passage) == 1
    assert _count(sessions, RejectedMessage) == 1


def test_event_on_wrong_lane_topic_is_rejected(tmp_path: Path) -> None:
    sessions = _sessions(tmp_path)
    event = make_event(lane="L1")
    with sessions() as s, s.begin():
        out = handle_message(s, contract.passage_topic(event.site, "L2"), event.to_json())
    assert out.kind == "rejected" and "topic" in out.reason


def test_ingest_over_mosquitto_survives_malformed_messages(tmp_path: Path, mosquitto) -> None:
    sessions = _sessions(tmp_path)
    ingest = MqttIngest(sessions, mosquitto.host, mosquitto.port, client_id="central-test")
    ingest.start()
    assert ingest.connected.wait(10)
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="edge-test")
    pub.connect(mosquitto.host, mosquitto.port)
    pub.loop_start()
    events = [make_event() for _ in range(5)]
    topic = contract.passage_topic("huunghi", "L1")
    for i, event in enumerate(events):
        pub.publish(topic, b"\x00garbage" if i == 2 else b"{}", qos=1).wait_for_publish(5)
        pub.publish(topic, event.to_json(), qos=1).wait_for_publish(5)
        pub.publish(topic, event.to_json(), qos=1).wait_for_publish(5)  # redelivery
    pub.publish(contract.node_availability_topic("huunghi", "edge-1"), b"online", qos=1,
                retain=True).wait_for_publish(5)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and ingest.stats["stored"] < 5:
        time.sleep(0.1)
    pub.loop_stop()
    ingest.stop()
    assert ingest.stats["stored"] == 5
    assert ingest.stats["duplicate"] == 5
    assert ingest.stats["rejected"] == 5
    assert _count(sessions, Passage) == 5
    with sessions() as s:
        plates = set(s.scalars(select(Passage.plate_text)))
    assert plates == {"29C12345"}
