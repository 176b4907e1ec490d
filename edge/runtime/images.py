"""Local ring buffer of evidence JPEGs, addressed by id only, and its tiny HTTP server.

Central fetches `GET /images/{id}.jpg`; ids are 1-64 letters, digits, `_` or `-`, so a request
can never name a path.
"""

from __future__ import annotations

import logging
import re
import threading
import uuid
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np

log = logging.getLogger(__name__)

_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_URL = re.compile(r"^/images/([A-Za-z0-9_-]{1,64})\.jpg$")


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


class ImageServer:
    """Serves an ImageStore over HTTP in a thread: GET /images/{id}.jpg, nothing else."""

    def __init__(self, store: ImageStore, host: str = "127.0.0.1", port: int = 0) -> None:
        self.store = store

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                match = _URL.match(self.path.split("?", 1)[0])
                data = store.read(match.group(1)) if match else None
                if data is None:
                    self.send_error(404, "no such image")
                    return
                self.send_response(200)
                self.send_header("Content-Type", "image/jpeg")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Cache-Control", "max-age=86400, immutable")
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, fmt: str, *args: object) -> None:
                log.debug("image server: " + fmt, *args)

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.host, self.port = host, int(self.httpd.server_address[1])
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, name="image-http", daemon=True
        )

    def start(self) -> ImageServer:
        """Start serving."""
        self._thread.start()
        log.info("evidence images served on http://%s:%d/images/", self.host, self.port)
        return self

    def stop(self) -> None:
        """Stop serving."""
        self.httpd.shutdown()
        self.httpd.server_close()
