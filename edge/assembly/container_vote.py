"""Multi-frame, multi-camera voting: one answer per container on a truck (pure).

Observations (one code read in one frame of one camera) are grouped into containers: equal codes
join, and a weak read (failed or barely corrected check digit) joins a container whose code it
nearly matches; two different confident codes are different containers, since the check digit
catches every single-character error. A container read only weakly is never voted confident. Each group votes over its reads' candidates weighted by
confidence. A truck carries at most two containers, one if a 40/45 ft size-type is read; two are
ordered front/rear by their position along the truck where the cameras say it.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

from edge.recognition.results import ContainerCodeResult
from smartgate.iso6346 import CONFIDENT, ContainerCodeError, is_valid, parse_size_type

MIN_WEIGHT = 0.02  # weight of a read whatever its confidence, so that many weak reads add up
MIN_SHARE = 0.2  # a second container needs this fraction of the first one's support


@dataclass(frozen=True)
class ContainerObservation:
    """One code read in one frame of one camera."""

    camera: str
    frame: int
    result: ContainerCodeResult
    along: float | None = None  # 0 = cab end of the truck .. 1 = tail end, when the camera knows


@dataclass(frozen=True)
class ContainerVote:
    """The voted answer for one container on the truck."""

    code: str
    check_digit_ok: bool
    confidence: float
    position: Literal["front", "rear", "single", "unknown"]
    size_type: str | None
    observations: int
    cameras: tuple[str, ...]
    candidates: tuple[tuple[str, float], ...]


def along_truck(box: tuple[int, int, int, int], frame_width: int, cab_side: str) -> float:
    """Position of a box along the truck for a side camera seeing the cab on `cab_side`."""
    x = (box[0] + box[2]) / 2 / max(1, frame_width)
    if cab_side == "left":
        return x
    if cab_side == "right":
        return 1.0 - x
    raise ValueError(f"cab_side must be 'left' or 'right', got {cab_side!r}")


def observations_from_frame(
    camera: str,
    frame: int,
    results: Sequence[ContainerCodeResult],
    frame_width: int,
    cab_side: str | None = None,
    bodies: Sequence[tuple[int, int, int, int]] = (),
) -> list[ContainerObservation]:
    """Observations for the codes read in one frame.

    For a side camera (`cab_side` given) each code gets its position along the truck: the centre
    of the container body (from a `ContainerDetector`) that holds the code, else the code's own.
    """
    out = []
    for r in results:
        along = None
        if cab_side is not None and r.box is not None:
            cx, cy = (r.box[0] + r.box[2]) / 2, (r.box[1] + r.box[3]) / 2
            holder = [b for b in bodies if b[0] <= cx <= b[2] and b[1] <= cy <= b[3]]
            along = along_truck(holder[0] if holder else r.box, frame_width, cab_side)
        out.append(ContainerObservation(camera, frame, r, along))
    return out


def _near(a: str, b: str, limit: int = 2) -> bool:
    return len(a) == len(b) and sum(x != y for x, y in zip(a, b, strict=True)) <= limit


def _confident(r: ContainerCodeResult) -> bool:
    return r.check_digit_ok and r.confidence >= CONFIDENT


def _same_container(a: ContainerCodeResult, b: ContainerCodeResult) -> bool:
    if a.code == b.code:
        return True
    if _confident(a) and _confident(b):
        return False
    return _near(a.code, b.code)


def _groups(observations: Sequence[ContainerObservation]) -> list[list[int]]:
    """Connected components of observations that read the same container."""
    parent = list(range(len(observations)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(observations)):
        for j in range(i + 1, len(observations)):
            if _same_container(observations[i].result, observations[j].result):
                parent[find(i)] = find(j)
    groups: dict[int, list[int]] = defaultdict(list)
    for i in range(len(observations)):
        groups[find(i)].append(i)
    return list(groups.values())


def _vote_group(obs: Sequence[ContainerObservation]) -> tuple[ContainerVote, float]:
    """The winning code of one group and the group's total support."""
    support: dict[str, float] = defaultdict(float)
    for o in obs:
        weight = max(o.result.confidence, MIN_WEIGHT)
        shares = dict(o.result.candidates) or {o.result.code: 1.0}
        shares.setdefault(o.result.code, max(shares.values()))
        for code, share in shares.items():
            support[code] += weight * share
    total = sum(support.values())
    valid = {c: s for c, s in support.items() if is_valid(c)}
    pool = valid if valid and max(valid.values()) >= 0.2 * max(support.values()) else support
    code = max(pool, key=pool.__getitem__)
    agreeing = [o for o in obs if o.result.code == code]
    confidence = (1.0 - math.prod(1.0 - min(o.result.confidence, 0.99) for o in agreeing)) * (
        support[code] / total
    )
    ok = is_valid(code)
    if not ok:
        confidence = min(confidence, CONFIDENT * 0.6)
    elif not any(_confident(o.result) for o in agreeing):  # repeating a weak read proves little
        confidence = min(confidence, CONFIDENT * 0.9)
    sizes = [o.result.size_type for o in obs if o.result.size_type]
    size_type = max(set(sizes), key=sizes.count) if sizes else None
    ranked = sorted(support.items(), key=lambda kv: -kv[1])[:10]
    vote = ContainerVote(
        code=code,
        check_digit_ok=ok,
        confidence=round(confidence, 4),
        position="unknown",
        size_type=size_type,
        observations=len(obs),
        cameras=tuple(sorted({o.camera for o in obs})),
        candidates=tuple((c, round(s / total, 4)) for c, s in ranked),
    )
    return vote, total


def _length_ft(size_type: str | None) -> float | None:
    if size_type is None:
        return None
    try:
        return parse_size_type(size_type).length_ft
    except ContainerCodeError:
        return None


def vote_containers(
    observations: Sequence[ContainerObservation], max_containers: int = 2
) -> list[ContainerVote]:
    """One voted answer per container carried (front first), from every read of one truck."""
    if not observations:
        return []
    groups = _groups(observations)
    voted = [(*_vote_group([observations[i] for i in g]), g) for g in groups]
    voted.sort(key=lambda t: (t[0].check_digit_ok, t[1]), reverse=True)
    first = voted[0][0]
    length = _length_ft(first.size_type)
    limit = 1 if length is not None and length >= 40 else max_containers
    kept = [voted[0]]
    for vote, support, g in voted[1:]:
        if len(kept) >= limit:
            break
        if vote.check_digit_ok and support >= MIN_SHARE * voted[0][1]:
            kept.append((vote, support, g))
    if len(kept) == 1:
        return [replace(first, position="single")]
    along: list[float] = []
    for _, _, g in kept:
        known = [a for i in g if (a := observations[i].along) is not None]
        if not known:
            return [replace(v, position="unknown") for v, _, _ in kept]
        along.append(sum(known) / len(known))
    if along[0] == along[1]:
        return [replace(v, position="unknown") for v, _, _ in kept]
    order = sorted(range(len(kept)), key=lambda k: along[k])
    names: list[Literal["front", "rear"]] = ["front", "rear"]
    return [replace(kept[k][0], position=names[n]) for n, k in enumerate(order)]
