"""Lane statistics, live lane states and the audit log."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query

from central import store
from central.db import utcnow
from central.deps import Db, Reader
from central.schemas import AuditOut, LaneStatsOut

router = APIRouter(prefix="/api", tags=["lanes"])


@router.get("/stats/lanes", response_model=list[LaneStatsOut])
def lane_statistics(
    db: Db,
    _user: Reader,
    since: Annotated[datetime | None, Query(description="default: 24 hours ago")] = None,
    until: datetime | None = None,
    site: str | None = None,
) -> list[LaneStatsOut]:
    """Per lane: throughput per hour, read rate, flagged rate, mean time to decision."""
    since = since or utcnow() - timedelta(hours=24)
    return [
        LaneStatsOut.model_validate(s, from_attributes=True)
        for s in store.lane_statistics(db, since, until, site)
    ]


@router.get("/lanes")
def lane_states(db: Db, _user: Reader) -> list[dict]:
    """The latest reported state of every lane."""
    return [
        {"site": r.site, "lane": r.lane, "node_id": r.node_id, "state": r.state,
         "queue_length": r.queue_length, "updated_at": store.utc(r.updated_at)}
        for r in store.list_lane_status(db)
    ]  # fmt: skip


@router.get("/audit", response_model=list[AuditOut])
def audit_log(
    db: Db,
    _user: Reader,
    target_type: str | None = None,
    target_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[AuditOut]:
    """Audit entries, newest first."""
    return [
        AuditOut.model_validate(a, from_attributes=True)
        for a in store.list_audit(db, target_type, target_id, limit)
    ]
