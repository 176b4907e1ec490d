"""Journeys service: links each stored passage into its truck's journey, and the live yard.

`JourneyService.record` runs in the ingest transaction right after the decision (through
`JourneyHook`, the ingest's `on_passage`), inside a savepoint: a journey failure is logged and
counted, never a lost passage. It returns the yard events the passage caused (capacity levels
crossed, a journey completed); the hook keeps them until the ingest has committed, then
`YardEvents` publishes them on the MQTT yard topic and to the configured webhook (HMAC-SHA256).

The reads (`occupancy`, `queue`, `forecast`, `overstaying`, `never_seen`, `dwell`,
`daily_report`) and dispatch (`call_next`, `expire_calls`) take `now` explicitly, so the
benchmark can ask them at simulated times. Linking itself is pure: central/domain/journeys.py.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import queue
import threading
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy.orm import Session

from central import store
from central.config import CentralSettings
from central.db import DispatchCall, JourneyPassage, JourneyRow, utcnow
from central.decisions import PassageDecided
from central.domain import journeys as core
from central.domain.matching import passage_keys
from central.domain.plate_similarity import plate_similarity
from central.domain.queueing import Forecast, forecast
from central.domain.site import DEFAULT_SITE, SiteConfig, Zone, load_site_config
from smartgate.contract import CommandAction, LaneCommand, PassageEvent, YardEvent

log = logging.getLogger(__name__)

FORECAST_WINDOW = timedelta(hours=1)
DECLARED_SIMILARITY = 0.9  # a declaration tells which truck a passage is only this close


def sighting_of(event: PassageEvent, role: str, declared_plate: str | None = None
                ) -> core.Sighting:
    """The journey core's view of a passage: best read, its alternatives and the other reads,
    and the tractor plate of its declaration when known."""
    best = event.best_plate
    alternatives: list[str] = []
    if best is not None:
        alternatives += [c.text for c in best.candidates]
        for other in (event.plate_front, event.plate_rear):
            if other is not None and other is not best:
                alternatives += [other.text, *(c.text for c in other.candidates)]
    plate, alts = core.texts_of(best.text if best else None, alternatives)
    return core.Sighting(
        event_id=event.event_id, lane=event.lane, role=role, at=store.utc(event.started_at),
        plate=plate or None, alternatives=alts, confidence=best.confidence if best else 0.0,
        declared_plate=declared_plate,
    )  # fmt: skip


def _open(row: Any) -> core.OpenJourney:
    """A stored journey (row or `linkable_journeys` result) as the core sees it."""
    marks = tuple(core.Checkpoint(role, store.utc(datetime.fromisoformat(at)))
                  for role, at in row.marks or ())  # fmt: skip
    return core.OpenJourney(
        row.id, tuple(row.plates or ()) or (row.plate,), row.last_role, store.utc(row.last_at),
        tuple(row.alternatives or ()), marks, row.declared_plate,
    )  # fmt: skip


def _inside(row: JourneyRow) -> core.Inside:
    return core.Inside(row.id, row.plate, row.zone or "", store.utc(row.zone_since or row.last_at),
                       row.priority, row.ambiguous)  # fmt: skip


@dataclass(frozen=True)
class QueueEntry:
    """A truck in a zone's queue, in dispatch order, with its call if it was called."""

    position: int
    truck: core.Inside
    called_lane: str | None = None
    called_at: datetime | None = None


@dataclass(frozen=True)
class DailyReport:
    """One site's day: vehicles in and out, stage percentiles, flags, per company and goods."""

    site: str
    day: date
    vehicles_in: int
    vehicles_out: int
    turned_back: int
    ambiguous: int
    stages: dict[str, dict[str, float | None]]
    flagged: int
    decided: int
    top_reasons: list[tuple[str, int]]
    by_company: list[dict]
    by_goods: list[dict]
    hourly_in: list[int] = field(default_factory=list)

    @property
    def flagged_rate(self) -> float | None:
        """Flagged share of the decided inspections."""
        return self.flagged / self.decided if self.decided else None


class JourneyService:
    """Journeys, the live yard picture and dispatch of one site layout."""

    def __init__(self, site: SiteConfig) -> None:
        self.site = site
        self.stats: Counter[str] = Counter()
        self._announced: set[int] = set()

    # ---- linking ---------------------------------------------------------------------------

    def role_of(self, event: PassageEvent) -> str | None:
        """The passage's checkpoint role: sent by the edge, else the site config's."""
        return event.role or self.site.lanes.get(event.lane)

    def record(self, session: Session, event: PassageEvent) -> list[YardEvent]:
        """Link a just-stored passage into its journey (savepoint; failures logged, counted)."""
        role = self.role_of(event)
        if role is None:
            return []
        try:
            with session.begin_nested():
                return self._record(session, event, role)
        except Exception:  # noqa: BLE001 - the passage and decision must commit regardless
            self.stats["errors"] += 1
            log.exception("journey of passage %s not updated", event.event_id)
            return []

    def _record(self, session: Session, event: PassageEvent, role: str) -> list[YardEvent]:
        if store.journey_passage_exists(session, event.event_id):
            return []
        decl = self._declaration(session, event)
        sighting = sighting_of(event, role, decl.tractor_plate if decl is not None else None)
        before = store.zone_counts(session, event.site)
        decision = core.Link(core.LinkKind.NEW)
        if sighting.plate:
            decision = core.link(sighting, self._candidates(session, event.site, sighting),
                                 self.site)  # fmt: skip
        self.stats[decision.kind.value] += 1
        if decision.kind is core.LinkKind.LINKED:
            assert decision.journey_id is not None
            row = store.get_journey(session, decision.journey_id)
            assert row is not None
            self._extend(row, sighting)
        else:
            row = store.add_journey(session, JourneyRow(
                site=event.site, plate=sighting.plate or "", plates=[sighting.plate] if
                sighting.plate else [], alternatives=list(sighting.alternatives), status="open",
                zone=None, zone_since=None, started_at=sighting.at, first_role=role,
                last_role=role, last_at=sighting.at, marks=[],
                ambiguous=decision.kind is core.LinkKind.AMBIGUOUS, rivals=list(decision.rivals),
                priority=False, updated_at=utcnow(),
            ))  # fmt: skip
        was, was_open = row.zone if row.status == "open" else None, row.status == "open"
        store.add_journey_passage(session, JourneyPassage(
            passage_event_id=event.event_id, journey_id=row.id, site=event.site, lane=event.lane,
            role=role, at=sighting.at, ended_at=store.utc(event.ended_at),
            score=round(decision.score, 4) if decision.kind is core.LinkKind.LINKED else None,
        ))  # fmt: skip
        session.flush()
        self._replay(session, row)
        out: list[YardEvent] = []
        if was_open and row.status == "completed":
            out.append(YardEvent(site=event.site, kind="journey_completed", journey_id=row.id,
                                 plate=row.plate[:16], lane=event.lane, at=row.ended_at))
        self._goods(row, decl)
        if self._serves_queue(role):
            store.close_calls(session, row.id, "arrived")
        after = Counter(before)
        if was:
            after[was] -= 1
        if row.zone and row.status == "open":
            after[row.zone] += 1
        out += self._capacity_events(event.site, before, after, event.ended_at)
        return out

    def _candidates(self, session: Session, site: str, s: core.Sighting) -> list[core.OpenJourney]:
        """Journeys the sighting could belong to: for a start role (`yard_entry`) those that
        began without one after it (their entry passage is this late one); otherwise the open
        ones and those completed after it (a checkpoint whose edge sent it late)."""
        link = self.site.linking
        skew, gap = timedelta(seconds=link.clock_skew_s), timedelta(seconds=link.max_gap_s)
        if s.role in self.site.start_roles:
            rows = store.orphan_journeys(session, site, self.site.start_roles, s.at - skew,
                                         s.at + gap)  # fmt: skip
        else:
            rows = store.linkable_journeys(session, site, s.at - gap, s.at - skew)
        return [_open(r) for r in rows]

    def _replay(self, session: Session, row: JourneyRow) -> None:
        """Zone, status, first/last checkpoint and stages from all the journey's passages."""
        marks = [core.Checkpoint(c.role, store.utc(c.at), store.utc(c.ended_at))
                 for c in store.journey_checkpoints(session, row.id)]  # fmt: skip
        where = core.replay(marks, self.site)
        if where.zone != row.zone or where.completed:
            row.zone, row.zone_since = where.zone, where.since
        row.status = "completed" if where.completed else "open"
        row.ended_at = where.ended_at
        row.started_at, row.first_role = marks[0].at, marks[0].role
        row.last_at, row.last_role = marks[-1].at, marks[-1].role
        row.marks = [[m.role, m.at.isoformat()] for m in marks]
        st = core.stages(marks)
        row.yard_wait_s, row.inspection_s, row.total_s = st.yard_wait_s, st.inspection_s, st.total_s
        row.updated_at = utcnow()

    def _extend(self, row: JourneyRow, sighting: core.Sighting) -> None:
        if sighting.plate and sighting.plate not in (row.plates or []):
            row.plates = [*(row.plates or []), sighting.plate]
        new_alts = [a for a in sighting.alternatives if a not in (row.alternatives or [])]
        if new_alts:
            row.alternatives = [*(row.alternatives or []), *new_alts][:32]

    def _goods(self, row: JourneyRow, decl: Any) -> None:
        """Declared plate, company, goods class and priority from the passage's declaration."""
        if decl is None or row.goods_category is not None:
            return
        row.declared_plate = decl.tractor_plate
        row.company, row.goods_category = decl.company, decl.goods_category
        row.priority = decl.goods_category in self.site.dispatch.priority_goods

    def _declaration(self, session: Session, event: PassageEvent) -> Any:
        """The passage's declaration: the one its decision matched, else (a yard checkpoint is
        not decided) the one whose window holds the passage and whose tractor plate is closest
        to the read; either only when that plate is close to the read (similarity ≥ 0.9)."""
        best = event.best_plate
        if best is None:
            return None
        decided = store.declaration_of_passage(session, event.event_id)
        if decided is not None:
            close = plate_similarity(best.text, decided.tractor_plate) >= DECLARED_SIMILARITY
            return decided if close else None
        candidates, _used = store.candidate_declarations(session, passage_keys(event))
        at = store.utc(event.started_at)
        scored = [(plate_similarity(best.text, d.tractor_plate), d) for d in candidates
                  if d.window_start <= at <= d.window_end]  # fmt: skip
        score, decl = max(scored, key=lambda x: x[0], default=(0.0, None))
        return decl if score >= DECLARED_SIMILARITY else None

    def _serves_queue(self, role: str) -> bool:
        return any(role in self._service_roles(z) for z in self.site.zones)

    def _service_roles(self, zone: Zone) -> list[str]:
        """Roles whose passage takes a truck out of the zone's queue into service."""
        return [r for r in zone.leave if r not in self.site.final_roles]

    def _capacity_events(
        self, site: str, before: Counter, after: Counter, at: datetime
    ) -> list[YardEvent]:
        out = []
        for zone in self.site.zones:
            for level in core.crossed_levels(before[zone.name], after[zone.name], zone.capacity,
                                             self.site.alerts.capacity_levels):
                out.append(YardEvent(
                    site=site, kind="capacity", zone=zone.name, level=level,
                    occupancy=after[zone.name], capacity=zone.capacity, at=at,
                    detail=f"{zone.name} at {after[zone.name]}/{zone.capacity} "
                    f"(level {level:.0%})",
                ))  # fmt: skip
        return out

    # ---- live picture ----------------------------------------------------------------------

    def occupancy(self, session: Session, site: str) -> list[core.ZoneOccupancy]:
        """Who is inside each zone, since when."""
        rows = store.open_journeys(session, site)
        return core.occupancy((_inside(r) for r in rows if r.zone), self.site)

    def queue(self, session: Session, site: str, zone: str | None = None,
              occ: list[core.ZoneOccupancy] | None = None) -> list[QueueEntry]:
        """The queue of a zone (default: the first zone with service lanes) in dispatch order."""
        target = self._queue_zone(zone)
        if target is None:
            return []
        calls = {c.journey_id: c for c in store.active_calls(session, site)}
        occ = occ if occ is not None else self.occupancy(session, site)
        inside = next(z.inside for z in occ if z.zone == target.name)
        return [
            QueueEntry(k + 1, t, calls[t.journey_id].lane if t.journey_id in calls else None,
                       store.aware(calls[t.journey_id].called_at) if t.journey_id in calls
                       else None)
            for k, t in enumerate(core.queue_order(inside))
        ]  # fmt: skip

    def _queue_zone(self, zone: str | None) -> Zone | None:
        if zone is not None:
            return self.site.zone(zone)
        return next((z for z in self.site.zones if self._service_roles(z)), None)

    def forecast(self, session: Session, site: str, now: datetime, zone: str | None = None,
                 occ: list[core.ZoneOccupancy] | None = None) -> Forecast | None:
        """Expected wait for a truck arriving now in the zone's queue (M/M/c-style)."""
        target = self._queue_zone(zone)
        if target is None:
            return None
        occ = occ if occ is not None else self.occupancy(session, site)
        count = next(z.count for z in occ if z.zone == target.name)
        times = store.lane_times_by_role(session, site, self._service_roles(target),
                                         now - FORECAST_WINDOW)  # fmt: skip
        times = {lane: [t for t in ts if t <= now] for lane, ts in times.items()}
        if target.queue_for:
            times = {lane: times.get(lane, []) for lane in target.queue_for}
        priority = store.priority_arrivals(session, site, now - FORECAST_WINDOW, now)
        return forecast(count, times, priority_rate_per_s=priority / FORECAST_WINDOW.total_seconds())

    def overstaying(self, session: Session, site: str, now: datetime,
                    occ: list[core.ZoneOccupancy] | None = None) -> list[core.Inside]:
        """Trucks inside a zone for longer than the overstay threshold, longest first."""
        limit = timedelta(seconds=self.site.alerts.overstay_s)
        occ = occ if occ is not None else self.occupancy(session, site)
        return [t for z in occ for t in z.inside
                if now - t.since > limit]  # fmt: skip

    def never_seen(self, session: Session, site: str, now: datetime) -> list[JourneyRow]:
        """Open journeys not seen at any checkpoint for `never_seen_s`: entered, never left."""
        limit = timedelta(seconds=self.site.alerts.never_seen_s)
        return [r for r in store.open_journeys(session, site) if now - store.utc(r.last_at) > limit]

    def dwell(self, session: Session, site: str, now: datetime,
              occ: list[core.ZoneOccupancy] | None = None,
              edges_s: Iterable[float] = (900, 1800, 3600, 7200, 14400, 28800)) -> dict:
        """Dwell of the trucks inside each zone: a histogram over `edges_s` and percentiles."""
        edges = list(edges_s)
        out = {}
        for z in occ if occ is not None else self.occupancy(session, site):
            secs = [(now - t.since).total_seconds() for t in z.inside]
            counts = [0] * (len(edges) + 1)
            for s in secs:
                counts[sum(s >= e for e in edges)] += 1
            out[z.zone] = {"edges_s": edges, "counts": counts,
                           "p50_s": core.percentile(secs, 0.5), "p90_s": core.percentile(secs, 0.9)}
        return out

    def sweep(self, session: Session, site: str, now: datetime) -> list[YardEvent]:
        """Timed checks: lapsed calls re-queued, and trucks that began overstaying (each once
        per process: `announced` remembers them)."""
        out = self.expire_calls(session, site, now)
        for t in self.overstaying(session, site, now):
            if t.journey_id not in self._announced:
                self._announced.add(t.journey_id)
                out.append(YardEvent(
                    site=site, kind="overstay", zone=t.zone, journey_id=t.journey_id,
                    plate=t.plate[:16], at=now,
                    detail=f"in {t.zone} for {(now - t.since).total_seconds() / 3600:.1f} h",
                ))  # fmt: skip
        return out

    def merge(self, session: Session, source_id: int, target_id: int, actor: str) -> JourneyRow:
        """An operator resolves an ambiguous link: journey `source_id`'s passages join
        `target_id` (they must fit its checkpoints in time order); the source is kept as
        `merged`, audited. Raises LookupError or ValueError naming the problem."""
        source, target = store.get_journey(session, source_id), store.get_journey(session, target_id)
        if source is None or target is None or source_id == target_id:
            raise LookupError(f"no journeys {source_id} and {target_id} to merge")
        if source.status == "merged" or target.status == "merged":
            raise ValueError("a merged journey cannot be merged again")
        mine = _open(target)
        for c in store.journey_checkpoints(session, source_id):
            s = core.Sighting(c.passage_event_id, c.lane, c.role, store.utc(c.at), source.plate)
            if not core.eligible(s, mine, self.site):
                raise ValueError(f"the {c.role} passage of journey {source_id} does not fit "
                                 f"journey {target_id}'s checkpoints")
        store.move_journey_passages(session, source_id, target_id)
        session.flush()
        target.plates = list(dict.fromkeys([*(target.plates or []), *(source.plates or [])]))
        target.ambiguous = target.ambiguous and target.id not in (source.rivals or [])
        source.status, source.zone, source.marks = "merged", None, []
        source.ended_at, source.updated_at = utcnow(), utcnow()
        self._replay(session, target)
        store.add_audit(session, actor, "journey_merge", "journey", str(target_id),
                        {"merged": source_id})
        return target

    # ---- dispatch --------------------------------------------------------------------------

    def expire_calls(self, session: Session, site: str, now: datetime) -> list[YardEvent]:
        """Re-queue called trucks that did not arrive before their deadline."""
        out = []
        for call in store.active_calls(session, site):
            if store.utc(call.deadline) <= now:
                call.status = "requeued"
                out.append(YardEvent(site=site, kind="requeued", journey_id=call.journey_id,
                                     lane=call.lane, at=now,
                                     detail=f"not at {call.lane} within "
                                     f"{self.site.dispatch.call_timeout_s:.0f} s"))  # fmt: skip
        return out

    def call_next(
        self, session: Session, site: str, lane: str, actor: str, now: datetime
    ) -> tuple[DispatchCall, YardEvent, LaneCommand | None] | None:
        """Call the head of the queue not yet called to `lane`; None when nobody waits.

        Returns the call, its yard event and the command for the yard display board (when the
        site names one). The caller commits, then publishes.
        """
        zone = self.site.queue_zone_of(lane) or self._queue_zone(None)
        waiting = [e for e in self.queue(session, site, zone.name if zone else None)
                   if e.called_lane is None]  # fmt: skip
        if not waiting:
            return None
        head = waiting[0].truck
        call = store.add_call(session, DispatchCall(
            site=site, journey_id=head.journey_id, lane=lane, status="called", called_by=actor[:64],
            called_at=now, deadline=now + timedelta(seconds=self.site.dispatch.call_timeout_s),
        ))  # fmt: skip
        store.add_audit(session, actor, "yard_call", "journey", str(head.journey_id),
                        {"lane": lane, "plate": head.plate})
        event = YardEvent(site=site, kind="called", journey_id=head.journey_id,
                          plate=head.plate[:16], lane=lane, at=now,
                          detail=f"{head.plate} -> {lane}")  # fmt: skip
        board = self.site.dispatch.display_lane
        command = LaneCommand(
            site=site, lane=board, action=CommandAction.SHOW_MESSAGE,
            message=f"{head.plate} -> {lane}"[:120], issued_by=actor[:64],
        ) if board else None
        if command is not None:
            store.add_command(session, command)
        return call, event, command

    # ---- reports ---------------------------------------------------------------------------

    def daily_report(self, session: Session, site: str, day: date) -> DailyReport:
        """The site's day (UTC): vehicles in/out, stage p50/p90, flags and reasons, per company
        and goods class."""
        since = datetime.combine(day, time(0), tzinfo=UTC)
        until = since + timedelta(days=1)
        rows = store.journeys_between(session, site, since, until)
        started = [r for r in rows if since <= store.utc(r.started_at) < until]
        ended = [r for r in rows if r.ended_at is not None
                 and since <= store.utc(r.ended_at) < until]  # fmt: skip
        out_rows = [r for r in ended if r.last_role not in ("yard_exit",)]
        stages: dict[str, dict[str, float | None]] = {}
        for name in ("yard_wait_s", "inspection_s", "total_s"):
            values = [getattr(r, name) for r in ended if getattr(r, name) is not None]
            stages[name] = {"p50": core.percentile(values, 0.5),
                            "p90": core.percentile(values, 0.9), "n": float(len(values))}
        events = store.journey_event_ids(session, [r.id for r in rows])
        decisions = store.current_decisions(session, [e for ids in events.values() for e in ids])
        reasons: Counter[str] = Counter()
        flagged = decided = 0
        flagged_of: dict[int, bool] = {}
        for r in rows:
            ds = [decisions[e] for e in events.get(r.id, []) if e in decisions]
            if not ds:
                continue
            decided += 1
            is_flagged = any(d.outcome != "cleared" for d in ds)
            flagged_of[r.id] = is_flagged
            flagged += is_flagged
            for d in ds:
                for reason in d.reasons or []:
                    reasons[str(reason.get("reason") if isinstance(reason, dict) else reason)] += 1
        hourly = [0] * 24
        for r in started:
            hourly[store.utc(r.started_at).hour] += 1
        return DailyReport(
            site=site, day=day, vehicles_in=len(started), vehicles_out=len(out_rows),
            turned_back=sum(r.last_role == "yard_exit" for r in ended),
            ambiguous=sum(r.ambiguous for r in rows), stages=stages, flagged=flagged,
            decided=decided, top_reasons=reasons.most_common(5),
            by_company=_grouped(rows, "company", flagged_of),
            by_goods=_grouped(rows, "goods_category", flagged_of), hourly_in=hourly,
        )  # fmt: skip


def _grouped(rows: list[JourneyRow] | Iterable[JourneyRow], attr: str,
             flagged_of: dict[int, bool]) -> list[dict]:
    groups: dict[str, list[JourneyRow]] = defaultdict(list)
    for r in rows:
        groups[getattr(r, attr) or "unknown"].append(r)
    out = []
    for name, members in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        totals = [m.total_s for m in members if m.total_s is not None]
        out.append({"name": name, "journeys": len(members),
                    "flagged": sum(flagged_of.get(m.id, False) for m in members),
                    "total_p50_s": core.percentile(totals, 0.5),
                    "total_p90_s": core.percentile(totals, 0.9)})  # fmt: skip
    return out


PassageHook = Callable[[Session, PassageEvent], PassageDecided | None]


class JourneyHook:
    """The ingest's `on_passage`: the decision, then the journey; keeps the yard events a
    passage caused until `take` after the commit."""

    MAX_PENDING = 10_000

    def __init__(self, decide: PassageHook, journeys: JourneyService) -> None:
        self.decide = decide
        self.journeys = journeys
        self._pending: dict[str, list[YardEvent]] = {}
        self._lock = threading.Lock()

    def __call__(self, session: Session, event: PassageEvent) -> PassageDecided | None:
        """Decide (at a deciding checkpoint, or a lane without role), then link; one
        transaction."""
        role = self.journeys.role_of(event)
        deciding = role is None or role in self.journeys.site.decide_roles
        decided = self.decide(session, event) if deciding else None
        events = self.journeys.record(session, event)
        with self._lock:
            if len(self._pending) >= self.MAX_PENDING:  # a rolled-back batch left some behind
                self._pending.pop(next(iter(self._pending)))
            if events:
                self._pending[event.event_id] = events
        return decided

    def take(self, event_id: str) -> list[YardEvent]:
        """The yard events of a committed passage (once)."""
        with self._lock:
            return self._pending.pop(event_id, [])


def sign(secret: str, body: bytes) -> str:
    """The webhook signature header value: `sha256=` + hex HMAC-SHA256 of the body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class YardEvents:
    """Publishes yard events: MQTT (the yard topic) and, when configured, a signed webhook.

    The webhook posts from one background thread (a slow receiver never holds up the ingest);
    each event is tried three times, then logged and counted as failed.
    """

    def __init__(self, publish: Callable[[str, bytes], None], webhook_url: str | None = None,
                 webhook_secret: str | None = None, timeout_s: float = 5.0) -> None:
        from smartgate.contract import yard_event_topic

        self._topic = yard_event_topic
        self.publish_mqtt = publish
        self.webhook_url = webhook_url
        self.webhook_secret = webhook_secret or ""
        self.timeout_s = timeout_s
        self.stats: Counter[str] = Counter()
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=10_000)
        self._thread: threading.Thread | None = None
        if webhook_url:
            self._thread = threading.Thread(target=self._post_loop, name="yard-webhook",
                                            daemon=True)  # fmt: skip
            self._thread.start()

    def send(self, events: Iterable[YardEvent]) -> None:
        """Publish each event (MQTT now, webhook queued)."""
        for e in events:
            body = e.to_json()
            try:
                self.publish_mqtt(self._topic(e.site), body)
                self.stats["mqtt"] += 1
            except Exception:  # noqa: BLE001 - a broker hiccup must not stop the ingest
                self.stats["mqtt_failed"] += 1
                log.exception("yard event %s not published", e.event_id)
            if self.webhook_url:
                try:
                    self._queue.put_nowait(body)
                except queue.Full:
                    self.stats["webhook_dropped"] += 1
                    log.warning("webhook queue full: yard event %s not posted", e.event_id)

    def _post_loop(self) -> None:
        while (body := self._queue.get()) is not None:
            for attempt in range(3):
                try:
                    self._post(body)
                    self.stats["webhook"] += 1
                    break
                except OSError as exc:
                    log.warning("webhook post failed (attempt %d): %s", attempt + 1, exc)
                    threading.Event().wait(0.5 * (attempt + 1))
            else:
                self.stats["webhook_failed"] += 1

    def _post(self, body: bytes) -> None:
        assert self.webhook_url is not None
        request = urllib.request.Request(self.webhook_url, data=body, method="POST", headers={
            "Content-Type": "application/json",
            "X-SmartGate-Signature": sign(self.webhook_secret, body),
        })  # fmt: skip
        with urllib.request.urlopen(request, timeout=self.timeout_s) as reply:  # noqa: S310
            reply.read()

    def stop(self) -> None:
        """Finish posting what is queued (a few seconds at most)."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(10)
            self._thread = None


def journey_service(settings: CentralSettings) -> JourneyService:
    """The journey service for the configured site file (the default layout when unset)."""
    site = load_site_config(settings.site_file) if settings.site_file else DEFAULT_SITE
    log.info("site layout: zones %s", ", ".join(f"{z.name}({z.capacity})" for z in site.zones))
    return JourneyService(site)


class YardWatch:
    """Runs `JourneyService.sweep` for every site with open journeys every `interval_s`, and
    publishes what it finds (a thread of the HTTP process)."""

    def __init__(self, sessions: Callable[[], Session], service: JourneyService,
                 events: YardEvents, interval_s: float = 60.0) -> None:
        self.sessions, self.service, self.events = sessions, service, events
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self, now: datetime | None = None) -> list[YardEvent]:
        """One sweep of every site (committed), its events published."""
        found: list[YardEvent] = []
        with self.sessions() as session, session.begin():
            for site in store.sites_with_open_journeys(session):
                found += self.service.sweep(session, site, now or utcnow())
        self.events.send(found)
        return found

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.run_once()
            except Exception:  # noqa: BLE001 - a database hiccup: try again next time
                log.exception("yard sweep failed")

    def start(self) -> None:
        """Sweep in a background thread."""
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="yard-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop sweeping."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

