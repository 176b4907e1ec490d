"""Evidence upload: each passage's images travel to central over HTTP, at least once.

When a passage is emitted its images (the frames that carried the reads; `PassageEvent.
evidence_ids`) are copied from the ring buffer into `EvidenceQueue`, a SQLite file beside the
spool (WAL, synchronous=FULL), so they survive the ring rolling over, a restart or a power cut.
`EvidenceUploader` PUTs each one to `central_url/api/evidence/{event_id}/{image_id}` with the
edge's bearer token and its SHA-256, and deletes it from the queue only when central answers
that it stored it (201, or 200 for a copy it already had): central makes the bytes durable
before it answers. Uploads are idempotent on (passage, image id), so a retry is harmless.

- 404 (central has not stored the passage yet), 408/429/5xx, network errors, 401/403 (a
  credential problem, logged as an error): retried, waiting `retry_initial_s` doubling up to
  `retry_max_s` per image.
- 409/410/413/422 (refused for good: other bytes under that id, past retention, too large,
  not evidence of that passage): kept in the queue, marked refused with the reason, logged and
  counted — never silently dropped.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from pathlib import Path

import httpx

from smartgate.contract import PassageEvent

log = logging.getLogger(__name__)

REFUSED_STATUSES = frozenset({409, 410, 413, 422})


@dataclass(frozen=True)
class PendingImage:
    """An evidence image waiting for central's confirmation."""

    event_id: str
    image_id: str
    data: bytes
    sha256: str
    attempts: int


class EvidenceQueue:
    """SQLite queue of evidence images, unique on (event id, image id)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS evidence (event_id TEXT NOT NULL, image_id TEXT NOT NULL,"
            " data BLOB NOT NULL, sha256 TEXT NOT NULL, created_at REAL NOT NULL,"
            " attempts INTEGER NOT NULL DEFAULT 0, next_at REAL NOT NULL DEFAULT 0,"
            " refused TEXT, PRIMARY KEY (event_id, image_id))"
        )
        self._db.execute("CREATE INDEX IF NOT EXISTS evidence_due ON evidence (next_at)")

    def put(self, event_id: str, image_id: str, data: bytes, now: float | None = None) -> bool:
        """Keep an image durably until central confirms it; False if already queued."""
        digest = hashlib.sha256(data).hexdigest()
        with self._lock:
            cur = self._db.execute(
                "INSERT OR IGNORE INTO evidence (event_id, image_id, data, sha256, created_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (event_id, image_id, data, digest, time.time() if now is None else now),
            )
            return cur.rowcount == 1

    def due(self, now: float, limit: int = 16) -> list[PendingImage]:
        """Images to upload now, oldest first (refused ones never)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT event_id, image_id, data, sha256, attempts FROM evidence"
                " WHERE refused IS NULL AND next_at <= ? ORDER BY created_at LIMIT ?",
                (now, limit),
            ).fetchall()
        return [PendingImage(r[0], r[1], bytes(r[2]), r[3], r[4]) for r in rows]

    def next_due_at(self) -> float | None:
        """When the earliest waiting image is due, or None when none waits."""
        with self._lock:
            row = self._db.execute(
                "SELECT MIN(next_at) FROM evidence WHERE refused IS NULL").fetchone()
        return None if row[0] is None else float(row[0])

    def confirmed(self, event_id: str, image_id: str) -> None:
        """Central stored it: forget it."""
        with self._lock:
            self._db.execute("DELETE FROM evidence WHERE event_id = ? AND image_id = ?",
                             (event_id, image_id))

    def retry_at(self, event_id: str, image_id: str, at: float) -> None:
        """Try again at `at`."""
        with self._lock:
            self._db.execute(
                "UPDATE evidence SET attempts = attempts + 1, next_at = ?"
                " WHERE event_id = ? AND image_id = ?", (at, event_id, image_id))

    def refuse(self, event_id: str, image_id: str, reason: str) -> None:
        """Central refused it for good: keep it, marked, for an operator to look at."""
        with self._lock:
            self._db.execute(
                "UPDATE evidence SET attempts = attempts + 1, refused = ?"
                " WHERE event_id = ? AND image_id = ?", (reason[:500], event_id, image_id))

    def depth(self) -> int:
        """Images waiting for central (refused ones not counted)."""
        with self._lock:
            return int(self._db.execute(
                "SELECT COUNT(*) FROM evidence WHERE refused IS NULL").fetchone()[0])

    def refused_count(self) -> int:
        """Images central refused for good."""
        with self._lock:
            return int(self._db.execute(
                "SELECT COUNT(*) FROM evidence WHERE refused IS NOT NULL").fetchone()[0])

    def refused(self) -> list[tuple[str, str, str]]:
        """(event id, image id, reason) of every refused image."""
        with self._lock:
            return [(r[0], r[1], r[2]) for r in self._db.execute(
                "SELECT event_id, image_id, refused FROM evidence WHERE refused IS NOT NULL")]

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()


def enqueue_passage(queue: EvidenceQueue, event: PassageEvent,
                    read: Callable[[str], bytes | None],
                    counters: MutableMapping[str, int] | None = None) -> int:
    """Copy the passage's evidence images (`read(image_id)`, e.g. from the ring buffer) into
    the queue; returns how many were queued. An image already gone is logged and counted
    (`evidence_lost`): central will show the passage's evidence as incomplete."""
    queued = 0
    for image_id in event.evidence_ids():
        data = read(image_id)
        if data is None:
            log.warning("passage %s: evidence image %s no longer in the ring buffer",
                        event.event_id, image_id)
            if counters is not None:
                counters["evidence_lost"] = counters.get("evidence_lost", 0) + 1
            continue
        queued += queue.put(event.event_id, image_id, data)
    return queued


class EvidenceUploader:
    """Drains an EvidenceQueue to central in a thread (see the module docstring)."""

    def __init__(self, queue: EvidenceQueue, central_url: str, token: str, *,
                 timeout_s: float = 30.0, retry_initial_s: float = 1.0,
                 retry_max_s: float = 120.0, warn_pending: int = 20_000,
                 counters: MutableMapping[str, int] | None = None) -> None:
        self.queue = queue
        self.base = central_url.rstrip("/")
        self.retry_initial_s, self.retry_max_s = retry_initial_s, retry_max_s
        self.warn_pending = warn_pending
        self.counters: MutableMapping[str, int] = counters if counters is not None else {}
        self.client = httpx.Client(
            timeout=timeout_s, follow_redirects=False,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "image/jpeg"})
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="evidence-upload", daemon=True)
        self._warned = False

    def _count(self, key: str) -> None:
        self.counters[key] = self.counters.get(key, 0) + 1

    def notify(self) -> None:
        """New images were queued: look now."""
        self._wake.set()

    def upload(self, item: PendingImage) -> bool:
        """One attempt; True when central confirmed the image."""
        url = f"{self.base}/api/evidence/{item.event_id}/{item.image_id}"
        try:
            reply = self.client.put(url, content=item.data,
                                    headers={"X-Evidence-SHA256": item.sha256})
        except httpx.HTTPError as exc:
            self._later(item, f"{type(exc).__name__}: {exc}")
            return False
        if reply.status_code in (200, 201):
            self.queue.confirmed(item.event_id, item.image_id)
            self._count("evidence_uploaded")
            return True
        detail = reply.text[:200]
        if reply.status_code in REFUSED_STATUSES:
            log.error("central refused evidence %s/%s for good (%d %s); kept in %s",
                      item.event_id, item.image_id, reply.status_code, detail, self.queue.path)
            self.queue.refuse(item.event_id, item.image_id, f"{reply.status_code} {detail}")
            self._count("evidence_refused")
            return False
        if reply.status_code in (401, 403):
            log.error("central refused the edge's credential for evidence (%d): check "
                      "evidence.token", reply.status_code)
        self._later(item, f"HTTP {reply.status_code} {detail}")
        return False

    def _later(self, item: PendingImage, why: str) -> None:
        wait = min(self.retry_max_s, self.retry_initial_s * 2 ** min(item.attempts, 20))
        log.debug("evidence %s/%s: %s; retry in %.1f s", item.event_id, item.image_id, why, wait)
        self.queue.retry_at(item.event_id, item.image_id, time.time() + wait)
        self._count("evidence_retries")

    def drain_once(self) -> int:
        """Upload what is due now; returns how many central confirmed."""
        done = 0
        while not self._stop.is_set():
            batch = self.queue.due(time.time())
            if not batch:
                break
            done += sum(self.upload(item) for item in batch)
        return done

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.drain_once()
                pending = self.queue.depth()
            except (sqlite3.Error, OSError):
                log.exception("evidence queue %s failed; retrying", self.queue.path)
                pending = 0
            if pending > self.warn_pending and not self._warned:
                log.error("EVIDENCE BACKLOG: %d images waiting for central (limit %d)",
                          pending, self.warn_pending)
                self._warned = True
            elif pending <= self.warn_pending:
                self._warned = False
            nxt = self.queue.next_due_at() if pending else None
            wait = 5.0 if nxt is None else min(5.0, max(0.05, nxt - time.time()))
            self._wake.wait(wait)
            self._wake.clear()

    def start(self) -> EvidenceUploader:
        """Start uploading in the background."""
        self._thread.start()
        return self

    def stop(self, drain_timeout_s: float = 0.0) -> None:
        """Stop (after trying to upload what is due for up to `drain_timeout_s`)."""
        deadline = time.monotonic() + drain_timeout_s
        while drain_timeout_s and self.queue.depth() and time.monotonic() < deadline:
            time.sleep(0.05)
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(10)
        self.client.close()
