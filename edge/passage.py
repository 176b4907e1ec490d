"""Passage assembly: group a lane's per-frame plate reads into one vote-based PassageEvent.

The core is a small state machine fed with (timestamp, reads) per frame: the first frame with a
plate opens a passage, `gap_frames` frames without one close it, and the reads collected in
between are voted into one plate with confidence-weighted support.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from edge.plates import PlateResult
from smartgate import contract
from smartgate.contract import Candidate, PassageEvent, PlateRead


@dataclass(frozen=True)
class Observation:
    """A plate read from one camera in one frame."""

    camera: str
    timestamp: float
    plate: PlateResult
    image_id: str | None = None


@dataclass
class _Open:
    started: float
    last_seen: float
    observations: list[Observation] = field(default_factory=list)
    gap: int = 0


@dataclass(frozen=True)
class VotedPlate:
    """The winning plate text over all observations, with its alternatives."""

    best: Observation
    text: str
    confidence: float
    candidates: tuple[tuple[str, float], ...]


def vote_plates(observations: Sequence[Observation]) -> VotedPlate | None:
    """Confidence-weighted vote over whole plate texts; candidates carry their vote share."""
    if not observations:
        return None
    support: dict[str, float] = defaultdict(float)
    for obs in observations:
        for text, conf in obs.plate.candidates or ((obs.plate.text, obs.plate.confidence),):
            support[text] += conf
    total = sum(support.values()) or 1.0
    ranked = sorted(support.items(), key=lambda kv: kv[1], reverse=True)
    text = ranked[0][0]
    best = max(
        (o for o in observations if o.plate.text == text),
        key=lambda o: o.plate.confidence,
        default=max(observations, key=lambda o: o.plate.confidence),
    )
    mean_conf = sum(o.plate.confidence for o in observations if o.plate.text == text) / max(
        1, sum(1 for o in observations if o.plate.text == text)
    )
    confidence = min(1.0, mean_conf * ranked[0][1] / total)
    candidates = tuple((t, round(s / total, 4)) for t, s in ranked[:5])
    return VotedPlate(best, text, confidence, candidates)


def plate_read(voted: VotedPlate) -> PlateRead:
    """The contract's PlateRead for a voted plate."""
    p = voted.best.plate
    box = contract.Box(x1=p.box[0], y1=p.box[1], x2=p.box[2], y2=p.box[3]) if p.box else None
    return PlateRead(
        text=voted.text,
        display_text=p.display_text if p.text == voted.text else voted.text,
        region=p.region,
        rows=p.rows,
        colour=p.colour,
        confidence=round(voted.confidence, 4),
        candidates=[Candidate(text=t, confidence=c) for t, c in voted.candidates],
        camera=voted.best.camera,
        box=box,
        image_id=voted.best.image_id,
    )


class PassageAssembler:
    """Per-lane state machine from first plate sighting to `gap_frames` empty frames."""

    def __init__(
        self, site: str, node_id: str, lane: str, direction: str = "unknown",
        gap_frames: int = 4, min_reads: int = 1,
    ) -> None:
        self.site, self.node_id, self.lane, self.direction = site, node_id, lane, direction
        self.gap_frames = gap_frames
        self.min_reads = min_reads
        self.frames_seen = 0
        self._open: _Open | None = None

    @property
    def active(self) -> bool:
        """Whether a vehicle is currently being observed."""
        return self._open is not None

    def feed(self, timestamp: float, observations: Sequence[Observation]) -> PassageEvent | None:
        """Add one frame's reads; returns the finished passage when this frame closes one."""
        self.frames_seen += 1
        if observations:
            if self._open is None:
                self._open = _Open(started=timestamp, last_seen=timestamp)
            self._open.observations.extend(observations)
            self._open.last_seen = timestamp
            self._open.gap = 0
            return None
        if self._open is None:
            return None
        self._open.gap += 1
        if self._open.gap >= self.gap_frames:
            return self.flush()
        return None

    def flush(self) -> PassageEvent | None:
        """Close the open passage now (end of stream); None when nothing usable was seen."""
        current, self._open = self._open, None
        if current is None or len(current.observations) < self.min_reads:
            return None
        voted = vote_plates(current.observations)
        assert voted is not None
        images = [
            contract.ImageRef(image_id=o.image_id, camera=o.camera, kind="frame")
            for o in {o.image_id: o for o in current.observations if o.image_id}.values()
        ][:8]
        return PassageEvent(
            event_id=contract.new_id(),
            site=self.site,
            node_id=self.node_id,
            lane=self.lane,
            direction=self.direction,  # type: ignore[arg-type]
            started_at=datetime.fromtimestamp(current.started, UTC),
            ended_at=datetime.fromtimestamp(current.last_seen, UTC),
            plate_front=plate_read(voted),
            images=images,
            frames_processed=len({(o.camera, o.timestamp) for o in current.observations}),
        )
