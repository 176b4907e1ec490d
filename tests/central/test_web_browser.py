"""The officer and operator pages in a real Chromium, against central on a real mosquitto.

Central runs under uvicorn in a thread; an edge's passage is published over MQTT; the pages
must show it live (server-sent events), the officer approves it with the `a` key, and the lane
receives the `open_barrier` command. Screenshots go to artifacts/.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import httpx
import numpy as np
import paho.mqtt.client as mqtt
import pytest
import uvicorn
from paho.mqtt.enums import CallbackAPIVersion

from central.api import create_app
from smartgate import contract
from smartgate.contract import (
    Box,
    ImageRef,
    LaneStatus,
    NodeStatus,
    PassageEvent,
    PlateRead,
    Weight,
)
from tests.central.test_auth import PASSWORD, add_users, fast_hashing, settings_for  # noqa: F401
from tests.central.test_evidence import token_for
from tools.broker import free_port

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
SITE, LANE, NODE = "huunghi", "L1", "edge-01"
PLATE_BOX = Box(x1=260, y1=300, x2=420, y2=350)


@pytest.fixture
def browser() -> Iterator:
    if not CHROMIUM.exists():
        pytest.skip(f"Chromium not installed at {CHROMIUM} (scripts/setup installs it)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--headless=new", "--no-sandbox", "--disable-gpu",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run"],
        )  # fmt: skip
        yield b
        b.close()


def frame_jpeg() -> bytes:
    """The frame the edge uploads as evidence: a plate on a grey background."""
    frame = np.full((480, 640, 3), 90, np.uint8)
    cv2.rectangle(frame, (260, 300), (420, 350), (240, 240, 240), -1)
    cv2.putText(frame, "29C12345", (268, 338), cv2.FONT_HERSHEY_SIMPLEX, 0.9, (0, 0, 0), 2)
    return cv2.imencode(".jpg", frame)[1].tobytes()


@pytest.fixture
def edge_upload(tmp_path: Path, central_url: str) -> Callable[[str, str], int]:
    """The edge's evidence upload with its edge-ingest token: upload(event_id, image_id)."""
    settings = settings_for(tmp_path)
    add_users(settings, (NODE, "operator"))
    token = token_for(settings, NODE, "edge-ingest")

    def upload(event_id: str, image_id: str) -> int:
        return httpx.put(f"{central_url}/api/evidence/{event_id}/{image_id}",
                         content=frame_jpeg(), timeout=10,
                         headers={"Authorization": f"Bearer {token}"}).status_code

    return upload


@pytest.fixture
def central_url(tmp_path: Path, mosquitto) -> Iterator[str]:
    """Central under uvicorn on a free port, subscribed to the test's mosquitto."""
    settings = settings_for(
        tmp_path, mqtt_host=mosquitto.host, mqtt_port=mosquitto.port, cookie_secure=False,
        mqtt_client_id="central-browser-test",
    )  # fmt: skip
    add_users(settings, ("olga", "officer"), ("oscar", "operator"))
    app = create_app(settings)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "central did not start"
    assert app.state.ingest.connected.wait(10), "central did not connect to mosquitto"
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


class Lane:
    """The edge side over MQTT: publishes passages and states, records commands."""

    def __init__(self, host: str, port: int) -> None:
        self.commands: list[dict] = []
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="fake-edge")
        self.client.on_message = lambda _c, _u, msg: self.commands.append(json.loads(msg.payload))
        self.client.connect(host, port)
        self.client.subscribe(contract.command_topic(SITE, LANE), qos=1)
        self.client.loop_start()

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    def status(self, state: str, queue: int = 0) -> None:
        msg = LaneStatus(site=SITE, lane=LANE, node_id=NODE, state=state, queue_length=queue)
        self.publish(contract.lane_status_topic(SITE, LANE), msg.to_json(), retain=True)

    def wait_command(self, action: str, event_id: str, timeout_s: float = 10) -> dict:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for c in self.commands:
                if c["action"] == action and c["passage_event_id"] == event_id:
                    return c
            time.sleep(0.05)
        raise AssertionError(f"no {action} command for {event_id}; got {self.commands}")

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def lane(mosquitto) -> Iterator[Lane]:
    lane = Lane(mosquitto.host, mosquitto.port)
    yield lane
    lane.close()


def passage(plate: str = "29C12345") -> PassageEvent:
    """A passage with no declaration on file, so the rules send it to review."""
    now = datetime.now(UTC)
    example = plate == "29C12345"
    read = PlateRead(
        text=plate, display_text="29C-123.45" if example else plate, region="vn",
        confidence=0.91, camera="front", box=PLATE_BOX, image_id="frame1",
        candidates=[{"text": plate, "confidence": 0.91}]
        + ([{"text": "29C12845", "confidence": 0.05}] if example else []),
    )  # fmt: skip
    return PassageEvent(
        event_id=contract.new_id(), site=SITE, node_id=NODE, lane=LANE, direction="entry",
        started_at=now - timedelta(seconds=8), ended_at=now, plate_front=read,
        weight=Weight(gross_kg=31250, captured_at=now),
        images=[
            ImageRef(image_id="frame1", camera="front", boxes=[PLATE_BOX]),
            ImageRef(image_id="gone1", camera="side"),  # its edge never uploads it
        ],
        frames_processed=5,
    )  # fmt: skip


def sign_in(page, base: str, username: str) -> None:
    page.goto(f"{base}/login?lang=en")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/login" not in url)


def test_officer_sees_flagged_passage_live_and_approves_it(
    browser, central_url: str, lane: Lane, edge_upload: Callable[[str, str], int]
) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    sign_in(page, central_url, "olga")
    assert page.url.endswith("/review")
    page.wait_for_selector("#live.on")  # the event stream is open
    assert "No passages waiting" in page.inner_text("#queue-rows")

    event = passage()
    lane.publish(contract.passage_topic(SITE, LANE), event.to_json())
    row = page.wait_for_selector(f"tr[data-event-id='{event.event_id}']", timeout=10_000)
    assert edge_upload(event.event_id, "frame1") == 201
    assert "29C12345" in row.inner_text() and "plate not declared" in row.inner_text()
    page.screenshot(path=str(ARTIFACTS / "review-queue.png"), full_page=True)

    page.keyboard.press("j")
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/passages/{event.event_id}")
    page.wait_for_selector("figure.frame svg rect.plate-box")  # box drawn over the loaded frame
    assert page.inner_text(".placeholder") == "image unavailable"  # never uploaded
    assert "1/2" in page.inner_text("#evidence-missing")
    assert page.eval_on_selector(".crop img", "img => img.naturalWidth") == 640
    mismatch = page.inner_text("tr.mismatch[data-field=tractor_plate]")
    assert "29C-123.45" not in mismatch and "29C12345" in mismatch
    assert "0.05" in page.inner_text("body")  # a top-N alternative with its confidence

    page.fill("textarea[name=note]", "driver showed papers")
    page.click("h1")  # leave the note field so the key is a shortcut
    page.keyboard.press("a")
    page.wait_for_selector(".notice")
    assert "approved" in page.inner_text("#outcome")
    audit = page.inner_text("#audit")
    assert "olga" in audit and "decision.approve" in audit and "driver showed papers" in audit
    command = lane.wait_command("open_barrier", event.event_id)
    assert command["issued_by"] == "olga"
    page.screenshot(path=str(ARTIFACTS / "passage.png"), full_page=True)

    page.goto(f"{central_url}/review")
    assert event.event_id not in page.inner_html("#queue-rows")


def test_operator_dashboard_tiles_update_live(browser, central_url: str, lane: Lane) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    node = NodeStatus(site=SITE, node_id=NODE, lanes=[LANE], cameras_ok={"front": True, "side": False},
                      scale_connected=True)  # fmt: skip
    lane.publish(contract.node_availability_topic(SITE, NODE), b"online", retain=True)
    lane.publish(contract.node_status_topic(SITE, NODE), node.to_json(), retain=True)
    lane.status("idle")
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    sign_in(page, central_url, "oscar")
    assert page.url.endswith("/dashboard")
    tile = f".tile[data-lane='{SITE}/{LANE}']"
    page.wait_for_selector(f"{tile} .state-idle")  # the retained status may land after the load
    page.wait_for_selector("#live.on")
    assert "online" in page.inner_text(tile) and "side fault" in page.inner_text(tile)

    lane.status("on_scale", queue=3)
    page.wait_for_selector(f"{tile} .state-on_scale", timeout=10_000)
    assert page.inner_text(f"{tile} .queue") == "3"
    lane.publish(contract.passage_topic(SITE, LANE), passage().to_json())
    page.wait_for_selector(f"{tile} .last-hour:text-is('1')", timeout=10_000)
    page.wait_for_selector(".chart[data-metric=throughput] svg rect", timeout=10_000)
    assert page.inner_text(f"{tile} .last-passage").startswith("29C12345")
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
