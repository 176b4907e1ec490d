"""The yard: journeys, occupancy, queue, forecast, alerts, dispatch calls and the daily report.

`router` is the JSON API (/api/yard/..., token or session auth like every API route); `pages`
is the operator's Yard page (/yard, live) and the daily report (/yard/report, also as CSV).
"""

from __future__ import annotations

import csv
import io
import logging
from datetime import date, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from central import store
from central.db import JourneyRow, utcnow
from central.deps import Db, Reader
from central.domain.journeys import Inside, ZoneOccupancy
from central.journeys import DailyReport, JourneyService, YardEvents
from central.routes.web_render import render
from smartgate.contract import LaneCommand, YardEvent

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/yard", tags=["yard"])
pages = APIRouter(tags=["yard"], include_in_schema=False)

Site = Annotated[str | None, Query(description="site id (default: the site file's)")]


def _service(request: Request) -> JourneyService:
    return request.app.state.journeys


def _site(request: Request, site: str | None) -> str:
    return site or _service(request).site.site


class InsideOut(BaseModel):
    """A truck inside a zone."""

    journey_id: int
    plate: str
    since: datetime
    dwell_s: float
    priority: bool
    ambiguous: bool

    @classmethod
    def of(cls, t: Inside, now: datetime) -> InsideOut:
        """From the core's record."""
        return cls(journey_id=t.journey_id, plate=t.plate, since=t.since,
                   dwell_s=round((now - t.since).total_seconds(), 1), priority=t.priority,
                   ambiguous=t.ambiguous)  # fmt: skip


class ZoneOut(BaseModel):
    """One zone's occupancy."""

    zone: str
    capacity: int
    count: int
    level: float = Field(description="count / capacity")
    alert_level: float | None = Field(description="highest configured alert level reached")
    inside: list[InsideOut]


class CheckpointOut(BaseModel):
    """A passage of a journey."""

    event_id: str
    lane: str
    role: str
    at: datetime
    ended_at: datetime
    score: float | None = Field(description="plate similarity of the link (None: it started)")


class JourneyOut(BaseModel):
    """A truck's journey through the site."""

    id: int
    site: str
    plate: str
    plates: list[str] = Field(description="every distinct text read on the way")
    status: str = Field(description="open (still in the site), completed, or merged into "
                        "another journey by an operator")
    zone: str | None
    zone_since: datetime | None
    started_at: datetime
    last_role: str
    last_at: datetime
    ended_at: datetime | None
    ambiguous: bool = Field(description="a link was ambiguous: not guessed, check `rivals`")
    rivals: list[int]
    priority: bool
    company: str | None
    goods_category: str | None
    yard_wait_s: float | None
    inspection_s: float | None
    total_s: float | None
    checkpoints: list[CheckpointOut] = Field(default_factory=list)

    @classmethod
    def of(cls, r: JourneyRow, checkpoints: list[CheckpointOut] | None = None) -> JourneyOut:
        """From the stored row."""
        return cls(
            id=r.id, site=r.site, plate=r.plate, plates=list(r.plates or []), status=r.status,
            zone=r.zone, zone_since=store.aware(r.zone_since), started_at=store.utc(r.started_at),
            last_role=r.last_role, last_at=store.utc(r.last_at), ended_at=store.aware(r.ended_at),
            ambiguous=r.ambiguous, rivals=list(r.rivals or []), priority=r.priority,
            company=r.company, goods_category=r.goods_category, yard_wait_s=r.yard_wait_s,
            inspection_s=r.inspection_s, total_s=r.total_s, checkpoints=checkpoints or [],
        )  # fmt: skip


class QueueOut(BaseModel):
    """A truck in the queue, in dispatch order."""

    position: int
    journey_id: int
    plate: str
    since: datetime
    wait_s: float
    priority: bool
    called_lane: str | None
    called_at: datetime | None


class LaneRateOut(BaseModel):
    """A service lane's observed rate over the last hour."""

    lane: str
    served: int
    busy_s: float
    mean_service_s: float | None


class ForecastOut(BaseModel):
    """Expected wait for a truck arriving now (docs/yard.md describes the model)."""

    queue: int
    expected_wait_s: float | None = Field(description="M/M/c-style estimate; None: no rate yet")
    naive_wait_s: float | None = Field(description="queue × mean service time (baseline)")
    lanes: list[LaneRateOut]


class AlertsOut(BaseModel):
    """What needs an operator's eye now."""

    capacity: list[ZoneOut] = Field(description="zones at or above an alert level")
    overstaying: list[InsideOut]
    never_seen: list[JourneyOut]
    ambiguous: list[JourneyOut]


class CallIn(BaseModel):
    """Call the next truck of the queue to a lane."""

    lane: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    site: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,64}$")


class CallOut(BaseModel):
    """A call made."""

    call_id: int
    journey_id: int
    plate: str | None
    lane: str
    deadline: datetime


Occ = list[ZoneOccupancy] | None  # one read shared by the parts of a page (consistent counts)


def _zones(service: JourneyService, db: Db, site: str, now: datetime, occ: Occ = None
           ) -> list[ZoneOut]:
    levels = sorted(service.site.alerts.capacity_levels)
    return [
        ZoneOut(zone=z.zone, capacity=z.capacity, count=z.count, level=round(z.level, 3),
                alert_level=max((lv for lv in levels if z.level >= lv), default=None),
                inside=[InsideOut.of(t, now) for t in z.inside])
        for z in (occ if occ is not None else service.occupancy(db, site))
    ]  # fmt: skip


def _queue(service: JourneyService, db: Db, site: str, now: datetime, occ: Occ = None
           ) -> list[QueueOut]:
    return [
        QueueOut(position=e.position, journey_id=e.truck.journey_id, plate=e.truck.plate,
                 since=e.truck.since, wait_s=round((now - e.truck.since).total_seconds(), 1),
                 priority=e.truck.priority, called_lane=e.called_lane, called_at=e.called_at)
        for e in service.queue(db, site, occ=occ)
    ]  # fmt: skip


def _forecast(service: JourneyService, db: Db, site: str, now: datetime, occ: Occ = None
              ) -> ForecastOut | None:
    f = service.forecast(db, site, now, occ=occ)
    if f is None:
        return None
    return ForecastOut(
        queue=f.queue, expected_wait_s=f.expected_wait_s, naive_wait_s=f.naive_wait_s,
        lanes=[LaneRateOut(lane=r.lane, served=r.served, busy_s=r.busy_s,
                           mean_service_s=None if r.mean_service_s is None
                           else round(r.mean_service_s, 1)) for r in f.lanes],
    )  # fmt: skip


def _alerts(service: JourneyService, db: Db, site: str, now: datetime, occ: Occ = None
            ) -> AlertsOut:
    ambiguous = store.list_journeys(db, store.JourneyFilter(site=site, status="open",
                                                            ambiguous=True, limit=50))
    return AlertsOut(
        capacity=[z for z in _zones(service, db, site, now, occ) if z.alert_level is not None],
        overstaying=[InsideOut.of(t, now) for t in service.overstaying(db, site, now, occ)],
        never_seen=[JourneyOut.of(r) for r in service.never_seen(db, site, now)],
        ambiguous=[JourneyOut.of(r) for r in ambiguous],
    )


@router.get("/journeys", response_model=list[JourneyOut])
def list_journeys(
    request: Request, db: Db, _user: Reader, site: Site = None,
    status: Annotated[str | None, Query(pattern="^(open|completed)$")] = None,
    plate: Annotated[str | None, Query(description="part of the plate")] = None,
    since: datetime | None = None, until: datetime | None = None,
    ambiguous: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[JourneyOut]:
    """Journeys of a site, newest first (`since`/`until` filter on the start)."""
    f = store.JourneyFilter(_site(request, site), status, plate, since, until, ambiguous, limit,
                            offset)  # fmt: skip
    return [JourneyOut.of(r) for r in store.list_journeys(db, f)]


@router.get("/journeys/{journey_id}", response_model=JourneyOut)
def journey_detail(journey_id: int, db: Db, _user: Reader) -> JourneyOut:
    """A journey with its checkpoints in time order."""
    row = store.get_journey(db, journey_id)
    if row is None:
        raise HTTPException(404, f"no journey {journey_id}")
    checkpoints = [
        CheckpointOut(event_id=c.passage_event_id, lane=c.lane, role=c.role, at=store.utc(c.at),
                      ended_at=store.utc(c.ended_at), score=c.score)
        for c in store.journey_checkpoints(db, journey_id)
    ]  # fmt: skip
    return JourneyOut.of(row, checkpoints)


@router.get("/occupancy", response_model=list[ZoneOut])
def occupancy(request: Request, db: Db, _user: Reader, site: Site = None) -> list[ZoneOut]:
    """Per zone: trucks inside (since when, dwell), capacity and the alert level reached."""
    return _zones(_service(request), db, _site(request, site), utcnow())


@router.get("/queue", response_model=list[QueueOut])
def queue(request: Request, db: Db, _user: Reader, site: Site = None) -> list[QueueOut]:
    """The queue in dispatch order: priority goods first, then by arrival; calls shown."""
    return _queue(_service(request), db, _site(request, site), utcnow())


@router.get("/forecast", response_model=ForecastOut | None)
def forecast(request: Request, db: Db, _user: Reader, site: Site = None) -> ForecastOut | None:
    """Expected wait for a truck arriving now, from the queue and the lanes' last-hour rates."""
    return _forecast(_service(request), db, _site(request, site), utcnow())


@router.get("/dwell")
def dwell(request: Request, db: Db, _user: Reader, site: Site = None) -> dict[str, Any]:
    """Dwell of the trucks inside each zone: histogram (edges in seconds), p50 and p90."""
    return _service(request).dwell(db, _site(request, site), utcnow())


@router.get("/alerts", response_model=AlertsOut)
def alerts(request: Request, db: Db, _user: Reader, site: Site = None) -> AlertsOut:
    """Zones at an alert level, overstaying trucks, trucks never seen again, ambiguous links."""
    return _alerts(_service(request), db, _site(request, site), utcnow())


class MergeIn(BaseModel):
    """Resolve an ambiguous link: this journey's passages belong to journey `into`."""

    into: int


@router.post("/journeys/{journey_id}/merge", response_model=JourneyOut)
def merge_journeys(
    request: Request, journey_id: int, body: MergeIn, db: Db, user: Reader
) -> JourneyOut:
    """Merge an ambiguous journey into the one it belongs to (its passages must fit in time
    order); audited. 404 for an unknown journey, 409 when they do not fit."""
    try:
        row = _service(request).merge(db, journey_id, body.into, user.username)
    except LookupError as exc:
        raise HTTPException(404, str(exc)) from None
    except ValueError as exc:
        raise HTTPException(409, str(exc)) from None
    db.commit()
    return journey_detail(row.id, db, user)


def _publish(request: Request, events: list[YardEvent], command: LaneCommand | None) -> None:
    yard: YardEvents = request.app.state.yard_events
    yard.send(events)
    if command is not None:
        request.app.state.outbox.send_command(command)


def _call(request: Request, db: Db, user: Reader, site: str, lane: str) -> CallOut | None:
    service = _service(request)
    now = utcnow()
    requeued = service.expire_calls(db, site, now)
    made = service.call_next(db, site, lane, user.username, now)
    db.commit()
    if made is None:
        _publish(request, requeued, None)
        return None
    call, event, command = made
    _publish(request, [*requeued, event], command)
    log.info("%s called journey %s to %s", user.username, call.journey_id, lane)
    return CallOut(call_id=call.id, journey_id=call.journey_id, plate=event.plate, lane=lane,
                   deadline=store.utc(call.deadline))  # fmt: skip


@router.post("/call", response_model=CallOut | None)
def call_next(request: Request, body: CallIn, db: Db, user: Reader) -> CallOut | None:
    """Call the head of the queue (not yet called) to a free lane; shown on the yard board.
    A call not answered by the truck's passage at a service lane within the site's
    `call_timeout_s` is re-queued. None (null) when nobody waits."""
    return _call(request, db, user, body.site or _site(request, None), body.lane)


@router.get("/report", response_model=None)
def report(request: Request, db: Db, _user: Reader, site: Site = None,
           day: Annotated[date | None, Query(description="UTC day; default today")] = None
           ) -> dict[str, Any]:
    """The daily report: vehicles in/out, stage p50/p90, flagged rate and reasons, per company
    and goods class."""
    r = _service(request).daily_report(db, _site(request, site), day or utcnow().date())
    return _report_dict(r)


def _report_dict(r: DailyReport) -> dict[str, Any]:
    return {
        "site": r.site, "day": r.day.isoformat(), "vehicles_in": r.vehicles_in,
        "vehicles_out": r.vehicles_out, "turned_back": r.turned_back, "ambiguous": r.ambiguous,
        "stages": r.stages, "flagged": r.flagged, "decided": r.decided,
        "flagged_rate": r.flagged_rate, "top_reasons": [list(x) for x in r.top_reasons],
        "by_company": r.by_company, "by_goods": r.by_goods, "hourly_in": r.hourly_in,
    }  # fmt: skip


def report_csv(r: DailyReport) -> str:
    """The report as CSV: one section per table, `section,name,value...` rows."""
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["section", "name", "value", "p50_s", "p90_s", "flagged"])
    for key in ("vehicles_in", "vehicles_out", "turned_back", "ambiguous", "flagged", "decided"):
        w.writerow(["summary", key, getattr(r, key), "", "", ""])
    for name, s in r.stages.items():
        w.writerow(["stage", name, int(s["n"] or 0), s["p50"], s["p90"], ""])
    for reason, n in r.top_reasons:
        w.writerow(["reason", reason, n, "", "", ""])
    for section, rows in (("company", r.by_company), ("goods", r.by_goods)):
        for g in rows:
            w.writerow([section, g["name"], g["journeys"], g["total_p50_s"], g["total_p90_s"],
                        g["flagged"]])  # fmt: skip
    return out.getvalue()


@router.get("/report.csv", response_class=Response)
def report_as_csv(request: Request, db: Db, _user: Reader, site: Site = None,
                  day: date | None = None) -> Response:
    """The daily report as CSV."""
    site_id = _site(request, site)
    day = day or utcnow().date()
    body = report_csv(_service(request).daily_report(db, site_id, day))
    return Response(body, media_type="text/csv", headers={
        "Content-Disposition": f'attachment; filename="yard-{site_id}-{day.isoformat()}.csv"'})


# ---- pages -------------------------------------------------------------------------------


def _page_context(request: Request, db: Db, site: str) -> dict[str, Any]:
    service = _service(request)
    now = utcnow()
    service_lanes = sorted({lane for z in service.site.zones for lane in z.queue_for})
    occ = service.occupancy(db, site)
    fc = _forecast(service, db, site, now, occ)
    if not service_lanes and fc is not None:
        service_lanes = [r.lane for r in fc.lanes]
    return {"site": site, "zones": _zones(service, db, site, now, occ),
            "queue": _queue(service, db, site, now, occ)[:50], "forecast": fc,
            "alerts": _alerts(service, db, site, now, occ), "lanes": service_lanes, "now": now,
            "dwell": service.dwell(db, site, now, occ)}


@pages.get("/yard", response_class=HTMLResponse)
def yard_page(request: Request, db: Db, user: Reader, site: str = "", called: str = "") -> Response:
    """Occupancy per zone, the queue with 'call next', forecast and alerts; live."""
    context = _page_context(request, db, _site(request, site or None))
    return render(request, "yard.html", {"nav": "yard", "called": called, **context}, user)


@pages.get("/yard/live", response_class=HTMLResponse)
def yard_live(request: Request, db: Db, user: Reader, site: str = "") -> Response:
    """The live part of the Yard page, for the refresh."""
    context = _page_context(request, db, _site(request, site or None))
    return render(request, "yard_live.html", context, user)


@pages.post("/yard/call")
def yard_call(
    request: Request, db: Db, user: Reader,
    lane: Annotated[str, Form(pattern=r"^[A-Za-z0-9_-]{1,64}$")],
    site: Annotated[str, Form(pattern=r"^[A-Za-z0-9_-]{0,64}$")] = "",
) -> Response:
    """The page's 'call next' button."""
    made = _call(request, db, user, _site(request, site or None), lane)
    called = f"{made.plate}:{lane}" if made else "none"
    return RedirectResponse(f"/yard?called={called}", status_code=303)


@pages.post("/yard/merge")
def yard_merge(
    request: Request, db: Db, user: Reader, journey: Annotated[int, Form()],
    into: Annotated[int, Form()],
) -> Response:
    """The page's 'belongs to' button on an ambiguous link."""
    try:
        _service(request).merge(db, journey, into, user.username)
    except (LookupError, ValueError) as exc:
        raise HTTPException(409, str(exc)) from None
    db.commit()
    return RedirectResponse("/yard", status_code=303)


@pages.get("/yard/report", response_class=HTMLResponse)
def report_page(request: Request, db: Db, user: Reader, site: str = "", day: str = "") -> Response:
    """The daily report page with its plots; CSV link."""
    try:
        chosen = date.fromisoformat(day) if day else utcnow().date()
    except ValueError:
        raise HTTPException(400, f"day must be YYYY-MM-DD, got {day!r}") from None
    site_id = _site(request, site or None)
    r = _service(request).daily_report(db, site_id, chosen)
    return render(request, "yard_report.html", {
        "nav": "yard", "report": r, "site": site_id, "day": chosen,
        "prev_day": chosen - timedelta(days=1), "next_day": chosen + timedelta(days=1),
    }, user)  # fmt: skip
