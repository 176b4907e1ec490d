"""Evidence images for the passage page, fetched from the edge by id and kept locally.

The browser names a passage and an image id; central looks the id up in that passage's stored
`images` and fetches the URL the edge reported there, so no request can make central read a
path or fetch an address of its choosing. A fetched JPEG is kept under `data_dir/images/`, so it
outlives the edge's ring buffer; an unavailable image is a 404 (the page shows a placeholder).
The cache holds at most `IMAGE_CACHE_BYTES`: each new image evicts the least recently shown
ones (a shown image gets a fresh mtime).
"""

from __future__ import annotations

import logging
import os
import re
import secrets
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
IMAGE_CACHE_BYTES = 2 * 1024**3


def prune_cache(cache_dir: Path, max_bytes: int) -> int:
    """Delete the least recently used images (oldest mtime) until the cache fits in
    `max_bytes`; returns how many were deleted."""
    entries = []
    for entry in os.scandir(cache_dir):
        if entry.is_file() and entry.name.endswith(".jpg"):
            stat = entry.stat()
            entries.append((stat.st_mtime, stat.st_size, Path(entry.path)))
    total = sum(size for _, size, _ in entries)
    removed = 0
    for _, size, path in sorted(entries):
        if total <= max_bytes:
            break
        path.unlink(missing_ok=True)
        total -= size
        removed += 1
    if removed:
        log.info("image cache: evicted %d least recently used images", removed)
    return removed


def fetch_image(
    cache_dir: Path, image_id: str, url: str | None, max_cache_bytes: int = IMAGE_CACHE_BYTES
) -> bytes | None:
    """The JPEG for `image_id`: from the local cache (marked as just used), else fetched from
    `url` and cached, evicting the least recently used images beyond `max_cache_bytes`."""
    if not IMAGE_ID.match(image_id):
        return None
    cached = cache_dir / f"{image_id}.jpg"
    try:
        data = cached.read_bytes()
        os.utime(cached)
        return data
    except FileNotFoundError:
        pass
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
    partial = cached.with_name(f"{image_id}.{secrets.token_hex(4)}.part")
    partial.write_bytes(data)
    partial.replace(cached)
    prune_cache(cache_dir, max_cache_bytes)
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
