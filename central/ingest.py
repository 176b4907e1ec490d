"""MQTT → database ingest: validate every message, store passages idempotently on event_id.

`handle_message` is the core (one message in the caller's transaction, one outcome); `MqttIngest`
is the shell: the network thread queues messages, a storing thread handles whatever queued up
in one transaction, and only after that commit acknowledges each QoS 1 message, publishes a
`PassageReceipt` for each stored or duplicate passage (the edge keeps a passage spooled until
its receipt) and the lane commands, so a crash between receive and commit makes the broker (or
the edge) redeliver instead of losing the passage, and a lane never acts on a decision that was
not stored. While the database
is unavailable the transaction is retried in place with backoff (nothing is acknowledged); a
message the database refuses for itself is kept as a rejection so it never blocks the others.

A rejection is answered too: a passage central can attribute (its topic names a lane, its
payload an event id) gets a `rejected` receipt with a `RejectReason`, so the edge stops
re-sending it. Reasons are a fixed set (counters and metric labels never carry sender text);
what is stored of a rejection is clipped to the column sizes, and a rejection that cannot be
stored is logged, never allowed to stop the storing thread. Lane status, command acks and node
status must name the topic's site/lane/node; with `lane_owners` (from the broker's ACL) a
passage, lane status or ack must come from the node that serves the lane.
"""

from __future__ import annotations

import json
import logging
import queue
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from central import events, store
from central.config import CentralSettings
from central.decisions import PassageDecided
from central.metrics import IngestMetrics
from smartgate import contract
from smartgate.contract import (
    ContractError,
    LaneCommand,
    PassageDecision,
    PassageEvent,
    PassageReceipt,
    RejectReason,
)
from smartgate.mqtt_tls import tls_context

log = logging.getLogger(__name__)

R = TypeVar("R")


@dataclass(frozen=True)
class IngestOutcome:
    """What happened to one message.

    `kind` is stored, duplicate, rejected, node, lane_status, command_ack or ignored (one of
    `OUTCOME_KINDS`); `reason` (rejected only) is one of the fixed `RejectReason`s and `detail`
    says more; `command`, `decision` and `receipt` are to be published once the transaction
    commits; `notice` is the live event for the pages.
    """

    kind: str
    reason: RejectReason | None = None
    detail: str = ""
    event: PassageEvent | None = None
    command: LaneCommand | None = None
    decision: PassageDecision | None = None
    receipt: PassageReceipt | None = None
    notice: dict | None = None


OUTCOME_KINDS = ("stored", "duplicate", "rejected", "node", "lane_status", "command_ack",
                 "ignored")
# None: the passage is stored but not decided (a yard checkpoint: central/journeys.py)
PassageHook = Callable[[Session, PassageEvent], PassageDecided | None]
LaneOwners = Mapping[tuple[str, str], str]  # (site, lane) -> the node id that serves it
# Called first in each batch's transaction with its valid passages: reads ahead for them
# (DecisionService.prefetch), so a batch costs a few queries instead of a few per passage.
BatchHook = Callable[[Session, Sequence[PassageEvent]], None]


def _same_place(what: str, got: tuple[str, ...], topic: tuple[str, ...]) -> None:
    if got != topic:
        raise ContractError(
            f"{what} for {'/'.join(got)} published on the topic of {'/'.join(topic)}",
            RejectReason.TOPIC_MISMATCH,
        )


def _owned(owners: LaneOwners | None, site: str, lane: str, node_id: str) -> None:
    """The node must be the one that serves the lane, when central knows who does."""
    owner = owners.get((site, lane)) if owners is not None else None
    if owners is not None and owner != node_id:
        raise ContractError(
            f"node {node_id} does not serve lane {site}/{lane} (served by {owner or 'nobody'})",
            RejectReason.NODE_MISMATCH,
        )


def _store_passage(
    session: Session, site: str, lane: str, payload: bytes, on_passage: PassageHook | None,
    owners: LaneOwners | None, event: PassageEvent | None,
) -> IngestOutcome:
    event = event or contract.parse_passage(payload)
    _same_place("event", (event.site, event.lane), (site, lane))
    _owned(owners, site, lane, event.node_id)
    if not store.add_passage(session, event):
        return IngestOutcome("duplicate", event=event,
                             command=store.pending_command(session, event.event_id))
    decided = on_passage(session, event) if on_passage is not None else None
    plate = event.best_plate
    notice = events.passage_notice(event.event_id, event.site, event.lane,
                                   plate.text if plate else None,
                                   decided.outcome if decided else None)
    return IngestOutcome(
        "stored", event=event, command=decided.command if decided else None,
        decision=decided.decision if decided else None, notice=notice,
    )


def _handle(
    session: Session, site: str, name: str, kind: str, payload: bytes,
    on_passage: PassageHook | None, owners: LaneOwners | None, event: PassageEvent | None,
) -> IngestOutcome:
    if kind == "passage":
        return _store_passage(session, site, name, payload, on_passage, owners, event)
    if kind == "node_available":
        if payload not in (contract.AVAILABLE_ONLINE, contract.AVAILABLE_OFFLINE):
            raise ContractError(f"availability must be online/offline, got {payload[:20]!r}")
        online = payload == contract.AVAILABLE_ONLINE
        store.set_node_state(session, site, name, online=online)
        return IngestOutcome("node", notice=events.node_notice(site, name, online))
    if kind == "node_status":
        status = contract.parse_node_status(payload)
        _same_place("node status", (status.site, status.node_id), (site, name))
        for lane in status.lanes:
            _owned(owners, site, lane, name)
        store.set_node_state(session, site, name, status=json.loads(status.to_json()))
        return IngestOutcome("node", notice=events.node_notice(site, name, None))
    if kind == "status":
        lane_status = contract.parse_lane_status(payload)
        _same_place("lane status", (lane_status.site, lane_status.lane), (site, name))
        _owned(owners, site, name, lane_status.node_id)
        store.set_lane_status(session, lane_status)
        return IngestOutcome(
            "lane_status", notice=events.lane_status_notice(site, name, lane_status)
        )
    if kind == "command_ack":
        ack = contract.parse_command_ack(payload)
        _same_place("command ack", (ack.site, ack.lane), (site, name))
        _owned(owners, site, name, ack.node_id)
        command = store.get_command(session, ack.command_id)
        if command is None:
            return IngestOutcome("ignored", detail=f"ack for unknown command {ack.command_id}")
        _same_place("ack of a command", (command.site, command.lane), (site, name))
        store.record_ack(session, ack)
        return IngestOutcome("command_ack", notice=events.command_ack_notice(site, name, ack))
    raise ContractError(f"central does not consume {kind!r} messages",
                        RejectReason.UNEXPECTED_TOPIC)


def rejected_receipt(
    topic: str, payload: bytes, reason: RejectReason, detail: str
) -> PassageReceipt | None:
    """The `rejected` receipt for a passage message, when it can be attributed: a passage topic
    with a valid site and lane, and a usable event id in the payload."""
    try:
        site, lane, kind = contract.parse_topic(topic)
    except ContractError:
        return None
    event_id = contract.event_id_of(payload) if kind == "passage" else None
    if event_id is None:
        return None
    return PassageReceipt(event_id=event_id, site=site, lane=lane, status="rejected",
                          reason=reason, detail=contract.clip(detail, 200))


def handle_message(
    session: Session, topic: str, payload: bytes, on_passage: PassageHook | None = None,
    lane_owners: LaneOwners | None = None, event: PassageEvent | None = None,
) -> IngestOutcome:
    """Validate and store one message in `session` (the caller commits); `event` is the
    passage already parsed from `payload` (`parse_passages`), if it was."""
    try:
        site, name, kind = contract.parse_topic(topic)
        return _handle(session, site, name, kind, payload, on_passage, lane_owners, event)
    except ContractError as exc:
        store.add_rejection(session, topic, exc.reason.value, str(exc), payload)
        return IngestOutcome("rejected", reason=exc.reason, detail=str(exc),
                             receipt=rejected_receipt(topic, payload, exc.reason, str(exc)))


def parse_passages(messages: Sequence[tuple[str, bytes]]) -> dict[int, PassageEvent]:
    """The valid passages among (topic, payload)s, by position; the others are left to
    `handle_message`, which rejects them with their reason."""
    events = {}
    for k, (topic, payload) in enumerate(messages):
        if topic.endswith("/passage"):
            try:
                events[k] = contract.parse_passage(payload)
            except ContractError:
                continue
    return events


def connection_options(settings: CentralSettings, suffix: str = "") -> dict[str, Any]:
    """Client id, user, password and TLS of one of central's broker connections.

    Each connection has its own `suffix` (`""` the in-process ingest, `-<worker id>` a worker,
    `-http` and `-live` the HTTP process beside workers) added to both `mqtt_client_id` and
    `mqtt_username`: the broker config that `smartgate broker config` writes binds client ids
    to user names (`use_username_as_clientid`), so every connection is its own user and no
    credential can take over another's session (docs/deploy.md).
    """
    tls = None
    if settings.mqtt_tls:
        tls = tls_context(settings.mqtt_tls_ca_file, settings.mqtt_tls_cert_file,
                          settings.mqtt_tls_key_file)
    return {
        "client_id": settings.mqtt_client_id + suffix,
        "username": settings.mqtt_username + suffix if settings.mqtt_username else None,
        "password": settings.mqtt_password, "tls": tls,
    }


def lane_owners(settings: CentralSettings) -> LaneOwners | None:
    """Which node serves each lane, from the broker ACL in `mqtt_acl_file` (None: unknown)."""
    if settings.mqtt_acl_file is None:
        return None
    from central.broker_config import lane_owners_from_acl

    return lane_owners_from_acl(settings.mqtt_acl_file.read_text())


def warn_if_insecure(settings: CentralSettings) -> None:
    """Say loudly at start when central talks to its broker without credentials or in clear
    text to another host."""
    local = settings.mqtt_host in ("127.0.0.1", "localhost", "::1")
    if not settings.mqtt_username and settings.demo_mode and local:
        log.info("demo: anonymous MQTT on %s:%d", settings.mqtt_host, settings.mqtt_port)
    elif not settings.mqtt_username:
        log.warning("MQTT WITHOUT CREDENTIALS: central connects to %s:%d anonymously; any "
                    "client of that broker can publish passages and read commands. Use "
                    "`smartgate broker config` and set SMARTGATE_CENTRAL_MQTT_USERNAME/PASSWORD "
                    "(docs/deploy.md)", settings.mqtt_host, settings.mqtt_port)
    if not settings.mqtt_tls and not local:
        log.warning("MQTT IN CLEAR TEXT to %s: passwords and passages cross the network "
                    "unencrypted; set mqtt_tls_ca_file (docs/deploy.md)", settings.mqtt_host)
    if settings.mqtt_username and settings.mqtt_acl_file is None:
        log.warning("mqtt_acl_file not set: central cannot check that a passage's node serves "
                    "its lane (the broker ACL still confines each node to its lanes)")


def _transient(exc: BaseException) -> bool:
    """A database failure that retrying the same transaction can cure (server or lock away)."""
    return isinstance(exc, OperationalError | InterfaceError) or bool(
        getattr(exc, "connection_invalidated", False)
    )


class _Stopping(Exception):
    """The ingest is stopping while waiting for the database; messages stay unacknowledged."""


class MqttIngest:
    """Subscribes central to the contract topics and feeds `handle_message`.

    MQTT 3.1.1 with `clean_session=False` by default (works with amqtt); `shared=True` connects
    with MQTT 5 (`clean_start=False`, session expiry) and subscribes to `$share/central/...` so
    several workers split the messages. `subscribe=False` only publishes (the HTTP process of a
    multi-worker central sends officer commands on it). `connected` is set once the broker
    acknowledged the subscriptions (SUBACK without a failure code), or the connection when
    it only publishes; `alive` tells whether the storing thread runs.
    """

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
        shared: bool = False,
        session_expiry_s: int = 7 * 86400,
        subscribe: bool = True,
        metrics: IngestMetrics | None = None,
        tls: ssl.SSLContext | None = None,
        lane_owners: LaneOwners | None = None,
        on_batch: BatchHook | None = None,
    ) -> None:
        self.sessions = sessions
        self.on_batch = on_batch
        self.client_id = client_id
        self.site = site
        self.on_passage = on_passage
        self.after_commit = after_commit
        self.batch_size = batch_size
        self.shared = shared
        self.subscribe = subscribe
        self.lane_owners = lane_owners
        self.metrics = metrics or IngestMetrics()
        self.stats: Counter[str] = Counter()
        self.reject_reasons: Counter[str] = Counter()  # keys: RejectReason values only
        self.connected = threading.Event()
        self._subscribe_mid: int | None = None
        self._queue: queue.Queue[tuple[int, mqtt.MQTTMessage] | None] = queue.Queue()
        self._worker: threading.Thread | None = None
        self._stopping = threading.Event()
        self._generation = 0  # connections so far: an ack is only sent on the receiving one
        self._connect_args: dict = {}
        self._last_publish: mqtt.MQTTMessageInfo | None = None  # flushed before a disconnect
        if shared:
            self.client = mqtt.Client(
                CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
            )
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = session_expiry_s
            self._connect_args = {"clean_start": False, "properties": props}
        else:
            self.client = mqtt.Client(
                CallbackAPIVersion.VERSION2,
                client_id=client_id,
                clean_session=False,
                protocol=mqtt.MQTTv311,
            )
        if username:
            self.client.username_pw_set(username, password)
        if tls is not None:
            self.client.tls_set_context(tls)
        self.client.manual_ack_set(True)
        # a batch's receipts, commands and decisions all go out at once: paho's default of 20
        # in flight queued the rest behind PUBACK round trips, and any limit makes it rescan
        # every unacknowledged message on each PUBACK; 0 is no limit and no rescan
        self.client.max_inflight_messages_set(0)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.2, 5)
        self.host, self.port = host, port

    @property
    def alive(self) -> bool:
        """Whether the storing thread runs (False before `start` and after `stop`)."""
        return self._worker is not None and self._worker.is_alive()

    def start(self) -> None:
        """Start the storing thread, connect (retrying in the background) and the network loop."""
        self._stopping.clear()
        self._worker = threading.Thread(target=self._work, name="central-ingest", daemon=True)
        self._worker.start()
        self.client.connect_async(self.host, self.port, keepalive=30, **self._connect_args)
        self.client.loop_start()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Store what was received (for at most `timeout_s`), then disconnect.

        Messages not stored by then stay unacknowledged; the broker redelivers them to this
        client id's persistent session.
        """
        if self._worker is not None:
            self._queue.put(None)
            self._worker.join(timeout_s)
            self._stopping.set()
            self._worker.join(10)
            self._worker = None
        self._flush()
        self.client.disconnect()
        self.client.loop_stop()
        self.metrics.connected.set(0)

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        """Publish a message on the ingest connection."""
        self._last_publish = self.client.publish(topic, payload, qos=qos, retain=retain)

    def _flush(self, timeout_s: float = 2.0) -> None:
        """Wait until the broker has the last publish (and so every ack written before it)."""
        deadline = time.monotonic() + timeout_s
        info = self._last_publish
        while (info is not None and not info.is_published() and self.connected.is_set()
               and time.monotonic() < deadline):
            time.sleep(0.01)

    def send_command(self, command: LaneCommand) -> None:
        """Publish a lane command (QoS 1) on its lane's command topic."""
        self.publish(contract.command_topic(command.site, command.lane), command.to_json())

    def send_receipt(self, receipt: PassageReceipt) -> None:
        """Answer the edge (QoS 1, lane receipt topic): stored, duplicate or rejected."""
        self.publish(contract.receipt_topic(receipt.site, receipt.lane), receipt.to_json())

    def send_decision(self, decision: PassageDecision) -> None:
        """Push a decision (QoS 1) on its lane's decision topic."""
        self.publish(contract.decision_topic(decision.site, decision.lane), decision.to_json())

    def _on_connect(self, client, _userdata, _flags, reason_code, _props=None) -> None:  # type: ignore[no-untyped-def]
        if reason_code.is_failure:
            log.error("MQTT connection refused: %s", reason_code)
            return
        self._generation += 1
        log.info("central %s connected to %s:%s", self.client_id, self.host, self.port)
        if self.subscribe:
            topics = contract.central_subscriptions(self.site, shared=self.shared)
            _rc, self._subscribe_mid = client.subscribe([(t, 1) for t in topics])
            return  # connected once the SUBACK grants them
        self._ready()

    def _ready(self) -> None:
        self.connected.set()
        self.metrics.connected.set(1)

    def _on_subscribe(self, _client, _userdata, mid, reason_codes, _props=None) -> None:  # type: ignore[no-untyped-def]
        if mid != self._subscribe_mid:
            return
        refused = [str(c) for c in reason_codes if c.is_failure]
        if refused:
            log.error("MQTT broker refused central's subscriptions (%s): check the ACL for "
                      "user %s and site %s", ", ".join(refused), self.client_id, self.site)
            return
        self._ready()
        log.info("central %s subscribed to site %s", self.client_id, self.site)

    def _on_disconnect(self, _client, _userdata, _flags, reason_code, _props=None) -> None:  # type: ignore[no-untyped-def]
        self.connected.clear()
        self.metrics.connected.set(0)
        if reason_code.is_failure:
            log.warning("MQTT disconnected (%s); reconnecting", reason_code)

    def _on_message(self, _client, _userdata, msg) -> None:  # type: ignore[no-untyped-def]
        self._queue.put((self._generation, msg))

    def _work(self) -> None:
        """Store messages in batches: whatever queued up (up to `batch_size`) shares a commit."""
        while (item := self._queue.get()) is not None:
            batch = [item]
            while len(batch) < self.batch_size:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)
                    break
                batch.append(nxt)
            try:
                self._process(batch)
            except _Stopping:
                log.warning("stopping with %d messages unstored; the broker redelivers them",
                            len(batch) + self._queue.qsize())
                return
            except Exception:  # noqa: BLE001 - a bug must not end ingest; logged, counted
                self.stats["errors"] += 1
                log.exception("ingest failed on a batch of %d; continuing", len(batch))

    def _transaction(self, messages: list[mqtt.MQTTMessage]) -> list[IngestOutcome]:
        items = [(m.topic, bytes(m.payload)) for m in messages]
        events = parse_passages(items)  # once: read ahead with them, then store them
        with self.sessions() as session, session.begin():
            if self.on_batch is not None and len(events) > 1:
                self.on_batch(session, list(events.values()))
            return [
                handle_message(session, topic, payload, self.on_passage, self.lane_owners,
                               events.get(k))
                for k, (topic, payload) in enumerate(items)
            ]

    def _retrying(self, work: Callable[[], R]) -> R:
        """Run `work`, retrying in place with backoff while the database is unavailable.

        The messages stay unacknowledged meanwhile: paho only gets a redelivery after a
        reconnect, so giving up here would strand them until then.
        """
        delay = 0.2
        while True:
            try:
                return work()
            except SQLAlchemyError as exc:
                if not _transient(exc):
                    raise
                self.stats["db_errors"] += 1
                self.metrics.db_errors.inc()
                log.warning("database unavailable (%s); retrying in %.1f s",
                            str(exc).splitlines()[0][:200], delay)
            if self._stopping.wait(delay):
                raise _Stopping
            delay = min(delay * 2, 5.0)

    def _process(self, batch: list[tuple[int, mqtt.MQTTMessage]]) -> None:
        messages = [m for _, m in batch]
        try:
            outcomes = self._retrying(lambda: self._transaction(messages))
        except _Stopping:
            raise
        except Exception:  # noqa: BLE001 - retried one by one below
            log.warning("batch of %d failed; storing its messages one by one", len(batch))
            outcomes = [self._one(m) for m in messages]
        for (generation, msg), outcome in zip(batch, outcomes, strict=True):
            self._finish(generation, msg, outcome)

    def _one(self, msg: mqtt.MQTTMessage) -> IngestOutcome:
        """Store one message alone; one that the database refuses is kept as a rejection."""
        for attempt in (1, 2):
            try:
                return self._retrying(lambda: self._transaction([msg])[0])
            except _Stopping:
                raise
            except IntegrityError:
                if attempt == 1:
                    continue  # a concurrent insert of the same event id: now a duplicate
                detail = "integrity error"
            except Exception as exc:  # a bug or bad data must not stop the messages behind
                detail = type(exc).__name__
            self.stats["errors"] += 1
            log.exception("error storing message on %s; kept as rejected",
                          contract.clip(msg.topic))
            break
        payload = bytes(msg.payload)
        reason = RejectReason.STORAGE

        def reject() -> None:
            with self.sessions() as session, session.begin():
                store.add_rejection(session, msg.topic, reason.value, detail, payload)

        try:
            self._retrying(reject)
        except _Stopping:
            raise
        except Exception:  # noqa: BLE001 - even the rejection failed: log it, go on
            self.stats["rejection_failed"] += 1
            log.exception("could not keep the rejected message on %s (%d bytes, starts %r)",
                          contract.clip(msg.topic), len(payload), payload[:512])
        return IngestOutcome("rejected", reason=reason, detail=detail,
                             receipt=rejected_receipt(msg.topic, payload, reason, detail))

    def _finish(self, generation: int, msg: mqtt.MQTTMessage, outcome: IngestOutcome) -> None:
        """After the commit: count, acknowledge, send the command, tell the pages."""
        self.stats[outcome.kind] += 1
        self.metrics.messages.labels(outcome.kind).inc()
        self.metrics.latency.observe(max(0.0, time.monotonic() - msg.timestamp))
        if outcome.kind == "rejected" and outcome.reason is not None:
            self.reject_reasons[outcome.reason.value] += 1
            self.metrics.rejects.labels(outcome.reason.value).inc()
            log.warning("rejected message on %s: %s", contract.clip(msg.topic), outcome.detail)
        elif outcome.kind == "stored":
            self.metrics.passages.inc()
            if outcome.notice is not None and outcome.notice.get("outcome"):
                self.metrics.decisions.labels(outcome.notice["outcome"]).inc()
        if msg.qos > 0 and generation == self._generation:
            # a message received on an earlier connection is redelivered on this one (same
            # session); acking the old packet id could acknowledge another message
            self.client.ack(msg.mid, msg.qos)
        if outcome.kind in ("stored", "duplicate") and outcome.event is not None:
            event = outcome.event
            status: Literal["stored", "duplicate"] = (
                "stored" if outcome.kind == "stored" else "duplicate")
            self.send_receipt(PassageReceipt(event_id=event.event_id, site=event.site,
                                             lane=event.lane, status=status))
        elif outcome.receipt is not None:
            self.send_receipt(outcome.receipt)
        if outcome.command is not None:
            self.send_command(outcome.command)
        if outcome.decision is not None:
            self.send_decision(outcome.decision)
        if self.after_commit is not None:
            self.after_commit(outcome)
