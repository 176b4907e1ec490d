"""The periodic retention purge central runs in its HTTP process (see `records.purge`)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy.orm import sessionmaker

from central.config import CentralSettings
from central.evidence import records
from central.evidence.retention import RetentionPolicy
from central.evidence.store import EvidenceStore

log = logging.getLogger(__name__)


def policy_of(settings: CentralSettings) -> RetentionPolicy:
    """The retention policy the settings configure."""
    return RetentionPolicy(cleared_days=settings.retention_cleared_days,
                           reviewed_days=settings.retention_reviewed_days)


class RetentionJob:
    """Runs the purge every `interval_s` in a daemon thread; a failed run is logged and the
    next one tried (`clock` is injectable for tests)."""

    def __init__(self, sessions: sessionmaker, evidence: EvidenceStore, policy: RetentionPolicy,
                 interval_s: float, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
                 ) -> None:
        self.sessions, self.evidence, self.policy = sessions, evidence, policy
        self.interval_s, self.clock = interval_s, clock
        self.runs = 0
        self.last: records.PurgeReport | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="retention", daemon=True)

    def run_once(self) -> records.PurgeReport:
        """One purge at the clock's now."""
        report = records.purge(self.sessions, self.evidence, self.policy, self.clock())
        self.runs += 1
        self.last = report
        if report.purged:
            log.info("retention: purged %d passages (%s), deleted %d images, %d on legal hold",
                     report.purged, report.by_class, report.images_deleted, report.held)
        return report

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.run_once()
            except Exception:  # noqa: BLE001 - a failed purge must not end the job
                log.exception("retention purge failed; retrying in %.0f s", self.interval_s)

    def start(self) -> RetentionJob:
        """Start the periodic purge."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop it (an ongoing purge finishes its current passage)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)
