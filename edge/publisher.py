"""MQTT shell of the edge node: drains the spool with QoS 1, announces availability, takes commands.

The node's Last Will marks it `offline`; on every connection it publishes `online` (retained).
A message leaves the spool only after the broker's PUBACK; while the broker is away the spool
grows and is drained in order when it returns.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edge.config import MqttConfig
from edge.spool import Spool
from smartgate import contract

log = logging.getLogger(__name__)

CommandHandler = Callable[[str, bytes], None]


class EdgePublisher:
    """Owns the node's MQTT connection."""

    def __init__(
        self, site: str, node_id: str, lanes: list[str], mqtt_config: MqttConfig, spool: Spool,
        on_command: CommandHandler | None = None, ack_timeout_s: float = 5.0,
    ) -> None:
        self.site, self.node_id, self.lanes = site, node_id, lanes
        self.spool = spool
        self.on_command = on_command
        self.ack_timeout_s = ack_timeout_s
        self.cfg = mqtt_config
        self.connected = threading.Event()
        self.published = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._drain, name="spool-drain", daemon=True)
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"smartgate-edge-{site}-{node_id}",
            protocol=mqtt.MQTTv311,
        )
        if mqtt_config.username:
            self.client.username_pw_set(mqtt_config.username, mqtt_config.password)
        self.client.will_set(
            contract.node_availability_topic(site, node_id), contract.AVAILABLE_OFFLINE,
            qos=1, retain=True,
        )
        self.client.reconnect_delay_set(0.2, 5)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message

    def start(self) -> None:
        """Connect in the background and start draining the spool."""
        self.client.connect_async(self.cfg.host, self.cfg.port, keepalive=self.cfg.keepalive_s)
        self.client.loop_start()
        self._thread.start()

    def stop(self, drain_timeout_s: float = 5.0) -> None:
        """Try to drain the spool, mark the node offline and disconnect."""
        deadline = threading.Event()
        waited = 0.0
        while self.spool.depth() and self.connected.is_set() and waited < drain_timeout_s:
            deadline.wait(0.1)
            waited += 0.1
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=self.ack_timeout_s + 1)
        if self.connected.is_set():
            self.client.publish(
                contract.node_availability_topic(self.site, self.node_id),
                contract.AVAILABLE_OFFLINE, qos=1, retain=True,
            ).wait_for_publish(2)
        self.client.disconnect()
        self.client.loop_stop()

    def notify(self) -> None:
        """Wake the drain loop (a new message was spooled)."""
        self._wake.set()

    def publish_now(self, topic: str, payload: bytes, retain: bool = False) -> None:
        """Publish a transient message (status, acks) without spooling it."""
        self.client.publish(topic, payload, qos=1, retain=retain)

    def _on_connect(self, client, _userdata, _flags, reason_code, _props=None) -> None:  # type: ignore[no-untyped-def]
        if reason_code.is_failure:
            log.error("MQTT connection refused: %s", reason_code)
            return
        client.publish(
            contract.node_availability_topic(self.site, self.node_id),
            contract.AVAILABLE_ONLINE, qos=1, retain=True,
        )
        if self.on_command is not None:
            client.subscribe([(contract.command_topic(self.site, lane), 1) for lane in self.lanes])
        self.connected.set()
        self._wake.set()
        log.info("edge %s connected to %s:%s", self.node_id, self.cfg.host, self.cfg.port)

    def _on_disconnect(self, _client, _userdata, _flags, reason_code, _props=None) -> None:  # type: ignore[no-untyped-def]
        self.connected.clear()
        log.warning("edge %s lost the broker (%s); spooling", self.node_id, reason_code)

    def _on_message(self, _client, _userdata, msg) -> None:  # type: ignore[no-untyped-def]
        if self.on_command is None:
            return
        try:
            self.on_command(msg.topic, msg.payload)
        except Exception:
            log.exception("command handler failed on %s", msg.topic)

    def _drain(self) -> None:
        while not self._stop.is_set():
            if not self.connected.is_set():
                self.connected.wait(0.5)
                continue
            batch = self.spool.peek(1)
            if not batch:
                self._wake.wait(0.5)
                self._wake.clear()
                continue
            msg = batch[0]
            info = self.client.publish(msg.topic, msg.payload, qos=1)
            try:
                info.wait_for_publish(self.ack_timeout_s)
            except (RuntimeError, ValueError) as exc:
                log.debug("publish of %s not sent: %s", msg.event_id, exc)
            if info.is_published():
                self.spool.delete(msg.seq)
                self.published += 1
            else:
                self._stop.wait(0.2)
