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
    MESSAGE_SIZE_LIMIT,
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


# --- issue 16: session takeover, size limit, symlinks, TLS for clients -------------------------


def test_generated_config_binds_client_ids_limits_size_and_keeps_plain_local(
    tmp_path: Path,
) -> None:
    tls = TlsFiles(tmp_path / "s.crt", tmp_path / "s.key", tmp_path / "ca.crt",
                   require_client_cert=True)
    conf = write_broker_config(tmp_path / "b", SITE, [NodeAccess("edge-a", ("LA",))],
                               bind="0.0.0.0", tls=tls, passwords=PASSWORDS).conf.read_text()
    # a listener option, after each listener line (before one it opens a default listener)
    assert conf.count("use_username_as_clientid true\n") == 2
    assert conf.index("use_username_as_clientid") > conf.index("listener ")
    assert f"message_size_limit {MESSAGE_SIZE_LIMIT}\n" in conf
    assert MESSAGE_SIZE_LIMIT > contract.MAX_PAYLOAD_BYTES
    assert "listener 1883 127.0.0.1\n" in conf and "listener 8883 0.0.0.0\n" in conf
    assert "require_certificate true\n" in conf
    plain = write_broker_config(tmp_path / "p", SITE, [NodeAccess("edge-a", ("LA",))],
                                bind="0.0.0.0", passwords=PASSWORDS).conf.read_text()
    assert "listener 1883 0.0.0.0\n" in plain


def test_an_edge_credential_cannot_take_over_centrals_session(
    secured_broker: int, tmp_path: Path
) -> None:
    from central.db import Passage, make_engine, session_factory, upgrade_database
    from central.ingest import MqttIngest
    from tests.test_contract import make_event

    engine = make_engine(f"sqlite:///{tmp_path / 'c.db'}")
    upgrade_database(engine)
    sessions = session_factory(engine)
    ingest = MqttIngest(sessions, "127.0.0.1", secured_broker, client_id="smartgate-central",
                        site=SITE, username="central", password=PASSWORDS["central"])
    ingest.start()
    assert ingest.connected.wait(10)
    # edge-a connects with central's client id and a persistent session
    thief = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="smartgate-central",
                        clean_session=False, protocol=mqtt.MQTTv311)
    stolen: list[bytes] = []
    thief.on_message = lambda _c, _u, m: stolen.append(m.payload)
    thief.username_pw_set("edge-a", PASSWORDS["edge-a"])
    thief.connect("127.0.0.1", secured_broker)
    thief.loop_start()
    edge_b = Client(secured_broker, "edge-b", PASSWORDS["edge-b"])
    try:
        assert edge_b.connected.wait(5)
        events = [make_event(lane="LB", node_id="edge-b") for _ in range(10)]
        for event in events:
            edge_b.c.publish(contract.passage_topic(SITE, "LB"), event.to_json(),
                             qos=1).wait_for_publish(5)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and ingest.stats["stored"] < len(events):
            time.sleep(0.05)
        assert ingest.stats["stored"] == len(events)
        assert ingest._generation == 1 and ingest.connected.is_set()  # never kicked off
        assert stolen == []
    finally:
        thief.loop_stop()
        thief.disconnect()
        edge_b.close()
        ingest.stop()
    with sessions() as s:
        assert len(s.query(Passage).all()) == len(events)
    engine.dispose()


def test_broker_drops_a_publish_above_the_size_limit(secured_broker: int) -> None:
    central = Client(secured_broker, "central", PASSWORDS["central"])
    edge_a = Client(secured_broker, "edge-a", PASSWORDS["edge-a"])
    try:
        assert central.connected.wait(5) and edge_a.connected.wait(5)
        central.subscribe(contract.passage_topic(SITE, "LA"))
        topic = contract.passage_topic(SITE, "LA")
        edge_a.c.publish(topic, b"x" * (MESSAGE_SIZE_LIMIT + 1), qos=1).wait_for_publish(5)
        edge_a.c.publish(topic, b"y" * (MESSAGE_SIZE_LIMIT - 1024), qos=1).wait_for_publish(5)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not central.messages:
            time.sleep(0.05)
        time.sleep(0.3)
        assert [len(p) for _, p in central.messages] == [MESSAGE_SIZE_LIMIT - 1024]
    finally:
        central.close()
        edge_a.close()


def test_config_never_writes_through_symlinks(tmp_path: Path) -> None:
    from smartgate.cli import main

    victim = tmp_path / "victim"
    victim.write_text("root-owned content\n")
    victim.chmod(0o644)
    out = tmp_path / "out"
    out.mkdir()
    (out / "passwords").symlink_to(victim)
    (out / "credentials.env").symlink_to(victim)
    (out / "acl").hardlink_to(victim)
    files = write_broker_config(out, SITE, [NodeAccess("edge-a", ("LA",))], passwords=PASSWORDS)
    assert victim.read_text() == "root-owned content\n" and victim.stat().st_mode & 0o777 == 0o644
    for path in (files.passwords, files.credentials):
        assert not path.is_symlink() and path.stat().st_mode & 0o777 == 0o600
    assert "edge-a-pw" in files.credentials.read_text()
    assert "edge-a-pw" not in files.passwords.read_text()  # hashed
    # an existing readable credentials file is made private again
    files.credentials.chmod(0o644)
    write_broker_config(out, SITE, [NodeAccess("edge-a", ("LA",))], passwords=PASSWORDS)
    assert files.credentials.stat().st_mode & 0o777 == 0o600
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    # a symlinked output folder is refused, by the function and by the command
    linked = tmp_path / "linked"
    linked.symlink_to(out)
    with pytest.raises(ValueError, match="symbolic link"):
        write_broker_config(linked, SITE, [NodeAccess("edge-a", ("LA",))], passwords=PASSWORDS)
    assert main(["broker", "config", "--site", SITE, "--node", "edge-a=LA",
                 "--out", str(linked)]) == 2


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def _make_pki(folder: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1 and client certificates, made with openssl."""
    ca_key, ca = folder / "ca.key", folder / "ca.crt"
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-keyout",
             str(ca_key), "-out", str(ca), "-subj", "/CN=smartgate-test-ca")
    files = {"ca": ca}
    for name, san in (("server", "subjectAltName=IP:127.0.0.1,DNS:localhost"),
                      ("edge-a", None), ("central", None)):
        key, csr, crt = folder / f"{name}.key", folder / f"{name}.csr", folder / f"{name}.crt"
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
                 "-subj", f"/CN={name}")
        ext = folder / f"{name}.ext"
        ext.write_text((san or "extendedKeyUsage=clientAuth") + "\n")
        _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
                 "-CAcreateserial", "-days", "1", "-out", str(crt), "-extfile", str(ext))
        key.chmod(0o644)  # mosquitto reads its key after dropping root
        files[name], files[f"{name}_key"] = crt, key
    return files


def test_tls_end_to_end_edge_to_central_with_client_certificates(
    broker_dir: Path, tmp_path: Path
) -> None:
    binary = mosquitto_binary()
    if binary is None or shutil.which("openssl") is None:
        pytest.skip("mosquitto or openssl not installed")
    from central.config import CentralSettings
    from central.db import Passage, make_engine, session_factory, upgrade_database
    from central.ingest import MqttIngest, connection_options
    from edge.config import MqttConfig
    from edge.runtime.publisher import EdgePublisher
    from edge.runtime.spool import Spool
    from tests.test_contract import make_event

    pki = _make_pki(broker_dir)
    port, tls_port = free_port(), free_port()
    files = write_broker_config(
        broker_dir / "broker", SITE, [NodeAccess("edge-a", ("LA",))], port=port,
        bind="127.0.0.1", tls=TlsFiles(pki["server"], pki["server_key"], pki["ca"],
                                       require_client_cert=True),
        tls_port=tls_port, passwords=PASSWORDS,
    )
    proc = subprocess.Popen([binary, "-c", str(files.conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    engine = make_engine(f"sqlite:///{tmp_path / 'c.db'}")
    upgrade_database(engine)
    sessions = session_factory(engine)
    spool = Spool(tmp_path / "spool.db")
    ingest = publisher = None
    try:
        wait_port("127.0.0.1", tls_port)
        # a client without a certificate is refused by the TLS listener
        no_cert = Client(tls_port, "edge-a", PASSWORDS["edge-a"], tls_ca=pki["ca"])
        time.sleep(1.0)
        assert not no_cert.connected.is_set()
        no_cert.close()
        settings = CentralSettings(
            mqtt_host="127.0.0.1", mqtt_port=tls_port, mqtt_username="central",
            mqtt_password=PASSWORDS["central"], site=SITE, mqtt_tls_ca_file=pki["ca"],
            mqtt_tls_cert_file=pki["central"], mqtt_tls_key_file=pki["central_key"])
        ingest = MqttIngest(sessions, settings.mqtt_host, settings.mqtt_port,
                            **connection_options(settings), site=SITE)
        ingest.start()
        assert ingest.connected.wait(10)
        config = MqttConfig(host="127.0.0.1", port=tls_port, username="edge-a",
                            password=PASSWORDS["edge-a"], tls_ca_file=pki["ca"],
                            tls_cert_file=pki["edge-a"], tls_key_file=pki["edge-a_key"])
        assert config.tls
        publisher = EdgePublisher(SITE, "edge-a", [], config, spool)
        publisher.start()
        event = make_event(site=SITE, lane="LA", node_id="edge-a")
        spool.put(event.event_id, contract.passage_topic(SITE, "LA"), event.to_json())
        publisher.notify()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and spool.depth():
            time.sleep(0.05)
        assert spool.depth() == 0 and publisher.receipts == 1  # stored and receipted over TLS
        with sessions() as s:
            assert [p.event_id for p in s.query(Passage)] == [event.event_id]
    finally:
        if publisher is not None:
            publisher.stop(drain_timeout_s=0)
        if ingest is not None:
            ingest.stop()
        spool.close()
        engine.dispose()
        proc.kill()
        proc.wait(5)


def test_tls_settings_fail_at_start_naming_the_key(tmp_path: Path) -> None:
    from pydantic import ValidationError

    from central.config import CentralSettings
    from edge.config import MqttConfig

    ca = tmp_path / "ca.crt"
    ca.write_text("pem")
    with pytest.raises(ValidationError, match="tls_key_file"):
        MqttConfig(tls_cert_file=ca)
    with pytest.raises(ValidationError, match="tls_ca_file"):
        MqttConfig(tls_ca_file=tmp_path / "missing.crt")
    assert MqttConfig(tls_ca_file=ca).tls and not MqttConfig().tls
    with pytest.raises(ValidationError, match="mqtt_tls_key_file"):
        CentralSettings(mqtt_tls_cert_file=ca)
    with pytest.raises(ValidationError, match="mqtt_acl_file"):
        CentralSettings(mqtt_acl_file=tmp_path / "missing.acl")
    with pytest.raises(ValidationError, match="site"):
        CentralSettings(site="x" * 300)
    assert CentralSettings(mqtt_tls_ca_file=ca).mqtt_tls
