"""Officer and operator pages without a browser: queue filters, corrections, images, tiles."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from central.api import create_app
from central.evidence import records
from central.i18n import LANGUAGES, messages
from central.ingest import handle_message
from central.routes.web_dashboard import chart_data, lane_tiles
from central.routes.web_review import compare, crops, frames
from central.store import LaneStats
from smartgate import contract
from tests.central.test_auth import add_users, fast_hashing, login, settings_for  # noqa: F401
from tests.central.test_web_browser import LANE, SITE, passage
from tools.demo import seed_demo_declarations


@pytest.fixture
def client(tmp_path: Path) -> TestClient:
    settings = settings_for(tmp_path)
    add_users(settings, ("olga", "officer"), ("oscar", "operator"))
    seed_demo_declarations(settings.database_url, ["29C12345"], per_plate=1)
    app = create_app(settings, start_ingest=False)
    with TestClient(app, base_url="https://testserver") as c:
        c.sent = []  # type: ignore[attr-defined]
        app.state.outbox = type(app.state.outbox)(c.sent.append, app.state.events)
        yield c


def ingest(client: TestClient, event: contract.PassageEvent) -> str:
    """Store and decide a passage as the MQTT ingest would."""
    with client.app.state.sessions() as session, session.begin():
        outcome = handle_message(
            session, contract.passage_topic(event.site, event.lane), event.to_json(),
            client.app.state.decisions.decide_passage,
        )  # fmt: skip
    assert outcome.kind == "stored", outcome
    return event.event_id


def test_every_message_has_both_languages() -> None:
    keys = [set(messages(lang)) for lang in LANGUAGES]
    assert all(k == keys[0] for k in keys)


def test_misread_plate_corrected_and_rematched(client: TestClient) -> None:
    event_id = ingest(client, passage(plate="51D99999"))
    csrf = login(client, "olga")
    assert event_id in client.get("/review").text
    reply = client.post(
        f"/passages/{event_id}/correction",
        data={"plate": "29C-123.45", "note": "plate was dirty", "csrf_token": csrf},
    )
    assert reply.status_code == 200 and str(reply.url).endswith("?saved=1")
    assert "Đã ghi nhận quyết định" in reply.text
    detail = client.get(f"/api/passages/{event_id}").json()
    assert detail["passage"]["decision"]["outcome"] == "cleared"
    assert detail["passage"]["decision"]["decided_by"] == "olga"
    assert detail["audit"][0]["action"] == "decision.correct"
    assert detail["audit"][0]["detail"]["plate"] == "29C12345"
    command = client.sent[-1]
    assert command.action == "open_barrier" and command.passage_event_id == event_id
    assert event_id not in client.get("/review/rows").text


def test_correction_rejects_bad_container_codes(client: TestClient) -> None:
    event_id = ingest(client, passage(plate="51D99999"))
    csrf = login(client, "olga")
    reply = client.post(
        f"/passages/{event_id}/correction", data={"containers": "ABC", "csrf_token": csrf}
    )
    assert reply.status_code == 422
    assert client.sent == []


def test_send_to_inspection_and_hold(client: TestClient) -> None:
    event_id = ingest(client, passage(plate="51D99999"))
    csrf = login(client, "olga")
    client.post(f"/passages/{event_id}/decision", data={"action": "hold", "csrf_token": csrf})
    assert (
        client.get(f"/api/passages/{event_id}").json()["passage"]["decision"]["outcome"] == "held"
    )
    assert event_id in client.get("/review/rows").text  # held passages stay in the queue
    client.post(f"/passages/{event_id}/decision", data={"action": "inspection", "csrf_token": csrf})
    assert [c.action for c in client.sent] == ["show_message", "send_to_inspection"]
    assert client.sent[-1].inspection_lane == "inspection"
    assert client.sent[-1].passage_event_id == event_id
    decision = client.get(f"/api/passages/{event_id}").json()["passage"]["decision"]
    assert (decision["outcome"], decision["decided_by"]) == ("inspection", "olga")
    assert event_id not in client.get("/review/rows").text


def test_queue_filters_by_lane_and_reason_newest_first(client: TestClient) -> None:
    old = ingest(client, passage(plate="51D99999"))
    new = ingest(client, passage(plate="51D88888"))
    login(client, "olga")
    rows = client.get("/review/rows").text
    assert rows.index(new) < rows.index(old)
    assert new in client.get("/review/rows?reason=plate_not_declared").text
    assert new not in client.get("/review/rows?reason=weight_out_of_tolerance").text
    assert new not in client.get("/review/rows?lane=L9").text


def test_images_come_only_from_the_evidence_store(client: TestClient, tmp_path: Path) -> None:
    event_id = ingest(client, passage())
    login(client, "olga")
    # a file where the old proxy kept its cache is not evidence: nothing names it
    (tmp_path / "images").mkdir(exist_ok=True)
    (tmp_path / "images" / "frame1.jpg").write_bytes(b"\xff\xd8cached")
    assert client.get(f"/passages/{event_id}/images/frame1").status_code == 404
    jpeg = b"\xff\xd8" + b"evidence" * 100
    digest = client.app.state.evidence.put(event_id, "frame1", jpeg)
    with client.app.state.sessions() as session, session.begin():
        records.record_image(session, event_id, "frame1", digest, len(jpeg), "edge01")
    reply = client.get(f"/passages/{event_id}/images/frame1")
    assert reply.status_code == 200 and reply.content == jpeg
    for image_id in ("..%2F..%2Fcentral.db", "other", "frame1.jpg", digest):
        assert client.get(f"/passages/{event_id}/images/{image_id}").status_code == 404


def test_passage_view_model_boxes_crops_and_mismatches() -> None:
    event = passage()
    shown = frames(event)
    assert [f["camera"] for f in shown] == ["front", "side"]
    assert shown[0]["boxes"] == [{"x1": 260, "y1": 300, "x2": 420, "y2": 350, "kind": "plate"}]
    assert shown[1]["boxes"] == []
    assert crops(event)[0]["image_id"] == "frame1"
    reasons = [{"reason": "weight_out_of_tolerance", "detail": "31 t vs 5 t", "severity": "flag"}]
    rows = {c.field: c for c in compare(event, reasons, None)}
    assert rows["gross_kg"].mismatch and rows["gross_kg"].read == "31,250"
    assert not rows["tractor_plate"].mismatch


def test_lane_tiles_and_chart_data() -> None:
    from datetime import UTC, datetime

    from central.db import EdgeNode, LaneStatusRow

    status = LaneStatusRow(site=SITE, lane=LANE, node_id="edge-01", state="waiting_decision",
                           queue_length=2, updated_at=datetime.now(UTC))  # fmt: skip
    node = EdgeNode(site=SITE, node_id="edge-01", online=False,
                    status={"lanes": [LANE, "L2"], "cameras_ok": {"front": True}})  # fmt: skip
    tiles = lane_tiles([status], [node], {}, {(SITE, LANE): 7})
    assert [(t.lane, t.state, t.node_online, t.last_hour) for t in tiles] == [
        (LANE, "waiting_decision", False, 7), ("L2", "unknown", False, 0),
    ]  # fmt: skip
    now = datetime(2026, 11, 23, 15, 40, tzinfo=UTC)
    stats = [LaneStats(SITE, LANE, passages=3, per_hour={"2026-11-23T15:00Z": 2,
                       "2026-11-23T13:00Z": 1}, read_rate=0.5, flagged_rate=0.25,
                       mean_decision_s=4.0)]  # fmt: skip
    data = chart_data(stats, now, 3)
    assert data["hours"] == ["13:00", "14:00", "15:00"]
    assert data["throughput"] == {f"{SITE}/{LANE}": [1, 0, 2]}
    assert (data["read_rate"], data["flagged_rate"], data["decision_s"]) == ([50.0], [25.0], [4.0])
    json.dumps(data)


def test_dashboard_page_lists_lanes(client: TestClient) -> None:
    with client.app.state.sessions() as session, session.begin():
        handle_message(
            session, contract.lane_status_topic(SITE, LANE),
            contract.LaneStatus(site=SITE, lane=LANE, node_id="edge-01", state="on_scale",
                                queue_length=1).to_json(),
        )  # fmt: skip
    login(client, "oscar")
    page = client.get("/dashboard?lang=vi").text
    assert f'data-lane="{SITE}/{LANE}"' in page and "xe trên cân" in page
