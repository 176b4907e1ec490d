"""Journeys through the ingest path on a real database, the yard API, dispatch, report, webhook."""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from central.api import create_app
from central.config import CentralSettings
from central.db import utcnow
from central.domain.declarations import Declaration
from central.ingest import handle_message
from central.journeys import YardEvents, YardWatch, sign
from hardware.config import LaneControllerConfig
from hardware.display import encode_show
from hardware.lane import Command, LaneControlState, Show, decide
from smartgate import contract
from smartgate.contract import Candidate, PassageEvent, PlateRead, YardEvent
from tests.central.test_api import SECRET, bearer
from tests.central.test_auth import fast_hashing  # noqa: F401  (autouse: cheap argon2)

SITE_YAML = """
site: huunghi
lanes: {E1: yard_entry}
zones:
  - {name: yard, capacity: 3, enter: [yard_entry], leave: [inspection, yard_exit],
     queue_for: [L3, L4]}
  - {name: inspection_area, capacity: 4, enter: [inspection], leave: [border_exit]}
alerts: {capacity_levels: [0.66, 1.0], overstay_s: 3600, never_seen_s: 7200}
dispatch: {display_lane: YB, call_timeout_s: 300, priority_goods: [fresh_fruit]}
"""
NOW = utcnow().replace(microsecond=0)


def passage(lane: str, plate: str, minutes_ago: float, role: str | None = None,
            candidates: tuple[str, ...] = (), seconds: float = 20) -> PassageEvent:
    """A passage `minutes_ago` at `lane` (role from the edge, or the site file when None)."""
    start = NOW - timedelta(minutes=minutes_ago)
    return PassageEvent(
        event_id=contract.new_id(), site="huunghi", node_id="edge-1", lane=lane, role=role,
        started_at=start, ended_at=start + timedelta(seconds=seconds),
        plate_front=PlateRead(text=plate, confidence=0.9,
                              candidates=[Candidate(text=c, confidence=0.3) for c in candidates]),
    )  # fmt: skip


def declaration(number: str, plate: str, goods: str) -> Declaration:
    return Declaration(
        number=number, direction="import", tractor_plate=plate, gate="huunghi",
        window_start=NOW - timedelta(days=1), window_end=NOW + timedelta(days=1),
        company=f"{goods} trading", goods_category=goods,
    )  # fmt: skip


def make_client(tmp_path: Path, url: str | None = None) -> TestClient:
    site = tmp_path / "site.yaml"
    site.write_text(SITE_YAML)
    settings = CentralSettings(database_url=url or f"sqlite:///{tmp_path / 'c.db'}",
                               data_dir=tmp_path, secret_key=SECRET, site_file=site)
    return TestClient(create_app(settings, start_ingest=False))


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with make_client(tmp_path) as c:
        yield c


def ingest(client: TestClient, *events: PassageEvent) -> list[list[YardEvent]]:
    """Store passages through the ingest's hook (decision + journey) as the MQTT ingest does;
    the yard events each one caused."""
    hook = client.app.state.ingest.on_passage
    out = []
    for event in events:
        with client.app.state.sessions() as s, s.begin():
            outcome = handle_message(s, contract.passage_topic(event.site, event.lane),
                                     event.to_json(), hook)
            assert outcome.kind in ("stored", "duplicate"), outcome.reason
        out.append(hook.take(event.event_id))
    return out


def day_flow(client: TestClient) -> dict[str, PassageEvent]:
    """Four trucks: A cleared through (misread at inspection), B and C waiting, D turned back."""
    with client.app.state.sessions() as s, s.begin():
        from central import store

        store.import_declarations(s, [declaration("D-000A", "29C12345", "general"),
                                      declaration("D-000C", "15C04321", "fresh_fruit")])
    e = {
        "A_in": passage("E1", "29C12345", 180),  # role from the site file
        "B_in": passage("E1", "51D67890", 170),
        "C_in": passage("E1", "15C04321", 160),
        "D_in": passage("E1", "12C55555", 150),
        "A_insp": passage("L3", "29CI2345", 60, "inspection", ("29C12345",), seconds=300),
        "D_out": passage("YX", "12C55555", 50, "yard_exit"),
        "A_exit": passage("BX", "29C12345", 20, "border_exit"),
    }
    ingest(client, *e.values())
    return e


def test_journeys_occupancy_queue_and_forecast(client: TestClient) -> None:
    e = day_flow(client)
    ingest(client, e["A_insp"])  # a redelivery changes nothing
    op = bearer(client, "oscar", "operator")
    journeys = client.get("/api/yard/journeys", headers=op).json()
    assert len(journeys) == 4 and not any(j["ambiguous"] for j in journeys)
    a = next(j for j in journeys if j["plate"] == "29C12345")
    detail = client.get(f"/api/yard/journeys/{a['id']}", headers=op).json()
    assert [c["role"] for c in detail["checkpoints"]] == ["yard_entry", "inspection", "border_exit"]
    assert detail["status"] == "completed" and detail["plates"] == ["29C12345", "29CI2345"]
    assert (detail["yard_wait_s"], detail["inspection_s"], detail["total_s"]) == (7200, 2400, 9600)
    d = next(j for j in journeys if j["plate"] == "12C55555")
    assert d["status"] == "completed" and d["last_role"] == "yard_exit"

    zones = {z["zone"]: z for z in client.get("/api/yard/occupancy", headers=op).json()}
    assert zones["yard"]["count"] == 2 and zones["inspection_area"]["count"] == 0
    assert zones["yard"]["alert_level"] == 0.66
    assert [t["plate"] for t in zones["yard"]["inside"]] == ["51D67890", "15C04321"]
    queue = client.get("/api/yard/queue", headers=op).json()
    assert [(q["plate"], q["priority"]) for q in queue] == [("15C04321", True),
                                                            ("51D67890", False)]
    fc = client.get("/api/yard/forecast", headers=op).json()
    assert fc["queue"] == 2 and {r["lane"] for r in fc["lanes"]} == {"L3", "L4"}
    alerts = client.get("/api/yard/alerts", headers=op).json()
    assert {t["plate"] for t in alerts["overstaying"]} == {"51D67890", "15C04321"}
    assert {j["plate"] for j in alerts["never_seen"]} == {"51D67890", "15C04321"}
    assert client.get("/api/yard/occupancy").status_code == 401
    dwell = client.get("/api/yard/dwell", headers=op).json()
    assert sum(dwell["yard"]["counts"]) == 2


def test_yard_checkpoints_are_not_decided_and_declarations_stay_for_inspection(
    client: TestClient,
) -> None:
    e = day_flow(client)
    with client.app.state.sessions() as s:
        from central import store

        assert store.current_decision(s, e["A_in"].event_id) is None
        decided = store.current_decision(s, e["A_insp"].event_id)
        assert decided is not None and decided.declaration_number == "D-000A"


def test_capacity_alerts_and_completed_journeys_are_yard_events(client: TestClient) -> None:
    caused = ingest(client, passage("E1", "29C11111", 30), passage("E1", "29C22222", 29),
                    passage("E1", "29C33333", 28),
                    passage("BX", "29C11111", 5, "border_exit"))  # fmt: skip
    kinds = [[(y.kind, y.level) for y in ys] for ys in caused]
    assert kinds == [[], [("capacity", 0.66)], [("capacity", 1.0)], [("journey_completed", None)]]
    assert caused[2][0].occupancy == 3 and caused[2][0].capacity == 3


def test_call_next_board_and_requeue(client: TestClient) -> None:
    day_flow(client)
    op = bearer(client, "oscar", "operator")
    sent = []
    client.app.state.outbox = type(client.app.state.outbox)(sent.append, client.app.state.events)
    first = client.post("/api/yard/call", json={"lane": "L4"}, headers=op).json()
    assert first["plate"] == "15C04321" and first["lane"] == "L4"  # perishable first
    assert [(c.lane, c.action.value, c.message) for c in sent] == [
        ("YB", "show_message", "15C04321 -> L4")]
    # the yard board's lane controller shows it, in the display protocol
    board = LaneControllerConfig(site="huunghi", lane="YB", node_id="edge-yard")
    shown = decide(LaneControlState(), Command(sent[0], 0.0), board).actions
    assert isinstance(shown[0], Show) and encode_show(shown[0].message) == b"SHOW WHITE 15C04321 -> L4\n"
    second = client.post("/api/yard/call", json={"lane": "L3"}, headers=op).json()
    assert second["plate"] == "51D67890"
    assert client.post("/api/yard/call", json={"lane": "L3"}, headers=op).json() is None
    queue = client.get("/api/yard/queue", headers=op).json()
    assert [q["called_lane"] for q in queue] == ["L4", "L3"]
    # the called truck does not come: after the timeout its call lapses and it is called again
    service, sessions = client.app.state.journeys, client.app.state.sessions
    with sessions() as s, s.begin():
        lapsed = service.expire_calls(s, "huunghi", utcnow() + timedelta(seconds=301))
    assert [y.kind for y in lapsed] == ["requeued", "requeued"]
    again = client.post("/api/yard/call", json={"lane": "L4"}, headers=op).json()
    assert again["plate"] == "15C04321"
    # the truck arrives at its lane: the call is answered and it leaves the queue
    ingest(client, passage("L4", "15C04321", 0, "inspection"))
    assert [q["plate"] for q in client.get("/api/yard/queue", headers=op).json()] == ["51D67890"]


def test_daily_report_json_and_csv(client: TestClient) -> None:
    day_flow(client)
    op = bearer(client, "oscar", "operator")
    day = (NOW - timedelta(minutes=180)).date().isoformat()
    report = client.get("/api/yard/report", params={"day": day}, headers=op).json()
    if (NOW - timedelta(minutes=20)).date().isoformat() == day:  # not across midnight
        assert report["vehicles_out"] == 1 and report["turned_back"] == 1
        assert report["stages"]["total_s"]["p50"] == 9600
    assert report["vehicles_in"] == 4 and report["decided"] == 1
    rows = list(csv.reader(io.StringIO(
        client.get("/api/yard/report.csv", params={"day": day}, headers=op).text)))
    assert rows[0][:3] == ["section", "name", "value"]
    assert rows[1][:3] == ["summary", "vehicles_in", "4"]
    assert any(r[0] == "goods" and r[1] == "fresh_fruit" for r in rows)


def test_webhook_is_signed_and_mqtt_gets_each_event() -> None:
    got: list[tuple[bytes, str]] = []
    done = threading.Event()

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            got.append((body, self.headers["X-SmartGate-Signature"]))
            self.send_response(204)
            self.end_headers()
            done.set()

        def log_message(self, *_args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    published: list[tuple[str, bytes]] = []
    yard = YardEvents(lambda t, b: published.append((t, b)),
                      f"http://127.0.0.1:{server.server_address[1]}/hook", "s3cret")
    event = YardEvent(site="huunghi", kind="capacity", zone="yard", level=0.8, occupancy=8,
                      capacity=10)
    yard.send([event])
    assert done.wait(10)
    yard.stop()
    server.shutdown()
    body, signature = got[0]
    expected = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert signature == expected == sign("s3cret", body)
    assert contract.parse_yard_event(body) == event
    assert published == [("smartgate/v1/huunghi/yard/event", body)]
    assert json.loads(body)["schema"] == "smartgate.yard_event"


def test_journeys_on_postgres(tmp_path: Path, pg_database: str) -> None:
    with make_client(tmp_path, pg_database) as client:
        day_flow(client)
        op = bearer(client, "oscar", "operator")
        zones = {z["zone"]: z["count"] for z in
                 client.get("/api/yard/occupancy", headers=op).json()}  # fmt: skip
        assert zones == {"yard": 2, "inspection_area": 0}
        a = client.get("/api/yard/journeys", params={"plate": "29C"}, headers=op).json()
        assert [j["total_s"] for j in a] == [9600]


def test_watch_announces_overstays_once_and_requeues_lapsed_calls(client: TestClient) -> None:
    day_flow(client)
    op = bearer(client, "oscar", "operator")
    assert client.post("/api/yard/call", json={"lane": "L3"}, headers=op).json() is not None
    published: list[tuple[str, bytes]] = []
    app = client.app
    watch = YardWatch(app.state.sessions, app.state.journeys,
                      YardEvents(lambda t, b: published.append((t, b))))
    found = watch.run_once(utcnow() + timedelta(seconds=301))
    assert sorted((y.kind, y.plate) for y in found) == [
        ("overstay", "15C04321"), ("overstay", "51D67890"), ("requeued", None)]
    assert [contract.parse_yard_event(b).kind for _t, b in published] == [y.kind for y in found]
    assert watch.run_once(utcnow() + timedelta(seconds=302)) == []
    queue = client.get("/api/yard/queue", headers=op).json()
    assert [q["called_lane"] for q in queue] == [None, None]


def test_passages_sent_late_by_an_offline_edge_join_their_journey(client: TestClient) -> None:
    """The yard-entry edge was offline: its passage comes after the truck's inspection and
    border exit. It joins that journey, and the yard count stays right throughout."""
    op = bearer(client, "oscar", "operator")
    late_in = passage("E1", "29C12345", 100)
    ingest(client, passage("L3", "29C12345", 60, "inspection", seconds=300))
    zones = lambda: {z["zone"]: z["count"] for z in  # noqa: E731
                     client.get("/api/yard/occupancy", headers=op).json()}  # fmt: skip
    assert zones() == {"yard": 0, "inspection_area": 1}
    ingest(client, passage("BX", "29C12345", 20, "border_exit"), late_in)
    assert zones() == {"yard": 0, "inspection_area": 0}
    journeys = client.get("/api/yard/journeys", headers=op).json()
    assert len(journeys) == 1
    j = client.get(f"/api/yard/journeys/{journeys[0]['id']}", headers=op).json()
    assert [c["role"] for c in j["checkpoints"]] == ["yard_entry", "inspection", "border_exit"]
    assert (j["status"], j["yard_wait_s"], j["total_s"]) == ("completed", 2400, 4800)


def test_an_ambiguous_link_is_marked_then_merged_by_an_operator(client: TestClient) -> None:
    """29C123B5 at the lane could be 29C12385 (B/8) or 29C12335 (B/3): not guessed."""
    op = bearer(client, "oscar", "operator")
    ingest(client, passage("E1", "29C12385", 60), passage("E1", "29C12335", 55),
           passage("L3", "29C123B5", 20, "inspection"))  # fmt: skip
    alerts = client.get("/api/yard/alerts", headers=op).json()
    [odd] = alerts["ambiguous"]
    by_plate = {j["plate"]: j["id"] for j in client.get("/api/yard/journeys", headers=op).json()}
    assert sorted(odd["rivals"]) == sorted([by_plate["29C12385"], by_plate["29C12335"]])
    zones = lambda: {z["zone"]: z["count"] for z in  # noqa: E731
                     client.get("/api/yard/occupancy", headers=op).json()}  # fmt: skip
    assert zones() == {"yard": 2, "inspection_area": 1}
    url = f"/api/yard/journeys/{odd['id']}/merge"
    into = by_plate["29C12385"]
    assert client.post(url, json={"into": 999}, headers=op).status_code == 404
    merged = client.post(url, json={"into": into}, headers=op)
    assert merged.status_code == 200, merged.text
    body = merged.json()
    assert [c["role"] for c in body["checkpoints"]] == ["yard_entry", "inspection"]
    assert body["zone"] == "inspection_area" and body["yard_wait_s"] == 2400
    assert zones() == {"yard": 1, "inspection_area": 1}
    assert client.get("/api/yard/alerts", headers=op).json()["ambiguous"] == []
    again = client.post(url, json={"into": by_plate["29C12335"]}, headers=op)
    assert again.status_code == 409
    # a passage that does not fit (a second inspection) is refused
    ingest(client, passage("L4", "29C12335", 10, "inspection"))
    other = client.get(f"/api/yard/journeys/{by_plate['29C12335']}", headers=op).json()
    assert client.post(f"/api/yard/journeys/{other['id']}/merge", json={"into": into},
                       headers=op).status_code == 409

