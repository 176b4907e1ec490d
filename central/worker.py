"""Scale-out ingest: worker processes sharing MQTT 5 shared subscriptions and one database.

`run_worker` is one worker (`smartgate central ingest --worker-id ID`, on this machine or
another): its client id `<mqtt_client_id>-<worker id>` (and MQTT user `<mqtt_username>-<worker
id>`, which the generated broker config binds to it) is stable, so its persistent session and
the messages queued in it survive a restart. `WorkerPool` is what `central run --workers N`
starts beside the HTTP process: N such subprocesses, restarted when one exits.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time

from sqlalchemy import event
from sqlalchemy.engine import Engine

from central.config import CentralSettings

log = logging.getLogger(__name__)


def ingest_engine(settings: CentralSettings) -> Engine:
    """The worker's engine; on SQLite a locked database fails after `ingest_sqlite_busy_s`."""
    from central.db import make_engine

    engine = make_engine(settings.database_url)
    if engine.dialect.name == "sqlite":
        busy_ms = int(settings.ingest_sqlite_busy_s * 1000)

        @event.listens_for(engine, "connect")
        def _busy(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
            dbapi_conn.execute(f"PRAGMA busy_timeout={busy_ms}")

    return engine


def migrate_when_ready(engine: Engine, stop: threading.Event, max_delay_s: float = 5.0) -> bool:
    """Bring the schema up to date, waiting for the database; False if stopped first."""
    from central.db import upgrade_database

    delay = 0.5
    while not stop.is_set():
        try:
            upgrade_database(engine)
            return True
        except Exception as exc:  # noqa: BLE001 - database not up yet, or a concurrent migration
            log.warning("database not ready (%s); retrying in %.1f s",
                        str(exc).splitlines()[0][:200], delay)
        stop.wait(delay)
        delay = min(delay * 2, max_delay_s)
    return False


def run_worker(settings: CentralSettings, worker_id: str, stop: threading.Event,
               shared: bool = True) -> int:
    """Ingest (decisions, commands) until `stop` is set.

    `shared`: MQTT 5 shared subscriptions, so several workers split the messages. Without it
    (one worker only) the subscription is a plain persistent one, which mosquitto 2.0.11 also
    keeps across its own restart (shared ones it does not restore: docs/deploy.md).
    """
    from central.api import decision_service
    from central.db import session_factory
    from central.ingest import MqttIngest, connection_options, lane_owners, warn_if_insecure
    from central.journeys import JourneyHook, YardEvents, journey_service

    engine = ingest_engine(settings)
    if not migrate_when_ready(engine, stop):
        return 0
    decisions = decision_service(settings)
    on_passage = JourneyHook(decisions.decide_passage, journey_service(settings))
    warn_if_insecure(settings)
    ingest = MqttIngest(
        session_factory(engine), settings.mqtt_host, settings.mqtt_port,
        **connection_options(settings, f"-{worker_id}"), site=settings.site,
        on_passage=on_passage, batch_size=settings.ingest_batch, shared=shared,
        after_commit=lambda o: yard.send(on_passage.take(o.event.event_id) if o.event else []),
        session_expiry_s=settings.mqtt_session_expiry_s, lane_owners=lane_owners(settings),
        on_batch=decisions.prefetch,
    )
    secret = settings.yard_webhook_secret
    yard = YardEvents(ingest.publish, settings.yard_webhook_url,
                      secret.get_secret_value() if secret else None)
    if settings.metrics_port is not None:
        ingest.metrics.serve(settings.metrics_port, settings.http_host)
        log.info("worker %s metrics on http://%s:%d/metrics", worker_id, settings.http_host,
                 settings.metrics_port)
    ingest.start()
    log.info("ingest worker %s started", worker_id)
    stop.wait()
    ingest.stop()
    yard.stop()
    engine.dispose()
    log.info("ingest worker %s stopped: %s", worker_id, dict(ingest.stats))
    return 0


def stop_on_signals() -> threading.Event:
    """An event set by SIGTERM or SIGINT (call from the main thread)."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def settings_env(settings: CentralSettings) -> dict[str, str]:
    """`SMARTGATE_CENTRAL_*` variables that reproduce `settings` in a child process."""
    env = {}
    for name in CentralSettings.model_fields:
        value = getattr(settings, name)
        if value is None:
            continue
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        text = str(value).lower() if isinstance(value, bool) else str(value)
        env[f"SMARTGATE_CENTRAL_{name.upper()}"] = text
    return env


class WorkerPool:
    """N `smartgate central ingest` subprocesses, each restarted when it exits."""

    def __init__(self, settings: CentralSettings, count: int, restart_delay_s: float = 1.0):
        self.settings, self.count, self.restart_delay_s = settings, count, restart_delay_s
        self.procs: dict[str, subprocess.Popen] = {}
        self._stop = threading.Event()
        self._monitor = threading.Thread(target=self._watch, name="worker-pool", daemon=True)

    def _spawn(self, k: int) -> None:
        worker_id = f"w{k}"
        env = {**os.environ, **settings_env(self.settings)}
        env.pop("SMARTGATE_CENTRAL_METRICS_PORT", None)
        if self.settings.metrics_port is not None:
            env["SMARTGATE_CENTRAL_METRICS_PORT"] = str(self.settings.metrics_port + k - 1)
        self.procs[worker_id] = subprocess.Popen(
            [sys.executable, "-m", "smartgate.cli", "central", "ingest", "--worker-id",
             worker_id], env=env)

    def start(self) -> WorkerPool:
        """Start the workers and the monitor that restarts them."""
        for k in range(1, self.count + 1):
            self._spawn(k)
        self._monitor.start()
        return self

    def _watch(self) -> None:
        while not self._stop.wait(self.restart_delay_s):
            for k in range(1, self.count + 1):
                proc = self.procs[f"w{k}"]
                if proc.poll() is not None and not self._stop.is_set():
                    log.error("ingest worker w%d exited with %s; restarting", k, proc.returncode)
                    self._spawn(k)

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM every worker (they finish their batch) and wait; kill stragglers."""
        self._stop.set()
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + timeout_s
        for proc in self.procs.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
