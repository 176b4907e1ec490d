"""The dangerous matching cases end to end: passages over a real mosquitto into central's ingest,
decisions in the database and lane commands back on the broker (docs/matching.md)."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import select

from central import store
from central.db import DecisionRow, make_engine, session_factory, upgrade_database
from central.decisions import DecisionService
from central.domain.declarations import Declaration
from central.domain.rules import RuleSet
from central.ingest import MqttIngest
from smartgate import contract
from smartgate.contract import CommandAction, LaneCommand, PlateRead
from tests.test_contract import T0, make_event

RULES = RuleSet(version="site-7")


def declaration(number: str, tractor: str, trailer: str | None = None) -> Declaration:
    return Declaration(
        number=number, direction="import", tractor_plate=tractor, trailer_plate=trailer,
        window_start=T0 - timedelta(hours=1), window_end=T0 + timedelta(hours=10),
        gate="huunghi",
    )  # fmt: skip


def read(text: str, confidence: float = 0.93) -> PlateRead:
    return PlateRead(text=text, confidence=confidence)


class _Lane:
    """The lane's side of the broker: publishes passages, collects the commands for them."""

    def __init__(self, host: str, port: int) -> None:
        self.commands: dict[str, LaneCommand] = {}
        self.got = threading.Condition()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="lane-matching-e2e")
        self.client.on_message = self._on_message
        self.client.connect(host, port)
        self.client.subscribe(contract.command_topic("huunghi", "L1"), qos=1)
        self.client.loop_start()

    def _on_message(self, _c, _u, msg) -> None:  # type: ignore[no-untyped-def]
        command = contract.parse_command(msg.payload)
        with self.got:
            self.commands[command.passage_event_id or ""] = command
            self.got.notify_all()

    def decide(self, event: contract.PassageEvent) -> LaneCommand:
        """Publish a passage and wait for its lane command."""
        topic = contract.passage_topic("huunghi", "L1")
        self.client.publish(topic, event.to_json(), qos=1).wait_for_publish(5)
        with self.got:
            assert self.got.wait_for(lambda: event.event_id in self.commands, 20), event
            return self.commands[event.event_id]

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def test_dangerous_cases_over_mosquitto(tmp_path: Path, mosquitto) -> None:  # type: ignore[no-untyped-def]
    engine = make_engine(f"sqlite:///{tmp_path / 'central.db'}")
    upgrade_database(engine)
    sessions = session_factory(engine)
    with sessions() as s, s.begin():
        store.import_declarations(s, [
            declaration("CN-0001", "桂A23456"),
            declaration("VN-RIGID", "29C45678"),
            declaration("VN-OWN", "29C45638"),
            declaration("VN-LOOKALIKE", "29C45688"),  # 3 read as 8
            declaration("VN-SEMI", "29C11111", "29R01234"),
        ])  # fmt: skip
    ingest = MqttIngest(sessions, mosquitto.host, mosquitto.port, client_id="central-matching",
                        on_passage=DecisionService(RULES).decide_passage)  # fmt: skip
    ingest.start()
    assert ingest.connected.wait(10)
    lane = _Lane(mosquitto.host, mosquitto.port)
    none = {"containers": [], "weight": None}
    cases = [  # passage, expected action, outcome, reasons, declaration
        (make_event(plate_front=read("粤A23456"), **none),
         CommandAction.SEND_TO_INSPECTION, "no_declaration", {"plate_not_declared"}, None),
        (make_event(plate_front=read("29C45678"), plate_rear=read("29C99812"), **none),
         CommandAction.SEND_TO_INSPECTION, "flagged", {"plates_disagree"}, "VN-RIGID"),
        (make_event(plate_front=read("29C45638"), **none),
         CommandAction.OPEN_BARRIER, "cleared", set(), "VN-OWN"),
        (make_event(plate_front=read("29C45638"), **none),  # re-entering on its used declaration
         CommandAction.SEND_TO_INSPECTION, "flagged", {"declaration_already_used"}, "VN-OWN"),
        (make_event(plate_front=read("29C11111"), trailer_plate=read("29R77777"), **none),
         CommandAction.SEND_TO_INSPECTION, "flagged", {"trailer_mismatch"}, "VN-SEMI"),
        (make_event(plate_front=read("29C11111"), plate_rear=read("29R01234"), **none),
         CommandAction.OPEN_BARRIER, "cleared", set(), "VN-SEMI"),  # rear camera sees the trailer
    ]  # fmt: skip
    try:
        actions = [lane.decide(event).action for event, *_ in cases]
    finally:
        lane.stop()
        ingest.stop()
    assert actions == [action for _, action, *_ in cases]
    with sessions() as s:
        rows = {r.passage_event_id: r for r in s.scalars(select(DecisionRow))}
    for event, _, outcome, reasons, number in cases:
        row = rows[event.event_id]
        got = {r["reason"] for r in row.reasons if r["severity"] == "flag"}
        assert (row.outcome, got, row.declaration_number) == (outcome, reasons, number), event
