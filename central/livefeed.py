"""Live events for the HTTP process of a multi-worker central.

With `--workers N` the ingest runs in worker processes, so the web process's event bus hears
nothing from them. `LiveFeed` listens on the broker instead (a plain, non-persistent subscription
at QoS 0 — the workers store everything; this only informs the pages): a passage receipt means a
worker has committed that passage and its decision, so the notice is built from the database;
lane status, node availability and command acks are turned into notices as they arrive.
"""

from __future__ import annotations

import json
import logging
import ssl
from collections.abc import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy.orm import sessionmaker

from central import events, store
from smartgate import contract
from smartgate.contract import ContractError

log = logging.getLogger(__name__)


def live_topics(site: str = "+") -> list[str]:
    """What the live feed listens to."""
    root = f"{contract.TOPIC_ROOT}/{site}"
    return [f"{root}/+/receipt", f"{root}/+/status", f"{root}/+/command/ack",
            f"{root}/node/+/available", f"{root}/node/+/status"]


def live_notice(sessions: sessionmaker, topic: str, payload: bytes) -> dict | None:
    """The page notice for one message seen on the broker; None when there is nothing to show."""
    site, name, kind = contract.parse_topic(topic)
    if kind == "receipt":
        receipt = contract.parse_receipt(payload)
        if receipt.status != "stored":
            return None
        with sessions() as session:
            passage = store.get_passage(session, receipt.event_id)
            if passage is None:
                return None
            decision = store.current_decision(session, receipt.event_id)
            return events.passage_notice(passage.event_id, passage.site, passage.lane,
                                         passage.plate_text,
                                         decision.outcome if decision else None)
    if kind == "status":
        return events.lane_status_notice(site, name, contract.parse_lane_status(payload))
    if kind == "command_ack":
        return events.command_ack_notice(site, name, contract.parse_command_ack(payload))
    if kind == "node_available":
        return events.node_notice(site, name, payload == contract.AVAILABLE_ONLINE)
    if kind == "node_status":
        contract.parse_node_status(payload)
        return events.node_notice(site, name, None)
    return None


class LiveFeed:
    """Broker subscription of the web process that feeds `publish` with page notices."""

    def __init__(
        self, sessions: sessionmaker, host: str, port: int, publish: Callable[[dict], None],
        client_id: str, site: str = "+", username: str | None = None,
        password: str | None = None, tls: ssl.SSLContext | None = None,
    ) -> None:
        self.sessions = sessions
        self.publish = publish
        self.site = site
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=mqtt.MQTTv311)
        if username:
            self.client.username_pw_set(username, password)
        if tls is not None:
            self.client.tls_set_context(tls)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.2, 5)
        self.host, self.port = host, port

    def start(self) -> None:
        """Connect in the background."""
        self.client.connect_async(self.host, self.port, keepalive=30)
        self.client.loop_start()

    def stop(self) -> None:
        """Disconnect."""
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client, _userdata, _flags, reason_code, _props=None) -> None:  # type: ignore[no-untyped-def]
        if not reason_code.is_failure:
            client.subscribe([(t, 0) for t in live_topics(self.site)])

    def _on_message(self, _client, _userdata, msg) -> None:  # type: ignore[no-untyped-def]
        try:
            notice = live_notice(self.sessions, msg.topic, bytes(msg.payload))
        except (ContractError, json.JSONDecodeError) as exc:
            log.debug("live feed ignored %s: %s", msg.topic, exc)
            return
        except Exception:  # the pages are informational: never let the feed die
            log.exception("live feed failed on %s", msg.topic)
            return
        if notice is not None:
            self.publish(notice)
