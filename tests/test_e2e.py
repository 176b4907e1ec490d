"""End to end: an edge node reads a generated truck scene and central stores the passage.

Runs once against Debian's mosquitto and once against the embedded amqtt broker.
"""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import pytest
from fastapi.testclient import TestClient

from central import auth_store
from central.api import create_app
from central.config import CentralSettings
from edge.app import EdgeNode
from edge.config import EdgeConfig
from tools.demo import demo_edge_config, seed_demo_declarations


def _scene_folder(tmp_path: Path) -> Path:
    from tools.synth.plates import render_scene

    folder = tmp_path / "camera"
    folder.mkdir()
    for k in range(3):
        image = render_scene("29C12345", region="vn", rows=1, seed=7 + k, size=(1280, 720))
        cv2.imwrite(str(folder / f"{k:03d}.jpg"), image)
    return folder


def _api_token(app, role: str) -> str:  # type: ignore[no-untyped-def]
    """A machine token for a fresh user with `role`."""
    token = "e2e-token-" + role
    with app.state.sessions() as session, session.begin():
        user = auth_store.add_user(session, f"e2e-{role}", "e2e-password-long", role)
        auth_store.add_api_token(session, user, "e2e", app.state.auth.digest("token", token))
    return token


@pytest.mark.slow
@pytest.mark.parametrize("broker_fixture", ["mosquitto", "amqtt_broker"])
def test_passage_from_edge_is_stored_with_plate(tmp_path: Path, request, broker_fixture) -> None:
    broker = request.getfixturevalue(broker_fixture)
    settings = CentralSettings(
        database_url=f"sqlite:///{tmp_path / 'central.db'}",
        mqtt_host=broker.host, mqtt_port=broker.port, data_dir=tmp_path,
        secret_key="e2e-secret-key-0123456789-abcdefghij",
    )
    seed_demo_declarations(settings.database_url, ["29C12345"])
    config = EdgeConfig.model_validate(
        demo_edge_config(tmp_path, _scene_folder(tmp_path), broker.port, fps=10)
    )
    config.lanes[0].cameras[0].loop = False
    with TestClient(create_app(settings)) as client:
        assert client.app.state.ingest.connected.wait(10)
        client.headers["Authorization"] = "Bearer " + _api_token(client.app, "operator")
        node = EdgeNode(config, realtime=False)
        node.start()
        node.run()
        assert node.passages_emitted == 1
        assert node.wait_drained(15), "spool did not drain: broker never acknowledged"
        node.stop()
        deadline = time.monotonic() + 15
        passages = []
        while time.monotonic() < deadline and not passages:
            passages = client.get("/api/passages").json()
            time.sleep(0.2)
        assert isinstance(passages, list) and len(passages) == 1, passages
        assert passages[0]["plate_text"] == "29C12345"
        assert passages[0]["lane"] == "L1"
        assert passages[0]["decision"]["outcome"] == "cleared"
        page = client.get("/passages")
        assert "29C" in page.text
        health = client.get("/api/health").json()
        assert health["ingest"]["stored"] == 1
