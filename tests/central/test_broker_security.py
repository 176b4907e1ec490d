"""Site broker security against a real mosquitto: no anonymous access, per-lane ACL, TLS."""

from __future__ import annotations

import shutil
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from central.broker_config import (
    NodeAccess,
    TlsFiles,
    parse_node_spec,
    password_hash,
    write_broker_config,
)
from smartgate import contract
from tools.broker import free_port, mosquitto_binary, wait_port

SITE = "huunghi"
PASSWORDS = {"central": "central-pw", "edge-a": "edge-a-pw", "edge-b": "edge-b-pw"}


def test_config_saves_queued_messages_promptly(tmp_path: Path) -> None:
    files = write_broker_config(tmp_path, SITE, [NodeAccess("edge-a", ("LA",))],
                                passwords=PASSWORDS)
    conf = files.conf.read_text()
    assert "allow_anonymous false" in conf
    assert "autosave_interval 1\n" in conf and "persistence true" in conf


def test_password_hash_matches_mosquitto_format() -> None:
    line = password_hash("secret", salt=bytes(range(12)))
    assert line.startswith("$7$101$AAECAwQFBgcICQoL$")


@pytest.mark.parametrize("spec", ["edge-01", "edge-01=", "bad node=L1", "edge=L 1"])
def test_bad_node_specs_are_refused(spec: str) -> None:
    with pytest.raises(ValueError):
        parse_node_spec(spec)


class Client:
    """A paho client that records connection result, messages and subscription grants."""

    def __init__(self, port: int, user: str | None, password: str | None = None,
                 tls_ca: Path | None = None) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self.granted: list[int] = []
        self.rc: int | None = None
        self.connected = threading.Event()
        self.answered = threading.Event()
        self.subscribed = threading.Event()
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"t-{user}-{time.time_ns()}")
        if user:
            self.c.username_pw_set(user, password)
        if tls_ca:
            self.c.tls_set(ca_certs=str(tls_ca), cert_reqs=ssl.CERT_REQUIRED)
        self.c.on_connect = self._on_connect
        self.c.on_message = lambda _c, _u, m: self.messages.append((m.topic, m.payload))
        self.c.on_subscribe = self._on_subscribe
        self.c.connect_async("127.0.0.1", port)
        self.c.loop_start()

    def _on_connect(self, _c, _u, _f, rc, _p=None) -> None:
        self.rc = rc.value
        if not rc.is_failure:
            self.connected.set()
        self.answered.set()

    def _on_subscribe(self, _c, _u, _mid, codes, _p=None) -> None:
        self.granted = [c.value for c in codes]
        self.subscribed.set()

    def subscribe(self, topic: str) -> list[int]:
        self.subscribed.clear()
        self.c.subscribe(topic, 1)
        assert self.subscribed.wait(5)
        return self.granted

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


@pytest.fixture
def broker_dir() -> Iterator[Path]:
    """A folder mosquitto can reach after dropping root (pytest's tmp dirs are 0700)."""
    folder = Path(tempfile.mkdtemp(prefix="smartgate-broker-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def secured_broker(broker_dir: Path):
    binary = mosquitto_binary()
    if binary is None:
        pytest.skip("mosquitto is not installed (scripts/test installs it)")
    port = free_port()
    files = write_broker_config(
        broker_dir / "broker", SITE,
        [NodeAccess("edge-a", ("LA",)), NodeAccess("edge-b", ("LB",))],
        port=port, bind="127.0.0.1", passwords=PASSWORDS,
    )
    proc = subprocess.Popen([binary, "-c", str(files.conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        wait_port("127.0.0.1", port)
    except TimeoutError:
        proc.kill()
        raise AssertionError(proc.stderr.read().decode() if proc.stderr else "") from None
    yield port
    proc.kill()
    proc.wait(5)


def test_anonymous_and_wrong_password_are_refused(secured_broker: int) -> None:
    anon = Client(secured_broker, None)
    wrong = Client(secured_broker, "edge-a", "nope")
    try:
        assert anon.answered.wait(5) and not anon.connected.is_set()
        assert wrong.answered.wait(5) and not wrong.connected.is_set()
    finally:
        anon.close()
        wrong.close()


def test_edge_is_confined_to_its_own_lanes(secured_broker: int) -> None:
    central = Client(secured_broker, "central", PASSWORDS["central"])
    edge_a = Client(secured_broker, "edge-a", PASSWORDS["edge-a"])
    try:
        assert central.connected.wait(5) and edge_a.connected.wait(5)
        assert central.subscribe(f"{contract.TOPIC_ROOT}/{SITE}/#") == [1]
        # edge-a subscribes to both lanes' commands; the ACL lets only its own through
        # (mosquitto may grant the subscription and filter on delivery, or refuse it)
        assert edge_a.subscribe(contract.command_topic(SITE, "LA")) == [1]
        edge_a.subscribe(contract.command_topic(SITE, "LB"))
        assert edge_a.subscribe(contract.receipt_topic(SITE, "LA")) == [1]
        edge_a.subscribe(contract.receipt_topic(SITE, "LB"))
        # publishing as lane B is dropped by the broker; its own lane goes through
        edge_a.c.publish(contract.passage_topic(SITE, "LB"), b"forged", qos=1).wait_for_publish(5)
        edge_a.c.publish(contract.passage_topic(SITE, "LA"), b"own", qos=1).wait_for_publish(5)
        # central can command both lanes; edge-a only sees its own
        central.c.publish(contract.command_topic(SITE, "LA"), b"cmd-a", qos=1).wait_for_publish(5)
        central.c.publish(contract.command_topic(SITE, "LB"), b"cmd-b", qos=1).wait_for_publish(5)
        # and receipt both lanes' passages; edge-a only sees its own lane's receipts
        central.c.publish(contract.receipt_topic(SITE, "LA"), b"rcpt-a", qos=1).wait_for_publish(5)
        central.c.publish(contract.receipt_topic(SITE, "LB"), b"rcpt-b", qos=1).wait_for_publish(5)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and len(central.messages) < 5:
            time.sleep(0.05)
        time.sleep(0.3)
        seen_by_central = {t: p for t, p in central.messages}
        assert seen_by_central.get(contract.passage_topic(SITE, "LA")) == b"own"
        assert contract.passage_topic(SITE, "LB") not in seen_by_central
        assert edge_a.messages == [(contract.command_topic(SITE, "LA"), b"cmd-a"),
                                   (contract.receipt_topic(SITE, "LA"), b"rcpt-a")]
    finally:
        central.close()
        edge_a.close()


def test_tls_listener(broker_dir: Path) -> None:
    binary = mosquitto_binary()
    if binary is None or shutil.which("openssl") is None:
        pytest.skip("mosquitto or openssl not installed")
    cert, key = broker_dir / "server.crt", broker_dir / "server.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True,
    )
    key.chmod(0o644)  # mosquitto reads the key after dropping root
    port, tls_port = free_port(), free_port()
    files = write_broker_config(
        broker_dir / "broker", SITE, [NodeAccess("edge-a", ("LA",))], port=port,
        bind="127.0.0.1", tls=TlsFiles(cert, key), tls_port=tls_port, passwords=PASSWORDS,
    )
    proc = subprocess.Popen([binary, "-c", str(files.conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_port("127.0.0.1", tls_port)
        client = Client(tls_port, "edge-a", PASSWORDS["edge-a"], tls_ca=cert)
        try:
            assert client.connected.wait(5)
        finally:
            client.close()
    finally:
        proc.kill()
        proc.wait(5)
