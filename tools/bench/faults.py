"""Fault bench: passages from simulated edges through mosquitto into central, under faults.

Every part is a real process: `python -m tools.bench.edge_sim` nodes (the edge's Spool and
EdgePublisher), a `mosquitto` with persistence, `smartgate central ingest` workers, and the
database (SQLite, or PostgreSQL). On a schedule the bench kills the broker (SIGKILL, restart),
kills central mid-ingest (SIGKILL, restart), kills an edge node mid-passage (SIGKILL, restart:
its spool survives), takes the database away (SQLite: an exclusive lock held longer than the
ingest's busy timeout; PostgreSQL: a fast restart of a temporary cluster, or terminating
central's connections) and partitions the edges from the broker (SIGSTOP, SIGCONT). An edge
exits once central has receipted every passage it spooled. Then the bench reconciles what every
edge spooled against what central stored (`reconcile`, pure).

With evidence on (the default) a central HTTP process (`python -m tools.bench.evidence`, the
evidence upload endpoint) runs beside the ingest workers and is killed with them in the central
fault; each edge uploads its passages' images through its real evidence queue and exits only
when central confirmed them too; afterwards every stored passage must have all its images at
central with their recorded SHA-256 (`evidence_missing`, `evidence_corrupt`).
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tools.broker import Mosquitto, free_port
from tools.postgres import postgres_bin

log = logging.getLogger(__name__)

FAULT_KINDS = ("broker_kill", "central_kill", "edge_kill", "db_outage", "partition")
POSTGRES_BIN = postgres_bin()  # highest installed version (or SMARTGATE_POSTGRES_BIN)


@dataclass(frozen=True)
class Reconciliation:
    """What the edges spooled against what central stored."""

    sent: int
    stored: int
    lost: int
    duplicated: int
    unexpected: int


def reconcile(spooled: Iterable[str], stored: Iterable[str],
              decisions_per_event: dict[str, int]) -> Reconciliation:
    """`lost`: spooled, never stored; `duplicated`: extra rules decisions (a passage decided
    twice); `unexpected`: stored, never spooled."""
    sent, kept = set(spooled), set(stored)
    return Reconciliation(
        sent=len(sent), stored=len(kept & sent), lost=len(sent - kept),
        duplicated=sum(n - 1 for n in decisions_per_event.values() if n > 1),
        unexpected=len(kept - sent),
    )


@dataclass
class Fault:
    """One injected fault: when it began and ended, and when ingest resumed after it."""

    kind: str
    target: str
    started: float
    ended: float = 0.0
    stored_before: int = 0
    recovery_s: float | None = None


@dataclass
class FaultBench:
    """Numbers printed by `smartgate bench faults`."""

    database: str
    passages_sent: int
    passages_stored: int
    lost: int
    duplicated: int
    unexpected: int
    redeliveries: int
    faults_injected: list[dict]
    recovery_s_max: float
    elapsed_s: float
    faults: list[dict] = field(default_factory=list)
    evidence_images: int = 0
    evidence_missing: int = 0
    evidence_corrupt: int = 0


def _run_as_postgres() -> list[str]:
    if os.geteuid() != 0:
        return []
    runuser = shutil.which("runuser")
    if runuser is None:
        raise RuntimeError("running as root without runuser: cannot start PostgreSQL")
    return [runuser, "-u", "postgres", "--"]


class TempPostgres:
    """A throwaway PostgreSQL cluster (as the postgres user when root), restartable."""

    def __init__(self, folder: Path) -> None:
        if POSTGRES_BIN is None:
            raise RuntimeError("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb)")
        self.prefix = _run_as_postgres()
        self.folder = folder
        self.data = folder / "pgdata"
        self.port = free_port()
        folder.mkdir(parents=True, exist_ok=True)
        if self.prefix:
            shutil.chown(folder, "postgres", "postgres")
        self._pg(["initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E",
                  "UTF8", "--no-sync"])

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the cluster's `postgres` database."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _pg(self, cmd: list[str]) -> None:
        subprocess.run([*self.prefix, str(POSTGRES_BIN / cmd[0]), *cmd[1:]], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        opts = (f"-p {self.port} -c listen_addresses=127.0.0.1 "
                f"-c unix_socket_directories={self.folder} -c max_connections=50")
        self._pg(["pg_ctl", "-D", str(self.data), "-o", opts, "-l",
                  str(self.folder / "postgres.log"), "-w", "start"])

    def stop(self) -> None:
        """Stop it, fast (open transactions roll back, connections drop)."""
        self._pg(["pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop"])


class Processes:
    """The bench's child processes, by name, each restartable with the same command."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.cmds: dict[str, tuple[list[str], dict[str, str]]] = {}
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str, cmd: list[str] | None = None,
              env: dict[str, str] | None = None) -> None:
        """Start `name` (with `cmd` the first time, the same command afterwards)."""
        if cmd is not None:
            self.cmds[name] = (cmd, {**os.environ, **(env or {})})
        cmd, full_env = self.cmds[name]
        with (self.folder / f"{name}.log").open("ab") as out:
            self.procs[name] = subprocess.Popen(cmd, env=full_env, stdout=out,
                                                stderr=subprocess.STDOUT)

    def kill(self, name: str) -> None:
        """SIGKILL and reap."""
        proc = self.procs[name]
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)

    def terminate(self, names: Iterable[str], timeout_s: float = 30.0) -> None:
        """SIGTERM, wait, then SIGKILL what is left."""
        names = list(names)
        for name in names:
            if self.procs[name].poll() is None:
                self.procs[name].terminate()
        deadline = time.monotonic() + timeout_s
        for name in names:
            try:
                self.procs[name].wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.kill(name)

    def log(self, name: str) -> str:
        """What the process wrote so far."""
        path = self.folder / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""


class StoredCounter:
    """Samples the number of this run's stored passages, to time recovery after each fault."""

    def __init__(self, url: str, nodes: list[str]) -> None:
        from sqlalchemy import create_engine

        args = {"timeout": 0.5} if url.startswith("sqlite") else {"connect_timeout": 1}
        self.engine = create_engine(url, connect_args=args, pool_pre_ping=True)
        self.nodes = nodes
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stored-counter", daemon=True)

    def count(self) -> int | None:
        """Passages of this run stored so far, None while the database does not answer."""
        from sqlalchemy import func, select

        from central.db import Passage

        try:
            with self.engine.connect() as conn:
                return int(conn.scalar(select(func.count()).select_from(Passage).where(
                    Passage.node_id.in_(self.nodes))) or 0)
        except Exception:  # noqa: BLE001 - the database is one of the things taken away
            return None

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            n = self.count()
            if n is not None:
                self.samples.append((time.monotonic(), n))

    def latest(self) -> int:
        """The last sampled count."""
        return self.samples[-1][1] if self.samples else 0

    def resumed_after(self, t: float, before: int, total: int) -> float | None:
        """Seconds from `t` until the count first grew past `before` (0 if all were stored)."""
        for at, n in self.samples:
            if at >= t and (n > before or n >= total):
                return max(0.0, at - t)
        return None

    def start(self) -> StoredCounter:
        """Start sampling."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop sampling and close the connections."""
        self._stop.set()
        self._thread.join(5)
        self.engine.dispose()


@dataclass(frozen=True)
class BenchPlan:
    """How `run_faults` runs: sizes, rates and fault durations."""

    passages: int = 10_000
    edges: int = 4
    workers: int = 1
    rate: float = 100.0
    broker_down_s: float = 3.0
    central_down_s: float = 2.0
    edge_down_s: float = 2.0
    db_down_s: float = 5.0
    partition_s: float = 12.0
    kinds: tuple[str, ...] = FAULT_KINDS
    settle_timeout_s: float = 120.0
    images_per_passage: int = 2  # evidence JPEGs each passage names and uploads; 0: none


class _Faults:
    """Injects each kind of fault into the running bench."""

    def __init__(self, plan: BenchPlan, broker: Mosquitto, procs: Processes, workers: list[str],
                 edges: list[str], db_url: str, pg: TempPostgres | None) -> None:
        self.plan, self.broker, self.procs = plan, broker, procs
        self.workers, self.edges, self.db_url, self.pg = workers, edges, db_url, pg
        self.count = 0

    def inject(self, kind: str) -> str:
        """Run one fault to its end; returns what it hit."""
        self.count += 1
        plan = self.plan
        if kind == "broker_kill":
            self.broker.signal(signal.SIGKILL)
            time.sleep(plan.broker_down_s)
            self.broker.start()
            return "mosquitto"
        if kind == "central_kill":
            target = self.workers[self.count % len(self.workers)]
            http = ["http"] if "http" in self.procs.procs else []
            for name in (target, *http):
                self.procs.kill(name)
            time.sleep(plan.central_down_s)
            for name in (target, *http):
                self.procs.start(name)
            return " + ".join((target, *http))
        if kind == "edge_kill":
            target = self.edges[self.count % len(self.edges)]
            if self.procs.procs[target].poll() is not None:
                return f"{target} (already done)"
            self.procs.kill(target)
            time.sleep(plan.edge_down_s)
            self.procs.start(target)
            return target
        if kind == "partition":
            self.broker.signal(signal.SIGSTOP)
            time.sleep(plan.partition_s)
            self.broker.signal(signal.SIGCONT)
            return "mosquitto SIGSTOP"
        if kind == "db_outage":
            return self._db_outage()
        raise ValueError(f"unknown fault kind {kind!r}")

    def _db_outage(self) -> str:
        down = self.plan.db_down_s
        if self.db_url.startswith("sqlite"):
            conn = sqlite3.connect(self.db_url.split("///", 1)[1], timeout=30)
            conn.execute("BEGIN EXCLUSIVE")
            time.sleep(down)
            conn.rollback()
            conn.close()
            return "SQLite exclusive lock"
        if self.pg is not None:
            self.pg.stop()
            time.sleep(down)
            self.pg.start()
            return "PostgreSQL stop -m fast + start"
        from sqlalchemy import create_engine, text

        admin = create_engine(self.db_url, isolation_level="AUTOCOMMIT")
        deadline = time.monotonic() + down
        with admin.connect() as conn:
            while time.monotonic() < deadline:
                conn.execute(text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname ="
                    " current_database() AND pid <> pg_backend_pid()"))
                time.sleep(0.2)
        admin.dispose()
        return "pg_terminate_backend"


def _fresh_pg_database(url: str, run_id: str) -> str:
    """A new database for the run in the cluster at `url`."""
    from sqlalchemy import create_engine, text

    name = f"smartgate_faults_{run_id}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    admin.dispose()
    return url.rsplit("/", 1)[0] + f"/{name}"


def _stored(url: str, nodes: list[str]) -> tuple[list[str], dict[str, int]]:
    """Stored event ids of the run and rules decisions per event id."""
    from central import store
    from central.db import make_engine, session_factory

    engine = make_engine(url)
    with session_factory(engine)() as session:
        found = store.passages_of_nodes(session, nodes)
    engine.dispose()
    return found


def _evidence(url: str, stored: list[str], root: Path | None):  # type: ignore[no-untyped-def]
    """Whether every stored passage has all its images at central with matching hashes."""
    from central.db import make_engine, session_factory
    from central.evidence import records
    from central.evidence.store import FilesystemEvidenceStore

    if root is None:
        return records.PassagesCheck(0, 0, 0)
    engine = make_engine(url)
    with session_factory(engine)() as session:
        found = records.check_passages(session, FilesystemEvidenceStore(root), stored)
    engine.dispose()
    return found


def _duplicates_seen(log_text: str) -> int:
    """Redeliveries a worker deduplicated, from its final stats line (0 if it was killed)."""
    total = 0
    for line in log_text.splitlines():
        if "stopped:" in line and "'duplicate': " in line:
            total += int(line.split("'duplicate': ")[1].split(",")[0].rstrip("}"))
    return total


def run_faults(plan: BenchPlan, folder: Path, database_url: str | None = None,
               postgres_temp: bool = False, show_progress: bool = False) -> FaultBench:
    """Run the bench with its files in `folder` (logs, spools, SQLite); returns its numbers."""
    run_id = uuid.uuid4().hex[:8]
    # mosquitto and postgres run as their own users: their state lives in a folder they can
    # reach whatever the permissions of `folder`'s parents
    state = Path(tempfile.mkdtemp(prefix="smartgate-faults-"))
    state.chmod(0o755)
    try:
        return _run(plan, folder, state, run_id, database_url, postgres_temp, show_progress)
    finally:
        shutil.rmtree(state, ignore_errors=True)


@dataclass
class _Stack:
    """What one run started: database, broker, ingest workers, simulated edges."""

    url: str
    pg: TempPostgres | None
    broker: Mosquitto
    procs: Processes
    workers: list[str]
    edges: list[str]
    nodes: list[str]
    counter: StoredCounter
    evidence_dir: Path | None = None


def _start_stack(plan: BenchPlan, folder: Path, state: Path, run_id: str,
                 database_url: str | None, postgres_temp: bool) -> _Stack:
    """Database (migrated), mosquitto, `central ingest` workers, then the simulated edges."""
    from central.db import make_engine, upgrade_database

    pg = None
    if postgres_temp:
        pg = TempPostgres(state / "pg")
        pg.start()
        database_url = _fresh_pg_database(pg.url, run_id)
    elif database_url and not database_url.startswith("sqlite"):
        database_url = _fresh_pg_database(database_url, run_id)
    url = database_url or f"sqlite:///{folder / 'central.db'}"
    engine = make_engine(url)
    upgrade_database(engine)
    engine.dispose()
    broker = Mosquitto(state / "mosquitto").start()
    procs = Processes(folder)
    py = [sys.executable, "-m"]
    workers = [f"w{k}" for k in range(1, plan.workers + 1)]
    central_env = {"SMARTGATE_CENTRAL_INGEST_SQLITE_BUSY_S": "1",
                   "SMARTGATE_CENTRAL_MQTT_CLIENT_ID": f"faults-{run_id}"}
    shared = [] if plan.workers > 1 else ["--no-shared"]
    for w in workers:
        procs.start(w, [*py, "smartgate.cli", "central", "ingest", "--worker-id", w,
                        "--database-url", url, "--mqtt-port", str(broker.port), *shared],
                    central_env)
    edges = [f"e{k}" for k in range(1, plan.edges + 1)]
    nodes = [f"f{run_id}-{e}" for e in edges]
    counts = [plan.passages // plan.edges + (k < plan.passages % plan.edges)
              for k in range(plan.edges)]
    counter = StoredCounter(url, nodes).start()
    evidence_args: list[str] = []
    tokens: dict[str, str] = {}
    if plan.images_per_passage:
        central_url, tokens = _start_evidence_http(procs, url, folder, nodes)
        evidence_args = ["--central-url", central_url, "--images", str(plan.images_per_passage)]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not all(
            "connected to" in procs.log(w) for w in workers):
        time.sleep(0.1)
    for e, node, n in zip(edges, nodes, counts, strict=True):
        procs.start(e, [*py, "tools.bench.edge_sim", "--run-id", run_id, "--node", node,
                        "--count", str(n), "--rate", str(plan.rate / plan.edges),
                        "--data-dir", str(folder / e), "--mqtt-port", str(broker.port),
                        *evidence_args],
                   {"SMARTGATE_EDGE_EVIDENCE__TOKEN": tokens[node]} if tokens else None)
    return _Stack(url, pg, broker, procs, workers, edges, nodes, counter,
                  folder / "evidence" if plan.images_per_passage else None)


def _start_evidence_http(procs: Processes, url: str, folder: Path,
                         nodes: list[str]) -> tuple[str, dict[str, str]]:
    """Central's HTTP side (the evidence upload endpoint) as process `http`, and per simulated
    node an operator account named after it with an edge-ingest token; returns (URL, tokens by
    node)."""
    import secrets

    import httpx
    from pydantic import SecretStr

    from central import auth_store
    from central.auth import auth_config
    from central.config import CentralSettings
    from central.db import make_engine, session_factory

    secret = secrets.token_urlsafe(32)
    settings = CentralSettings(database_url=url, data_dir=folder, secret_key=SecretStr(secret))
    tokens = {node: secrets.token_urlsafe(24) for node in nodes}
    engine = make_engine(url)
    with session_factory(engine)() as session, session.begin():
        for node, token in tokens.items():
            user = auth_store.add_user(session, node, secrets.token_urlsafe(16), "operator")
            auth_store.add_api_token(session, user, "faults bench",
                                     auth_config(settings).digest("token", token), "edge-ingest")
    engine.dispose()
    port = free_port()
    procs.start("http", [sys.executable, "-m", "tools.bench.evidence", "--port", str(port)], {
        "SMARTGATE_CENTRAL_DATABASE_URL": url, "SMARTGATE_CENTRAL_SECRET_KEY": secret,
        "SMARTGATE_CENTRAL_DATA_DIR": str(folder)})
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/api/health", timeout=1).status_code == 200:
                return base, tokens
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"central's HTTP side did not start: {procs.log('http')[-2000:]}")


def _inject_on_schedule(plan: BenchPlan, stack: _Stack, t0: float, bar: Any) -> list[Fault]:
    """Each fault of the plan at its moment, evenly spread over the sending time."""
    injector = _Faults(plan, stack.broker, stack.procs, stack.workers, stack.edges, stack.url,
                       stack.pg)
    send_s = plan.passages / plan.rate
    schedule = [(k + 1) * send_s / (len(plan.kinds) + 1) for k in range(len(plan.kinds))]
    faults: list[Fault] = []
    for at, kind in zip(schedule, plan.kinds, strict=True):
        while time.monotonic() - t0 < at:
            time.sleep(0.2)
            bar.update(stack.counter.latest() - bar.n)
        fault = Fault(kind, "", time.monotonic(), stored_before=stack.counter.latest())
        log.info("fault: %s", kind)
        fault.target = injector.inject(kind)
        fault.ended = time.monotonic()
        fault.stored_before = max(fault.stored_before, stack.counter.count() or 0)
        faults.append(fault)
    return faults


def _settle(plan: BenchPlan, stack: _Stack, bar: Any) -> None:
    """Wait until every edge finished and everything is stored, or nothing moved for a while."""
    last_change, last = time.monotonic(), -1
    while time.monotonic() - last_change < plan.settle_timeout_s:
        done = all(stack.procs.procs[e].poll() is not None for e in stack.edges)
        n = stack.counter.latest()
        bar.update(n - bar.n)
        if n != last:
            last_change, last = time.monotonic(), n
        if done and n >= plan.passages:
            break
        time.sleep(0.2)
    time.sleep(1.0)  # a late second copy would show up now


def _stop_stack(stack: _Stack) -> None:
    stack.procs.terminate(stack.edges, timeout_s=5)
    stack.procs.terminate(stack.workers + (["http"] if "http" in stack.procs.procs else []))
    stack.counter.stop()
    stack.broker.signal(signal.SIGCONT)
    stack.broker.signal(signal.SIGKILL)


def _report(plan: BenchPlan, stack: _Stack, folder: Path, faults: list[Fault], t0: float,
            elapsed: float) -> FaultBench:
    """Reconcile what the edges spooled with what central stored; the bench's numbers."""
    spooled: list[str] = []
    for e in stack.edges:
        path = folder / e / "spooled.log"
        if path.exists():
            spooled += path.read_text().split()
    stored, decisions = _stored(stack.url, stack.nodes)
    evidence = _evidence(stack.url, stored, stack.evidence_dir)
    if stack.pg is not None:
        stack.pg.stop()
    result = reconcile(spooled, stored, decisions)
    for fault in faults:
        fault.recovery_s = stack.counter.resumed_after(fault.ended, fault.stored_before,
                                                       result.sent)
    recoveries = [f.recovery_s for f in faults if f.recovery_s is not None]
    return FaultBench(
        database="postgresql" if not stack.url.startswith("sqlite") else "sqlite",
        passages_sent=result.sent, passages_stored=result.stored, lost=result.lost,
        duplicated=result.duplicated, unexpected=result.unexpected,
        redeliveries=sum(_duplicates_seen(stack.procs.log(w)) for w in stack.workers),
        faults_injected=[{"kind": k, "count": sum(f.kind == k for f in faults)}
                         for k in plan.kinds],
        recovery_s_max=round(max(recoveries, default=0.0), 2),
        elapsed_s=round(elapsed, 1),
        faults=[{"kind": f.kind, "target": f.target, "at_s": round(f.started - t0, 1),
                 "down_s": round(f.ended - f.started, 1),
                 "recovery_s": None if f.recovery_s is None else round(f.recovery_s, 2)}
                for f in faults],
        evidence_images=evidence.images, evidence_missing=evidence.missing,
        evidence_corrupt=evidence.corrupt,
    )


def _run(plan: BenchPlan, folder: Path, state: Path, run_id: str, database_url: str | None,
         postgres_temp: bool, show_progress: bool) -> FaultBench:
    from tqdm import tqdm

    stack = _start_stack(plan, folder, state, run_id, database_url, postgres_temp)
    t0 = time.monotonic()
    bar = tqdm(total=plan.passages, unit="passage", desc="stored", disable=not show_progress)
    try:
        faults = _inject_on_schedule(plan, stack, t0, bar)
        _settle(plan, stack, bar)
    finally:
        bar.close()
        _stop_stack(stack)
    return _report(plan, stack, folder, faults, t0, time.monotonic() - t0)
