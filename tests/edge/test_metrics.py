"""GET /metrics on central and on the edge: the counters move with real traffic."""

from __future__ import annotations

import time
import urllib.request
from pathlib import Path

import paho.mqtt.client as mqtt
from fastapi.testclient import TestClient
from paho.mqtt.enums import CallbackAPIVersion
from prometheus_client.parser import text_string_to_metric_families

from central.api import create_app
from central.config import CentralSettings
from central.decisions import DecisionService
from central.domain.rules import RuleSet
from central.ingest import MqttIngest
from edge.app import EdgeNode
from edge.config import EdgeConfig
from edge.runtime.sources import SimulatedCamera
from smartgate import contract
from tests.central.test_ingest import _sessions
from tests.conftest import wait_until
from tests.test_contract import make_event
from tools.broker import free_port
from tools.synth.plates import render_scene


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value} of a Prometheus text page."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }



def test_central_metrics_count_passages_decisions_rejects(tmp_path: Path, mosquitto) -> None:
    sessions = _sessions(tmp_path)
    ingest = MqttIngest(sessions, mosquitto.host, mosquitto.port, client_id="central-metrics",
                        on_passage=DecisionService(RuleSet(version="m")).decide_passage)
    ingest.start()
    assert ingest.connected.wait(10)
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="edge-metrics")
    pub.connect(mosquitto.host, mosquitto.port)
    pub.loop_start()
    topic = contract.passage_topic("huunghi", "L1")
    events = [make_event() for _ in range(3)]
    for event in events:
        pub.publish(topic, event.to_json(), qos=1).wait_for_publish(5)
    pub.publish(topic, events[0].to_json(), qos=1).wait_for_publish(5)  # a redelivery
    pub.publish(topic, b"{}", qos=1).wait_for_publish(5)
    assert wait_until(lambda: sum(ingest.stats.values()) >= 5)
    page = _samples(ingest.metrics.render().decode())
    pub.loop_stop()
    ingest.stop()
    assert page[("smartgate_central_passages_in_total", ())] == 3
    assert page[("smartgate_central_messages_total", (("kind", "duplicate"),))] == 1
    assert page[("smartgate_central_decisions_total", (("outcome", "no_declaration"),))] == 3
    reasons = [k[1] for k in page if k[0] == "smartgate_central_rejects_total"]
    assert len(reasons) == 1 and page[("smartgate_central_rejects_total", reasons[0])] == 1
    assert page[("smartgate_central_ingest_latency_seconds_count", ())] == 5
    assert page[("smartgate_central_mqtt_connected", ())] == 1
    assert page[("smartgate_central_db_errors_total", ())] == 0


def test_central_serves_metrics_over_http(tmp_path: Path) -> None:
    settings = CentralSettings(database_url=f"sqlite:///{tmp_path / 'c.db'}", demo_mode=True,
                               metrics_token="scrape-token-0123456789")
    client = TestClient(create_app(settings, start_ingest=False))
    assert client.get("/metrics").status_code == 401
    response = client.get("/metrics", headers={"Authorization": "Bearer scrape-token-0123456789"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert _samples(response.text)[("smartgate_central_mqtt_connected", ())] == 0


def test_edge_metrics_port(tmp_path: Path, mosquitto) -> None:
    port = free_port()
    config = EdgeConfig.model_validate({
        "site": "huunghi", "node_id": "edge-m", "data_dir": str(tmp_path / "edge"),
        "mqtt": {"host": mosquitto.host, "port": mosquitto.port, "keepalive_s": 5},
        "inference": {"det_limit_side": 360, "max_batch": 2},
        "metrics_port": port,
        "lanes": [{"lane": "L1", "cameras": [{"name": "front", "source": "sim", "fps": 5}],
                   "trigger": {"type": "mqtt"}}],
    })
    camera = SimulatedCamera(render_scene("29C12345", "vn", 1, seed=1))
    node = EdgeNode(config, simulated={"L1/front": camera})
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="trigger-m")
    client.connect(mosquitto.host, mosquitto.port)
    client.loop_start()
    node.start()
    try:
        assert node.publisher.connected.wait(10)
        time.sleep(0.3)
        trigger = contract.trigger_topic("huunghi", "L1")
        client.publish(trigger, b"bogus", qos=1).wait_for_publish(5)
        client.publish(trigger, b"on", qos=1).wait_for_publish(5)
        assert wait_until(lambda: node.plates_read >= 1, 30)
        client.publish(trigger, b"off", qos=1).wait_for_publish(5)
        assert wait_until(lambda: node.publisher.published >= 1)
        (sent,) = node.spool.due(1, float("inf"), 0.0)  # central's part: the receipt
        receipt = contract.PassageReceipt(event_id=sent.event_id, site="huunghi", lane="L1",
                                          status="stored")
        client.publish(contract.receipt_topic("huunghi", "L1"), receipt.to_json(),
                       qos=1).wait_for_publish(5)
        assert wait_until(lambda: node.spool.depth() == 0)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
            page = _samples(reply.read().decode())
    finally:
        client.loop_stop()
        node.stop()
    assert page[("smartgate_edge_passages_total", (("read", "yes"),))] == 1
    assert page[("smartgate_edge_passages_out_total", ())] == 1
    assert page[("smartgate_edge_spool_depth", ())] == 0
    assert page[("smartgate_edge_mqtt_connected", ())] == 1
    assert page[("smartgate_edge_inference_batch_size_count", (("kind", "plates"),))] >= 1
    assert page[("smartgate_edge_inference_batch_seconds_sum", (("kind", "plates"),))] > 0
    assert page[("smartgate_edge_rejects_total", (("reason", "triggers_rejected"),))] == 1
    assert ("smartgate_edge_frames_dropped_total", ()) in page
