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
from collections.abc import Iterator
from contextlib import contextmanager
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
) -> CentralBench:
    """Run the benchmark; a temporary SQLite database when no URL is given. With `rate`,
    passages are published at that steady rate (passages/s) instead of as fast as `window`
    allows."""
    from central import store
    from central.db import make_engine, session_factory, upgrade_database
    from central.decisions import DecisionService
    from central.domain.rules import RuleSet
    from central.ingest import MqttIngest
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
        service = DecisionService(RuleSet(version="bench"))
        with broker(broker_kind, folder) as port:
            ingest = MqttIngest(sessions, "127.0.0.1", port, client_id="bench-central",
                                on_passage=service.decide_passage, batch_size=batch,
                                on_batch=service.prefetch)
            ingest.start()
            if not ingest.connected.wait(15):
                raise RuntimeError("central ingest could not connect to the broker")
            # the simulated edge in its own process: central's throughput is not the edge's
            context = multiprocessing.get_context("spawn")
            results, sender = context.Pipe(duplex=False)
            edge = context.Process(target=_edge, args=(port, window, rate, messages, sender),
                                   name="bench-edge", daemon=True)
            cpu0 = time.process_time()
            edge.start()
            latency, actions, elapsed = results.recv()
            cpu_s = time.process_time() - cpu0
            edge.join(30)
            ingest.stop()
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
    )


def bench_central(args: argparse.Namespace) -> int:
    """Run and print the central benchmark."""
    kind = args.broker or ("mosquitto" if mosquitto_binary() else "amqtt")
    result = run_bench(
        args.passages, args.declarations, args.database_url, kind, args.window, args.batch,
        args.seed, show_progress=sys.stderr.isatty(), rate=args.rate,
    )
    print(f"declarations: {result.declarations} loaded in {result.load_s} s "
          f"({result.declarations_per_s}/s) into {result.database}")
    pace = f"at a steady {result.rate}/s" if result.rate else f"window {args.window}"
    print(f"passages: {result.passages} over {result.broker} ({pace}): "
          f"{result.passages_per_s} passages/s ingested+matched, "
          f"{result.cpu_ms_per_passage} ms of central's CPU per passage")
    print(f"publish -> lane command: p50 {result.p50_ms} ms, p99 {result.p99_ms} ms")
    print(f"lost: {result.lost}; commands: {result.actions}")
    if args.json:
        print(json.dumps(asdict(result)))
    return 0 if result.lost == 0 else 1


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
    bench.add_argument("--database-url", help="SQLAlchemy URL (default: a temporary SQLite)")
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
