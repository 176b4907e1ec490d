"""The JSON API: declarations import/CRUD, passage filters, officer decisions + audit, stats."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from central import auth_store
from central.api import create_app
from central.config import CentralSettings
from central.decisions import InvalidCorrection
from central.domain.declarations import write_csv
from central.ingest import handle_message
from smartgate import contract
from smartgate.contract import CommandAction, LaneCommand
from tests.central.test_auth import fast_hashing  # noqa: F401  (autouse: cheap argon2)
from tests.central.test_ingest import declaration
from tests.test_contract import T0, make_event
from tools.synth.declarations import generate_declarations

SECRET = "api-test-secret-0123456789-abcdefghijk"


def bearer(client: TestClient, username: str, role: str) -> dict[str, str]:
    """Authorization headers of a new user with `role`, through an API token."""
    with client.app.state.sessions() as session, session.begin():
        user = auth_store.add_user(session, username, f"{username}-password-123", role)
        auth_store.add_api_token(
            session, user, "test", client.app.state.auth.digest("token", f"tok-{username}")
        )
    return {"Authorization": f"Bearer tok-{username}"}


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = CentralSettings(database_url=f"sqlite:///{tmp_path / 'c.db'}", data_dir=tmp_path,
                               secret_key=SECRET)
    app = create_app(settings, start_ingest=False)
    sent: list[LaneCommand] = []
    with TestClient(app) as c:
        app.state.outbox = type(app.state.outbox)(sent.append, app.state.events)
        c.sent = sent  # type: ignore[attr-defined]
        c.admin = bearer(c, "ada", "admin")  # type: ignore[attr-defined]
        c.officer = bearer(c, "olga", "officer")  # type: ignore[attr-defined]
        c.operator = bearer(c, "oscar", "operator")  # type: ignore[attr-defined]
        yield c


def ingest(client: TestClient, *events) -> None:  # type: ignore[no-untyped-def]
    """Store and decide passages as the MQTT ingest would."""
    hook = client.app.state.decisions.decide_passage
    for event in events:
        with client.app.state.sessions() as s, s.begin():
            handle_message(s, contract.passage_topic(event.site, event.lane), event.to_json(),
                           hook)


def _decl_json(number: str, plate: str, **kw) -> dict:  # type: ignore[no-untyped-def]
    return declaration(number, plate, **kw).model_dump(mode="json")


def test_json_import_single_and_bulk_with_bad_items(client: TestClient) -> None:
    one = client.post("/api/declarations", json=_decl_json("D-0001", "29C12345"),
                      headers=client.admin)
    assert one.status_code == 200 and one.json()["created"] == 1
    bad = _decl_json("D-0003", "29C12346") | {"containers": ["CSQU3054384"]}
    bulk = client.post("/api/declarations", headers=client.admin, json={"declarations": [
        _decl_json("D-0001", "29C12345"), _decl_json("D-0002", "51D67890"), bad,
    ]})  # fmt: skip
    report = bulk.json()
    assert (report["created"], report["unchanged"]) == (1, 1)
    assert [e["line"] for e in report["errors"]] == [3]
    assert "check digit" in report["errors"][0]["reason"]
    got = client.get("/api/declarations/D-0002", headers=client.operator).json()
    assert got["tractor_plate"] == "51D67890" and got["used_by_event_id"] is None


def test_csv_upload_reports_bad_lines(client: TestClient) -> None:
    out = io.StringIO()
    write_csv(generate_declarations(4, seed=7), out)
    lines = out.getvalue().splitlines()
    lines.insert(2, "X-1,import,12C12345,,,,,not-a-date,2025-05-08T20:00+07:00,huunghi,,,,")
    files = {"file": ("decls.csv", "\n".join(lines).encode(), "text/csv")}
    reply = client.post("/api/declarations/import", files=files, headers=client.admin)
    assert reply.status_code == 200, reply.text
    assert reply.json()["created"] == 4
    assert [(e["line"], "window_start" in e["reason"]) for e in reply.json()["errors"]] == [
        (3, True)
    ]
    header_only = {"file": ("x.csv", b"plate,when\n", "text/csv")}
    bad_file = client.post("/api/declarations/import", files=header_only, headers=client.admin)
    assert bad_file.status_code == 400 and "header" in bad_file.json()["detail"]


def test_declaration_writes_need_admin(client: TestClient) -> None:
    body = _decl_json("D-0009", "29C12345")
    assert client.put("/api/declarations/D-0009", json=body,
                      headers=client.officer).status_code == 403
    assert client.post("/api/declarations", json=body).status_code == 401
    put = client.put("/api/declarations/D-0009", json=body, headers=client.admin)
    assert put.status_code == 200 and put.json()["number"] == "D-0009"
    assert client.put("/api/declarations/OTHER", json=body, headers=client.admin).status_code == 400


def test_declaration_filters_cancel_and_delete(client: TestClient) -> None:
    client.post("/api/declarations", headers=client.admin, json=[
        _decl_json("D-0001", "29C12345"), _decl_json("D-0002", "51D67890", containers=()),
    ])  # fmt: skip
    ingest(client, make_event())  # uses D-0001
    get = lambda **q: [d["number"] for d in client.get(  # noqa: E731
        "/api/declarations", params=q, headers=client.officer).json()]
    assert get(plate="51D") == ["D-0002"]
    assert get(container="CSQU3054383") == ["D-0001"]
    assert get(used=True) == ["D-0001"] and get(used=False) == ["D-0002"]
    assert get(valid_at=(T0 + timedelta(days=2)).isoformat()) == []
    assert sorted(get(valid_at=T0.isoformat())) == ["D-0001", "D-0002"]
    assert client.delete("/api/declarations/D-0001", headers=client.admin).status_code == 409
    cancelled = client.post("/api/declarations/D-0001/cancel", headers=client.admin)
    assert cancelled.json()["status"] == "cancelled"
    assert get(status="cancelled") == ["D-0001"]
    assert client.delete("/api/declarations/D-0002", headers=client.admin).status_code == 204
    assert client.get("/api/declarations/D-0002", headers=client.admin).status_code == 404


def test_passage_filters(client: TestClient) -> None:
    client.post("/api/declarations", json=_decl_json("D-0001", "29C12345"), headers=client.admin)
    a = make_event(lane="L1")
    b = make_event(lane="L2", plate_front={"text": "51D67890", "confidence": 0.9}, containers=[],
                   started_at=T0 + timedelta(hours=2), ended_at=T0 + timedelta(hours=2, seconds=9))
    ingest(client, a, b)
    get = lambda **q: [p["event_id"] for p in client.get(  # noqa: E731
        "/api/passages", params=q, headers=client.operator).json()]
    assert get() == [b.event_id, a.event_id]
    assert get(lane="L1") == [a.event_id]
    assert get(outcome="cleared") == [a.event_id]
    assert get(outcome="no_declaration") == [b.event_id]
    assert get(plate="51d-678") == [b.event_id]
    assert get(since=(T0 + timedelta(hours=1)).isoformat()) == [b.event_id]
    assert get(until=(T0 + timedelta(hours=1)).isoformat()) == [a.event_id]
    listed = client.get("/api/passages", params={"lane": "L1"}, headers=client.operator).json()
    assert listed[0]["decision"]["declaration_number"] == "D-0001"
    assert client.get("/api/passages", params={"outcome": "bogus"},
                      headers=client.operator).status_code == 422


def test_officer_decision_is_audited_and_commanded(client: TestClient) -> None:
    flagged = make_event(plate_front={"text": "51D67890", "confidence": 0.9})
    ingest(client, flagged)
    queue = client.get("/api/review", headers=client.officer).json()
    assert [p["event_id"] for p in queue] == [flagged.event_id]
    url = f"/api/passages/{flagged.event_id}/decision"
    body = {"verdict": "approve", "note": "papers checked at the booth"}
    assert client.post(url, json=body, headers=client.operator).status_code == 403
    reply = client.post(url, json=body, headers=client.officer)
    assert reply.status_code == 200, reply.text
    assert reply.json()["outcome"] == "approved" and reply.json()["decided_by"] == "olga"
    assert [(c.action, c.issued_by) for c in client.sent] == [(CommandAction.OPEN_BARRIER, "olga")]
    detail = client.get(f"/api/passages/{flagged.event_id}", headers=client.operator).json()
    assert [h["outcome"] for h in detail["history"]] == ["no_declaration", "approved"]
    assert [h["current"] for h in detail["history"]] == [False, True]
    assert detail["passage"]["decision"]["note"] == "papers checked at the booth"
    assert [c["action"] for c in detail["commands"]] == ["send_to_inspection", "open_barrier"]
    (entry,) = detail["audit"]
    assert (entry["actor"], entry["action"]) == ("olga", "decision.approve")
    assert entry["detail"]["previous"] == "no_declaration"
    assert client.get("/api/review", headers=client.officer).json() == []
    assert client.post("/api/passages/nope/decision", json=body,
                       headers=client.officer).status_code == 404


@pytest.mark.parametrize(
    ("verdict", "action", "outcome", "inspection_lane"),
    [
        ("approve", "open_barrier", "approved", None),
        ("reject", "close_barrier", "rejected", None),
        ("hold", "show_message", "held", None),
        ("inspect", "send_to_inspection", "inspection", "inspection"),
    ],
)
def test_each_verdict_issues_its_command(
    client: TestClient, verdict: str, action: str, outcome: str, inspection_lane: str | None
) -> None:
    flagged = make_event(plate_front={"text": "51D67890", "confidence": 0.9})
    ingest(client, flagged)
    reply = client.post(f"/api/passages/{flagged.event_id}/decision",
                        json={"verdict": verdict}, headers=client.officer)
    assert reply.json()["outcome"] == outcome
    (command,) = client.sent
    assert (command.action, command.passage_event_id, command.inspection_lane) == (
        action, flagged.event_id, inspection_lane)
    queue = [p["event_id"] for p in client.get("/api/review", headers=client.officer).json()]
    assert (flagged.event_id in queue) == (verdict == "hold")


def test_corrections_redecide_release_and_reassess_in_place(client: TestClient) -> None:
    client.post("/api/declarations", json=_decl_json("D-0001", "29C12345"), headers=client.admin)
    misread = make_event(plate_front={"text": "51D99999", "confidence": 0.9})
    ingest(client, misread)
    service, sessions = client.app.state.decisions, client.app.state.sessions

    def correct(**reads) -> tuple[str, LaneCommand]:  # type: ignore[no-untyped-def]
        with sessions() as s, s.begin():
            row, command = service.correct_reads(s, misread.event_id, actor="olga", **reads)
            return row.outcome, command

    outcome, command = correct(plate="29C-123.45", note="dirty plate")
    assert (outcome, command.action, command.issued_by) == ("cleared", "open_barrier", "olga")
    used = client.get("/api/declarations/D-0001", headers=client.operator).json()
    assert used["used_by_event_id"] == misread.event_id
    # the plate correction still holds; the wrong container leaves the declaration unused
    assert correct(containers=["MSCU1234566"])[0] == "flagged"
    assert client.get("/api/declarations/D-0001",
                      headers=client.operator).json()["used_by_event_id"] is None
    assert correct(containers=["csqu3054383"])[0] == "cleared"  # not "already used" by itself
    detail = client.get(f"/api/passages/{misread.event_id}", headers=client.operator).json()
    assert [h["decided_by"] for h in detail["history"]] == ["rules:default-1"] + ["olga"] * 3
    assert detail["fee"]["declaration_number"] == "D-0001"
    assert [a["action"] for a in detail["audit"]] == ["decision.correct"] * 3
    assert detail["passage"]["plate_text"] == "51D99999"  # the edge's read is kept
    with sessions() as s, pytest.raises(InvalidCorrection):
        service.correct_reads(s, misread.event_id, containers=["ABC"], actor="olga")
    with sessions() as s, pytest.raises(InvalidCorrection):
        service.correct_reads(s, misread.event_id, plate=" ", actor="olga")


def test_review_queue_filters_by_reason_in_either_order(client: TestClient) -> None:
    client.post("/api/declarations", json=_decl_json("D-0001", "29C12345"), headers=client.admin)
    heavy = make_event(weight={"gross_kg": 45_000, "captured_at": T0})
    unknown = make_event(ended_at=T0 + timedelta(seconds=30),
                         plate_front={"text": "51D67890", "confidence": 0.9}, containers=[])
    ingest(client, heavy, unknown)

    def queue(**params) -> list[str]:  # type: ignore[no-untyped-def]
        reply = client.get("/api/review", params=params, headers=client.officer)
        return [p["event_id"] for p in reply.json()]

    assert queue() == [heavy.event_id, unknown.event_id]
    assert queue(newest_first=True) == [unknown.event_id, heavy.event_id]
    assert queue(reason="weight_out_of_tolerance") == [heavy.event_id]
    assert queue(reason="container_missing") == []
    assert client.get("/api/review", params={"reason": "bogus"},
                      headers=client.officer).status_code == 422


def test_lane_statistics(client: TestClient) -> None:
    client.post("/api/declarations", json=_decl_json("D-0001", "29C12345"), headers=client.admin)
    ingest(
        client,
        make_event(lane="L1"),
        make_event(lane="L1", plate_front=None),
        make_event(lane="L2", plate_front={"text": "51D67890", "confidence": 0.9}),
    )
    stats = client.get("/api/stats/lanes", params={"since": (T0 - timedelta(hours=1)).isoformat()},
                       headers=client.operator).json()
    by_lane = {s["lane"]: s for s in stats}
    l1 = by_lane["L1"]
    assert l1["passages"] == 2 and l1["per_hour"] == {"2026-11-23T08:00Z": 2}
    assert l1["read_rate"] == 0.5 and l1["flagged_rate"] == 0.5
    assert l1["outcomes"] == {"cleared": 1, "flagged": 1}  # no plate, container matched
    assert l1["mean_decision_s"] is not None and l1["mean_decision_s"] > 0
    assert by_lane["L2"]["flagged_rate"] == 1.0
    later = {"since": (T0 + timedelta(days=1)).isoformat()}
    assert client.get("/api/stats/lanes", params=later, headers=client.operator).json() == []


def test_openapi_lists_the_api(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/api/declarations", "/api/declarations/import", "/api/passages",
                 "/api/passages/{event_id}/decision", "/api/stats/lanes", "/api/review"):
        assert path in paths
