"""Evidence on the passage page: its images, served from central's evidence store, and the
admin's legal-hold button.

An image is found only by (passage, image id) in the evidence records, read from the store by
its SHA-256 and re-hashed before it is sent: an altered file is never shown as evidence. Every
view is written to the audit log (target `evidence`, so views do not crowd the passage's own
audit table) and the reply is not cached, so each view reaches central and is counted. Central
never fetches anything from an edge: the edges upload (`central.routes.evidence`).
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import RedirectResponse, Response

from central import store
from central.deps import Admin, Db, Officer
from central.evidence import records
from central.evidence.store import sha256_hex
from central.routes.common import found, passage_or_404

log = logging.getLogger(__name__)

router = APIRouter(tags=["images"], include_in_schema=False)


@router.get("/passages/{event_id}/images/{image_id}")
def passage_image(
    request: Request, db: Db, user: Officer, event_id: str, image_id: str
) -> Response:
    """One evidence JPEG of a passage (audited), or 404 when central does not hold it."""
    row = records.image_row(db, event_id, image_id)
    if row is None or row.purged_at is not None:
        raise HTTPException(404, "image not held at central")
    data = request.app.state.evidence.get(row.sha256)
    if data is None or sha256_hex(data) != row.sha256:
        log.error("evidence %s/%s: %s", event_id, image_id,
                  "missing from the store" if data is None else "altered in the store")
        raise HTTPException(404, "image unavailable")
    store.add_audit(db, user.username, "evidence.view", "evidence", event_id,
                    {"image_id": image_id, "sha256": row.sha256})
    db.commit()
    return Response(data, media_type="image/jpeg",
                    headers={"Cache-Control": "private, no-store", "X-Evidence-SHA256": row.sha256})


@router.post("/passages/{event_id}/legal-hold")
def legal_hold_form(
    db: Db,
    user: Admin,
    event_id: str,
    action: Annotated[str, Form(pattern="^(set|release)$")],
    note: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    """Set or release the passage's legal hold from its page (admins)."""
    found(store.get_passage(db, event_id), f"no passage {event_id}")
    with passage_or_404(event_id):
        if action == "set":
            records.set_hold(db, event_id, user.username, note.strip())
        else:
            records.release_hold(db, event_id, user.username, note.strip())
    db.commit()
    return RedirectResponse(f"/passages/{event_id}?saved=1", status_code=303)
