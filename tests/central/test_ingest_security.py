"""Ingest under hostile or broken input (issues 16 and 17), against real mosquitto and databases:
over-long topic segments on PostgreSQL, a rejection path that itself fails, a fixed set of reject
reasons, topic/node checks, rejected receipts, pushed decisions, health of a dead ingest."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from fastapi.testclient import TestClient
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import func, select, text

from central import store
from central.api import create_app
from central.broker_config import NodeAccess, acl_text, lane_owners_from_acl
from central.config import CentralSettings
from central.db import (
    CommandRow,
    LaneStatusRow,
    Passage,
    RejectedMessage,
    make_engine,
    session_factory,
    upgrade_database,
)
from central.decisions import DecisionService
from central.ingest import MqttIngest, handle_message
from smartgate import contract
from smartgate.contract import CommandAck, LaneCommand, LaneStatus, NodeStatus, RejectReason
from tests.central.test_auth import fast_hashing  # noqa: F401  (autouse: cheap argon2)
from tests.central.test_ingest import RULES, declaration, seed
from tests.conftest import wait_until
from tests.test_contract import make_event

SITE = "huunghi"


def _sessions(url: str):  # type: ignore[no-untyped-def]
    engine = make_engine(url)
    upgrade_database(engine)
    return session_factory(engine)


def _count(sessions, model) -> int:  # type: ignore[no-untyped-def]
    with sessions() as s:
        return int(s.scalar(select(func.count()).select_from(model)))


class Peer:
    """A plain MQTT client on the test broker: publishes, records what it receives."""

    def __init__(self, broker, client_id: str, topics: tuple[str, ...] = ()) -> None:  # type: ignore[no-untyped-def]
        self.messages: list[tuple[str, bytes]] = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port)
        for topic in topics:
            self.client.subscribe(topic, qos=1)
        self.client.loop_start()
        time.sleep(0.2)  # let the subscriptions settle

    def _on_message(self, _c, _u, msg) -> None:  # type: ignore[no-untyped-def]
        with self.lock:
            self.messages.append((msg.topic, bytes(msg.payload)))

    def send(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(5)

    def received(self, suffix: str) -> list[bytes]:
        with self.lock:
            return [p for t, p in self.messages if t.endswith(suffix)]

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def _run_ingest(sessions, broker, **kw) -> MqttIngest:  # type: ignore[no-untyped-def]
    ingest = MqttIngest(sessions, broker.host, broker.port, client_id=f"central-{time.time_ns()}",
                        **kw)
    ingest.start()
    assert ingest.connected.wait(10)
    return ingest


def test_overlong_topic_segment_on_postgres_neither_kills_ingest_nor_overflows(
    pg_database: str, mosquitto
) -> None:
    sessions = _sessions(pg_database)
    ingest = _run_ingest(sessions, mosquitto)
    edge = Peer(mosquitto, "edge-long")
    try:
        long_site = "s" * 300
        event = make_event()
        # the same bad message twice: a redelivery after a restart must not kill it either
        for _ in range(2):
            edge.send(f"{contract.TOPIC_ROOT}/{long_site}/L1/passage", event.to_json())
        edge.send(f"{contract.TOPIC_ROOT}/{SITE}/{'L' * 300}/status", b"{}")
        edge.send(contract.passage_topic(SITE, "L1"), event.to_json())
        assert wait_until(lambda: ingest.stats["stored"] == 1 and ingest.stats["rejected"] == 3)
        assert ingest.alive
    finally:
        edge.stop()
        ingest.stop()
    with sessions() as s:
        rows = s.scalars(select(RejectedMessage)).all()
    assert len(rows) == 3 and all(len(r.topic) <= 256 for r in rows)
    assert {r.reason.split(":")[0] for r in rows} == {"bad_topic"}
    assert dict(ingest.reject_reasons) == {"bad_topic": 3}


def test_a_failing_rejection_is_logged_and_ingest_goes_on(tmp_path: Path, mosquitto, caplog) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    sessions = _sessions(url)
    with sessions() as s, s.begin():  # the rejection record cannot be written any more
        s.execute(text("CREATE TRIGGER no_rejects BEFORE INSERT ON rejected_messages "
                       "BEGIN SELECT RAISE(ABORT, 'rejections refused'); END"))
    ingest = _run_ingest(sessions, mosquitto)
    edge = Peer(mosquitto, "edge-drop")
    try:
        edge.send(contract.passage_topic(SITE, "L1"), b"{not json")
        event = make_event()
        edge.send(contract.passage_topic(SITE, "L1"), event.to_json())
        assert wait_until(lambda: ingest.stats["stored"] == 1)
        assert ingest.alive and ingest.stats["rejection_failed"] >= 1
    finally:
        edge.stop()
        ingest.stop()
    assert _count(sessions, Passage) == 1
    assert "could not keep the rejected message" in caplog.text


def test_300_distinct_junk_messages_do_not_grow_metrics_or_health(tmp_path: Path,
                                                                   mosquitto) -> None:
    sessions = _sessions(f"sqlite:///{tmp_path / 'c.db'}")
    ingest = _run_ingest(sessions, mosquitto)
    edge = Peer(mosquitto, "edge-junk")

    def junk(i: int) -> tuple[str, bytes]:
        kind = i % 5
        if kind == 0:
            return contract.passage_topic(SITE, "L1"), json.dumps(
                {"schema": f"evil-{i}-" + "x" * 200, "version": 1}).encode()
        if kind == 1:
            return contract.passage_topic(SITE, "L1"), f"not json {i}".encode()
        if kind == 2:
            return contract.lane_status_topic(SITE, f"lane{i}"), LaneStatus(
                site=SITE, lane=f"other{i}", node_id="edge-1", state="fault").to_json()
        if kind == 3:
            return contract.node_availability_topic(SITE, f"n{i}"), f"maybe {i}".encode()
        return contract.passage_topic(SITE, "L1"), json.dumps(
            {"schema": "smartgate.passage", "version": 1, f"field_{i}": "y" * 100}).encode()

    try:
        for i in range(10):
            edge.send(*junk(i))
        assert wait_until(lambda: ingest.stats["rejected"] == 10)
        size_10 = len(ingest.metrics.render())
        for i in range(10, 300):
            edge.send(*junk(i))
        assert wait_until(lambda: ingest.stats["rejected"] == 300, 60)
        size_300 = len(ingest.metrics.render())
    finally:
        edge.stop()
        ingest.stop()
    labels = set(ingest.reject_reasons)
    assert labels <= {r.value for r in RejectReason}
    assert labels == {"wrong_schema", "not_json", "topic_mismatch", "invalid"}
    assert size_300 - size_10 < 200  # counts grew by digits, no new series


def test_status_ack_and_node_status_must_match_their_topic(tmp_path: Path) -> None:
    sessions = _sessions(f"sqlite:///{tmp_path / 'c.db'}")
    with sessions() as s, s.begin():
        command = LaneCommand(site=SITE, lane="LB", action=contract.CommandAction.OPEN_BARRIER,
                              issued_by="test")
        store.add_command(s, command)

    def handle(topic: str, payload: bytes, owners=None):  # type: ignore[no-untyped-def]
        with sessions() as s, s.begin():
            return handle_message(s, topic, payload, lane_owners=owners)

    # lane LA's node sets lane LB to fault / creates a ghost lane: payload lane is not the topic's
    for lane in ("LB", "ghost"):
        out = handle(contract.lane_status_topic(SITE, "LA"), LaneStatus(
            site=SITE, lane=lane, node_id="edge-a", state="fault").to_json())
        assert (out.kind, out.reason) == ("rejected", RejectReason.TOPIC_MISMATCH)
    # ... acks LB's command on its own ack topic, or claims to be LB in the ack
    ack = CommandAck(command_id=command.command_id, site=SITE, lane="LA", node_id="edge-a",
                     ok=True)
    assert handle(contract.command_ack_topic(SITE, "LA"), ack.to_json()).reason == \
        RejectReason.TOPIC_MISMATCH
    ack_b = ack.model_copy(update={"lane": "LB"})
    assert handle(contract.command_ack_topic(SITE, "LA"), ack_b.to_json()).reason == \
        RejectReason.TOPIC_MISMATCH
    # ... reports health for another node
    status = NodeStatus(site=SITE, node_id="edge-b")
    assert handle(contract.node_status_topic(SITE, "edge-a"), status.to_json()).reason == \
        RejectReason.TOPIC_MISMATCH
    with sessions() as s:
        assert s.get(LaneStatusRow, (SITE, "LB")) is None
        assert s.get(LaneStatusRow, (SITE, "ghost")) is None
        row = s.get(CommandRow, command.command_id)
        assert row is not None and row.acked_at is None
    # with the broker's ACL central knows who serves each lane: a passage naming another node
    owners = lane_owners_from_acl(acl_text(SITE, [NodeAccess("edge-a", ("LA",)),
                                                  NodeAccess("edge-b", ("LB",))]))
    assert owners == {(SITE, "LA"): "edge-a", (SITE, "LB"): "edge-b"}
    forged = make_event(lane="LA", node_id="edge-b")
    out = handle(contract.passage_topic(SITE, "LA"), forged.to_json(), owners)
    assert (out.kind, out.reason) == ("rejected", RejectReason.NODE_MISMATCH)
    assert out.receipt is not None and out.receipt.status == "rejected"
    lane_b = LaneStatus(site=SITE, lane="LA", node_id="edge-b", state="idle").to_json()
    assert handle(contract.lane_status_topic(SITE, "LA"), lane_b, owners).reason == \
        RejectReason.NODE_MISMATCH
    claims = NodeStatus(site=SITE, node_id="edge-a", lanes=["LA", "LB"]).to_json()
    assert handle(contract.node_status_topic(SITE, "edge-a"), claims, owners).reason == \
        RejectReason.NODE_MISMATCH
    good = make_event(lane="LA", node_id="edge-a")
    assert handle(contract.passage_topic(SITE, "LA"), good.to_json(), owners).kind == "stored"
    ack_own = CommandAck(command_id=command.command_id, site=SITE, lane="LB", node_id="edge-b",
                         ok=True)
    assert handle(contract.command_ack_topic(SITE, "LB"), ack_own.to_json(),
                  owners).kind == "command_ack"


def test_every_passage_is_answered_and_decisions_are_pushed(tmp_path: Path, mosquitto) -> None:
    sessions = _sessions(f"sqlite:///{tmp_path / 'c.db'}")
    seed(sessions, declaration("TEST-0001", "29C12345"))
    ingest = _run_ingest(sessions, mosquitto, on_passage=DecisionService(RULES).decide_passage)
    root = f"{contract.TOPIC_ROOT}/{SITE}/L1"
    edge = Peer(mosquitto, "edge-answers", (f"{root}/receipt", f"{root}/decision"))
    try:
        good = make_event()
        bad = make_event()
        bad_payload = json.loads(bad.to_json())
        bad_payload["weight"]["gross_kg"] = -5
        wrong_lane = make_event(lane="L9")
        for event in (good, good):
            edge.send(contract.passage_topic(SITE, "L1"), event.to_json())
        edge.send(contract.passage_topic(SITE, "L1"), json.dumps(bad_payload).encode())
        edge.send(contract.passage_topic(SITE, "L1"), wrong_lane.to_json())
        edge.send(contract.passage_topic(SITE, "L1"), b"{no event id")
        assert wait_until(lambda: len(edge.received("/receipt")) == 4
                          and len(edge.received("/decision")) == 1)
        time.sleep(0.3)  # nothing more should come: the id-less junk cannot be answered
        receipts = [contract.parse_receipt(p) for p in edge.received("/receipt")]
        decisions = [contract.parse_decision(p) for p in edge.received("/decision")]
    finally:
        edge.stop()
        ingest.stop()
    answers = {(r.event_id, r.status, r.reason) for r in receipts}
    assert answers == {(good.event_id, "stored", None), (good.event_id, "duplicate", None),
                       (bad.event_id, "rejected", RejectReason.INVALID),
                       (wrong_lane.event_id, "rejected", RejectReason.TOPIC_MISMATCH)}
    (decision,) = decisions
    assert (decision.event_id, decision.outcome) == (good.event_id, "cleared")
    assert decision.matched_containers == ["CSQU3054383"]
    assert decision.declaration_number == "TEST-0001" and decision.decided_by == "rules:site-7"


def test_rejections_api_and_health_of_a_dead_ingest(tmp_path: Path, mosquitto) -> None:
    from tests.central.test_api import SECRET, bearer

    settings = CentralSettings(database_url=f"sqlite:///{tmp_path / 'c.db'}", data_dir=tmp_path,
                               secret_key=SECRET, mqtt_host=mosquitto.host,
                               mqtt_port=mosquitto.port, mqtt_client_id="central-health",
                               site=SITE)
    app = create_app(settings)
    with TestClient(app) as client:
        admin, officer = bearer(client, "ada", "admin"), bearer(client, "olga", "officer")
        ingest = app.state.ingest
        assert ingest.connected.wait(10)
        edge = Peer(mosquitto, "edge-health")
        event = make_event()
        edge.send(contract.passage_topic(SITE, "L1"), b'{"schema": "smartgate.passage"}')
        edge.send(contract.passage_topic(SITE, "L1"),
                  event.model_copy(update={"lane": "L2"}).to_json())
        assert wait_until(lambda: ingest.stats["rejected"] == 2)
        edge.stop()
        assert client.get("/api/rejections", headers=officer).status_code == 403
        rows = client.get("/api/rejections", headers=admin).json()
        assert [(r["reason"], r["kind"], r["lane_or_node"]) for r in rows] == [
            ("topic_mismatch", "passage", "L1"), ("unsupported_version", "passage", "L1")]
        assert rows[0]["event_id"] == event.event_id and "L2" in rows[0]["detail"]
        assert client.get("/api/rejections?limit=1", headers=admin).json()[0]["id"] == \
            rows[0]["id"]

        # a stored passage's decision, and an officer's later one, are pushed on the decision
        # topic; the API's decision names the matched containers
        seed(app.state.sessions, declaration("TEST-0001", "29C12345"))
        platform = Peer(mosquitto, "platform", (f"{contract.TOPIC_ROOT}/{SITE}/+/decision",))
        edge = Peer(mosquitto, "edge-health-2")
        edge.send(contract.passage_topic(SITE, "L1"), event.to_json())
        assert wait_until(lambda: len(platform.received("/decision")) == 1)
        detail = client.get(f"/api/passages/{event.event_id}", headers=officer).json()
        assert detail["passage"]["decision"]["matched_containers"] == ["CSQU3054383"]
        reply = client.post(f"/api/passages/{event.event_id}/decision", headers=officer,
                            json={"verdict": "hold", "note": "seal photo unclear"})
        assert reply.status_code == 200, reply.text
        assert wait_until(lambda: len(platform.received("/decision")) == 2)
        rules, officer_said = (contract.parse_decision(p) for p in platform.received("/decision"))
        assert (rules.outcome, rules.matched_containers) == ("cleared", ["CSQU3054383"])
        assert (officer_said.outcome, officer_said.decided_by) == ("held", "olga")
        assert officer_said.matched_containers == ["CSQU3054383"]
        platform.stop()
        edge.stop()

        health = client.get("/api/health", headers=admin)
        assert health.status_code == 200 and health.json()["status"] == "ok"
        assert health.json()["mqtt_connected"] is True
        assert health.json()["rejects_by_reason"] == {"topic_mismatch": 1,
                                                      "unsupported_version": 1}
        assert health.json()["ingest"]["stored"] == 1
        ingest._queue.put(None)  # the storing thread ends, as a crash would end it
        assert wait_until(lambda: not ingest.alive)
        dead = client.get("/api/health")
        assert dead.status_code == 503 and dead.json()["status"] == "ingest_stopped"


@pytest.mark.parametrize("anonymous", [True, False])
def test_central_warns_loudly_without_mqtt_credentials(anonymous: bool, caplog) -> None:
    from central.ingest import warn_if_insecure

    settings = CentralSettings(mqtt_username=None if anonymous else "central",
                               mqtt_password="pw", mqtt_host="10.1.2.3")
    caplog.set_level("WARNING")
    warn_if_insecure(settings)
    assert ("MQTT WITHOUT CREDENTIALS" in caplog.text) is anonymous
    assert "MQTT IN CLEAR TEXT" in caplog.text
    caplog.clear()
    warn_if_insecure(CentralSettings(demo_mode=True))  # the demo's local embedded broker
    assert "MQTT WITHOUT CREDENTIALS" not in caplog.text


class HoldAfterConnack:
    """A TCP relay between a client and mosquitto that passes the broker's CONNACK (its first
    4 bytes) and holds everything after it (the SUBACK) until `release` is set."""

    def __init__(self, broker) -> None:  # type: ignore[no-untyped-def]
        import socket

        self.broker = broker
        self.release = threading.Event()
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import socket

        client, _ = self.server.accept()
        upstream = socket.create_connection((self.broker.host, self.broker.port))
        threading.Thread(target=self._pipe, args=(client, upstream, False), daemon=True).start()
        threading.Thread(target=self._pipe, args=(upstream, client, True), daemon=True).start()

    def _pipe(self, src, dst, hold: bool) -> None:  # type: ignore[no-untyped-def]
        passed = 0
        try:
            while data := src.recv(65536):
                if hold and passed >= 4:
                    self.release.wait()
                elif hold:
                    head, data = data[: 4 - passed], data[4 - passed:]
                    dst.sendall(head)
                    passed += len(head)
                    if data:
                        self.release.wait()
                if data:
                    dst.sendall(data)
        except OSError:
            pass

    def close(self) -> None:
        self.release.set()
        self.server.close()


def test_mqtt_connected_waits_for_the_suback(tmp_path: Path, mosquitto) -> None:
    sessions = _sessions(f"sqlite:///{tmp_path / 'c.db'}")
    relay = HoldAfterConnack(mosquitto)
    ingest = MqttIngest(sessions, "127.0.0.1", relay.port, client_id="central-suback")
    ingest.start()
    try:
        assert wait_until(lambda: ingest._generation == 1, 10)  # the CONNACK came through
        assert not ingest.connected.wait(1.0)  # the SUBACK has not
        relay.release.set()
        assert ingest.connected.wait(10)
    finally:
        ingest.stop()
        relay.close()


def test_admin_page_lists_rejections_escaped(tmp_path: Path) -> None:
    from tests.central.test_auth import add_users, login, settings_for

    settings = settings_for(tmp_path)
    add_users(settings, ("ada", "admin"), ("olga", "officer"))
    app = create_app(settings, start_ingest=False)
    marker = "<script>alert(1)</script>"
    with TestClient(app, base_url="https://testserver") as client:
        with app.state.sessions() as s, s.begin():
            bad = json.dumps({"schema": "smartgate.passage", "version": 1,
                              "event_id": "evil-0001", "site": marker}).encode()
            out = handle_message(s, contract.passage_topic(SITE, "L1"), bad)
        assert out.reason is RejectReason.INVALID
        login(client, "olga")
        assert client.get("/rejections").status_code == 403
        assert "/rejections" not in client.get("/passages").text
        client.cookies.clear()
        login(client, "ada")
        page = client.get("/rejections")
        assert page.status_code == 200
        assert "evil-0001" in page.text and "invalid" in page.text
        assert marker not in page.text and "&lt;script&gt;" in page.text
        assert 'href="/rejections"' in client.get("/passages").text
