"""Durable outbox: every event is written here before it is published, and removed on PUBACK.

SQLite in WAL mode with synchronous=FULL: a message `put` survives a kill -9 or power loss.
The spool is bounded only by disk; above `max_messages` it logs an error once per crossing
(the broker has been away a long time) and keeps accepting, since dropping evidence is worse.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SpooledMessage:
    """A message waiting for its broker acknowledgement."""

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
            " created_at REAL DEFAULT (julianday('now')))"
        )
        self._warned = False

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

    def peek(self, limit: int = 1, after: int = 0) -> list[SpooledMessage]:
        """The oldest messages with a sequence number above `after`, in order."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, event_id, topic, payload FROM outbox WHERE seq > ? ORDER BY seq"
                " LIMIT ?",
                (after, limit),
            ).fetchall()
        return [SpooledMessage(r[0], r[1], r[2], bytes(r[3])) for r in rows]

    def delete(self, seq: int) -> None:
        """Remove an acknowledged message."""
        with self._lock:
            self._db.execute("DELETE FROM outbox WHERE seq = ?", (seq,))

    def _depth(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])

    def depth(self) -> int:
        """Messages waiting."""
        with self._lock:
            return self._depth()

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()
