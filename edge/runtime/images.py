"""Local ring buffer of evidence JPEGs, addressed by id only (1-64 letters, digits, `_` or `-`,
so an id can never name a path). When a passage is emitted its images are copied out of the ring
into the evidence upload queue (`edge.runtime.evidence`); the ring itself is never served.
"""

from __future__ import annotations

import logging
import re
import threading
import uuid
from collections import deque
from pathlib import Path

import cv2
import numpy as np

log = logging.getLogger(__name__)

_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class ImageStore:
    """Keeps the newest `capacity` JPEGs in a folder; older ones are deleted."""

    def __init__(self, folder: Path | str, capacity: int = 2000, quality: int = 85) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.capacity = capacity
        self.quality = quality
        self._lock = threading.Lock()
        existing = sorted(self.folder.glob("*.jpg"), key=lambda p: p.stat().st_mtime)
        self._order: deque[str] = deque(p.stem for p in existing)

    def save(self, image: np.ndarray) -> str:
        """Encode and keep `image`; returns its id."""
        image_id = uuid.uuid4().hex
        ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        if not ok:
            raise ValueError("JPEG encoding failed")
        (self.folder / f"{image_id}.jpg").write_bytes(data.tobytes())
        with self._lock:
            self._order.append(image_id)
            while len(self._order) > self.capacity:
                (self.folder / f"{self._order.popleft()}.jpg").unlink(missing_ok=True)
        return image_id

    def path(self, image_id: str) -> Path | None:
        """Path of a kept image, or None (also for ids that are not well-formed)."""
        if not _ID.match(image_id):
            return None
        p = self.folder / f"{image_id}.jpg"
        return p if p.is_file() else None

    def read(self, image_id: str) -> bytes | None:
        """The JPEG bytes of a kept image, or None."""
        path = self.path(image_id)
        try:
            return path.read_bytes() if path is not None else None
        except OSError:  # rotated out meanwhile
            return None
