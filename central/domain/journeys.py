"""Journeys: one truck's passages across a site's checkpoints, linked in time order (pure).

A passage becomes a `Sighting` (its role, time, best plate read and the read's alternatives).
`link` decides, for one sighting and the journeys it could belong to, whether it

- starts a new journey (nothing matches, or there is no read),
- continues one journey: the sighting fits into the journey's checkpoints in time order (every
  earlier one ranks lower, every later one higher: a passage an offline edge sends late still
  fits), and the
  OCR-aware plate similarity of the best text pair (the reads so far and their alternatives
  against the sighting's read and alternatives) is at least `min_similarity` and beats every
  other journey by `margin` (in edit-cost units: 1 is one arbitrary substitution, 0.3 a
  look-alike), or
- is **ambiguous**: two journeys are about as similar. Then nothing is guessed: the sighting
  starts a journey of its own marked ambiguous, naming its rivals, for an operator to resolve.

Journeys are first narrowed with the plate blocking keys (any plate within one arbitrary edit
plus look-alikes of a text shares a key with it), and scored all only when none of those links.

A look-alike misread (0/O, 8/B, a dropped province character) costs little in
`plate_similarity`, so a misread at one checkpoint still links to the right journey; a misread
that makes the plate equally close to another truck's is ambiguous, never a swap.

`zone_after`, `stages` and the occupancy helpers turn a journey's checkpoints into where the
truck is and how long each stage took.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from functools import lru_cache

from central.domain.plate_similarity import (
    normalize_plate,
    plate_keys,
    plate_similarity,
    probe_keys,
)
from central.domain.site import SiteConfig


@dataclass(frozen=True)
class Sighting:
    """One passage as the journey core sees it."""

    event_id: str
    lane: str
    role: str
    at: datetime
    plate: str | None
    alternatives: tuple[str, ...] = ()
    confidence: float = 0.0
    declared_plate: str | None = None


@dataclass(frozen=True)
class Checkpoint:
    """One linked passage of a journey: role, arrival and (for zones) when it ended."""

    role: str
    at: datetime
    ended_at: datetime | None = None


@dataclass(frozen=True)
class OpenJourney:
    """What linking needs of a journey: its texts and checkpoints (`last_*` when none given)."""

    journey_id: int
    plates: tuple[str, ...]
    last_role: str
    last_at: datetime
    alternatives: tuple[str, ...] = ()
    checkpoints: tuple[Checkpoint, ...] = ()
    declared_plate: str | None = None

    @property
    def marks(self) -> tuple[Checkpoint, ...]:
        """The checkpoints, or the last one alone."""
        return self.checkpoints or (Checkpoint(self.last_role, self.last_at),)


class LinkKind(StrEnum):
    """What `link` decided."""

    NEW = "new"
    LINKED = "linked"
    AMBIGUOUS = "ambiguous"


@dataclass(frozen=True)
class Link:
    """The decision for one sighting: a journey to continue, or a new (maybe ambiguous) one."""

    kind: LinkKind
    journey_id: int | None = None
    score: float = 0.0
    rivals: tuple[int, ...] = ()


def texts_of(plate: str | None, alternatives: Iterable[str]) -> tuple[str, tuple[str, ...]]:
    """Normalized read and distinct alternatives (the read itself left out)."""
    main = normalize_plate(plate) if plate else ""
    alts = tuple(dict.fromkeys(a for a in (normalize_plate(x) for x in alternatives)
                               if a and a != main))  # fmt: skip
    return main, alts


def similarity(sighting: Sighting, journey: OpenJourney, candidate_penalty: float) -> float:
    """Best plate similarity between the sighting's texts and the journey's; a pair that uses
    an alternative (of either side) is charged `candidate_penalty`."""
    if not sighting.plate:
        return 0.0
    best = 0.0
    for a, a_alt in [(sighting.plate, False)] + [(x, True) for x in sighting.alternatives]:
        for b, b_alt in [(p, False) for p in journey.plates] + [
            (x, True) for x in journey.alternatives
        ]:
            score = plate_similarity(a, b) - candidate_penalty * (a_alt or b_alt)
            if score > best:
                best = score
    return best


def eligible(sighting: Sighting, journey: OpenJourney, site: SiteConfig) -> bool:
    """Whether the sighting fits into the journey's checkpoints in time order: every earlier
    checkpoint ranks lower, every later one higher (a passage sent late by an edge that was
    offline still fits), none of the same rank within the clock skew, and the nearest is not
    more than `max_gap_s` away; and, when both have a declaration, it is for the same tractor
    plate."""
    if (sighting.declared_plate and journey.declared_plate
            and normalize_plate(sighting.declared_plate) != normalize_plate(journey.declared_plate)):
        return False  # declared for different trucks: a near plate is not a misread
    rank, skew = site.rank(sighting.role), site.linking.clock_skew_s
    nearest = float("inf")
    for c in journey.marks:
        dt = (sighting.at - c.at).total_seconds()
        nearest = min(nearest, abs(dt))
        other = site.rank(c.role)
        if (dt > skew and other >= rank) or (dt < -skew and other <= rank) or other == rank:
            return False
    return nearest <= site.linking.max_gap_s


@lru_cache(maxsize=1 << 16)
def _keys(text: str) -> frozenset[str]:
    """The blocking keys of a journey's text (cached: the same texts are probed again and
    again while the truck waits)."""
    return frozenset(plate_keys(text))


def _scored(sighting: Sighting, journeys: Iterable[OpenJourney], penalty: float,
            least: float) -> list[tuple[float, int]]:
    scores = ((similarity(sighting, j, penalty), j.journey_id) for j in journeys)
    return sorted(((s, jid) for s, jid in scores if s >= least), reverse=True)


def link(sighting: Sighting, journeys: Sequence[OpenJourney], site: SiteConfig) -> Link:
    """Decide which open journey (if any) the sighting continues."""
    if not sighting.plate:
        return Link(LinkKind.NEW)
    cfg = site.linking
    pool = [j for j in journeys if eligible(sighting, j, site)]
    probes = set().union(*(probe_keys(t) for t in (sighting.plate, *sighting.alternatives)))
    blocked = [j for j in pool if any(probes.intersection(_keys(t))
                                      for t in (*j.plates, *j.alternatives))]  # fmt: skip
    scored = _scored(sighting, blocked, cfg.candidate_penalty, cfg.min_similarity)
    if not scored:  # further than the blocking keys reach: score every eligible journey
        scored = _scored(sighting, pool, cfg.candidate_penalty, cfg.min_similarity)
    if not scored:
        return Link(LinkKind.NEW)
    best, best_id = scored[0]
    length = max(len(sighting.plate), 1)  # similarity gap back in edit-cost units
    rivals = tuple(jid for s, jid in scored[1:] if (best - s) * length < cfg.margin)
    if rivals:
        return Link(LinkKind.AMBIGUOUS, None, best, (best_id, *rivals))
    return Link(LinkKind.LINKED, best_id, best)


def zone_after(role: str, current: str | None, site: SiteConfig) -> str | None:
    """The zone a truck is in after passing a checkpoint of `role`, coming from `current`."""
    entered = site.zone_entered_by(role)
    if entered is not None:
        return entered.name
    zone = site.zone(current) if current else None
    if zone is not None and role in zone.leave:
        return None
    return current


@dataclass(frozen=True)
class Where:
    """Where a journey's checkpoints leave the truck: zone and since when, or left the site."""

    zone: str | None
    since: datetime | None
    completed: bool
    ended_at: datetime | None


def replay(checkpoints: Sequence[Checkpoint], site: SiteConfig) -> Where:
    """The journey's state from its checkpoints (any order): zones change when a passage
    ends; a final role completes it. Replaying makes a late, out-of-order passage land right."""
    zone: str | None = None
    since: datetime | None = None
    for c in sorted(checkpoints, key=lambda c: c.at):
        ended = c.ended_at or c.at
        if is_final(c.role, site):
            return Where(None, None, True, ended)
        nxt = zone_after(c.role, zone, site)
        if nxt != zone:
            zone, since = nxt, ended
    return Where(zone, since, False, None)


def is_final(role: str, site: SiteConfig) -> bool:
    """Whether a checkpoint of `role` ends a journey (the truck left the site)."""
    return role in site.final_roles


@dataclass(frozen=True)
class Stages:
    """How long the stages of a journey took, in seconds (None: not reached)."""

    yard_wait_s: float | None = None
    inspection_s: float | None = None
    total_s: float | None = None


def _first(checkpoints: Sequence[Checkpoint], roles: tuple[str, ...]) -> datetime | None:
    return next((c.at for c in checkpoints if c.role in roles), None)


def stages(checkpoints: Sequence[Checkpoint]) -> Stages:
    """Yard wait (entry → inspection), inspection (inspection → border exit) and total
    clearance (entry → border exit) of a journey's checkpoints (in time order)."""
    entry = _first(checkpoints, ("yard_entry", "border_entry"))
    inspection = _first(checkpoints, ("inspection", "weighbridge"))
    done = _first(checkpoints, ("border_exit",))

    def span(a: datetime | None, b: datetime | None) -> float | None:
        return None if a is None or b is None else round((b - a).total_seconds(), 3)

    return Stages(span(entry, inspection), span(inspection, done), span(entry, done))


@dataclass(frozen=True)
class Inside:
    """A truck inside a zone: its journey, plate and since when."""

    journey_id: int
    plate: str
    zone: str
    since: datetime
    priority: bool = False
    ambiguous: bool = False


@dataclass
class ZoneOccupancy:
    """Who is inside one zone and what that is of its capacity."""

    zone: str
    capacity: int
    inside: list[Inside] = field(default_factory=list)

    @property
    def count(self) -> int:
        """Trucks inside."""
        return len(self.inside)

    @property
    def level(self) -> float:
        """Occupancy as a share of capacity."""
        return self.count / self.capacity


def occupancy(inside: Iterable[Inside], site: SiteConfig) -> list[ZoneOccupancy]:
    """Occupancy of every zone of the site (longest inside first)."""
    zones = {z.name: ZoneOccupancy(z.name, z.capacity) for z in site.zones}
    for truck in inside:
        if truck.zone in zones:
            zones[truck.zone].inside.append(truck)
    for z in zones.values():
        z.inside.sort(key=lambda t: t.since)
    return list(zones.values())


def crossed_levels(before: int, after: int, capacity: int, levels: Sequence[float]) -> list[float]:
    """The alert levels an occupancy change from `before` to `after` crossed upwards."""
    return [lv for lv in sorted(levels) if before < lv * capacity <= after]


def queue_order(inside: Iterable[Inside]) -> list[Inside]:
    """The dispatch order of a zone's queue: priority goods first, then by arrival."""
    return sorted(inside, key=lambda t: (not t.priority, t.since, t.journey_id))


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-quantile (0..1) by nearest rank; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(q * (len(ordered) - 1)))))]
