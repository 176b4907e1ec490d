"""`smartgate bench central`: declarations loaded, passages published over a real broker, decided.

Loads M generated declarations into the database, starts a broker (mosquitto subprocess or the
embedded amqtt), runs central's ingest with the decision service in this process, and publishes
N simulated passages of known declarations as an edge would (QoS 1), keeping at most `--window`
passages in flight (throughput), or at a steady `--rate` passages per second (latency at a given
load). Latency is publish → lane command received back over the broker, so it covers ingest,
lookup, decision, commit and command publish. The simulated edge runs in its own process;
`cpu_ms_per_passage` is central's CPU time (this process: ingest, decisions, MQTT; not the edge,
not mosquitto) per passage: the number to compare between machines, since passages/s on a
shared machine depends on what else runs.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from multiprocessing.connection import Connection
from pathlib import Path

from smartgate.cli import CommandGroups
from tools.broker import mosquitto_binary

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CentralBench:
    """Numbers printed by `smartgate bench central`."""

    passages: int
    declarations: int
    broker: str
    database: str
    load_s: float
    declarations_per_s: float
    passages_per_s: float
    p50_ms: float
    p99_ms: float
    lost: int
    actions: dict[str, int]
    rate: float | None = None
    cpu_ms_per_passage: float = 0.0
    workers: int = 1


@contextmanager
def broker(kind: str, folder: Path) -> Iterator[int]:
    """A loopback broker for the benchmark; yields its port."""
    from tools.broker import EmbeddedBroker, Mosquitto, free_port

    port = free_port()
    if kind == "amqtt":
        embedded = EmbeddedBroker("127.0.0.1", port).start()
        try:
            yield port
        finally:
            embedded.stop()
        return
    mosquitto = Mosquitto(folder, port=port, persistent=False).start()
    try:
        yield port
    finally:
        mosquitto.stop()


def _load(sessions, m: int, wanted: set[int], seed: int, show_progress: bool):  # type: ignore[no-untyped-def]
    """Import M generated declarations; returns (the wanted ones by index, seconds)."""
    from tqdm import tqdm

    from central import store
    from tools.synth.declarations import generate_declarations

    kept = {}

    def stream():  # type: ignore[no-untyped-def]
        for i, decl in enumerate(generate_declarations(m, seed)):
            if i in wanted:
                kept[i] = decl
            yield decl

    t0 = time.perf_counter()
    with (
        tqdm(total=m, unit="decl", desc="declarations", disable=not show_progress) as bar,
        sessions() as session,
        session.begin(),
    ):
        store.import_declarations(session, stream(), batch_size=10_000, progress=bar.update)
    return kept, time.perf_counter() - t0


class _Watcher:
    """The edge's side: publishes passages and times the lane commands coming back."""

    def __init__(self, port: int, window: int) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        from smartgate import contract

        self.window = window
        self.sent: dict[str, float] = {}
        self.latency: list[float] = []
        self.actions: Counter[str] = Counter()
        self.cond = threading.Condition()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-edge")
        self.client.max_inflight_messages_set(max(20, window))
        self.client.max_queued_messages_set(0)
        self.client.on_message = self._on_command
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(f"{contract.TOPIC_ROOT}/+/+/command", qos=1)
        self.client.loop_start()

    def _on_command(self, _client, _userdata, msg) -> None:  # type: ignore[no-untyped-def]
        now = time.perf_counter()
        command = json.loads(msg.payload)  # central's own output: no need to validate here
        with self.cond:
            start = self.sent.get(command.get("passage_event_id") or "")
            if start is not None:
                self.latency.append(now - start)
                self.actions[command["action"]] += 1
            self.cond.notify_all()

    def publish(self, topic: str, event_id: str, payload: bytes, at: float | None = None) -> None:
        """Publish one passage once fewer than `window` are waiting for their command, or, with
        `at` (a perf_counter time), at that moment whatever is in flight."""
        with self.cond:
            if at is None:
                while len(self.sent) - len(self.latency) >= self.window:
                    self.cond.wait(1.0)
            else:
                while (wait := at - time.perf_counter()) > 0:
                    self.cond.wait(wait)
            self.sent[event_id] = time.perf_counter()
        self.client.publish(topic, payload, qos=1)

    def wait_all(self, idle_timeout_s: float) -> None:
        """Wait until every passage got its command, or nothing arrived for `idle_timeout_s`."""
        with self.cond:
            while len(self.latency) < len(self.sent):
                seen = len(self.latency)
                self.cond.wait(idle_timeout_s)
                if len(self.latency) == seen:
                    log.warning("no command for %.0f s; %d passages unanswered", idle_timeout_s,
                                len(self.sent) - seen)
                    return

    def stop(self) -> None:
        """Disconnect."""
        self.client.disconnect()
        self.client.loop_stop()


def _edge(
    port: int, window: int, rate: float | None, messages: list[tuple[str, str, bytes]],
    results: Connection,
) -> None:
    """The simulated edge (own process): publish every passage, send back (latencies,
    actions, seconds from the first publish to the last command)."""
    watcher = _Watcher(port, window if rate is None else len(messages))
    t0 = time.perf_counter()
    for n, (topic, event_id, payload) in enumerate(messages):
        watcher.publish(topic, event_id, payload, None if rate is None else t0 + n / rate)
    watcher.wait_all(idle_timeout_s=30)
    elapsed = time.perf_counter() - t0
    watcher.stop()
    results.send((watcher.latency, dict(watcher.actions), elapsed))


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _ingest(sessions, port: int, batch: int, client_id: str, shared: bool):  # type: ignore[no-untyped-def]
    """Central's ingest with its decision service, connected to the bench broker."""
    from central.decisions import DecisionService
    from central.domain.rules import RuleSet
    from central.ingest import MqttIngest

    service = DecisionService(RuleSet(version="bench"))
    ingest = MqttIngest(sessions, "127.0.0.1", port, client_id=client_id,
                        on_passage=service.decide_passage, batch_size=batch,
                        on_batch=service.prefetch, shared=shared)
    ingest.start()
    if not ingest.connected.wait(15):
        raise RuntimeError(f"central ingest {client_id} could not connect to the broker")
    return ingest


def _worker(url: str, port: int, batch: int, name: str, control: Connection) -> None:
    """One central ingest process (`--workers N`): MQTT 5 shared subscription, its own engine;
    says "ready", ingests until told to stop, then sends back its CPU seconds meanwhile."""
    from central.config import CentralSettings
    from central.db import session_factory
    from central.worker import ingest_engine

    engine = ingest_engine(CentralSettings(database_url=url))
    ingest = _ingest(session_factory(engine), port, batch, name, shared=True)
    cpu0 = time.process_time()
    control.send("ready")
    control.recv()  # stop
    cpu_s = time.process_time() - cpu0
    ingest.stop()
    engine.dispose()
    control.send(cpu_s)


@contextmanager
def _central(
    sessions, url: str, port: int, batch: int, workers: int  # type: ignore[no-untyped-def]
) -> Iterator[Callable[[], float]]:
    """Central's ingest for the run: in this process (one worker) or `workers` processes
    sharing the subscription. Yields a function to call once the passages are through: it
    returns central's CPU seconds since the yield (and stops the worker processes)."""
    if workers == 1:
        ingest = _ingest(sessions, port, batch, "bench-central", shared=False)
        cpu0 = time.process_time()
        try:
            yield lambda: time.process_time() - cpu0
        finally:
            ingest.stop()
        return
    context = multiprocessing.get_context("spawn")
    links, procs = [], []
    for k in range(1, workers + 1):
        ours, theirs = context.Pipe()
        proc = context.Process(target=_worker, args=(url, port, batch, f"bench-central-w{k}",
                                                     theirs), name=f"bench-central-w{k}")
        proc.start()
        links.append(ours)
        procs.append(proc)
    spent: list[float] = []

    def cpu_s() -> float:
        if not spent:  # once: stop the workers and add up what they used
            for link in links:
                link.send("stop")
            spent.extend(link.recv() for link in links)
        return sum(spent)

    try:
        for link, proc in zip(links, procs, strict=True):
            if not link.poll(60) or link.recv() != "ready":
                raise RuntimeError(f"central worker {proc.name} did not start")
        yield cpu_s
        cpu_s()
    finally:
        for proc in procs:
            proc.join(30)
            if proc.is_alive():
                proc.kill()


def run_bench(
    passages: int,
    declarations: int,
    database_url: str | None = None,
    broker_kind: str = "mosquitto",
    window: int = 50,
    batch: int = 50,
    seed: int = 0,
    show_progress: bool = False,
    rate: float | None = None,
    workers: int = 1,
) -> CentralBench:
    """Run the benchmark; a temporary SQLite database when no URL is given. With `rate`,
    passages are published at that steady rate (passages/s) instead of as fast as `window`
    allows. `workers` > 1 runs central's ingest as that many processes sharing the MQTT
    subscription (MQTT 5 shared subscriptions), as `central run --workers N` does."""
    from central import store
    from central.db import make_engine, session_factory, upgrade_database
    from smartgate import contract
    from tools.synth.declarations import passage_for

    rng = random.Random(seed + 1)
    with tempfile.TemporaryDirectory(prefix="smartgate-bench-") as tmp:
        folder = Path(tmp)
        url = database_url or f"sqlite:///{folder / 'central.db'}"
        engine = make_engine(url)
        upgrade_database(engine)
        sessions = session_factory(engine)
        picks = [rng.randrange(declarations) for _ in range(passages)]
        kept, load_s = _load(sessions, declarations, set(picks), seed, show_progress)
        lanes = [f"L{k}" for k in range(1, 5)]
        events = [
            passage_for(kept[i], rng, lane=lanes[n % 4], plate_errors=rng.choice((0, 1, 2)))
            for n, i in enumerate(picks)
        ]
        messages = [
            (contract.passage_topic(e.site, e.lane), e.event_id, e.to_json()) for e in events
        ]
        with broker(broker_kind, folder) as port, _central(sessions, url, port, batch,
                                                           workers) as central_cpu_s:
            # the simulated edge in its own process: central's throughput is not the edge's
            context = multiprocessing.get_context("spawn")
            results, sender = context.Pipe(duplex=False)
            edge = context.Process(target=_edge, args=(port, window, rate, messages, sender),
                                   name="bench-edge", daemon=True)
            edge.start()
            latency, actions, elapsed = results.recv()
            cpu_s = central_cpu_s()
            edge.join(30)
        with sessions() as session:
            decided = store.count_decided(session, [e.event_id for e in events])
        engine.dispose()
    return CentralBench(
        passages=passages,
        declarations=declarations,
        broker=broker_kind,
        database=engine.dialect.name,
        load_s=round(load_s, 1),
        declarations_per_s=round(declarations / load_s) if load_s else 0.0,
        passages_per_s=round(len(latency) / elapsed, 1),
        p50_ms=round(_percentile(latency, 0.5) * 1000, 1),
        p99_ms=round(_percentile(latency, 0.99) * 1000, 1),
        lost=passages - decided,
        actions=actions,
        rate=rate,
        cpu_ms_per_passage=round(cpu_s * 1000 / max(1, len(latency)), 2),
        workers=workers,
    )


def bench_central(args: argparse.Namespace) -> int:
    """Run and print the central benchmark."""
    kind = args.broker or ("mosquitto" if mosquitto_binary() else "amqtt")
    if args.workers > 1 and kind == "amqtt":
        print("error: --workers needs mosquitto (MQTT 5 shared subscriptions)", file=sys.stderr)
        return 2
    with ExitStack() as stack:
        url = args.database_url
        if args.postgres_temp:
            url = stack.enter_context(_temp_postgres())
        result = run_bench(
            args.passages, args.declarations, url, kind, args.window, args.batch,
            args.seed, show_progress=sys.stderr.isatty(), rate=args.rate, workers=args.workers,
        )
    print(f"declarations: {result.declarations} loaded in {result.load_s} s "
          f"({result.declarations_per_s}/s) into {result.database}; "
          f"{result.workers} ingest worker(s)")
    pace = f"at a steady {result.rate}/s" if result.rate else f"window {args.window}"
    print(f"passages: {result.passages} over {result.broker} ({pace}): "
          f"{result.passages_per_s} passages/s ingested+matched, "
          f"{result.cpu_ms_per_passage} ms of central's CPU per passage")
    print(f"publish -> lane command: p50 {result.p50_ms} ms, p99 {result.p99_ms} ms")
    print(f"lost: {result.lost}; commands: {result.actions}")
    if args.json:
        print(json.dumps(asdict(result)))
    return 0 if result.lost == 0 else 1


@contextmanager
def _temp_postgres() -> Iterator[str]:
    """A throwaway PostgreSQL cluster for the run; yields its URL."""
    from tools.bench.faults import TempPostgres

    with tempfile.TemporaryDirectory(prefix="smartgate-bench-pg-") as tmp:
        server = TempPostgres(Path(tmp))
        server.start()
        try:
            yield server.url
        finally:
            server.stop()


def _positive_rate(text: str) -> float:
    try:
        rate = float(text)
    except ValueError:
        rate = 0.0
    if not 0 < rate <= 100_000:
        raise argparse.ArgumentTypeError(f"--rate must be passages/s in (0, 100000], got {text!r}")
    return rate


def register(commands: CommandGroups) -> None:
    """Attach `smartgate bench central`."""
    bench = commands.bench.add_parser("central", help="central ingest + matching throughput")
    bench.add_argument("--passages", type=int, default=100_000, help="passages to publish")
    bench.add_argument("--declarations", type=int, default=1_000_000, help="declarations")
    db = bench.add_mutually_exclusive_group()
    db.add_argument("--database-url", help="SQLAlchemy URL (default: a temporary SQLite)")
    db.add_argument("--postgres-temp", action="store_true",
                    help="start a throwaway PostgreSQL cluster for the run (as the postgres "
                    "user when root)")
    bench.add_argument("--workers", type=int, default=1,
                       help="central ingest processes sharing the subscription (MQTT 5 shared "
                       "subscriptions, mosquitto); 1: the ingest runs in the bench process")
    bench.add_argument("--broker", choices=("mosquitto", "amqtt"),
                       help="default: mosquitto if installed, else amqtt")
    bench.add_argument("--window", type=int, default=50,
                       help="most passages published and not yet answered (default 50)")
    bench.add_argument("--batch", type=int, default=50, help="ingest messages per commit")
    bench.add_argument("--rate", type=_positive_rate, default=None,
                       help="publish at this steady rate (passages/s) and report latency at it "
                       "(default: as fast as --window allows)")
    bench.add_argument("--seed", type=int, default=0)
    bench.add_argument("--json", action="store_true", help="last line: one JSON object")
    bench.set_defaults(func=bench_central)
