"""Durable outbox: every event is written here before it is published, and removed only when
central's receipt for it arrives (a PUBACK only marks it sent, with `sent_at`). A passage central
rejected (a `rejected` receipt) stays, marked with `rejected_at` and the reason: never sent
again, never deleted, counted in the node's status and metrics (`rejected_count`, `rejected`).

SQLite in WAL mode with synchronous=FULL: a message `put` survives a kill -9 or power loss.
The spool is bounded only by disk; above `max_messages` it logs an error once per crossing
(the broker has been away a long time) and keeps accepting, since dropping evidence is worse.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RejectedMessage:
    """A passage central refused, kept in the spool."""

    event_id: str
    topic: str
    reason: str
    detail: str
    rejected_at: float


@dataclass(frozen=True)
class SpooledMessage:
    """A message waiting for central's receipt."""

    seq: int
    event_id: str
    topic: str
    payload: bytes


class Spool:
    """SQLite outbox in WAL mode; order is the insertion order, event ids are unique."""

    def __init__(self, path: Path | str, max_messages: int = 100_000) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_messages = max_messages
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
            " event_id TEXT UNIQUE NOT NULL, topic TEXT NOT NULL, payload BLOB NOT NULL,"
            " created_at REAL DEFAULT (julianday('now')), sent_at REAL,"
            " sends INTEGER NOT NULL DEFAULT 0)"
        )
        columns = {r[1] for r in self._db.execute("PRAGMA table_info(outbox)")}
        if "sent_at" not in columns:  # spools written before receipts existed
            self._db.execute("ALTER TABLE outbox ADD COLUMN sent_at REAL")
            self._db.execute("ALTER TABLE outbox ADD COLUMN sends INTEGER NOT NULL DEFAULT 0")
        if "rejected_at" not in columns:  # spools written before rejected receipts existed
            self._db.execute("ALTER TABLE outbox ADD COLUMN rejected_at REAL")
            self._db.execute("ALTER TABLE outbox ADD COLUMN reject_reason TEXT")
            self._db.execute("ALTER TABLE outbox ADD COLUMN reject_detail TEXT")
        self._warned = False
        self._receipted_sent_at = 0.0  # send time of the latest-sent message central receipted
        self._last_receipt_at = 0.0  # when the latest receipt arrived

    def put(self, event_id: str, topic: str, payload: bytes) -> bool:
        """Store a message durably; False if this event id is already spooled."""
        with self._lock:
            try:
                self._db.execute(
                    "INSERT INTO outbox (event_id, topic, payload) VALUES (?, ?, ?)",
                    (event_id, topic, payload),
                )
            except sqlite3.IntegrityError:
                return False
            depth = self._depth()
        if depth > self.max_messages and not self._warned:
            log.error(
                "SPOOL OVER LIMIT: %d messages waiting (limit %d); broker unreachable?",
                depth,
                self.max_messages,
            )
            self._warned = True
        elif depth <= self.max_messages:
            self._warned = False
        return True

    def due(self, limit: int, now: float, timeout_s: float,
            skip: Sequence[int] = (), overtaken_s: float | None = None) -> list[SpooledMessage]:
        """The oldest messages to publish, in order: never sent; sent (PUBACKed) without a
        receipt for `timeout_s` (doubled per send after the first, at most 32 times) while no
        receipt at all came for `timeout_s` — a central still receipting is only behind, and
        re-sending to it would flood it; or, with `overtaken_s`, overtaken — sent at least
        that long before a message central has already receipted, so most likely lost on the
        way (a central that is only behind receipts in order and overtakes nothing).
        `skip` are sequence numbers already in flight."""
        marks = ",".join("?" * len(skip))
        overtaken_before = (
            self._receipted_sent_at - overtaken_s if overtaken_s is not None else 0.0
        )
        timer_due_before = now if self._last_receipt_at + timeout_s < now else 0.0
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, event_id, topic, payload FROM outbox"
                " WHERE (sent_at IS NULL OR sent_at + ? * (1 << min(max(sends - 1, 0), 5)) < ?"
                " OR sent_at < ?) AND rejected_at IS NULL"
                f" AND seq NOT IN ({marks}) ORDER BY seq LIMIT ?",
                (timeout_s, timer_due_before, overtaken_before, *skip, limit),
            ).fetchall()
        return [SpooledMessage(r[0], r[1], r[2], bytes(r[3])) for r in rows]

    def mark_sent(self, seq: int, at: float) -> None:
        """Record the broker's PUBACK (time `at`); the message stays until its receipt."""
        with self._lock:
            self._db.execute(
                "UPDATE outbox SET sent_at = ?, sends = sends + 1 WHERE seq = ?", (at, seq)
            )

    def unsend_all(self) -> int:
        """Mark every sent, unreceipted message as to publish again (after a reconnect)."""
        with self._lock:
            return self._db.execute(
                "UPDATE outbox SET sent_at = NULL WHERE sent_at IS NOT NULL"
            ).rowcount

    def receipted(self, event_id: str, at: float | None = None) -> bool:
        """Remove the message central confirmed (receipt arriving at `at`, default now);
        False if it was not (or no longer) spooled."""
        with self._lock:
            self._last_receipt_at = time.time() if at is None else at
            rows = self._db.execute(
                "DELETE FROM outbox WHERE event_id = ? RETURNING sent_at", (event_id,)
            ).fetchall()
            if not rows:
                return False
            if rows[0][0] is not None:
                self._receipted_sent_at = max(self._receipted_sent_at, rows[0][0])
            return True

    def rejected(self, event_id: str, reason: str, detail: str = "",
                 at: float | None = None) -> bool:
        """Mark the message central rejected (or the edge found unsendable): kept, never
        published again. False if it was not (or no longer) spooled, or already marked."""
        with self._lock:
            return self._db.execute(
                "UPDATE outbox SET rejected_at = ?, reject_reason = ?, reject_detail = ?"
                " WHERE event_id = ? AND rejected_at IS NULL",
                (time.time() if at is None else at, reason[:64], detail[:200], event_id),
            ).rowcount > 0

    def rejected_count(self) -> int:
        """Messages kept as rejected."""
        with self._lock:
            return int(self._db.execute(
                "SELECT COUNT(*) FROM outbox WHERE rejected_at IS NOT NULL").fetchone()[0])

    def list_rejected(self, limit: int = 100) -> list[RejectedMessage]:
        """The rejected messages, newest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT event_id, topic, reject_reason, reject_detail, rejected_at FROM outbox"
                " WHERE rejected_at IS NOT NULL ORDER BY rejected_at DESC LIMIT ?", (limit,),
            ).fetchall()
        return [RejectedMessage(r[0], r[1], r[2] or "", r[3] or "", r[4]) for r in rows]

    def _depth(self) -> int:
        return int(self._db.execute(
            "SELECT COUNT(*) FROM outbox WHERE rejected_at IS NULL").fetchone()[0])

    def depth(self) -> int:
        """Messages waiting for a receipt (sent or not); rejected ones are not counted."""
        with self._lock:
            return self._depth()

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()
