"""Evidence at central: upload API under uvicorn, audited views, roles, legal hold, retention
purge with a fake clock, `smartgate evidence verify` and `export`."""

from __future__ import annotations

import json
import secrets
import threading
import time
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import uvicorn
from sqlalchemy import select

from central import auth_store, store
from central.api import create_app
from central.auth import auth_config
from central.config import CentralSettings
from central.db import AuditEntry, DecisionRow, make_engine, session_factory
from central.evidence import records
from central.evidence.retention import DecisionFact, RetentionPolicy, classify, mask_plate
from central.evidence.store import FilesystemEvidenceStore, sha256_hex
from smartgate.cli import main as cli_main
from smartgate.contract import ImageRef, PassageEvent
from tests.central.test_auth import add_users, fast_hashing, settings_for  # noqa: F401
from tests.test_contract import make_event
from tools.broker import free_port

JPEG_A = b"\xff\xd8\xff\xe0" + b"frame-a" * 2000 + b"\xff\xd9"
JPEG_B = b"\xff\xd8\xff\xe0" + b"frame-b" * 2000 + b"\xff\xd9"
T0 = datetime(2026, 1, 10, 8, 0, tzinfo=UTC)


def token_for(settings: CentralSettings, username: str, scope: str = "full") -> str:
    """A fresh API token acting as `username` within `scope`."""
    token = secrets.token_urlsafe(24)
    engine = make_engine(settings.database_url)
    with session_factory(engine)() as session, session.begin():
        user = auth_store.get_user(session, username)
        assert user is not None
        auth_store.add_api_token(session, user, "test",
                                 auth_config(settings).digest("token", token), scope)
    engine.dispose()
    return token


def two_image_event(**kw) -> PassageEvent:  # type: ignore[no-untyped-def]
    return make_event(images=[ImageRef(image_id="imgA", camera="front"),
                              ImageRef(image_id="imgB", camera="side")], **kw)


@dataclass
class Central:
    url: str
    settings: CentralSettings
    sessions: object
    edge: str  # bearer tokens
    officer: str
    operator: str
    admin: str

    def add(self, event: PassageEvent, outcome: str = "cleared", by: str = "rules:v1",
            decided_at: datetime | None = None) -> None:
        with self.sessions() as session, session.begin():  # type: ignore[operator]
            store.add_passage(session, event)
            session.add(DecisionRow(passage_event_id=event.event_id, current=True,
                                    outcome=outcome, reasons=[], rules_version="v1",
                                    decided_by=by, decided_at=decided_at or event.ended_at,
                                    note=""))

    def put(self, event_id: str, image_id: str, data: bytes, token: str | None = None,
            **headers: str) -> httpx.Response:
        auth = {"Authorization": f"Bearer {token or self.edge}"} if token != "" else {}
        return httpx.put(f"{self.url}/api/evidence/{event_id}/{image_id}", content=data,
                         headers={**auth, "Content-Type": "image/jpeg", **headers}, timeout=10)

    def get(self, path: str, token: str) -> httpx.Response:
        return httpx.get(self.url + path, headers={"Authorization": f"Bearer {token}"},
                         timeout=10)


def serve(settings: CentralSettings, start_ingest: bool = False,
          port: int | None = None) -> Iterator[str]:
    """Central under uvicorn on `port` (default: a free one), until the generator is closed."""
    app = create_app(settings, start_ingest=start_ingest)
    port = port or free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "central did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture
def central(tmp_path: Path) -> Iterator[Central]:
    settings = settings_for(tmp_path, retention_purge_interval_s=0,
                            evidence_max_image_bytes=256 * 1024)
    add_users(settings, ("edge-1", "operator"), ("olga", "officer"), ("oscar", "operator"),
              ("ada", "admin"), ("edge-2", "operator"))
    tokens = {n: token_for(settings, n) for n in ("olga", "oscar", "ada")}
    tokens["edge-1"] = token_for(settings, "edge-1", "edge-ingest")  # make_event's node
    engine = make_engine(settings.database_url)
    for url in serve(settings):
        yield Central(url, settings, session_factory(engine), tokens["edge-1"], tokens["olga"],
                      tokens["oscar"], tokens["ada"])
    engine.dispose()


def test_upload_view_and_status(central: Central) -> None:
    event = two_image_event()
    # the passage is not at central yet: the edge is told to come back (404), nothing kept
    assert central.put(event.event_id, "imgA", JPEG_A).status_code == 404
    central.add(event)
    listed = central.get("/api/passages", central.officer).json()[0]
    assert listed["evidence"] == {"expected": 2, "stored": 0, "missing": ["imgA", "imgB"],
                                  "complete": False, "purged": False, "legal_hold": False}
    page = central.get(f"/passages/{event.event_id}", central.officer).text
    assert 'id="evidence-missing"' in page

    reply = central.put(event.event_id, "imgA", JPEG_A, **{"X-Evidence-SHA256": sha256_hex(
        JPEG_A)})
    assert reply.status_code == 201, reply.text
    assert reply.json()["sha256"] == sha256_hex(JPEG_A)
    assert central.put(event.event_id, "imgA", JPEG_A).status_code == 200  # a retry
    assert central.put(event.event_id, "imgA", JPEG_B).status_code == 409  # never replaced
    assert central.put(event.event_id, "imgB", JPEG_B).status_code == 201

    detail = central.get(f"/api/passages/{event.event_id}", central.officer).json()
    assert detail["passage"]["evidence"]["complete"] is True
    assert 'id="evidence-complete"' in central.get(f"/passages/{event.event_id}",
                                                   central.officer).text
    image = central.get(f"/passages/{event.event_id}/images/imgA", central.officer)
    assert image.status_code == 200 and image.content == JPEG_A
    assert image.headers["cache-control"] == "private, no-store"
    with central.sessions() as session:  # type: ignore[operator]
        views = session.scalars(select(AuditEntry).where(
            AuditEntry.action == "evidence.view")).all()
    assert [(v.actor, v.target_id, v.detail["image_id"]) for v in views] == [
        ("olga", event.event_id, "imgA")]
    # served by (passage, image) only: another passage cannot name this passage's image
    other = two_image_event()
    central.add(other)
    assert central.get(f"/passages/{other.event_id}/images/imgA", central.officer
                       ).status_code == 404


def test_concurrent_uploads_of_one_image_store_it_once(central: Central) -> None:
    event = two_image_event()
    central.add(event)
    with ThreadPoolExecutor(8) as pool:
        codes = sorted(pool.map(lambda _: central.put(event.event_id, "imgA", JPEG_A).status_code,
                                range(8)))
    assert codes == [200] * 7 + [201]
    images = central.get(f"/api/passages/{event.event_id}/evidence", central.officer).json()
    assert [i["image_id"] for i in images["images"]] == ["imgA"]


def test_upload_refusals(central: Central) -> None:
    event = two_image_event()
    central.add(event)
    assert central.put(event.event_id, "imgA", JPEG_A, token="").status_code == 401
    assert central.put(event.event_id, "imgA", JPEG_A, token="wrong").status_code == 401
    assert central.put(event.event_id, "imgA", JPEG_A, token=central.officer
                       ).status_code == 403  # officers are not edges
    read_only = token_for(central.settings, "oscar", "read")
    assert central.put(event.event_id, "imgA", JPEG_A, token=read_only).status_code == 403
    # another node's edge cannot plant images in this passage's evidence
    other_edge = token_for(central.settings, "edge-2", "edge-ingest")
    assert central.put(event.event_id, "imgA", JPEG_A, token=other_edge).status_code == 403
    # the edge's credential uploads and does nothing else
    assert central.get("/api/passages", central.edge).status_code == 403
    assert central.put(event.event_id, "notnamed", JPEG_A).status_code == 422
    assert central.put(event.event_id, "imgA", b"GIF89a....").status_code == 422
    assert central.put(event.event_id, "imgA", JPEG_A, **{"X-Evidence-SHA256": "0" * 64}
                       ).status_code == 422
    big = b"\xff\xd8" + b"x" * (300 * 1024)
    assert central.put(event.event_id, "imgA", big).status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams
        yield b"\xff\xd8"
        for _ in range(40):
            yield b"x" * 10_000

    reply = httpx.put(f"{central.url}/api/evidence/{event.event_id}/imgA", content=chunks(),
                      headers={"Authorization": f"Bearer {central.edge}"}, timeout=10)
    assert reply.status_code == 413
    status = central.get(f"/api/passages/{event.event_id}/evidence", central.officer).json()
    assert status["images"] == []
    assert central.put(event.event_id, "imgA", JPEG_A, token=central.admin).status_code == 201
    # operators watch lanes: they may not open evidence
    assert central.get(f"/passages/{event.event_id}/images/imgA", central.operator
                       ).status_code == 403


def test_legal_hold_api_and_page_button(central: Central) -> None:
    event = two_image_event()
    central.add(event)
    path = f"/api/passages/{event.event_id}/legal-hold"
    headers = {"Authorization": f"Bearer {central.officer}"}
    assert httpx.put(central.url + path, json={"reason": "x"}, headers=headers
                     ).status_code == 403
    headers = {"Authorization": f"Bearer {central.admin}"}
    assert httpx.put(central.url + path, json={"reason": "case 12/2026"}, headers=headers
                     ).status_code == 200
    page = central.get(f"/passages/{event.event_id}", central.admin).text
    assert 'id="legal-hold"' in page and 'id="act-release-hold"' in page
    assert 'id="act-legal-hold"' not in central.get(f"/passages/{event.event_id}",
                                                    central.officer).text
    ev = central.get(f"/api/passages/{event.event_id}/evidence", central.officer).json()
    assert ev["legal_hold"]["set_by"] == "ada" and ev["status"]["legal_hold"] is True
    assert httpx.request("DELETE", central.url + path, headers=headers).json()["released"]
    assert central.get(f"/api/passages/{event.event_id}/evidence", central.officer
                       ).json()["legal_hold"] is None


def test_retention_classes() -> None:
    open_ = ("flagged", "no_declaration", "held")
    rules = DecisionFact("cleared", False, T0, True)
    assert classify([rules], open_) == "cleared"
    assert classify([DecisionFact("flagged", False, T0, True)], open_) == "open"
    assert classify([], open_) == "open"
    assert classify([DecisionFact("flagged", False, T0, False),
                     DecisionFact("approved", True, T0, True)], open_) == "reviewed"
    assert mask_plate("29C12345") == "29C*****" and mask_plate(None) is None


@pytest.mark.parametrize("database", ["sqlite", pytest.param("postgresql",
                                                             marks=pytest.mark.postgres)])
def test_purge_with_a_fake_clock_keeps_decisions_and_holds(
    tmp_path: Path, request: pytest.FixtureRequest, database: str
) -> None:
    extra = {"database_url": request.getfixturevalue("pg_database")} if (
        database == "postgresql") else {}
    settings = settings_for(tmp_path, **extra)
    add_users(settings)
    engine = make_engine(settings.database_url)
    sessions = session_factory(engine)
    evidence = FilesystemEvidenceStore(tmp_path / "ev")
    policy = RetentionPolicy(cleared_days=90, reviewed_days=365)
    cleared, held, reviewed, still_open = (two_image_event(started_at=T0, ended_at=T0)
                                           for _ in range(4))
    with sessions() as session, session.begin():
        for event, outcome, by in ((cleared, "cleared", "rules:v1"), (held, "cleared",
                                   "rules:v1"), (reviewed, "approved", "olga"),
                                   (still_open, "flagged", "rules:v1")):
            store.add_passage(session, event)
            session.add(DecisionRow(passage_event_id=event.event_id, current=True,
                                    outcome=outcome, reasons=[], rules_version="v1",
                                    decided_by=by, decided_at=T0 + timedelta(days=10),
                                    note=""))
            for image_id, data in (("imgA", JPEG_A), ("imgB", JPEG_B + event.event_id.encode())):
                digest = evidence.put(event.event_id, image_id, data)
                records.record_image(session, event.event_id, image_id, digest, len(data), "e")
        records.set_hold(session, held.event_id, "ada", "court order")
    shared = sha256_hex(JPEG_A)  # the same bytes in all four passages: stored once

    report = records.purge(sessions, evidence, policy, T0 + timedelta(days=89))
    assert report.purged == 0

    report = records.purge(sessions, evidence, policy, T0 + timedelta(days=91))
    assert (report.purged, report.by_class, report.held) == (1, {"cleared": 1}, 1)
    assert evidence.exists(shared)  # still named by the other passages
    with sessions() as session:
        row = store.get_passage(session, cleared.event_id)
        assert row is not None and row.plate_text == "29C*****"
        assert row.payload["plate_front"]["candidates"] == []
        assert store.current_decision(session, cleared.event_id).outcome == "cleared"
        status = records.evidence_status(session, [row])[cleared.event_id]
        assert status.purged and status.complete
        assert store.list_audit(session, "passage", cleared.event_id)[0].action == (
            "evidence.purge")

    # reviewed: one year after it was closed (day 10), not after its end
    assert records.purge(sessions, evidence, policy, T0 + timedelta(days=370)).purged == 0
    report = records.purge(sessions, evidence, policy, T0 + timedelta(days=376))
    assert report.by_class == {"reviewed": 1}
    # the open case and the held one are kept for ever; a released hold is purged next run
    report = records.purge(sessions, evidence, policy, T0 + timedelta(days=4000))
    assert report.purged == 0 and report.held == 1
    with sessions() as session, session.begin():
        records.release_hold(session, held.event_id, "ada", "case closed")
    report = records.purge(sessions, evidence, policy, T0 + timedelta(days=4000))
    assert report.by_class == {"cleared": 1}
    with sessions() as session:
        row = store.get_passage(session, still_open.event_id)
        assert row is not None and row.plate_text == "29C12345"
    engine.dispose()


def test_verify_and_export_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    settings = settings_for(tmp_path)
    add_users(settings)
    monkeypatch.setenv("SMARTGATE_CENTRAL_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SMARTGATE_CENTRAL_SECRET_KEY", settings.secret_key.get_secret_value())
    engine = make_engine(settings.database_url)
    sessions = session_factory(engine)
    evidence = FilesystemEvidenceStore(tmp_path / "evidence")
    event = two_image_event()
    with sessions() as session, session.begin():
        store.add_passage(session, event)
        for image_id, data in (("imgA", JPEG_A), ("imgB", JPEG_B)):
            records.record_image(session, event.event_id, image_id,
                                 evidence.put(event.event_id, image_id, data), len(data), "e")
        store.add_audit(session, "olga", "decision.approve", "passage", event.event_id,
                        {"note": "ok"})
    db = ["evidence", "--database-url", settings.database_url]
    assert cli_main([*db, "verify"]) == 0
    assert "checked 2 images: 0 missing, 0 altered" in capsys.readouterr().out

    out = tmp_path / "export.zip"
    assert cli_main([*db, "export", event.event_id, str(out), "--actor", "olga"]) == 0
    with zipfile.ZipFile(out) as z:
        assert sorted(z.namelist()) == sorted([
            "README.txt", "passage.json", "decisions.json", "declaration.json", "fee.json",
            "audit.json", "evidence.json", "images/imgA.jpg", "images/imgB.jpg"])
        assert z.read("images/imgA.jpg") == JPEG_A
        listed = json.loads(z.read("evidence.json"))
        assert {i["image_id"]: i["sha256"] for i in listed["images"]} == {
            "imgA": sha256_hex(JPEG_A), "imgB": sha256_hex(JPEG_B)}
        assert json.loads(z.read("passage.json"))["payload"]["plate_front"]["text"] == (
            "29C12345")
        assert [a["action"] for a in json.loads(z.read("audit.json"))] == ["decision.approve"]

    # tampering and loss are both found
    (evidence.root / sha256_hex(JPEG_A)[:2] / sha256_hex(JPEG_A)[2:4] / sha256_hex(JPEG_A)
     ).write_bytes(JPEG_B)
    evidence.delete(sha256_hex(JPEG_B))
    capsys.readouterr()
    assert cli_main([*db, "verify", "--since", "2000-01-01"]) == 1
    text = capsys.readouterr().out
    assert f"ALTERED  {event.event_id} imgA" in text
    assert f"MISSING  {event.event_id} imgB" in text
    assert cli_main([*db, "verify", "--since", "2999-01-01"]) == 0
    engine.dispose()
