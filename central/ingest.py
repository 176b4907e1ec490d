"""MQTT → database ingest: validate every message, store passages idempotently on event_id.

`handle_message` is the core (one message in the caller's transaction, one outcome); `MqttIngest`
is the shell: the network thread queues messages, a storing thread handles whatever queued up
in one transaction, and only after that commit acknowledges each QoS 1 message and publishes the
lane commands, so a crash between receive and commit makes the broker redeliver instead of
losing the passage, and a lane never acts on a decision that was not stored.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from central import store
from smartgate import contract
from smartgate.contract import ContractError, LaneCommand, PassageEvent

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PassageDecided:
    """What the `on_passage` hook decided: the outcome and the lane command to send."""

    outcome: str
    command: LaneCommand | None


@dataclass(frozen=True)
class IngestOutcome:
    """What happened to one message.

    `kind` is stored, duplicate, rejected, node, lane_status, command_ack or ignored; `command`
    is to be published once the transaction commits; `notice` is the live event for the pages.
    """

    kind: str
    reason: str = ""
    event: PassageEvent | None = None
    command: LaneCommand | None = None
    notice: dict | None = None


PassageHook = Callable[[Session, PassageEvent], PassageDecided]


def _store_passage(
    session: Session, site: str, lane: str, payload: bytes, on_passage: PassageHook | None
) -> IngestOutcome:
    event = contract.parse_passage(payload)
    if (event.site, event.lane) != (site, lane):
        raise ContractError(
            f"event for {event.site}/{event.lane} published on topic of {site}/{lane}"
        )
    if store.add_passage(session, event) is None:
        return IngestOutcome("duplicate", event=event)
    decided = on_passage(session, event) if on_passage is not None else None
    plate = event.best_plate
    notice = {
        "type": "passage", "event_id": event.event_id, "site": event.site, "lane": event.lane,
        "plate": plate.text if plate else None,
        "outcome": decided.outcome if decided else None,
    }
    return IngestOutcome(
        "stored", event=event, command=decided.command if decided else None, notice=notice
    )


def handle_message(
    session: Session, topic: str, payload: bytes, on_passage: PassageHook | None = None
) -> IngestOutcome:
    """Validate and store one message in `session` (the caller commits)."""
    try:
        site, name, kind = contract.parse_topic(topic)
        if kind == "passage":
            return _store_passage(session, site, name, payload, on_passage)
        if kind == "node_available":
            if payload not in (contract.AVAILABLE_ONLINE, contract.AVAILABLE_OFFLINE):
                raise ContractError(f"availability must be online/offline, got {payload[:20]!r}")
            online = payload == contract.AVAILABLE_ONLINE
            store.set_node_state(session, site, name, online=online)
            return IngestOutcome(
                "node", notice={"type": "node", "site": site, "node_id": name, "online": online}
            )
        if kind == "node_status":
            status = contract.parse_node_status(payload)
            store.set_node_state(session, site, name, status=json.loads(status.to_json()))
            return IngestOutcome(
                "node", notice={"type": "node", "site": site, "node_id": name, "online": None}
            )
        if kind == "status":
            lane_status = contract.parse_lane_status(payload)
            store.set_lane_status(session, lane_status)
            return IngestOutcome("lane_status", notice={
                "type": "lane_status", "site": site, "lane": name, "state": lane_status.state,
                "queue_length": lane_status.queue_length,
            })  # fmt: skip
        if kind == "command_ack":
            ack = contract.parse_command_ack(payload)
            if store.record_ack(session, ack) is None:
                return IngestOutcome("ignored", reason=f"ack for unknown command {ack.command_id}")
            return IngestOutcome("command_ack", notice={
                "type": "command_ack", "command_id": ack.command_id, "site": site, "lane": name,
                "ok": ack.ok, "detail": ack.detail,
            })  # fmt: skip
        raise ContractError(f"central does not consume {kind!r} messages")
    except ContractError as exc:
        store.add_rejection(session, topic, str(exc), payload)
        return IngestOutcome("rejected", reason=str(exc))


class MqttIngest:
    """Subscribes central to the contract topics and feeds `handle_message`."""

    def __init__(
        self,
        sessions: sessionmaker,
        host: str,
        port: int,
        client_id: str = "smartgate-central",
        site: str = "+",
        username: str | None = None,
        password: str | None = None,
        on_passage: PassageHook | None = None,
        after_commit: Callable[[IngestOutcome], None] | None = None,
        batch_size: int = 50,
    ) -> None:
        self.sessions = sessions
        self.site = site
        self.on_passage = on_passage
        self.after_commit = after_commit
        self.batch_size = batch_size
        self.stats: Counter[str] = Counter()
        self.reject_reasons: Counter[str] = Counter()
        self.connected = threading.Event()
        self._queue: queue.Queue[mqtt.MQTTMessage | None] = queue.Queue()
        self._worker: threading.Thread | None = None
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=False,
            protocol=mqtt.MQTTv311,
        )
        if username:
            self.client.username_pw_set(username, password)
        self.client.manual_ack_set(True)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.2, 5)
        self.host, self.port = host, port

    def start(self) -> None:
        """Start the storing thread, connect (retrying in the background) and the network loop."""
        self._worker = threading.Thread(target=self._work, name="central-ingest", daemon=True)
        self._worker.start()
        self.client.connect_async(self.host, self.port, keepalive=30)
        self.client.loop_start()

    def stop(self) -> None:
        """Store what was received, then disconnect and stop the loop thread."""
        if self._worker is not None:
            self._queue.put(None)
            self._worker.join(30)
            self._worker = None
        self.client.disconnect()
        self.client.loop_stop()

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        """Publish a message on the ingest connection."""
        self.client.publish(topic, payload, qos=qos, retain=retain)

    def send_command(self, command: LaneCommand) -> None:
        """Publish a lane command (QoS 1) on its lane's command topic."""
        self.publish(contract.command_topic(command.site, command.lane), command.to_json())

    def _on_connect(self, client, _userdata, _flags, reason_code, _props=None) -> None:  # type: ignore[no-untyped-def]
        if reason_code.is_failure:
            log.error("MQTT connection refused: %s", reason_code)
            return
        client.subscribe([(t, 1) for t in contract.central_subscriptions(self.site)])
        self.connected.set()
        log.info("central subscribed to %s:%s", self.host, self.port)

    def _on_disconnect(self, _client, _userdata, _flags, reason_code, _props=None) -> None:  # type: ignore[no-untyped-def]
        self.connected.clear()
        if reason_code.is_failure:
            log.warning("MQTT disconnected (%s); reconnecting", reason_code)

    def _on_message(self, _client, _userdata, msg) -> None:  # type: ignore[no-untyped-def]
        self._queue.put(msg)

    def _work(self) -> None:
        """Store messages in batches: whatever queued up (up to `batch_size`) shares a commit."""
        while (msg := self._queue.get()) is not None:
            batch = [msg]
            while len(batch) < self.batch_size:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)
                    break
                batch.append(nxt)
            self._process(batch)

    def _transaction(self, batch: list[mqtt.MQTTMessage]) -> list[IngestOutcome]:
        with self.sessions() as session, session.begin():
            return [
                handle_message(session, m.topic, bytes(m.payload), self.on_passage)
                for m in batch
            ]

    def _process(self, batch: list[mqtt.MQTTMessage]) -> None:
        try:
            done = list(zip(batch, self._transaction(batch), strict=True))
        except Exception:  # noqa: BLE001 - retried one by one below
            log.warning("batch of %d failed; storing its messages one by one", len(batch))
            done = [(m, o) for m in batch if (o := self._one(m)) is not None]
        for msg, outcome in done:
            self._finish(msg, outcome)

    def _one(self, msg: mqtt.MQTTMessage) -> IngestOutcome | None:
        """Store one message in its own transaction, retried once (a concurrent duplicate)."""
        for attempt in (1, 2):
            try:
                return self._transaction([msg])[0]
            except SQLAlchemyError:
                if attempt == 2:
                    self.stats["db_errors"] += 1
                    log.exception("database error storing message on %s; not acknowledged",
                                  msg.topic)
            except Exception:  # a bug must not stop the messages behind this one
                self.stats["errors"] += 1
                log.exception("unexpected error handling message on %s", msg.topic)
                return None
        return None

    def _finish(self, msg: mqtt.MQTTMessage, outcome: IngestOutcome) -> None:
        """After the commit: count, acknowledge, send the command, tell the pages."""
        self.stats[outcome.kind] += 1
        if outcome.kind == "rejected":
            self.reject_reasons[outcome.reason.split(":")[0]] += 1
            log.warning("rejected message on %s: %s", msg.topic, outcome.reason)
        if msg.qos > 0:
            self.client.ack(msg.mid, msg.qos)
        if outcome.command is not None:
            self.send_command(outcome.command)
        if self.after_commit is not None:
            self.after_commit(outcome)
