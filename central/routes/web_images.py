"""Evidence images for the passage page, fetched from the edge by id and kept locally.

The browser names a passage and an image id; central looks the id up in that passage's stored
`images` and fetches the URL the edge reported there, so no request can make central read a
path or fetch an address of its choosing. A fetched JPEG is kept under `data_dir/images/`, so it
outlives the edge's ring buffer; an unavailable image is a 404 (the page shows a placeholder).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import httpx
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response

from central import store
from central.deps import Db, Officer

log = logging.getLogger(__name__)

router = APIRouter(tags=["images"], include_in_schema=False)

IMAGE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
FETCH_TIMEOUT_S = 3.0
MAX_IMAGE_BYTES = 8 * 1024 * 1024


def fetch_image(cache_dir: Path, image_id: str, url: str | None) -> bytes | None:
    """The JPEG for `image_id`: from the local cache, else fetched from `url` and cached."""
    if not IMAGE_ID.match(image_id):
        return None
    cached = cache_dir / f"{image_id}.jpg"
    if cached.is_file():
        return cached.read_bytes()
    if not url or not url.startswith(("http://", "https://")):
        return None
    try:
        reply = httpx.get(url, timeout=FETCH_TIMEOUT_S, follow_redirects=False)
    except httpx.HTTPError as exc:
        log.info("image %s unavailable from %s: %s", image_id, url, exc)
        return None
    data = reply.content
    if reply.status_code != 200 or not data.startswith(b"\xff\xd8") or len(data) > MAX_IMAGE_BYTES:
        log.info("image %s: edge answered %s", image_id, reply.status_code)
        return None
    cache_dir.mkdir(parents=True, exist_ok=True)
    cached.write_bytes(data)
    return data


@router.get("/passages/{event_id}/images/{image_id}")
def passage_image(
    request: Request, db: Db, _user: Officer, event_id: str, image_id: str
) -> Response:
    """One evidence JPEG of a passage, or 404 when the passage does not list it or it is gone."""
    passage = store.get_passage(db, event_id)
    refs = (passage.payload.get("images") or []) if passage else []
    ref = next((r for r in refs if r.get("image_id") == image_id), None)
    if ref is None:
        raise HTTPException(404, "no such image for this passage")
    data = fetch_image(request.app.state.settings.data_dir / "images", image_id, ref.get("url"))
    if data is None:
        raise HTTPException(404, "image unavailable")
    return Response(
        data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=86400"}
    )
