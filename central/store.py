"""Data access: every query and write central makes goes through these functions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from central.db import EdgeNode, Passage, RejectedMessage, utcnow
from smartgate.contract import PassageEvent


def passage_row(event: PassageEvent) -> Passage:
    """The database row for a validated passage event."""
    plate = event.best_plate
    return Passage(
        event_id=event.event_id,
        site=event.site,
        lane=event.lane,
        node_id=event.node_id,
        direction=event.direction,
        started_at=event.started_at,
        ended_at=event.ended_at,
        received_at=utcnow(),
        plate_text=plate.text if plate else None,
        plate_confidence=plate.confidence if plate else None,
        trailer_text=event.trailer_plate.text if event.trailer_plate else None,
        container_codes=" ".join(c.code for c in event.containers),
        gross_kg=event.weight.gross_kg if event.weight else None,
        payload=event.model_dump(mode="json", by_alias=True),
    )


def passage_exists(session: Session, event_id: str) -> bool:
    """Whether a passage with this event id is already stored."""
    return session.scalar(select(Passage.id).where(Passage.event_id == event_id)) is not None


def add_passage(session: Session, event: PassageEvent) -> Passage | None:
    """Add the passage in the caller's transaction; None when the event id is already stored."""
    if passage_exists(session, event.event_id):
        return None
    row = passage_row(event)
    session.add(row)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        return None
    return row


def add_rejection(session: Session, topic: str, reason: str, payload: bytes) -> None:
    """Keep a rejected message with its reason."""
    session.add(RejectedMessage(topic=topic, reason=reason, payload=payload))


def set_node_state(
    session: Session, site: str, node_id: str, online: bool | None = None,
    status: dict | None = None,
) -> None:
    """Record an edge node's availability and/or health report."""
    node = session.get(EdgeNode, (node_id, site))
    if node is None:
        node = EdgeNode(node_id=node_id, site=site, online=bool(online))
        session.add(node)
    if online is not None:
        node.online = online
    if status is not None:
        node.status = status
    node.last_seen = utcnow()


@dataclass(frozen=True)
class PassageFilter:
    """Filters for passage listings."""

    lane: str | None = None
    site: str | None = None
    plate: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 100
    offset: int = 0


def list_passages(session: Session, f: PassageFilter) -> Sequence[Passage]:
    """Passages matching the filter, newest first."""
    q = select(Passage).order_by(Passage.ended_at.desc(), Passage.id.desc())
    if f.lane:
        q = q.where(Passage.lane == f.lane)
    if f.site:
        q = q.where(Passage.site == f.site)
    if f.plate:
        q = q.where(Passage.plate_text.contains(f.plate.upper()))
    if f.since:
        q = q.where(Passage.ended_at >= f.since)
    if f.until:
        q = q.where(Passage.ended_at < f.until)
    return session.scalars(q.limit(f.limit).offset(f.offset)).all()


def list_nodes(session: Session) -> Sequence[EdgeNode]:
    """Every known edge node."""
    return session.scalars(select(EdgeNode).order_by(EdgeNode.site, EdgeNode.node_id)).all()
