"""Evidence API: edges upload each passage's images; readers see what is held; admins set legal
holds.

`PUT /api/evidence/{event_id}/{image_id}` takes one JPEG as the raw request body. The caller is
authenticated (a bearer token of scope edge-ingest: `EDGE_INGEST_SCOPE`) and the passage checked to name that
image *before* a byte of the body is read; the body is then streamed with a byte cap
(`evidence_max_image_bytes`) and a total deadline, so neither a huge nor a slow body can hold
central. The reply comes only after the evidence store made the bytes durable and the row is
committed: 201 stored, 200 already stored (a retry), 404 passage not stored yet (the edge
retries), 403 the passage came from another node than the account's, 409 stored before with
other bytes, 410 past retention, 413 too large, 422 not
evidence of that passage or not a JPEG.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool

from central import store
from central.auth import CurrentUser, NotAuthenticated, require_role
from central.auth_store import Role, TokenScope
from central.deps import Admin, Db, Reader
from central.evidence import records
from central.evidence.store import EvidenceStoreError, sha256_hex
from central.routes.common import found, passage_or_404
from central.schemas import EvidenceOut

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api", tags=["evidence"])

IMAGE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
EVENT_ID = re.compile(r"^[A-Za-z0-9_.:-]{8,64}$")
UPLOAD_DEADLINE_S = 60.0
SHA256_HEADER = "X-Evidence-SHA256"
UPLOAD_PATH = r"/api/evidence/[^/]+/[^/]+"  # its body cap (HttpGuard): evidence_max_image_bytes

EDGE_INGEST_SCOPE = TokenScope.EDGE_INGEST
"""The credential an edge uploads with: a bearer token of scope `edge-ingest` (`smartgate users
token add NODE --scope edge-ingest`) of an operator account named after the edge's node id, as
its broker account is. The scope lets the token call only the routes an edge calls, operators
cannot open passages or images, and the account may upload only the passages its node reported:
a stolen edge credential reads nothing back and cannot plant images in another lane's
evidence (admins may upload for any node)."""

_edge_ingest = require_role("operator", edge_ingest=True)


async def edge_credential(request: Request) -> CurrentUser:
    """The uploading edge: a bearer token (never a browser session) allowed to ingest."""
    if not request.headers.get("authorization", "").lower().startswith("bearer "):
        raise NotAuthenticated()
    return await _edge_ingest(request)


Edge = Annotated[CurrentUser, Depends(edge_credential)]


async def _read_capped(request: Request, cap: int) -> bytes:
    """The request body, refused (413) as soon as it passes `cap` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > cap):
        raise HTTPException(413, f"an evidence image may have at most {cap} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > cap:
            raise HTTPException(413, f"an evidence image may have at most {cap} bytes")
    return bytes(body)


def _check(request: Request, event_id: str, image_id: str, edge: CurrentUser) -> None:
    uploader = None if edge.role == Role.ADMIN else edge.username
    with request.app.state.sessions() as session:
        records.check_upload(session, event_id, image_id, uploader)


def _keep(request: Request, event_id: str, image_id: str, data: bytes, uploader: str) -> bool:
    """Store durably, then record; True when the row is new. Two uploads of one image racing:
    the loser sees the winner's row (same bytes: 200; other bytes: 409)."""
    digest = request.app.state.evidence.put(event_id, image_id, data)

    def record() -> bool:
        with request.app.state.sessions() as session, session.begin():
            return records.record_image(session, event_id, image_id, digest, len(data), uploader)

    try:
        return record()
    except IntegrityError:  # a concurrent upload of the same image committed first
        return record()


@router.put("/evidence/{event_id}/{image_id}", status_code=201)
async def upload_image(request: Request, edge: Edge, event_id: str, image_id: str) -> JSONResponse:
    """One evidence JPEG of a passage, as the raw body (Content-Type image/jpeg); optional
    `X-Evidence-SHA256` is checked against the bytes received."""
    if not EVENT_ID.match(event_id) or not IMAGE_ID.match(image_id):
        raise HTTPException(422, "malformed event or image id")
    try:
        await run_in_threadpool(_check, request, event_id, image_id, edge)
    except records.EvidenceRefused as exc:
        raise HTTPException(exc.status, str(exc)) from None
    cap = request.app.state.settings.evidence_max_image_bytes
    try:
        data = await asyncio.wait_for(_read_capped(request, cap), UPLOAD_DEADLINE_S)
    except TimeoutError:
        raise HTTPException(408, "evidence upload took too long") from None
    if not data.startswith(b"\xff\xd8"):
        raise HTTPException(422, "not a JPEG")
    digest = sha256_hex(data)
    sent = request.headers.get(SHA256_HEADER)
    if sent is not None and sent.lower() != digest:
        raise HTTPException(422, f"{SHA256_HEADER} does not match the body received")
    try:
        new = await run_in_threadpool(_keep, request, event_id, image_id, data, edge.username)
    except records.EvidenceRefused as exc:
        raise HTTPException(exc.status, str(exc)) from None
    except EvidenceStoreError as exc:
        log.error("evidence store: %s", exc)
        raise HTTPException(503, "evidence store unavailable") from None
    return JSONResponse({"event_id": event_id, "image_id": image_id, "sha256": digest,
                         "size": len(data)}, status_code=201 if new else 200)


class EvidenceImageOut(BaseModel):
    """One recorded image of a passage."""

    image_id: str
    sha256: str
    size: int
    uploaded_by: str
    stored_at: str
    purged_at: str | None


class PassageEvidenceOut(BaseModel):
    """A passage's evidence status and its recorded images."""

    status: EvidenceOut
    images: list[EvidenceImageOut]
    legal_hold: dict | None


@router.get("/passages/{event_id}/evidence", response_model=PassageEvidenceOut)
def passage_evidence(event_id: str, db: Db, _user: Reader) -> PassageEvidenceOut:
    """What central holds of a passage's images, with their SHA-256, and its legal hold."""
    passage = found(store.get_passage(db, event_id), f"no passage {event_id}")
    hold = records.get_hold(db, event_id)
    return PassageEvidenceOut(
        status=EvidenceOut.of(records.evidence_status(db, [passage])[event_id]),
        images=[EvidenceImageOut(
            image_id=r.image_id, sha256=r.sha256, size=r.size, uploaded_by=r.uploaded_by,
            stored_at=store.utc(r.stored_at).isoformat(),
            purged_at=store.utc(r.purged_at).isoformat() if r.purged_at else None)
            for r in records.images_of(db, event_id)],
        legal_hold=None if hold is None else {
            "set_by": hold.set_by, "set_at": store.utc(hold.set_at).isoformat(),
            "reason": hold.reason},
    )


class LegalHoldIn(BaseModel):
    """Why a passage is (or no longer is) on legal hold; kept in the audit log."""

    reason: str = Field(default="", max_length=2000)


@router.put("/passages/{event_id}/legal-hold")
def set_legal_hold(event_id: str, body: LegalHoldIn, db: Db, user: Admin) -> dict:
    """Put a passage on legal hold: retention keeps its images and data until released."""
    with passage_or_404(event_id):
        hold = records.set_hold(db, event_id, user.username, body.reason)
    db.commit()
    return {"event_id": event_id, "legal_hold": True, "set_by": hold.set_by}


@router.delete("/passages/{event_id}/legal-hold")
def release_legal_hold(
    event_id: str, db: Db, user: Admin, body: LegalHoldIn | None = None
) -> dict:
    """Lift a passage's legal hold (retention applies again)."""
    found(store.get_passage(db, event_id), f"no passage {event_id}")
    released = records.release_hold(db, event_id, user.username, body.reason if body else "")
    db.commit()
    return {"event_id": event_id, "legal_hold": False, "released": released}
