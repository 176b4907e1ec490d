"""The evidence tables' SQL (as `central.auth_store` is for the auth tables): which images a
passage has at central, legal holds, the retention purge and the integrity check.

Every function works in the caller's session and transaction, except `purge` and `verify`,
which commit per passage (a long purge never holds one write lock for all of it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from central import store
from central.db import EvidenceImage, LegalHold, Passage, PurgedPassage, utcnow
from central.evidence.retention import (
    DecisionFact,
    RetentionPolicy,
    expires_at,
    mask_plate,
    masked_payload,
)
from central.evidence.store import EvidenceStore, sha256_hex
from smartgate.contract import PassageEvent

log = logging.getLogger(__name__)

RETENTION_ACTOR = "retention"


class EvidenceRefused(ValueError):
    """An upload central will not take; `status` is the HTTP status that says why."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


def expected_ids(passage: Passage) -> list[str]:
    """The image ids the passage names (what its edge must upload)."""
    try:
        return PassageEvent.model_validate(passage.payload).evidence_ids()
    except ValidationError:
        log.warning("passage %s: stored payload no longer validates", passage.event_id)
        return []


def check_upload(session: Session, event_id: str, image_id: str, uploader: str | None) -> Passage:
    """The passage an upload belongs to; refused when the passage is unknown (404: the edge
    retries, its passage may still be on the way), was reported by another node than the
    `uploader` account (403: an edge's account is named after its node id; None: an admin, who
    may upload for any node), does not name the image (422) or was purged (410)."""
    passage = store.get_passage(session, event_id)
    if passage is None:
        raise EvidenceRefused(404, f"passage {event_id} not (yet) stored")
    if uploader is not None and passage.node_id != uploader:
        raise EvidenceRefused(403, f"account {uploader!r} may upload only node {uploader!r}'s "
                                   "evidence")
    if image_id not in expected_ids(passage):
        raise EvidenceRefused(422, f"passage {event_id} names no image {image_id}")
    if session.get(PurgedPassage, event_id) is not None:
        raise EvidenceRefused(410, f"passage {event_id} is past retention")
    return passage


def record_image(session: Session, event_id: str, image_id: str, digest: str, size: int,
                 uploader: str) -> bool:
    """Tie stored bytes to (passage, image); False when already recorded with the same hash.
    A second upload with other bytes is refused (409): evidence is never replaced."""
    row = session.get(EvidenceImage, (event_id, image_id))
    if row is not None:
        if row.sha256 != digest:
            raise EvidenceRefused(409, f"image {image_id} of {event_id} is already stored with "
                                       "other content")
        return False
    session.add(EvidenceImage(passage_event_id=event_id, image_id=image_id, sha256=digest,
                              size=size, uploaded_by=uploader[:64], stored_at=utcnow()))
    session.flush()
    return True


def image_row(session: Session, event_id: str, image_id: str) -> EvidenceImage | None:
    """The stored image (purged ones included), or None."""
    return session.get(EvidenceImage, (event_id, image_id))


def images_of(session: Session, event_id: str) -> Sequence[EvidenceImage]:
    """Every recorded image of a passage."""
    return session.scalars(select(EvidenceImage).where(
        EvidenceImage.passage_event_id == event_id).order_by(EvidenceImage.stored_at)).all()


@dataclass(frozen=True)
class EvidenceStatus:
    """What central holds of a passage's evidence."""

    expected: int
    stored: int
    missing: list[str]
    purged: bool
    legal_hold: bool

    @property
    def complete(self) -> bool:
        """Every image the passage names is stored (or retention purged them)."""
        return self.purged or not self.missing


def evidence_status(session: Session, passages: Sequence[Passage]) -> dict[str, EvidenceStatus]:
    """The evidence status of each passage, by event id."""
    ids = [p.event_id for p in passages]
    stored: dict[str, set[str]] = {}
    for event_id, image_id in session.execute(select(
            EvidenceImage.passage_event_id, EvidenceImage.image_id).where(
            EvidenceImage.passage_event_id.in_(ids), EvidenceImage.purged_at.is_(None))):
        stored.setdefault(event_id, set()).add(image_id)
    purged = set(session.scalars(select(PurgedPassage.passage_event_id).where(
        PurgedPassage.passage_event_id.in_(ids))))
    held = set(session.scalars(select(LegalHold.passage_event_id).where(
        LegalHold.passage_event_id.in_(ids))))
    out = {}
    for p in passages:
        want = expected_ids(p)
        have = stored.get(p.event_id, set())
        out[p.event_id] = EvidenceStatus(
            expected=len(want), stored=len(have & set(want)),
            missing=[] if p.event_id in purged else [i for i in want if i not in have],
            purged=p.event_id in purged, legal_hold=p.event_id in held)
    return out


# --- legal hold ---------------------------------------------------------------------------


def get_hold(session: Session, event_id: str) -> LegalHold | None:
    """The passage's legal hold, if any."""
    return session.get(LegalHold, event_id)


def set_hold(session: Session, event_id: str, actor: str, reason: str) -> LegalHold:
    """Put a passage on legal hold (audited); raises store.PassageNotFound."""
    if not store.passage_exists(session, event_id):
        raise store.PassageNotFound(event_id)
    hold = session.get(LegalHold, event_id)
    if hold is None:
        hold = LegalHold(passage_event_id=event_id, set_by=actor[:64], set_at=utcnow(),
                         reason=reason)
        session.add(hold)
        store.add_audit(session, actor, "evidence.hold", "passage", event_id, {"note": reason})
    session.flush()
    return hold


def release_hold(session: Session, event_id: str, actor: str, reason: str) -> bool:
    """Lift a passage's legal hold (audited); False when it had none."""
    hold = session.get(LegalHold, event_id)
    if hold is None:
        return False
    session.delete(hold)
    store.add_audit(session, actor, "evidence.release", "passage", event_id, {"note": reason})
    session.flush()
    return True


# --- retention purge ----------------------------------------------------------------------


@dataclass
class PurgeReport:
    """What one purge run did."""

    examined: int = 0
    purged: int = 0
    images_deleted: int = 0
    held: int = 0
    by_class: dict[str, int] = field(default_factory=dict)


def _facts(session: Session, event_id: str) -> list[DecisionFact]:
    return [DecisionFact(d.outcome, not d.decided_by.startswith("rules:"),
                         store.utc(d.decided_at), d.current)
            for d in store.decision_history(session, event_id)]


def _purge_one(session: Session, passage: Passage, kind: str, now: datetime) -> list[str]:
    """Mask the passage's personal data and mark its images purged; returns their hashes."""
    rows = session.scalars(select(EvidenceImage).where(
        EvidenceImage.passage_event_id == passage.event_id,
        EvidenceImage.purged_at.is_(None))).all()
    for row in rows:
        row.purged_at = now
    passage.plate_text = mask_plate(passage.plate_text)
    passage.trailer_text = mask_plate(passage.trailer_text)
    passage.payload = masked_payload(passage.payload)
    session.add(PurgedPassage(passage_event_id=passage.event_id, retention_class=kind,
                              purged_at=now, images_deleted=len(rows)))
    store.add_audit(session, RETENTION_ACTOR, "evidence.purge", "passage", passage.event_id,
                    {"note": f"retention class {kind}", "images": len(rows)})
    return [r.sha256 for r in rows]


def _delete_unreferenced(session: Session, evidence: EvidenceStore,
                         digests: Iterable[str]) -> int:
    deleted = 0
    for digest in set(digests):
        still = session.scalar(select(func.count()).select_from(EvidenceImage).where(
            EvidenceImage.sha256 == digest, EvidenceImage.purged_at.is_(None)))
        if not still and evidence.delete(digest):
            deleted += 1
    return deleted


def purge(sessions: sessionmaker, evidence: EvidenceStore, policy: RetentionPolicy,
          now: datetime, batch: int = 500) -> PurgeReport:
    """Purge every passage past retention at `now` (images deleted after the commit that
    marks them, personal data masked, decision kept); legal holds and open cases are kept."""
    report = PurgeReport()
    cutoff = now - timedelta(days=min(policy.cleared_days, policy.reviewed_days))
    last_id = 0
    while True:
        with sessions() as session:
            rows = session.scalars(
                select(Passage).outerjoin(
                    PurgedPassage, PurgedPassage.passage_event_id == Passage.event_id)
                .where(PurgedPassage.passage_event_id.is_(None), Passage.ended_at <= cutoff,
                       Passage.id > last_id)
                .order_by(Passage.id).limit(batch)).all()
            if not rows:
                return report
            last_id = rows[-1].id
            held = set(session.scalars(select(LegalHold.passage_event_id).where(
                LegalHold.passage_event_id.in_([p.event_id for p in rows]))))
            for passage in rows:
                report.examined += 1
                kind, until = expires_at(_facts(session, passage.event_id),
                                         store.utc(passage.ended_at), policy,
                                         store.REVIEW_OUTCOMES, passage.event_id in held)
                if passage.event_id in held:
                    report.held += 1
                if until is None or until > now:
                    continue
                digests = _purge_one(session, passage, kind, now)
                session.commit()
                report.purged += 1
                report.by_class[kind] = report.by_class.get(kind, 0) + 1
                report.images_deleted += _delete_unreferenced(session, evidence, digests)
            session.commit()


# --- integrity ----------------------------------------------------------------------------


@dataclass
class VerifyReport:
    """What `smartgate evidence verify` found."""

    checked: int = 0
    missing: list[tuple[str, str]] = field(default_factory=list)
    altered: list[tuple[str, str]] = field(default_factory=list)
    incomplete_passages: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Nothing missing or altered."""
        return not self.missing and not self.altered


def verify(sessions: sessionmaker, evidence: EvidenceStore, since: datetime | None = None,
           progress: Callable[[int], object] = lambda _n: None) -> VerifyReport:
    """Re-hash every stored (unpurged) image recorded since `since`; list missing and altered
    ones, and the passages of that period whose evidence never fully arrived."""
    report = VerifyReport()
    with sessions() as session:
        q = select(EvidenceImage.passage_event_id, EvidenceImage.image_id,
                   EvidenceImage.sha256).where(EvidenceImage.purged_at.is_(None))
        if since is not None:
            q = q.where(EvidenceImage.stored_at >= since)
        for event_id, image_id, digest in session.execute(q.order_by(EvidenceImage.stored_at)):
            data = evidence.get(digest)
            report.checked += 1
            progress(1)
            if data is None:
                report.missing.append((event_id, image_id))
            elif sha256_hex(data) != digest:
                report.altered.append((event_id, image_id))
        pq = select(Passage)
        if since is not None:
            pq = pq.where(Passage.received_at >= since)
        last_id = 0
        while True:
            chunk = session.scalars(pq.where(Passage.id > last_id).order_by(Passage.id)
                                    .limit(1000)).all()
            if not chunk:
                break
            last_id = chunk[-1].id
            status = evidence_status(session, chunk)
            report.incomplete_passages += [e for e, s in status.items() if not s.complete]
    return report



@dataclass(frozen=True)
class PassagesCheck:
    """Evidence of a set of passages: images named, missing at central, stored but altered."""

    images: int
    missing: int
    corrupt: int


def check_passages(session: Session, evidence: EvidenceStore, event_ids: Sequence[str],
                   chunk: int = 500) -> PassagesCheck:
    """Whether every image the given passages name is at central with its recorded hash."""
    images = missing = corrupt = 0
    for k in range(0, len(event_ids), chunk):
        ids = list(event_ids[k:k + chunk])
        passages = session.scalars(select(Passage).where(Passage.event_id.in_(ids))).all()
        for status in evidence_status(session, passages).values():
            images += status.expected
            missing += len(status.missing)
        for row in session.scalars(select(EvidenceImage).where(
                EvidenceImage.passage_event_id.in_(ids), EvidenceImage.purged_at.is_(None))):
            data = evidence.get(row.sha256)
            corrupt += data is None or sha256_hex(data) != row.sha256
    return PassagesCheck(images, missing, corrupt)
