"""Match a passage to customs declarations and decide: cleared, flagged or no declaration (pure).

Two steps, kept apart so central can hold declarations in memory or in the database:

1. Candidates. `passage_keys(passage)` are the lookup keys of everything read (plates with
   their top-N alternatives, containers); `declaration_keys(decl)` the keys a declaration is
   stored under. `DeclarationIndex` is the in-memory version; a database can store the same
   (key, declaration number) pairs in an indexed table and query `key IN (...)`.
2. Decision. `decide(passage, candidates, rules, used, now)` picks the best candidate and runs
   every check, each producing a `Reason`; `command_for(decision, passage)` is the lane command.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from typing import NamedTuple

from central.domain.declarations import Declaration, DeclarationStatus, Direction
from central.domain.plate_similarity import (
    normalize_plate,
    plate_keys,
    plate_similarity,
    probe_keys,
    province_conflict,
    similar_at_least,
)
from central.domain.rules import Reason, RuleSet, Severity
from smartgate import iso6346
from smartgate.contract import (
    CommandAction,
    ContainerRead,
    LaneCommand,
    PassageEvent,
    PlateRead,
    is_trailer_plate,
)

log = logging.getLogger(__name__)

# Positional corrections for container codes: owner/category letters, then digits.
_TO_LETTER = str.maketrans(iso6346.DIGIT_TO_LETTER)
_TO_DIGIT = str.maketrans(iso6346.LETTER_TO_DIGIT)


class Outcome(StrEnum):
    """The verdict on one passage."""

    CLEARED = "cleared"
    FLAGGED = "flagged"
    NO_DECLARATION = "no_declaration"


@dataclass(frozen=True)
class Finding:
    """One check that did not pass: the reason, a human detail and what the rule set made of it."""

    reason: Reason
    detail: str
    severity: Severity


@dataclass(frozen=True)
class Decision:
    """What the rules decided for one passage; stored verbatim and turned into a lane command."""

    outcome: Outcome
    declaration_number: str | None
    reasons: tuple[Finding, ...]
    plate_score: float
    rules_version: str
    action: CommandAction
    inspection_lane: str | None
    decided_at: datetime
    matched_containers: tuple[str, ...] = field(default=())

    @property
    def flags(self) -> tuple[Reason, ...]:
        """Reasons that sent the vehicle to inspection."""
        return tuple(f.reason for f in self.reasons if f.severity is Severity.FLAG)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form for storage and the API."""
        return {
            "outcome": self.outcome.value,
            "declaration_number": self.declaration_number,
            "reasons": [
                {"reason": f.reason.value, "detail": f.detail, "severity": f.severity.value}
                for f in self.reasons
            ],
            "plate_score": round(self.plate_score, 4),
            "rules_version": self.rules_version,
            "action": self.action.value,
            "inspection_lane": self.inspection_lane,
            "decided_at": self.decided_at.isoformat(),
            "matched_containers": list(self.matched_containers),
        }


# --------------------------------------------------------------------------------------------
# Reads: alternatives and corrections
# --------------------------------------------------------------------------------------------


def plate_alternatives(read: PlateRead | None, min_confidence: float) -> list[tuple[str, float]]:
    """(normalized text, confidence) of a read: its text, top-N candidates and swapped rows."""
    if read is None:
        return []
    out: dict[str, float] = {}

    def add(text: str, conf: float) -> None:
        norm = normalize_plate(text)
        if norm and conf >= min_confidence and conf > out.get(norm, -1.0):
            out[norm] = conf

    add(read.text, read.confidence)
    for cand in read.candidates:
        add(cand.text, cand.confidence)
    rows = read.display_text.split()
    if read.rows == 2 and len(rows) == 2:
        add(rows[1] + rows[0], read.confidence * 0.9)
    if not out and read.text:
        out[normalize_plate(read.text)] = read.confidence
    return list(out.items())


@dataclass(frozen=True)
class PlateEvidence:
    """A passage's plate reads sorted by what they show (docs/mqtt.md, camera roles).

    `front` and `rear` are the alternatives of the reads of the tractor (the rear camera shows
    it on a rigid truck); `trailer` is `trailer_plate`, or else a `plate_rear` whose text is a
    trailer plate (`is_trailer_plate`: what the rear camera of a semi-trailer sees, sent by an
    edge that predates the trailer field). A trailer plate is never tractor evidence.
    """

    front_read: PlateRead | None
    rear_read: PlateRead | None
    trailer: PlateRead | None
    front: list[tuple[str, float]]
    rear: list[tuple[str, float]]

    @property
    def tractor(self) -> list[tuple[str, float]]:
        """Alternatives of both tractor reads (candidate lookup and plate score)."""
        merged = dict(self.front)
        for text, conf in self.rear:
            merged[text] = max(conf, merged.get(text, 0.0))
        return list(merged.items())

    def score(self, declared: str, front_only: bool = False) -> float:
        """Best similarity of the tractor reads to a declared plate (`read_score` of each)."""
        front = read_score(self.front_read, self.front, declared)
        if front_only:
            return front
        return max(front, read_score(self.rear_read, self.rear, declared))

    def reaches(self, declared: str, min_score: float) -> bool:
        """Whether `score(declared)` is at least `min_score` (without scoring every read fully)."""
        return read_reaches(self.front_read, self.front, declared, min_score) or read_reaches(
            self.rear_read, self.rear, declared, min_score)

    @property
    def best_read(self) -> PlateRead | None:
        """The more confident of the tractor reads."""
        reads = [p for p in (self.front_read, self.rear_read) if p is not None]
        return max(reads, key=lambda p: p.confidence) if reads else None


def plate_evidence(passage: PassageEvent, min_confidence: float) -> PlateEvidence:
    """Sort the passage's plate reads into tractor (front, rear) and trailer evidence."""
    rear, trailer = passage.plate_rear, passage.trailer_plate
    if rear is not None and is_trailer_plate(rear.text):  # never the tractor's
        rear, trailer = None, trailer or rear
    return PlateEvidence(
        front_read=passage.plate_front,
        rear_read=rear,
        trailer=trailer,
        front=plate_alternatives(passage.plate_front, min_confidence),
        rear=plate_alternatives(rear, min_confidence),
    )


def tractor_alternatives(passage: PassageEvent, min_confidence: float) -> list[tuple[str, float]]:
    """Alternatives of the reads showing the tractor plate: front, and rear unless a trailer's."""
    return plate_evidence(passage, min_confidence).tractor


def plates_disagree(evidence: PlateEvidence, rules: RuleSet) -> str | None:
    """Why the front and rear reads cannot be one plate (a cloned-plate pattern), or None.

    Both reads must be confident (`min_plate_confidence`) and no alternative of one may come
    within `plate_min_score` of an alternative of the other.
    """
    front, rear = evidence.front_read, evidence.rear_read
    if front is None or rear is None:
        return None
    if min(front.confidence, rear.confidence) < rules.min_plate_confidence:
        return None
    best = max(
        (plate_similarity(a, b) for a, _ in evidence.front for b, _ in evidence.rear), default=1.0
    )
    if best >= rules.plate_min_score:
        return None
    return (
        f"front plate {front.text} ({front.confidence:.2f}) and rear plate {rear.text} "
        f"({rear.confidence:.2f}) are different plates (score {best:.2f})"
    )


def best_plate_score(alternatives: Iterable[tuple[str, float]], declared: str) -> float:
    """Highest similarity of any alternative to a declared plate (0.0 when nothing was read)."""
    return max((plate_similarity(text, declared) for text, _ in alternatives), default=0.0)


def read_score(
    read: PlateRead | None, alternatives: Iterable[tuple[str, float]], declared: str
) -> float:
    """How well one read (with its `alternatives`) matches a declared plate.

    The best alternative counts, except that a province glyph the read itself shows overrules
    its candidates: when it conflicts with the declared plate's (`province_conflict`), only the
    read's own text is scored, so a low-ranked candidate with the declared province cannot
    clear another registration.
    """
    if read is None:
        return 0.0
    text = normalize_plate(read.text)
    if text and province_conflict(text, declared):
        return plate_similarity(text, declared)
    return best_plate_score(alternatives, declared)


def read_reaches(
    read: PlateRead | None, alternatives: Sequence[tuple[str, float]], declared: str,
    min_score: float,
) -> bool:
    """`read_score(read, alternatives, declared) >= min_score`, each similarity bounded
    (`similar_at_least`) instead of computed."""
    if read is None:
        return min_score <= 0.0
    text = normalize_plate(read.text)
    if text and province_conflict(text, declared):
        return similar_at_least(text, declared, min_score)
    if not alternatives:
        return min_score <= 0.0
    return any(similar_at_least(alt, declared, min_score) for alt, _ in alternatives)


def _fold_container(norm: str) -> str:
    return norm[:4].translate(_TO_LETTER) + norm[4:].translate(_TO_DIGIT)


@lru_cache(maxsize=1 << 14)
def correct_container(code: str) -> str | None:
    """A read code with letters/digits swapped back by position, if that makes it valid."""
    norm = iso6346.normalize(code)
    if len(norm) != 11:
        return None
    fixed = _fold_container(norm)
    return fixed if iso6346.is_valid(fixed) else None


def container_interpretations(read: ContainerRead, min_confidence: float) -> list[str]:
    """Valid codes the read may stand for: its text, top-N candidates and positional fixes."""
    texts = (read.code, *(c.text for c in read.candidates if c.confidence >= min_confidence))
    return list(_interpretations(texts))


@lru_cache(maxsize=1 << 14)
def _interpretations(texts: tuple[str, ...]) -> tuple[str, ...]:
    """`container_interpretations` of these texts (remembered: asked several times a passage)."""
    out: list[str] = []
    for text in texts:
        norm = iso6346.normalize(text)
        for code in (norm, correct_container(norm)):
            if code and code not in out and iso6346.is_valid(code):
                out.append(code)
    return tuple(out)


def _hamming_one(a: str, b: str) -> bool:
    return len(a) == len(b) and sum(x != y for x, y in zip(a, b, strict=True)) == 1


class ContainerCheck(NamedTuple):
    """How the container reads of a passage compare with one declaration's containers (a named
    tuple: `decide` builds one per candidate, a frozen dataclass cost 4x as much)."""

    matched: tuple[str, ...]
    near: tuple[tuple[str, str], ...]  # (read code, declared code) check-digit-consistent
    missing: tuple[str, ...]
    undeclared: tuple[str, ...]
    invalid: tuple[str, ...]


@dataclass(frozen=True)
class ContainerEvidence:
    """One container read prepared once per passage: its normalized text and valid readings."""

    text: str
    valid: tuple[str, ...]


def container_evidence(
    reads: Iterable[ContainerRead], min_confidence: float
) -> list[ContainerEvidence]:
    """Normalize and interpret each container read (done once, then paired with each candidate)."""
    return [
        ContainerEvidence(
            iso6346.normalize(r.code), tuple(container_interpretations(r, min_confidence))
        )
        for r in reads
    ]


def check_containers(
    evidence: Iterable[ContainerEvidence], declared: Iterable[str]
) -> ContainerCheck:
    """Pair reads with declared containers: exact, corrected, or one-character near matches.

    A near match needs a read whose check digit fails and that differs from a declared (valid)
    code in one position: the check digit then explains the error. A read that is itself valid
    and not declared is `undeclared`, never a near match.
    """
    remaining = list(declared)
    matched: list[str] = []
    near: list[tuple[str, str]] = []
    undeclared: list[str] = []
    invalid: list[str] = []
    for read in evidence:
        valid = read.valid
        hit = next((code for code in valid if code in remaining), None)
        if hit is not None:
            remaining.remove(hit)
            matched.append(hit)
            continue
        if valid:
            undeclared.append(valid[0])
            continue
        folded = _fold_container(read.text)
        close = next((code for code in remaining if _hamming_one(folded, code)), None)
        if close is not None:
            remaining.remove(close)
            matched.append(close)
            near.append((read.text, close))
        else:
            invalid.append(read.text)
    return ContainerCheck(
        matched=tuple(matched),
        near=tuple(near),
        missing=tuple(remaining),
        undeclared=tuple(undeclared),
        invalid=tuple(invalid),
    )


def container_checker(
    evidence: Sequence[ContainerEvidence],
) -> Callable[[Sequence[str]], ContainerCheck]:
    """`check_containers` of these reads against one declaration's containers after another: a
    declaration sharing no code with reads that all have a valid reading is settled without
    pairing (most candidates: a truck's other declarations, look-alike trucks' ones)."""
    if not all(read.valid for read in evidence):  # near matches need the pairing
        return lambda declared: check_containers(evidence, declared)
    codes = frozenset(code for read in evidence for code in read.valid)
    undeclared = tuple(read.valid[0] for read in evidence)

    def check(declared: Sequence[str]) -> ContainerCheck:
        if codes.isdisjoint(declared):
            return ContainerCheck((), (), tuple(declared), undeclared, ())
        return check_containers(evidence, declared)

    return check


# --------------------------------------------------------------------------------------------
# Candidate lookup
# --------------------------------------------------------------------------------------------


PLATE_KEY = "p:"  # the prefix of a plate's lookup keys (then `c:` for container codes)


def plate_lookup_keys(plate: str) -> list[str]:
    """Lookup keys of a declared tractor plate (the `p:` part of `declaration_keys`)."""
    return [PLATE_KEY + k for k in plate_keys(plate)]


def declaration_keys(decl: Declaration) -> list[str]:
    """Keys a declaration is stored under: tractor plate blocking keys and container numbers."""
    return plate_lookup_keys(decl.tractor_plate) + [f"c:{c}" for c in decl.containers]


def passage_keys(passage: PassageEvent, min_confidence: float = 0.0) -> set[str]:
    """Keys to look up for a passage: probes of every plate alternative and container code."""
    keys: set[str] = set()
    for text, _ in plate_evidence(passage, min_confidence).tractor:
        keys.update(f"p:{k}" for k in probe_keys(text))
    for read in passage.containers:
        keys.update(f"c:{c}" for c in container_interpretations(read, min_confidence))
    return keys


class CandidateFilter:
    """Which candidate declarations `decide` would score for one passage: a declared plate
    within `plate_min_score` of the tractor reads, or a container paired with a read. The same
    test `decide` applies, run on raw rows so the others are never built."""

    def __init__(self, passage: PassageEvent, rules: RuleSet) -> None:
        self._plates = plate_evidence(passage, rules.candidate_min_confidence)
        self._containers = container_evidence(passage.containers, rules.candidate_min_confidence)
        self._check = container_checker(self._containers)
        self._min_score = rules.plate_min_score
        self._plate_ok: dict[str, bool] = {}
        # a read with no valid interpretation pairs by a near match, which no lookup key finds
        self._near = any(not e.valid for e in self._containers)

    def plate_ok(self, tractor_plate: str) -> bool:
        """Whether the tractor reads reach `plate_min_score` on this declared plate."""
        ok = self._plate_ok.get(tractor_plate)
        if ok is None:
            ok = self._plate_ok[tractor_plate] = self._plates.reaches(
                tractor_plate, self._min_score)
        return ok

    def may_keep_plate(self, tractor_plate: str) -> bool:
        """False when no declaration with this plate can be kept, except one whose container
        code is among the passage's own lookup keys (`c:`, found through those)."""
        return self._near or self.plate_ok(tractor_plate)

    def __call__(self, tractor_plate: str, containers: Sequence[str]) -> bool:
        """Whether `decide` would score a declaration with this plate and these containers."""
        if self.plate_ok(tractor_plate):
            return True
        return bool(self._containers and containers and self._check(containers).matched)


class DeclarationIndex:
    """In-memory declarations with blocking-key lookup; built once, updated per declaration.

    Plate keys point to distinct plates (many declarations share a truck), plates and container
    numbers to declaration numbers, so memory grows with distinct plates, not with key fan-out.
    """

    def __init__(self, declarations: Iterable[Declaration] = ()) -> None:
        self._by_number: dict[str, Declaration] = {}
        self._plate_keys: dict[str, list[str]] = {}
        self._by_plate: dict[str, list[str]] = {}
        self._by_container: dict[str, list[str]] = {}
        for decl in declarations:
            self.add(decl)

    def __len__(self) -> int:
        return len(self._by_number)

    def __contains__(self, number: object) -> bool:
        return number in self._by_number

    def get(self, number: str) -> Declaration | None:
        """The declaration with this number, if indexed."""
        return self._by_number.get(number)

    def add(self, decl: Declaration) -> None:
        """Index a declaration, replacing an earlier one with the same number (amendment)."""
        if decl.number in self._by_number:
            self.remove(decl.number)
        self._by_number[decl.number] = decl
        plate = decl.tractor_plate
        numbers = self._by_plate.get(plate)
        if numbers is None:
            self._by_plate[plate] = [decl.number]
            for key in plate_keys(plate):
                self._plate_keys.setdefault(key, []).append(plate)
        else:
            numbers.append(decl.number)
        for code in decl.containers:
            self._by_container.setdefault(code, []).append(decl.number)

    def remove(self, number: str) -> Declaration | None:
        """Drop a declaration from the index; returns it, or None if it was not there."""
        decl = self._by_number.pop(number, None)
        if decl is None:
            return None
        plate = decl.tractor_plate
        numbers = self._by_plate[plate]
        numbers.remove(number)
        if not numbers:
            del self._by_plate[plate]
            for key in plate_keys(plate):
                plates = self._plate_keys[key]
                plates.remove(plate)
                if not plates:
                    del self._plate_keys[key]
        for code in decl.containers:
            holders = self._by_container[code]
            holders.remove(number)
            if not holders:
                del self._by_container[code]
        return decl

    def lookup(self, keys: Iterable[str]) -> list[Declaration]:
        """Declarations stored under any of the keys (as produced by `passage_keys`)."""
        numbers: dict[str, None] = {}
        for key in keys:
            kind, _, value = key.partition(":")
            if kind == "p":
                for plate in self._plate_keys.get(value, ()):
                    numbers.update(dict.fromkeys(self._by_plate[plate]))
            elif kind == "c":
                numbers.update(dict.fromkeys(self._by_container.get(value, ())))
        return [self._by_number[n] for n in numbers]

    def candidates(self, passage: PassageEvent, rules: RuleSet) -> list[Declaration]:
        """Declarations worth scoring for this passage (a superset of plausible matches)."""
        return self.lookup(passage_keys(passage, rules.candidate_min_confidence))


# --------------------------------------------------------------------------------------------
# Decision
# --------------------------------------------------------------------------------------------


class _Scored(NamedTuple):  # one per kept candidate: cheaper to build than a dataclass
    decl: Declaration
    plate_score: float
    containers: ContainerCheck
    front_score: float  # the front read alone: the tractor's plate by contract (tie-break)


def _aware(at: datetime) -> datetime:
    """Passage times without an offset are taken as UTC (the edge publishes UTC)."""
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _in_window(decl: Declaration, at: datetime, rules: RuleSet) -> bool:
    at = _aware(at)
    grace = timedelta(minutes=rules.window_grace_minutes)
    return decl.window_start - grace <= at <= decl.window_end + grace


def _checks(
    passage: PassageEvent,
    plates: PlateEvidence,
    s: _Scored,
    rules: RuleSet,
    used: Collection[str],
) -> list[tuple[Reason, str]]:
    """Every check of one candidate except ambiguity, which needs the other candidates."""
    found = _plate_findings(plates, s, rules)
    found += _trailer_findings(plates.trailer, s.decl, rules)
    found += _container_findings(passage, s.containers, rules)
    found += _weight_findings(passage, s.decl, rules)
    found += _declaration_findings(passage, s, rules, used)
    return found


def _evidence_rank(s: _Scored, rules: RuleSet) -> tuple[float, float, int]:
    """The start of `_rank`, which needs no checks: plate evidence, then matched containers."""
    accepted = s.plate_score >= rules.plate_min_score
    return (
        s.plate_score if accepted else 0.0,
        s.front_score if accepted else 0.0,
        len(s.containers.matched),
    )


def _rank(s: _Scored, found: list[tuple[Reason, str]], rules: RuleSet) -> tuple[object, ...]:
    """Plate evidence first, then most matched containers, fewest flags and warnings, earliest.

    A declaration whose plate matches worse than another candidate's is never preferred for
    being cleaner: a truck on its own used declaration must not take a look-alike truck's open
    one. Plates below `plate_min_score` are all equally "not this plate" (containers decide).
    """
    severities = [rules.severity[reason] for reason, _ in found]
    return (
        *_evidence_rank(s, rules),
        -severities.count(Severity.FLAG),
        -severities.count(Severity.WARN),
        s.plate_score,
        -s.decl.window_start.timestamp(),
        s.decl.number,
    )


def _plate_findings(
    plates: PlateEvidence, best: _Scored, rules: RuleSet
) -> list[tuple[Reason, str]]:
    out: list[tuple[Reason, str]] = []
    read = plates.best_read
    declared = best.decl.tractor_plate
    if read is None:
        out.append((Reason.PLATE_NOT_DECLARED, f"no plate read; declared {declared}"))
        return out
    if best.plate_score < rules.plate_min_score:
        out.append(
            (Reason.PLATE_NOT_DECLARED,
             f"read {read.text}, declaration {best.decl.number} is for {declared} "
             f"(score {best.plate_score:.2f})")
        )  # fmt: skip
    elif best.plate_score < rules.plate_clear_score:
        out.append(
            (Reason.LOW_READ_CONFIDENCE,
             f"plate read {read.text} only resembles {declared} (score {best.plate_score:.2f})")
        )  # fmt: skip
    if read.confidence < rules.min_plate_confidence:
        out.append(
            (
                Reason.LOW_READ_CONFIDENCE,
                f"plate read {read.text} at confidence {read.confidence:.2f}",
            )
        )
    return out


def _top(
    scored: list[_Scored], found: Callable[[_Scored], list[tuple[Reason, str]]], rules: RuleSet
) -> _Scored:
    """The candidate of highest `_rank` (the first one of equals), running the checks
    (`found`) only of those the plate and container evidence leaves tied."""
    ranks = [_evidence_rank(s, rules) for s in scored]
    top = max(ranks)
    tied = [s for s, rank in zip(scored, ranks, strict=True) if rank == top]
    if len(tied) == 1:
        return tied[0]
    return max(tied, key=lambda s: _rank(s, found(s), rules))


def _ambiguity(
    best: _Scored,
    scored: list[_Scored],
    found: Callable[[_Scored], list[tuple[Reason, str]]],
    rules: RuleSet,
) -> list[tuple[Reason, str]]:
    """A rival declaration for a different plate that scores about as well as the chosen one
    (the highest-ranked such rival)."""
    declared = best.decl.tractor_plate
    rivals = [
        rival for rival in scored
        if rival.decl.tractor_plate != declared
        and rival.plate_score >= rules.plate_min_score
        and rival.plate_score >= best.plate_score - rules.ambiguity_margin
        and len(rival.containers.matched) == len(best.containers.matched)
    ]  # fmt: skip
    if not rivals:
        return []
    rival = _top(rivals, found, rules)
    return [
        (Reason.LOW_READ_CONFIDENCE,
         f"ambiguous plate: {declared} ({best.plate_score:.2f}) vs "
         f"{rival.decl.tractor_plate} ({rival.plate_score:.2f})")
    ]  # fmt: skip


def _trailer_findings(
    read: PlateRead | None, decl: Declaration, rules: RuleSet
) -> list[tuple[Reason, str]]:
    if read is None:
        return []
    if decl.trailer_plate is None:
        return [(Reason.TRAILER_MISMATCH, f"trailer {read.text} read, none declared")]
    alts = plate_alternatives(read, rules.candidate_min_confidence)
    score = read_score(read, alts, decl.trailer_plate)
    if score < rules.plate_min_score:
        return [
            (Reason.TRAILER_MISMATCH,
             f"trailer read {read.text}, declared {decl.trailer_plate} (score {score:.2f})")
        ]  # fmt: skip
    if score < rules.plate_clear_score or read.confidence < rules.min_plate_confidence:
        return [
            (Reason.LOW_READ_CONFIDENCE,
             f"trailer read {read.text} vs {decl.trailer_plate}: score {score:.2f}, "
             f"confidence {read.confidence:.2f}")
        ]  # fmt: skip
    return []


def _container_findings(
    passage: PassageEvent, check: ContainerCheck, rules: RuleSet
) -> list[tuple[Reason, str]]:
    out: list[tuple[Reason, str]] = []
    out += [(Reason.CONTAINER_MISSING, f"declared {c} not seen") for c in check.missing]
    out += [(Reason.CONTAINER_UNDECLARED, f"{c} seen, not declared") for c in check.undeclared]
    out += [
        (Reason.CONTAINER_CHECK_DIGIT_INVALID, f"{c} read; check digit fails, no declared match")
        for c in check.invalid
    ]
    out += [
        (Reason.LOW_READ_CONFIDENCE, f"container {r.code} read at confidence {r.confidence:.2f}")
        for r in passage.containers
        if r.confidence < rules.min_container_confidence
    ]
    return out


def _weight_findings(
    passage: PassageEvent, decl: Declaration, rules: RuleSet
) -> list[tuple[Reason, str]]:
    weight = passage.weight
    if weight is None and passage.weight_error:  # weighed, but the weight was refused
        return [(Reason.WEIGHT_MISSING, f"no weight: {passage.weight_error}")]
    if weight is None and passage.weighbridge_expected:  # the scale never gave a stable weight
        return [(Reason.WEIGHT_MISSING, "no weight: the lane's weighbridge gave no stable weight")]
    if weight is None or decl.gross_weight_kg is None:
        return []
    out: list[tuple[Reason, str]] = []
    if not weight.stable:
        out.append((Reason.LOW_READ_CONFIDENCE, f"weight {weight.gross_kg:.0f} kg was not stable"))
    if rules.weight_basis == "gross":
        measured: float | None = weight.gross_kg
    elif weight.net_kg is not None:
        measured = weight.net_kg
    else:
        measured = None if weight.tare_kg is None else weight.gross_kg - weight.tare_kg
    if measured is None:
        return out
    tolerance = rules.weight_tolerance(decl.gross_weight_kg)
    diff = measured - decl.gross_weight_kg
    if abs(diff) > tolerance:
        out.append(
            (Reason.WEIGHT_OUT_OF_TOLERANCE,
             f"{rules.weight_basis} {measured:.0f} kg vs declared {decl.gross_weight_kg:.0f} kg "
             f"({diff:+.0f} kg, tolerance {tolerance:.0f} kg)")
        )  # fmt: skip
    return out


def _declaration_findings(
    passage: PassageEvent, best: _Scored, rules: RuleSet, used: Collection[str]
) -> list[tuple[Reason, str]]:
    decl = best.decl
    out: list[tuple[Reason, str]] = []
    if decl.status is DeclarationStatus.CANCELLED:
        out.append((Reason.DECLARATION_CANCELLED, f"declaration {decl.number} is cancelled"))
    if decl.number in used:
        out.append((Reason.DECLARATION_ALREADY_USED, f"declaration {decl.number} already used"))
    if not _in_window(decl, passage.started_at, rules):
        out.append(
            (Reason.OUTSIDE_TIME_WINDOW,
             f"passage at {passage.started_at.isoformat()}, window {decl.window_start.isoformat()}"
             f" .. {decl.window_end.isoformat()}")
        )  # fmt: skip
    expected = "entry" if decl.direction is Direction.IMPORT else "exit"
    if passage.direction != "unknown" and passage.direction != expected:
        out.append(
            (Reason.DIRECTION_MISMATCH,
             f"{decl.direction.value} declaration on an {passage.direction} lane")
        )  # fmt: skip
    if decl.gate != passage.site:
        out.append((Reason.WRONG_GATE, f"declared for gate {decl.gate}, seen at {passage.site}"))
    elif (
        decl.lane_group in rules.lane_groups
        and passage.lane not in rules.lane_groups[decl.lane_group]
    ):
        out.append((Reason.WRONG_GATE, f"lane {passage.lane} is not in group {decl.lane_group}"))
    return out


def _action(outcome: Outcome, rules: RuleSet) -> tuple[CommandAction, str | None]:
    if outcome is Outcome.CLEARED:
        return CommandAction.OPEN_BARRIER, None
    if outcome is Outcome.NO_DECLARATION and rules.no_declaration_action == "close_barrier":
        return CommandAction.CLOSE_BARRIER, None
    return CommandAction.SEND_TO_INSPECTION, rules.inspection_lane


def _decision(
    outcome: Outcome,
    found: list[tuple[Reason, str]],
    rules: RuleSet,
    now: datetime,
    best: _Scored | None,
) -> Decision:
    findings = tuple(
        Finding(reason, detail, rules.severity[reason])
        for reason, detail in found
        if rules.severity[reason] is not Severity.IGNORE
    )
    if outcome is not Outcome.NO_DECLARATION:
        flagged = any(f.severity is Severity.FLAG for f in findings)
        outcome = Outcome.FLAGGED if flagged else Outcome.CLEARED
    action, lane = _action(outcome, rules)
    return Decision(
        outcome=outcome,
        declaration_number=None if best is None else best.decl.number,
        reasons=findings,
        plate_score=0.0 if best is None else best.plate_score,
        rules_version=rules.version,
        action=action,
        inspection_lane=lane,
        decided_at=now,
        matched_containers=() if best is None else best.containers.matched,
    )


def decide(
    passage: PassageEvent,
    candidates: Iterable[Declaration],
    rules: RuleSet,
    used: Collection[str],
    now: datetime,
) -> Decision:
    """Pick the declaration this passage most plausibly belongs to and check it against the reads.

    `candidates` may be any superset of the plausible declarations (index lookup, DB query);
    `used` holds declaration numbers already consumed by an earlier cleared passage; `now` is
    stamped on the decision. Pure: the same inputs always give the same decision.
    """
    evidence = container_evidence(passage.containers, rules.candidate_min_confidence)
    containers_of = container_checker(evidence)
    plates = plate_evidence(passage, rules.candidate_min_confidence)
    disagree = plates_disagree(plates, rules)
    scored = []
    plate_scores: dict[str, tuple[float, float]] = {}  # a truck often has many declarations
    for decl in candidates:
        scores = plate_scores.get(decl.tractor_plate)
        if scores is None:
            score = plates.score(decl.tractor_plate)
            front = plates.score(decl.tractor_plate, front_only=True) if plates.rear else score
            scores = plate_scores[decl.tractor_plate] = (score, front)
        check = containers_of(decl.containers)
        if scores[0] >= rules.plate_min_score or check.matched:
            scored.append(_Scored(decl, scores[0], check, scores[1]))
    if not scored:
        read = plates.best_read
        found = [
            (Reason.PLATE_NOT_DECLARED,
             "no plate read" if read is None else f"no declaration for plate {read.text}")
        ]  # fmt: skip
        if disagree is not None:
            found.append((Reason.PLATES_DISAGREE, disagree))
        if read is not None and read.confidence < rules.min_plate_confidence:
            found.append(
                (
                    Reason.LOW_READ_CONFIDENCE,
                    f"plate read {read.text} at confidence {read.confidence:.2f}",
                )
            )
        return _decision(Outcome.NO_DECLARATION, found, rules, now, None)
    checked: dict[int, list[tuple[Reason, str]]] = {}  # the checks of a candidate, once

    def checks(s: _Scored) -> list[tuple[Reason, str]]:
        found = checked.get(id(s))
        if found is None:
            found = checked[id(s)] = _checks(passage, plates, s, rules, used)
        return found

    best = _top(scored, checks, rules)  # the highest `_rank`
    found = checks(best) + _ambiguity(best, scored, checks, rules)
    if disagree is not None:
        found.append((Reason.PLATES_DISAGREE, disagree))
    decision = _decision(Outcome.CLEARED, found, rules, now, best)
    log.debug("passage %s -> %s %s", passage.event_id, decision.outcome, decision.flags)
    return decision


def command_for(decision: Decision, passage: PassageEvent) -> LaneCommand:
    """The lane command carrying out a decision: open, send to inspection, or hold."""
    if decision.outcome is Outcome.CLEARED:
        message = f"Cleared {decision.declaration_number}"
    elif decision.outcome is Outcome.NO_DECLARATION:
        message = "No declaration found"
    else:
        message = "Inspection: " + ", ".join(dict.fromkeys(r.value for r in decision.flags))
    return LaneCommand(
        site=passage.site,
        lane=passage.lane,
        action=decision.action,
        passage_event_id=passage.event_id,
        message=message[:120],
        inspection_lane=decision.inspection_lane,
        issued_by=f"rules:{decision.rules_version}"[:64],
        issued_at=decision.decided_at,
    )
