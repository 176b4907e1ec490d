"""MQTT → database ingest: validate every message, store passages idempotently on event_id.

`handle_message` is the core (one message, one transaction, one outcome); `MqttIngest` is the
shell that subscribes, calls it, and acknowledges each QoS 1 message only after its commit, so a
crash between receive and commit makes the broker redeliver instead of losing the passage.
"""

from __future__ import annotations

import json
import logging
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
from smartgate.contract import ContractError, PassageEvent

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IngestOutcome:
    """What happened to one message: stored, duplicate, rejected, node or ignored."""

    kind: str
    reason: str = ""
    event: PassageEvent | None = None


PassageHook = Callable[[Session, PassageEvent], None]


def handle_message(
    session: Session, topic: str, payload: bytes, on_passage: PassageHook | None = None
) -> IngestOutcome:
    """Validate and store one message in `session` (the caller commits)."""
    try:
        site, name, kind = contract.parse_topic(topic)
        if kind == "passage":
            event = contract.parse_passage(payload)
            if (event.site, event.lane) != (site, name):
                raise ContractError(
                    f"event for {event.site}/{event.lane} published on topic of {site}/{name}"
                )
            row = store.add_passage(session, event)
            if row is None:
                return IngestOutcome("duplicate", event=event)
            if on_passage is not None:
                on_passage(session, event)
            return IngestOutcome("stored", event=event)
        if kind == "node_available":
            if payload not in (contract.AVAILABLE_ONLINE, contract.AVAILABLE_OFFLINE):
                raise ContractError(f"availability must be online/offline, got {payload[:20]!r}")
            store.set_node_state(session, site, name, online=payload == contract.AVAILABLE_ONLINE)
            return IngestOutcome("node")
        if kind == "node_status":
            status = contract.parse_node_status(payload)
            store.set_node_state(session, site, name, status=json.loads(status.to_json()))
            return IngestOutcome("node")
        if kind == "status":
            contract.parse_lane_status(payload)
            return IngestOutcome("ignored", reason="lane status")
        if kind == "command_ack":
            contract.parse_command_ack(payload)
            return IngestOutcome("ignored", reason="command ack")
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
    ) -> None:
        self.sessions = sessions
        self.site = site
        self.on_passage = on_passage
        self.after_commit = after_commit
        self.stats: Counter[str] = Counter()
        self.reject_reasons: Counter[str] = Counter()
        self.connected = threading.Event()
        self._lock = threading.Lock()
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
        """Connect (retrying in the background) and start the network loop thread."""
        self.client.connect_async(self.host, self.port, keepalive=30)
        self.client.loop_start()

    def stop(self) -> None:
        """Disconnect and stop the loop thread."""
        self.client.disconnect()
        self.client.loop_stop()

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        """Publish a message (commands to lanes) on the ingest connection."""
        self.client.publish(topic, payload, qos=qos, retain=retain)

    def _on_connect(self, client, _userdata, _flags, reason_code, _props=None) -> None:  # type: ignore[no-untyped-def]
        if reason_code.is_failure:
            log.error("MQTT connection refused: %s", reason_code)
            return
        client.subscribe([(t, 1) for t in contract.central_subscriptions(self.site)])
        self.connected.set()
        log.info("central subscribed to %s:%s", self.host, self.port)

    def _on_disconnect(self, _client, _userdata, _flags, reason_code, _props=None) -> None:  # type: ignore[no-untyped-def]
        self.connected.clear()
        log.warning("MQTT disconnected (%s); reconnecting", reason_code)

    def _on_message(self, client, _userdata, msg) -> None:  # type: ignore[no-untyped-def]
        with self._lock:
            try:
                with self.sessions() as session, session.begin():
                    outcome = handle_message(session, msg.topic, msg.payload, self.on_passage)
            except SQLAlchemyError:
                self.stats["db_errors"] += 1
                log.exception("database error storing message on %s; not acknowledged", msg.topic)
                return
            except Exception:  # a bug must not stop the messages behind this one
                self.stats["errors"] += 1
                log.exception("unexpected error handling message on %s", msg.topic)
                return
            self.stats[outcome.kind] += 1
            if outcome.kind == "rejected":
                self.reject_reasons[outcome.reason.split(":")[0]] += 1
                log.warning("rejected message on %s: %s", msg.topic, outcome.reason)
            if msg.qos > 0:
                client.ack(msg.mid, msg.qos)
            if self.after_commit is not None:
                self.after_commit(outcome)
