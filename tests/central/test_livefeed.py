"""The web process of a multi-worker central follows the broker for its live page events."""

from __future__ import annotations

import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from central.decisions import DecisionService
from central.ingest import handle_message
from central.livefeed import LiveFeed, live_notice
from smartgate import contract
from smartgate.contract import LaneStatus, PassageReceipt
from tests.central.test_ingest import RULES, _sessions, declaration, seed
from tests.conftest import wait_until
from tests.test_contract import make_event


def _stored(sessions):  # type: ignore[no-untyped-def]
    """A passage stored and decided as a worker would, and its receipt."""
    seed(sessions, declaration("LIVE-0001", "29C12345"))
    event = make_event()
    with sessions() as s, s.begin():
        out = handle_message(s, contract.passage_topic(event.site, event.lane), event.to_json(),
                             DecisionService(RULES).decide_passage)
    assert out.kind == "stored"
    receipt = PassageReceipt(event_id=event.event_id, site=event.site, lane=event.lane,
                             status="stored")
    return event, receipt


def test_receipt_becomes_a_decided_passage_notice(tmp_path: Path) -> None:
    sessions = _sessions(tmp_path)
    event, receipt = _stored(sessions)
    notice = live_notice(sessions, contract.receipt_topic(event.site, event.lane),
                         receipt.to_json())
    assert notice == {"type": "passage", "event_id": event.event_id, "site": "huunghi",
                      "lane": "L1", "plate": "29C12345", "outcome": "cleared"}
    duplicate = receipt.model_copy(update={"status": "duplicate"})
    assert live_notice(sessions, contract.receipt_topic("huunghi", "L1"),
                       duplicate.to_json()) is None


def test_live_feed_over_mosquitto(tmp_path: Path, mosquitto) -> None:
    sessions = _sessions(tmp_path)
    event, receipt = _stored(sessions)
    notices: list[dict] = []
    feed = LiveFeed(sessions, mosquitto.host, mosquitto.port, notices.append, "central-live")
    feed.start()
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="worker-test")
    pub.connect(mosquitto.host, mosquitto.port)
    pub.loop_start()
    try:
        assert wait_until(lambda: feed.client.is_connected(), 10)
        time.sleep(0.3)  # let the subscription settle
        pub.publish(contract.receipt_topic("huunghi", "L1"), b"garbage", qos=1).wait_for_publish(5)
        pub.publish(contract.receipt_topic("huunghi", "L1"), receipt.to_json(),
                    qos=1).wait_for_publish(5)
        pub.publish(contract.lane_status_topic("huunghi", "L1"), LaneStatus(
            site="huunghi", lane="L1", node_id="edge-1", state="barrier_open").to_json(),
            qos=1).wait_for_publish(5)
        assert wait_until(lambda: len(notices) >= 2, 10)
    finally:
        pub.loop_stop()
        feed.stop()
    assert notices[0]["type"] == "passage" and notices[0]["outcome"] == "cleared"
    assert notices[1] == {"type": "lane_status", "site": "huunghi", "lane": "L1",
                          "state": "barrier_open", "queue_length": 0}
