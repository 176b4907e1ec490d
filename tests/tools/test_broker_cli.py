"""`smartgate broker run` starts the embedded broker from the command line; `central run` and
`central ingest` take the MQTT client id and site."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from central.cli import _settings
from smartgate.cli import build_parser
from tools.broker import free_port, wait_port


def test_broker_run_serves_mqtt_until_sigterm() -> None:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "smartgate.cli", "broker", "run", "--port",
                             str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_port("127.0.0.1", port, 30)
        got = threading.Event()
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="cli-test")
        client.on_message = lambda _c, _u, m: got.set() if m.payload == b"hello" else None
        client.connect("127.0.0.1", port)
        client.subscribe("smartgate/test", qos=1)
        client.loop_start()
        client.publish("smartgate/test", b"hello", qos=1).wait_for_publish(5)
        assert got.wait(10)
        client.loop_stop()
        client.disconnect()
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0
    assert f"127.0.0.1:{port}" in out.decode()


def test_central_run_takes_client_id_and_site() -> None:
    parser = build_parser()
    args = parser.parse_args(["central", "run", "--mqtt-client-id", "central-b", "--site",
                              "huunghi"])
    assert (args.mqtt_client_id, args.site) == ("central-b", "huunghi")
    settings = _settings(args)
    assert (settings.mqtt_client_id, settings.site) == ("central-b", "huunghi")
    args = parser.parse_args(["central", "ingest", "--worker-id", "w1", "--site", "huunghi"])
    assert args.site == "huunghi"
