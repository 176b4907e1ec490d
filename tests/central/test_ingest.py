"""Central ingest against a real mosquitto: stores passages once, rejects garbage, keeps going."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import func, select

from central import store
from central.db import (
    CommandRow,
    DecisionRow,
    FeeRow,
    LaneStatusRow,
    Passage,
    RejectedMessage,
    make_engine,
    session_factory,
    upgrade_database,
)
from central.decisions import DecisionService
from central.domain.declarations import Declaration
from central.domain.rules import RuleSet
from central.ingest import IngestOutcome, MqttIngest, handle_message
from smartgate import contract
from smartgate.contract import CommandAck, LaneCommand, LaneStatus
from tests.conftest import wait_until
from tests.test_contract import T0, make_event

RULES = RuleSet(version="site-7")


def declaration(number: str, plate: str, containers=("CSQU3054383",), kg=32_100.0) -> Declaration:  # type: ignore[no-untyped-def]
    """A declaration that `make_event(plate_front=<plate>)` matches (weight permitting)."""
    return Declaration(
        number=number, direction="import", tractor_plate=plate, containers=containers,
        gross_weight_kg=kg, window_start=T0 - timedelta(hours=1),
        window_end=T0 + timedelta(hours=10), gate="huunghi",
    )


def seed(sessions, *decls: Declaration) -> None:  # type: ignore[no-untyped-def]
    with sessions() as s, s.begin():
        store.import_declarations(s, decls)


def check_ingest_decides_once(sessions) -> None:  # type: ignore[no-untyped-def]
    """A passage delivered twice is stored, decided, charged and commanded exactly once."""
    seed(sessions, declaration("TEST-0001", "29C12345"))
    service = DecisionService(RULES)
    event = make_event()
    topic = contract.passage_topic(event.site, event.lane)
    outcomes = []
    for _ in range(2):
        with sessions() as s, s.begin():
            outcomes.append(handle_message(s, topic, event.to_json(), service.decide_passage))
    first, again = outcomes
    assert (first.kind, again.kind) == ("stored", "duplicate")
    # central may have died before publishing: until the edge acks, a redelivery re-sends it
    assert first.command is not None and again.command == first.command
    with sessions() as s, s.begin():
        store.record_ack(s, contract.CommandAck(
            command_id=first.command.command_id, site="huunghi", lane="L1", node_id="edge-1",
            ok=True))
    with sessions() as s, s.begin():
        acked = handle_message(s, topic, event.to_json(), service.decide_passage)
    assert acked.kind == "duplicate" and acked.command is None
    assert first.command.action == contract.CommandAction.OPEN_BARRIER
    assert first.command.passage_event_id == event.event_id
    assert first.notice == {"type": "passage", "event_id": event.event_id, "site": "huunghi",
                            "lane": "L1", "plate": "29C12345", "outcome": "cleared"}
    with sessions() as s:
        decision = store.current_decision(s, event.event_id)
        assert decision is not None and decision.rules_version == "site-7"
        assert decision.decided_by == "rules:site-7" and decision.declaration_number == "TEST-0001"
        row = store.get_declaration(s, "TEST-0001")
        assert row is not None and row.used_by_event_id == event.event_id
        fee = s.get(FeeRow, event.event_id)
        assert fee is not None and fee.basis == "containers" and fee.amount_vnd > 0


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


def test_passage_decision_fee_and_command_commit_together(tmp_path: Path) -> None:
    sessions = _sessions(tmp_path)
    check_ingest_decides_once(sessions)
    assert _count(sessions, DecisionRow) == 1 and _count(sessions, CommandRow) == 1


def test_failed_decision_rolls_back_the_passage(tmp_path: Path) -> None:
    sessions = _sessions(tmp_path)
    event = make_event()

    def broken(_session, _event):  # type: ignore[no-untyped-def]
        raise RuntimeError("matching bug")

    with pytest.raises(RuntimeError), sessions() as s, s.begin():
        handle_message(s, contract.passage_topic("huunghi", "L1"), event.to_json(), broken)
    assert _count(sessions, Passage) == 0  # not acknowledged either: the broker redelivers


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


class _Edge:
    """The lane's side of the broker: publishes, collects commands, acknowledges them."""

    def __init__(self, broker) -> None:  # type: ignore[no-untyped-def]
        self.commands: list[LaneCommand] = []
        self.got = threading.Condition()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="edge-lane")
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port)
        self.client.subscribe(contract.command_topic("huunghi", "L1"), qos=1)
        self.client.loop_start()

    def _on_message(self, _c, _u, msg) -> None:  # type: ignore[no-untyped-def]
        with self.got:
            self.commands.append(contract.parse_command(msg.payload))
            self.got.notify_all()

    def send(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(5)

    def wait_commands(self, n: int, timeout_s: float = 15) -> list[LaneCommand]:
        with self.got:
            self.got.wait_for(lambda: len(self.commands) >= n, timeout_s)
            return list(self.commands)

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()



def test_passage_in_decision_and_command_out_over_mosquitto(tmp_path: Path, mosquitto) -> None:
    sessions = _sessions(tmp_path)
    seed(sessions, declaration("TEST-0001", "29C12345"),
         declaration("TEST-0002", "51D67890", containers=(), kg=10_000))
    notices: list[dict] = []

    def after_commit(outcome: IngestOutcome) -> None:
        if outcome.notice:
            notices.append(outcome.notice)

    ingest = MqttIngest(sessions, mosquitto.host, mosquitto.port, client_id="central-e2e",
                        on_passage=DecisionService(RULES).decide_passage,
                        after_commit=after_commit)
    ingest.start()
    assert ingest.connected.wait(10)
    edge = _Edge(mosquitto)
    cleared = make_event()
    flagged = make_event(plate_front={"text": "51D67890", "confidence": 0.95}, containers=[])
    unknown = make_event(plate_front={"text": "88H88888", "confidence": 0.95}, containers=[])
    topic = contract.passage_topic("huunghi", "L1")
    for event in (cleared, cleared, flagged, unknown):  # the second is a QoS 1 redelivery
        edge.send(topic, event.to_json())
    # the redelivery comes before the edge acked: the same command (same id) is sent again
    commands = edge.wait_commands(4)
    assert len({c.command_id for c in commands}) == 3
    by_event = {c.passage_event_id: c for c in commands}
    assert by_event[cleared.event_id].action == contract.CommandAction.OPEN_BARRIER
    assert by_event[flagged.event_id].action == contract.CommandAction.SEND_TO_INSPECTION
    assert by_event[flagged.event_id].inspection_lane == "inspection"
    assert "weight_out_of_tolerance" in (by_event[flagged.event_id].message or "")
    assert by_event[unknown.event_id].action == contract.CommandAction.SEND_TO_INSPECTION
    assert all(c.issued_by == "rules:site-7" for c in commands)

    open_cmd = by_event[cleared.event_id]
    edge.send(contract.command_ack_topic("huunghi", "L1"), CommandAck(
        command_id=open_cmd.command_id, site="huunghi", lane="L1", node_id="edge-1", ok=True,
        detail="barrier opened").to_json())
    edge.send(contract.lane_status_topic("huunghi", "L1"), LaneStatus(
        site="huunghi", lane="L1", node_id="edge-1", state="barrier_open",
        queue_length=2).to_json())

    def acked() -> bool:
        with sessions() as s:
            row = s.get(CommandRow, open_cmd.command_id)
            return row is not None and row.ack_ok is True and s.get(
                LaneStatusRow, ("huunghi", "L1")) is not None

    assert wait_until(acked)
    time.sleep(0.3)  # let a wrongly repeated command arrive before counting
    ingest.stop()
    edge.stop()
    assert len(edge.commands) == 4 and len({c.command_id for c in edge.commands}) == 3
    assert _count(sessions, Passage) == 3 and _count(sessions, DecisionRow) == 3
    with sessions() as s:
        outcomes = {d.passage_event_id: d.outcome for d in s.scalars(select(DecisionRow))}
        lane = s.get(LaneStatusRow, ("huunghi", "L1"))
    assert outcomes == {cleared.event_id: "cleared", flagged.event_id: "flagged",
                        unknown.event_id: "no_declaration"}
    assert lane is not None and (lane.state, lane.queue_length) == ("barrier_open", 2)
    kinds = [n["type"] for n in notices]
    assert kinds.count("passage") == 3 and "command_ack" in kinds and "lane_status" in kinds
    assert ingest.stats["duplicate"] == 1 and ingest.stats["command_ack"] == 1
