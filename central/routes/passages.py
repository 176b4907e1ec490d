"""Passages, their decisions, the officer review queue and officer decisions."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query

from central import store
from central.deps import Db, Decisions, Officer, Out, Reader
from central.domain.rules import Reason
from central.evidence import records
from central.routes.common import announce_decision, found, passage_or_404
from central.schemas import DecisionOut, OfficerDecisionIn, PassageDetailOut, PassageOut

router = APIRouter(prefix="/api", tags=["passages"])

OutcomeName = Literal[
    "cleared", "flagged", "no_declaration", "approved", "rejected", "held", "inspection"
]


def _with_decisions(db: Db, rows) -> list[PassageOut]:  # type: ignore[no-untyped-def]
    decisions = store.current_decisions(db, [r.event_id for r in rows])
    evidence = records.evidence_status(db, rows)
    return [PassageOut.of(r, decisions.get(r.event_id), evidence[r.event_id]) for r in rows]


@router.get("/passages", response_model=list[PassageOut])
def list_passages(
    db: Db,
    _user: Reader,
    lane: str | None = None,
    site: str | None = None,
    plate: Annotated[str | None, Query(description="part of the tractor or trailer plate")] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    outcome: Annotated[OutcomeName | None, Query(description="current decision")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[PassageOut]:
    """Stored passages, newest first, with their current decision."""
    f = store.PassageFilter(lane, site, plate, since, until, outcome, limit, offset)
    return _with_decisions(db, store.list_passages(db, f))


@router.get("/review", response_model=list[PassageOut])
def review_queue(
    db: Db,
    _user: Reader,
    lane: str | None = None,
    reason: Annotated[Reason | None, Query(description="only decisions with this finding")] = None,
    newest_first: bool = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[PassageOut]:
    """Passages waiting for an officer (flagged, no declaration, held), oldest first."""
    entries = store.list_review_queue(db, limit, offset, lane, reason, newest_first)
    evidence = records.evidence_status(db, [p for p, _ in entries])
    return [PassageOut.of(p, d, evidence[p.event_id]) for p, d in entries]


@router.get("/passages/{event_id}", response_model=PassageDetailOut)
def passage_detail(event_id: str, db: Db, _user: Reader) -> PassageDetailOut:
    """A passage with its decision history, matched declaration, commands, fee and audit."""
    detail = found(store.passage_detail(db, event_id), f"no passage {event_id}")
    return PassageDetailOut.of(detail, records.evidence_status(db, [detail.passage])[event_id])


@router.post("/passages/{event_id}/decision", response_model=DecisionOut)
def officer_decision(
    event_id: str, body: OfficerDecisionIn, db: Db, user: Officer, service: Decisions, out: Out
) -> DecisionOut:
    """Approve (open the barrier), reject (keep it closed), hold (show a message) or send to
    inspection; audited."""
    with passage_or_404(event_id):
        row, command = service.officer_decision(
            db, event_id, body.verdict, user.username, body.note
        )
    db.commit()
    announce_decision(out, command, row)
    return DecisionOut.of(row)
