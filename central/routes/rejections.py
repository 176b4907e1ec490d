"""Rejected MQTT messages (admin): what central refused, why, and from which lane or node."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from central import store
from central.db import RejectedMessage
from central.deps import Admin, Db
from smartgate import contract

router = APIRouter(prefix="/api", tags=["rejections"])

PAYLOAD_PREVIEW_BYTES = 2048


class RejectionOut(BaseModel):
    """One rejected message: `reason` is a `RejectReason` value (or `storage_error`)."""

    id: int
    received_at: datetime
    topic: str
    site: str | None
    lane_or_node: str | None
    kind: str | None
    event_id: str | None
    reason: str
    detail: str
    payload_bytes: int
    payload_preview: str


def rejection_out(row: RejectedMessage) -> RejectionOut:
    """The API form of a stored rejection (payload shown as text, cut to a preview)."""
    site: str | None
    name: str | None
    kind: str | None
    try:
        site, name, kind = contract.parse_topic(row.topic)
    except contract.ContractError:
        site = name = kind = None
    reason, _, detail = row.reason.partition(": ")
    payload = bytes(row.payload)
    return RejectionOut(
        id=row.id, received_at=store.utc(row.received_at), topic=row.topic, site=site,
        lane_or_node=name, kind=kind,
        event_id=contract.event_id_of(payload) if kind == "passage" else None,
        reason=reason, detail=detail, payload_bytes=len(payload),
        payload_preview=payload[:PAYLOAD_PREVIEW_BYTES].decode("utf-8", "replace"),
    )


@router.get("/rejections", response_model=list[RejectionOut])
def list_rejections(
    db: Db,
    _user: Admin,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before_id: Annotated[int | None, Query(description="page on: ids below this")] = None,
) -> list[RejectionOut]:
    """Messages central rejected, newest first (admin only)."""
    return [rejection_out(r) for r in store.list_rejections(db, limit, before_id)]
