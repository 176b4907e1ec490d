"""Evidence outlives the lane: real mosquitto, central under uvicorn with its MQTT ingest, and
the edge's spool, publisher, ring buffer and evidence uploader.

The passage is decided while nobody looks; the edge uploads while central is still down (and
keeps retrying), its ring buffer rolls over, central comes up, and after the edge and its data
folder are gone the passage page still serves the images with their recorded SHA-256.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import httpx
import numpy as np

from central.db import make_engine, session_factory
from central.evidence import records
from edge.config import MqttConfig
from edge.runtime.evidence import EvidenceQueue, EvidenceUploader, enqueue_passage
from edge.runtime.images import ImageStore
from edge.runtime.publisher import EdgePublisher
from edge.runtime.spool import Spool
from smartgate import contract
from smartgate.contract import ImageRef
from tests.central.test_auth import add_users, fast_hashing, settings_for  # noqa: F401
from tests.central.test_evidence import serve, token_for
from tests.conftest import wait_until
from tests.test_contract import make_event
from tools.broker import free_port


def _frame(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    frame = np.full((720, 1280, 3), 70, np.uint8)
    cv2.rectangle(frame, (500, 400), (780, 470), (235, 235, 235), -1)
    cv2.putText(frame, f"29C{seed:05d}", (515, 450), cv2.FONT_HERSHEY_SIMPLEX, 1.2, (0, 0, 0), 3)
    frame[::7, ::5] = rng.integers(0, 255, frame[::7, ::5].shape, np.uint8)
    return frame


def test_images_outlive_ring_buffer_and_edge(tmp_path: Path, mosquitto) -> None:  # type: ignore[no-untyped-def]
    settings = settings_for(tmp_path / "central", mqtt_host=mosquitto.host,
                            mqtt_port=mosquitto.port, mqtt_client_id="central-evidence-test",
                            retention_purge_interval_s=0)
    add_users(settings, ("edge-1", "operator"), ("olga", "officer"))
    edge_token = token_for(settings, "edge-1", "edge-ingest")
    officer = {"Authorization": f"Bearer {token_for(settings, 'olga')}"}
    port = free_port()
    url = f"http://127.0.0.1:{port}"

    edge_dir = tmp_path / "edge"
    ring = ImageStore(edge_dir / "images", capacity=10)
    ids = [ring.save(_frame(k)) for k in (1, 2)]
    originals = {i: ring.read(i) for i in ids}
    event = make_event(node_id="edge-1", images=[ImageRef(image_id=i, camera=f"cam{k}")
                                                 for k, i in enumerate(ids)])
    spool = Spool(edge_dir / "spool.db")
    publisher = EdgePublisher("huunghi", "edge-1", [], MqttConfig(
        host=mosquitto.host, port=mosquitto.port, receipt_timeout_s=1.0,
        receipt_overtaken_s=1.0), spool)
    queue = EvidenceQueue(edge_dir / "evidence.db")
    uploader = EvidenceUploader(queue, url, edge_token, retry_initial_s=0.1, retry_max_s=0.5)
    publisher.start()
    uploader.start()
    spool.put(event.event_id, contract.passage_topic(event.site, event.lane), event.to_json())
    publisher.notify()
    assert enqueue_passage(queue, event, ring.read) == 2
    uploader.notify()

    for k in range(3, 20):  # a busy lane: the ring rolls over
        ring.save(_frame(k))
    assert all(ring.read(i) is None for i in ids)
    assert wait_until(lambda: uploader.counters.get("evidence_retries", 0) >= 2, 10)
    assert queue.depth() == 2  # central is down: kept, retried

    server = serve(settings, start_ingest=True, port=port)
    next(server)
    try:
        def complete() -> bool:
            reply = httpx.get(f"{url}/api/passages/{event.event_id}", headers=officer)
            return reply.status_code == 200 and reply.json()["passage"]["evidence"]["complete"]

        assert wait_until(complete, 30), "evidence never complete at central"
        assert wait_until(lambda: spool.depth() == 0 and queue.depth() == 0, 15)
        detail = httpx.get(f"{url}/api/passages/{event.event_id}", headers=officer).json()
        assert detail["passage"]["decision"] is not None  # decided while nobody looked

        # the edge is gone: stopped, its data folder deleted
        uploader.stop()
        publisher.stop(drain_timeout_s=0)
        spool.close()
        queue.close()
        shutil.rmtree(edge_dir)

        engine = make_engine(settings.database_url)
        with session_factory(engine)() as session:
            stored = {r.image_id: r.sha256 for r in records.images_of(session, event.event_id)}
        engine.dispose()
        for image_id, data in originals.items():
            reply = httpx.get(f"{url}/passages/{event.event_id}/images/{image_id}",
                              headers=officer)
            assert reply.status_code == 200
            assert reply.content == data
            assert reply.headers["x-evidence-sha256"] == stored[image_id]
        page = httpx.get(f"{url}/passages/{event.event_id}", headers=officer).text
        assert 'id="evidence-complete"' in page
    finally:
        server.close()


def test_edge_node_uploads_its_passages_images(tmp_path: Path, mosquitto) -> None:  # type: ignore[no-untyped-def]
    """The whole EdgeNode (cameras, inference, assembly) with its evidence section configured."""
    from edge.app import EdgeNode
    from edge.config import EdgeConfig
    from tests.test_e2e import _scene_folder
    from tools.demo import demo_edge_config

    settings = settings_for(tmp_path / "central", mqtt_host=mosquitto.host,
                            mqtt_port=mosquitto.port, mqtt_client_id="central-evidence-node",
                            retention_purge_interval_s=0)
    add_users(settings, ("edge-demo", "operator"), ("olga", "officer"))
    token = token_for(settings, "edge-demo", "edge-ingest")
    officer = {"Authorization": f"Bearer {token_for(settings, 'olga')}"}
    server = serve(settings, start_ingest=True)
    url = next(server)
    try:
        config = EdgeConfig.model_validate(demo_edge_config(
            tmp_path, _scene_folder(tmp_path), mosquitto.port, fps=10,
            evidence={"central_url": url, "token": token}))
        config.lanes[0].cameras[0].loop = False
        node = EdgeNode(config, realtime=False)
        node.start()
        node.run()
        assert node.passages_emitted == 1
        passages: list = []

        def complete() -> bool:
            nonlocal passages
            passages = httpx.get(f"{url}/api/passages", headers=officer).json()
            return len(passages) == 1 and passages[0]["evidence"]["complete"]

        assert wait_until(complete, 30), passages
        evidence = passages[0]["evidence"]
        assert evidence["expected"] >= 1 and evidence["stored"] == evidence["expected"]
        event_id = passages[0]["event_id"]
        for image_id in evidence_ids(passages[0]["payload"]):
            reply = httpx.get(f"{url}/passages/{event_id}/images/{image_id}", headers=officer)
            assert reply.status_code == 200 and reply.content == node.images.read(image_id)
        counts = node.node_counts()
        assert (counts.evidence_pending, counts.evidence_refused) == (0, 0)
        assert counts.counters["evidence_uploaded"] == evidence["expected"]
        node.stop()
    finally:
        server.close()


def evidence_ids(payload: dict) -> list[str]:
    """The image ids a stored passage payload names."""
    return contract.PassageEvent.model_validate(payload).evidence_ids()
