"""Passage assembly: one lane's reads from trigger on to trigger off, voted into one PassageEvent.

Pure core, no threads and no I/O: `PassageAssembler` is fed trigger edges, plate reads,
container reads and the captured weight, and returns the finished `PassageEvent`s.

* Plates are voted per character, weighted by confidence, over the reads of the winning length
  (reads of equal length are aligned position by position); with fewer than two such reads the
  whole texts are voted instead.
* Two vehicles too close together: `split_reads` reads in a row of another plate (same camera
  role as the passage's first read) close the passage there and open the next one.
* A reversing truck: the same plate emitted on this lane less than `merge_window_s` earlier is
  merged into that passage (nothing emitted, counted in `merged`).
* With the `plate` trigger (no presence sensor) `feed_frame` opens on the first plate and closes
  after `gap_frames` frames of a camera without one.
* A lane with a weighbridge (`weighbridge=True`) marks each passage `weighbridge_expected`, so
  central flags one that closed without a weight (`weight_missing`).
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from edge.assembly.container_vote import ContainerObservation, ContainerVote, vote_containers
from edge.recognition.results import PlateResult
from smartgate import contract
from smartgate.contract import Candidate, ContainerRead, PassageEvent, PlateRead, Weight

# Camera roles that see plates, and the PassageEvent field each fills (docs/mqtt.md): a rear
# camera sees the tractor's plate on a rigid truck and the trailer's on a semi-trailer, so its
# read goes to `trailer_plate` when it is a trailer plate (`contract.is_trailer_plate`).
PLATE_ROLES = ("front_plate", "rear_plate", "trailer_plate")


@dataclass(frozen=True)
class Observation:
    """A plate read from one camera in one frame."""

    camera: str
    timestamp: float
    plate: PlateResult
    image_id: str | None = None
    role: str = "front_plate"


@dataclass(frozen=True)
class VotedPlate:
    """The winning plate text over all observations, with its alternatives."""

    best: Observation
    text: str
    confidence: float
    candidates: tuple[tuple[str, float], ...]
    reads: int


def _whole_text_support(observations: Sequence[Observation]) -> dict[str, float]:
    support: dict[str, float] = defaultdict(float)
    for obs in observations:
        for text, conf in obs.plate.candidates or ((obs.plate.text, obs.plate.confidence),):
            support[text] += conf
    return support


def vote_characters(observations: Sequence[Observation]) -> tuple[str, float] | None:
    """Per-position confidence-weighted vote over the reads of the best-supported length.

    Returns (text, mean winning share per position), or None when fewer than two reads share
    that length (nothing to align).
    """
    by_length: dict[int, list[Observation]] = defaultdict(list)
    for obs in observations:
        if obs.plate.text:
            by_length[len(obs.plate.text)].append(obs)
    if not by_length:
        return None
    group = max(by_length.values(), key=lambda g: sum(o.plate.confidence for o in g))
    if len(group) < 2:
        return None
    chars, shares = [], []
    for i in range(len(group[0].plate.text)):
        weights: dict[str, float] = defaultdict(float)
        for obs in group:
            weights[obs.plate.text[i]] += max(obs.plate.confidence, 1e-3)
        ch, w = max(weights.items(), key=lambda kv: kv[1])
        chars.append(ch)
        shares.append(w / sum(weights.values()))
    return "".join(chars), sum(shares) / len(shares)


def vote_plates(observations: Sequence[Observation]) -> VotedPlate | None:
    """Character vote over aligned reads, falling back to a whole-text vote."""
    if not observations:
        return None
    support = _whole_text_support(observations)
    total = sum(support.values()) or 1.0
    ranked = sorted(support.items(), key=lambda kv: kv[1], reverse=True)
    by_chars = vote_characters(observations)
    if by_chars is not None:
        text, share = by_chars
        agreeing = [o.plate.confidence for o in observations if o.plate.text == text]
        mean_conf = (
            sum(agreeing) / len(agreeing)
            if agreeing
            else max(o.plate.confidence for o in observations)
        )
        confidence = min(1.0, mean_conf * share)
        if text not in support:
            ranked.insert(0, (text, share * total))
    else:
        text = ranked[0][0]
        agreeing = [o.plate.confidence for o in observations if o.plate.text == text]
        mean_conf = sum(agreeing) / max(1, len(agreeing))
        confidence = min(1.0, mean_conf * ranked[0][1] / total)
    ranked = [(text, support.get(text, ranked[0][1]))] + [kv for kv in ranked if kv[0] != text]
    best = max(
        (o for o in observations if o.plate.text == text),
        key=lambda o: o.plate.confidence,
        default=max(observations, key=lambda o: o.plate.confidence),
    )
    candidates = tuple((t, round(min(1.0, s / total), 4)) for t, s in ranked[:5])
    return VotedPlate(best, text, confidence, candidates, len(observations))


def _box(box: tuple[int, int, int, int] | None) -> contract.Box | None:
    return contract.Box(x1=box[0], y1=box[1], x2=box[2], y2=box[3]) if box else None


def plate_read(voted: VotedPlate) -> PlateRead:
    """The contract's PlateRead for a voted plate."""
    p = voted.best.plate
    region = p.region if p.region in ("vn", "cn", "us", "eu", "br", "other") else "unknown"
    return PlateRead(
        text=voted.text[:16],
        display_text=(p.display_text if p.text == voted.text else voted.text)[:24],
        region=region,  # type: ignore[arg-type]
        rows=2 if p.rows == 2 else 1,
        colour=p.colour
        if p.colour in ("white", "yellow", "blue", "green", "black", "red")
        else "unknown",  # type: ignore[arg-type]
        confidence=round(voted.confidence, 4),
        candidates=[Candidate(text=t[:32], confidence=c) for t, c in voted.candidates],
        camera=voted.best.camera,
        box=_box(p.box),
        image_id=voted.best.image_id,
    )


def container_read(vote: ContainerVote, image_id: str | None) -> ContainerRead:
    """The contract's ContainerRead for a voted container."""
    return ContainerRead(
        code=vote.code[:11],
        check_digit_ok=vote.check_digit_ok,
        size_type=vote.size_type,
        position=vote.position,
        confidence=min(1.0, vote.confidence),
        candidates=[Candidate(text=t[:32], confidence=min(1.0, c)) for t, c in vote.candidates],
        camera=vote.cameras[0] if vote.cameras else "",
        image_id=image_id,
    )


def same_plate(a: str, b: str) -> bool:
    """Whether two reads are the same plate allowing one misread character."""
    return len(a) == len(b) and sum(x != y for x, y in zip(a, b, strict=True)) <= 1


@dataclass
class _Open:
    started: float
    last_seen: float
    plates: list[Observation] = field(default_factory=list)
    containers: list[ContainerObservation] = field(default_factory=list)
    container_images: dict[int, str] = field(default_factory=dict)
    weight: Weight | None = None
    weight_error: str | None = None
    frames: set[tuple[str, int]] = field(default_factory=set)
    pending_split: list[Observation] = field(default_factory=list)
    gaps: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Emitted:
    """A passage emitted on this lane, remembered for the reversing-truck rule."""

    event_id: str
    plate: str
    at: float


class PassageAssembler:
    """Per-lane passage state machine (see the module docstring)."""

    def __init__(
        self,
        site: str,
        node_id: str,
        lane: str,
        direction: str = "unknown",
        *,
        role: str | None = None,
        weighbridge: bool = False,
        min_reads: int = 1,
        split_reads: int = 2,
        merge_window_s: float = 30.0,
        max_images: int = 6,
        gap_frames: int = 4,
    ) -> None:
        self.site, self.node_id, self.lane, self.direction = site, node_id, lane, direction
        self.role = role
        self.weighbridge = weighbridge
        self.min_reads, self.split_reads = min_reads, split_reads
        self.merge_window_s, self.max_images, self.gap_frames = (
            merge_window_s,
            max_images,
            gap_frames,
        )
        self.recent: deque[Emitted] = deque(maxlen=16)
        self.merged = 0
        self.discarded = 0
        self.last_merge: Emitted | None = None
        self._open: _Open | None = None

    @property
    def active(self) -> bool:
        """Whether a passage is open."""
        return self._open is not None

    @property
    def reads(self) -> int:
        """Plate reads of the open passage so far."""
        if self._open is None:
            return 0
        return len(self._open.plates) + len(self._open.pending_split)

    def open(self, at: float) -> None:
        """Trigger on: start collecting (no-op when already open)."""
        if self._open is None:
            self._open = _Open(started=at, last_seen=at)

    def set_weight(self, weight: Weight) -> None:
        """Attach the weighbridge capture to the open passage."""
        if self._open is not None:
            self._open.weight = weight

    def set_weight_error(self, reason: str) -> None:
        """Say why the open passage has no weight (a capture the contract refused)."""
        if self._open is not None:
            self._open.weight, self._open.weight_error = None, reason

    def add_frame(self, camera: str, index: int) -> None:
        """Count an inferred frame of the open passage."""
        if self._open is not None:
            self._open.frames.add((camera, index))

    def add_containers(
        self, observations: Sequence[ContainerObservation], image_id: str | None = None
    ) -> None:
        """Container reads of one frame."""
        if self._open is None:
            return
        for obs in observations:
            if image_id is not None:
                self._open.container_images[len(self._open.containers)] = image_id
            self._open.containers.append(obs)

    def add_plates(self, observations: Sequence[Observation]) -> list[PassageEvent]:
        """Plate reads of one frame; returns a passage closed by a split (two vehicles)."""
        current = self._open
        if current is None or not observations:
            return []
        current.last_seen = max(current.last_seen, *(o.timestamp for o in observations))
        primary = current.plates[0].role if current.plates else observations[0].role
        leader = vote_plates([o for o in current.plates if o.role == primary])
        best = max(observations, key=lambda o: o.plate.confidence)
        if best.role != primary:
            current.plates.extend(observations)
            return []
        if leader is None or same_plate(best.plate.text, leader.text):
            current.plates.extend(current.pending_split)  # they were misreads after all
            current.pending_split = []
            current.plates.extend(observations)
            return []
        pending = current.pending_split
        if pending and not same_plate(pending[-1].plate.text, best.plate.text):
            current.plates.extend(pending)
            pending.clear()
        pending.append(best)
        current.plates.extend(o for o in observations if o is not best)
        if len(pending) >= self.split_reads:
            return self._split(current, list(pending))
        return []

    def _split(self, current: _Open, newcomers: list[Observation]) -> list[PassageEvent]:
        """Close `current` before the first newcomer and open the next passage with them."""
        at = newcomers[0].timestamp
        current.pending_split = []
        self._open = current
        earlier = [o.timestamp for o in current.plates if o.timestamp <= at]
        event = self.close(max(earlier, default=current.started))
        self._open = _Open(started=at, last_seen=newcomers[-1].timestamp, plates=newcomers)
        return [event] if event is not None else []

    def feed_frame(
        self, camera: str, index: int, at: float, observations: Sequence[Observation]
    ) -> list[PassageEvent]:
        """`plate` trigger: open on the first plate, close after `gap_frames` empty frames."""
        if observations:
            self.open(at)
            assert self._open is not None
            self._open.gaps[camera] = 0
            self.add_frame(camera, index)
            return self.add_plates(observations)
        if self._open is None:
            return []
        self._open.gaps[camera] = self._open.gaps.get(camera, 0) + 1
        if min(self._open.gaps.values()) >= self.gap_frames:
            event = self.close(self._open.last_seen)
            return [event] if event is not None else []
        return []

    def close(self, at: float) -> PassageEvent | None:
        """Trigger off: the finished passage, or None (too few reads, or a reversing truck)."""
        current, self._open = self._open, None
        if current is None:
            return None
        plates = current.plates + current.pending_split
        if sum(1 for o in plates) < self.min_reads:
            self.discarded += 1
            return None
        front = vote_plates([o for o in plates if o.role not in ("rear_plate", "trailer_plate")])
        rear = vote_plates([o for o in plates if o.role == "rear_plate"])
        trailer = vote_plates([o for o in plates if o.role == "trailer_plate"])
        if rear is not None and contract.is_trailer_plate(rear.text):  # a semi-trailer
            rear, trailer = None, trailer or rear
        key = front or rear or trailer
        assert key is not None
        for earlier in self.recent:
            if same_plate(earlier.plate, key.text) and current.started - earlier.at <= (
                self.merge_window_s
            ):
                self.merged += 1
                self.last_merge = earlier
                return None
        containers = vote_containers(current.containers) if current.containers else []
        event = PassageEvent(
            event_id=contract.new_id(),
            site=self.site,
            node_id=self.node_id,
            lane=self.lane,
            direction=self.direction,  # type: ignore[arg-type]
            role=self.role,  # type: ignore[arg-type]
            started_at=datetime.fromtimestamp(current.started, UTC),
            ended_at=datetime.fromtimestamp(max(at, current.started), UTC),
            plate_front=plate_read(front) if front else None,
            plate_rear=plate_read(rear) if rear else None,
            trailer_plate=plate_read(trailer) if trailer else None,
            containers=[
                container_read(v, self._container_image(current, v)) for v in containers[:4]
            ],
            weight=current.weight,
            weight_error=current.weight_error,
            weighbridge_expected=self.weighbridge,
            images=self._images(plates),
            frames_processed=len(current.frames) or len({(o.camera, o.timestamp) for o in plates}),
        )
        self.recent.append(Emitted(event.event_id, key.text, max(at, current.started)))
        return event

    def _container_image(self, current: _Open, vote: ContainerVote) -> str | None:
        for i, obs in enumerate(current.containers):
            if obs.result.code == vote.code and i in current.container_images:
                return current.container_images[i]
        return None

    def _images(self, plates: Sequence[Observation]) -> list[contract.ImageRef]:
        """The most confident frame of each camera, best first, up to `max_images`."""
        best: dict[str, Observation] = {}
        for o in plates:
            if o.image_id and (
                o.camera not in best or o.plate.confidence > best[o.camera].plate.confidence
            ):
                best[o.camera] = o
        ranked = sorted(best.values(), key=lambda o: -o.plate.confidence)[: self.max_images]
        return [
            contract.ImageRef(
                image_id=o.image_id,
                camera=o.camera[:64],
                kind="frame",
                boxes=[b for b in [_box(o.plate.box)] if b],
            )
            for o in ranked
            if o.image_id
        ]
