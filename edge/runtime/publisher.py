"""MQTT shell of the edge node: drains the spool with QoS 1, announces availability, takes commands.

The node's Last Will marks it `offline`; on every connection it publishes `online` (retained).
Spooled messages are handed to the client in order, up to `inflight` ahead of their PUBACK
(pipelining: one round trip per window, not per message). A PUBACK only marks a message sent:
it leaves the spool when central's `PassageReceipt` for it arrives on the lane's receipt topic
(the broker can accept a message and deliver it to nobody, e.g. shared subscriptions lost in a
broker restart). A message sent but not receipted within `receipt_timeout_s` is published
again (the wait doubling per send), and so is every unreceipted one after a reconnect; central deduplicates and receipts the
copy. After a restart the drain starts again from the oldest spooled message. A `rejected`
receipt (or a payload above the contract's maximum, which the edge does not send at all) marks
the message rejected in the spool: kept and counted, never re-sent.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edge.config import MqttConfig
from edge.runtime.spool import Spool
from smartgate import contract
from smartgate.mqtt_tls import use_tls

log = logging.getLogger(__name__)

MessageHandler = Callable[[str, bytes], None]


class EdgePublisher:
    """Owns the node's MQTT connection."""

    def __init__(
        self,
        site: str,
        node_id: str,
        subscriptions: Sequence[str],
        mqtt_config: MqttConfig,
        spool: Spool,
        on_message: MessageHandler | None = None,
        on_connection: Callable[[bool], None] | None = None,
    ) -> None:
        self.site, self.node_id = site, node_id
        self.subscriptions = list(subscriptions)
        self.spool = spool
        self.on_message = on_message
        self.on_connection = on_connection
        self.cfg = mqtt_config
        self.connected = threading.Event()
        self.published = 0
        self.receipts = 0
        self.rejected = 0  # rejected receipts (and oversized passages) since start
        self._inflight: list[tuple[mqtt.MQTTMessageInfo, int]] = []  # (publish, spool seq)
        self._receipt_topics: set[str] = set()  # lanes' receipt topics, subscribed per connection
        self._topics_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._drain, name="spool-drain", daemon=True)
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"smartgate-edge-{site}-{node_id}",
            protocol=mqtt.MQTTv311,
        )
        self.client.max_inflight_messages_set(mqtt_config.inflight + 8)
        if mqtt_config.username:
            self.client.username_pw_set(mqtt_config.username, mqtt_config.password)
        if mqtt_config.tls:
            use_tls(self.client, mqtt_config.tls_ca_file, mqtt_config.tls_cert_file,
                    mqtt_config.tls_key_file)
        self.client.will_set(
            contract.node_availability_topic(site, node_id),
            contract.AVAILABLE_OFFLINE,
            qos=1,
            retain=True,
        )
        self.client.reconnect_delay_set(0.2, 5)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_publish = self._on_publish

    def start(self) -> None:
        """Connect in the background and start draining the spool."""
        self.client.connect_async(self.cfg.host, self.cfg.port, keepalive=self.cfg.keepalive_s)
        self.client.loop_start()
        self._thread.start()

    def stop(self, drain_timeout_s: float = 5.0) -> None:
        """Try to drain the spool, mark the node offline and disconnect."""
        deadline = time.monotonic() + drain_timeout_s
        while self.spool.depth() and self.connected.is_set() and time.monotonic() < deadline:
            time.sleep(0.05)
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=5)
        if self.connected.is_set():
            self.client.publish(
                contract.node_availability_topic(self.site, self.node_id),
                contract.AVAILABLE_OFFLINE,
                qos=1,
                retain=True,
            ).wait_for_publish(2)
        self.client.disconnect()
        self.client.loop_stop()

    def notify(self) -> None:
        """Wake the drain loop (a new message was spooled)."""
        self._wake.set()

    def publish_now(self, topic: str, payload: bytes, retain: bool = False) -> None:
        """Publish a transient message (status, acks) without spooling it."""
        self.client.publish(topic, payload, qos=1, retain=retain)

    @property
    def inflight(self) -> int:
        """Spooled messages handed to the client and not yet PUBACKed."""
        return len(self._inflight)

    def _on_connect(self, client, _userdata, _flags, reason_code, _props=None) -> None:  # type: ignore[no-untyped-def]
        if reason_code.is_failure:
            log.error("MQTT connection refused: %s", reason_code)
            return
        client.publish(
            contract.node_availability_topic(self.site, self.node_id),
            contract.AVAILABLE_ONLINE,
            qos=1,
            retain=True,
        )
        with self._topics_lock:
            topics = self.subscriptions + sorted(self._receipt_topics)
        if topics:
            client.subscribe([(topic, 1) for topic in topics])
        resend = self.spool.unsend_all()  # receipts published while away were lost
        if resend:
            log.info("edge %s: re-publishing %d unreceipted messages", self.node_id, resend)
        self.connected.set()
        self._wake.set()
        log.info("edge %s connected to %s:%s", self.node_id, self.cfg.host, self.cfg.port)
        if self.on_connection is not None:
            self.on_connection(True)

    def _on_disconnect(self, _client, _userdata, _flags, reason_code, _props=None) -> None:  # type: ignore[no-untyped-def]
        was = self.connected.is_set()
        self.connected.clear()
        if was and not self._stop.is_set():
            log.warning("edge %s lost the broker (%s); spooling", self.node_id, reason_code)
            if self.on_connection is not None:
                self.on_connection(False)

    def _on_message(self, _client, _userdata, msg) -> None:  # type: ignore[no-untyped-def]
        if msg.topic in self._receipt_topics:
            self._on_receipt(msg.payload)
            return
        if self.on_message is None:
            return
        try:
            self.on_message(msg.topic, msg.payload)
        except Exception:
            log.exception("message handler failed on %s", msg.topic)

    def _on_receipt(self, payload: bytes) -> None:
        try:
            receipt = contract.parse_receipt(payload)
        except contract.ContractError as exc:
            log.warning("ignoring a bad receipt: %s", exc)
            return
        if receipt.status == "rejected":
            if self.spool.rejected(receipt.event_id, str(receipt.reason), receipt.detail):
                self.rejected += 1
                log.error("central rejected passage %s (%s: %s); kept in the spool, not re-sent",
                          receipt.event_id, receipt.reason, receipt.detail)
            return
        if self.spool.receipted(receipt.event_id):
            self.receipts += 1

    def _receipt_subscribed(self, topic: str) -> None:
        """Subscribe to the receipt topic of a passage's lane before its first publish."""
        site, lane, kind = contract.parse_topic(topic)
        if kind != "passage":
            return
        receipt = contract.receipt_topic(site, lane)
        with self._topics_lock:
            if receipt in self._receipt_topics:
                return
            self._receipt_topics.add(receipt)
        self.client.subscribe(receipt, qos=1)

    def _on_publish(self, _client, _userdata, _mid, _reason, _props=None) -> None:  # type: ignore[no-untyped-def]
        self._wake.set()

    def _reap(self) -> None:
        """Mark every PUBACKed message sent (only the drain thread calls this)."""
        still = []
        for info, seq in self._inflight:
            if info.is_published():
                self.spool.mark_sent(seq, time.time())
                self.published += 1
            else:
                still.append((info, seq))
        self._inflight = still

    def _drain(self) -> None:
        while not self._stop.is_set():
            self._reap()
            if not self.connected.is_set():
                self.connected.wait(0.5)
                continue
            room = self.cfg.inflight - len(self._inflight)
            batch = []
            if room > 0:
                batch = self.spool.due(room, time.time(), self.cfg.receipt_timeout_s,
                                       skip=[seq for _, seq in self._inflight],
                                       overtaken_s=self.cfg.receipt_overtaken_s)
            if not batch:
                self._wake.wait(0.5)
                self._wake.clear()
                continue
            for msg in batch:
                if len(msg.payload) > contract.MAX_PAYLOAD_BYTES:
                    detail = f"{len(msg.payload)} bytes > {contract.MAX_PAYLOAD_BYTES}"
                    self.spool.rejected(msg.event_id, contract.RejectReason.TOO_LARGE, detail)
                    self.rejected += 1
                    log.error("passage %s not sent: %s", msg.event_id, detail)
                    continue
                self._receipt_subscribed(msg.topic)
                info = self.client.publish(msg.topic, msg.payload, qos=1)
                if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
                    log.warning("publish of %s failed: rc %s", msg.event_id, info.rc)
                    break
                self._inflight.append((info, msg.seq))
        self._reap()
