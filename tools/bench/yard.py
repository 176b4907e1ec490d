"""`smartgate bench yard`: a simulated day at the gate through a real broker and central.

The simulation (ground truth): N trucks arrive over one day with a daily profile (night lull,
morning and afternoon peaks) plus a harvest peak of fresh-fruit trucks; each passes the yard
entry camera, waits in the yard, is called (fresh goods first, then by arrival) to one of c
inspection lanes (drive 0.5-2 min, service log-normal around 4 min, a few long physical
inspections), then crosses at the border exit 4-15 min later. About 1% turn back from the yard
through the yard exit. Every passage's plate read is wrong at `--misread-rate` (the reader's
real top-1 error on vn-real is about 3%; default 4%): mostly look-alike substitutions, some
arbitrary ones and dropped province characters; about half the misreads keep the truth among
their alternatives.

Passages are published in the order their edges would send them (at the end of each passage,
QoS 1; with `--outage-min` the yard-entry edge E2 is offline from 09:30 and sends what it held
back when it returns) to a real broker (mosquitto, else the embedded amqtt); central's ingest
stores, decides
and links them exactly as in production (`JourneyHook`). Every `--sample-min` simulated minutes
the run waits for the ingest to catch up and compares central's live occupancy and forecast with
the truth at that moment; at the end it compares every journey. The last stdout line is one
JSON object (see `YardBench`).
"""

from __future__ import annotations

import argparse
import heapq
import json
import logging
import math
import random
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from smartgate.cli import CommandGroups
from tools.bench.central import broker
from tools.broker import mosquitto_binary
from tools.synth.declarations import CN_LETTERS, CN_PREFIXES, VN_PROVINCES, VN_SERIES

log = logging.getLogger(__name__)

DAY = datetime(2026, 11, 23, tzinfo=UTC)
SITE = "huunghi"
# arrivals per hour of day (relative): quiet night, morning and afternoon peaks
PROFILE = (1, 1, 1, 1, 2, 4, 7, 9, 10, 10, 9, 8, 7, 8, 9, 9, 8, 7, 5, 4, 3, 2, 2, 1)
HARVEST_PEAK_H, HARVEST_WIDTH_H, HARVEST_SHARE = 10.0, 1.5, 0.2
LOOKALIKE = {"0": "OD", "O": "0", "D": "0", "1": "I", "I": "1", "8": "B", "B": "8", "5": "S",
             "S": "5", "2": "Z", "Z": "2", "6": "G", "G": "6", "4": "A", "A": "4"}  # fmt: skip
ZONES = ("yard", "inspection_area")
OUTAGE_AT = DAY + timedelta(hours=9, minutes=30)


@dataclass(frozen=True)
class YardBench:
    """Numbers printed by `smartgate bench yard`."""

    trucks: int
    passages: int
    lanes: int
    broker: str
    misread_rate: float
    misreads: int
    journeys: int
    journeys_exact: int
    journeys_exact_rate: float
    journeys_swapped: int
    passages_misattached: int
    journeys_split: int
    ambiguous: int
    occupancy_max_abs_error: int
    occupancy_mean_abs_error: float
    occupancy_samples: int
    outage_min: float
    occupancy_max_abs_error_in_outage: int
    peak_yard_occupancy: int
    dwell_p50_error_s: float
    dwell_p50_truth_s: float
    forecast_mae_s: float
    forecast_naive_mae_s: float
    forecast_naive_per_lane_mae_s: float
    forecast_samples: int
    lost: int
    passages_per_s: float
    elapsed_s: float


@dataclass
class Passage:
    """One simulated passage: truth and what the reader saw."""

    truck: int
    role: str
    lane: str
    start: datetime
    end: datetime
    read: str = ""
    alternatives: tuple[str, ...] = ()
    event_id: str = ""


@dataclass
class Truck:
    """One simulated truck and its true journey."""

    idx: int
    plate: str
    perishable: bool
    arrive: datetime
    turn_back: datetime | None = None
    called: datetime | None = None
    inspect_start: datetime | None = None
    inspect_end: datetime | None = None
    lane_no: int = 0
    passages: list[Passage] = field(default_factory=list)

    def left_yard(self) -> datetime | None:
        """When the truck left the yard zone (its inspection or yard-exit passage ended)."""
        out = [p.end for p in self.passages if p.role in ("inspection", "yard_exit")]
        return out[0] if out else None

    def zone_at(self, t: datetime) -> str | None:
        """The zone the truck is in at `t` (zone changes when a passage ends)."""
        by_role = {p.role: p for p in self.passages}
        entry = by_role["yard_entry"]
        if t < entry.end:
            return None
        left = self.left_yard()
        if left is None or t < left:
            return "yard"
        insp, exit_ = by_role.get("inspection"), by_role.get("border_exit")
        if insp is not None and t >= insp.end and (exit_ is None or t < exit_.end):
            return "inspection_area"
        return None


def _plates(n: int, rng: random.Random) -> list[str]:
    plates: set[str] = set()
    while len(plates) < n:
        if rng.random() < 0.45:
            tail = "".join(rng.choice(CN_LETTERS) if i == 0 or rng.random() < 0.15
                           else str(rng.randrange(10)) for i in range(5))  # fmt: skip
            plates.add(rng.choice(CN_PREFIXES) + tail)
        else:
            plates.add(f"{rng.choice(VN_PROVINCES)}{rng.choice(VN_SERIES)}"
                       f"{rng.randrange(100000):05d}")  # fmt: skip
    out = sorted(plates)
    rng.shuffle(out)
    return out


def _arrivals(n: int, rng: random.Random) -> list[datetime]:
    total = sum(PROFILE)
    out = []
    for _ in range(n):
        if rng.random() < HARVEST_SHARE:
            hour = min(23.99, max(0.0, rng.gauss(HARVEST_PEAK_H, HARVEST_WIDTH_H)))
        else:
            r, hour = rng.random() * total, 0.0
            for h, w in enumerate(PROFILE):
                if r < w:
                    hour = h + r / w
                    break
                r -= w
        out.append(DAY + timedelta(hours=hour))
    return sorted(out)


def misread(plate: str, rng: random.Random) -> str:
    """A plausible wrong read of `plate`: look-alike (60%), arbitrary substitution (25%), or
    the Chinese province character dropped / a look-alike (15%)."""
    chars = list(plate)
    r = rng.random()
    spots = [i for i, c in enumerate(chars) if c in LOOKALIKE]
    if r < 0.6 and spots:
        i = rng.choice(spots)
        chars[i] = rng.choice(LOOKALIKE[chars[i]])
    elif r < 0.85 or not spots:
        i = rng.randrange(len(chars))
        pool = "0123456789" if chars[i].isdigit() else "ABCDEFGHKLMNPRSTUVXYZ"
        chars[i] = rng.choice([c for c in pool if c != chars[i]])
    elif "\u3400" <= chars[0] <= "\u9fff":
        chars = chars[1:]
    else:
        i = rng.choice(spots)
        chars[i] = rng.choice(LOOKALIKE[chars[i]])
    text = "".join(chars)
    return text if text != plate else misread(plate, rng)


def simulate(n: int, seed: int, misread_rate: float, lanes: int) -> list[Truck]:
    """The day's ground truth: trucks with their passages and reads."""
    rng = random.Random(seed)
    plates = _plates(n, rng)
    trucks = []
    for i, at in enumerate(_arrivals(n, rng)):
        perishable = abs((at - DAY).total_seconds() / 3600 - HARVEST_PEAK_H) < 2.5 and (
            rng.random() < 0.5) or rng.random() < 0.05  # fmt: skip
        t = Truck(i, plates[i], perishable, at)
        if rng.random() < 0.01:
            t.turn_back = at + timedelta(minutes=rng.uniform(15, 90))
        trucks.append(t)
    _serve(trucks, lanes, rng)
    for t in trucks:
        secs = timedelta(seconds=rng.uniform(3, 8))
        t.passages.append(Passage(t.idx, "yard_entry", f"E{1 + t.idx % 2}", t.arrive,
                                  t.arrive + secs))  # fmt: skip
        if t.inspect_start is None:
            assert t.turn_back is not None
            t.passages.append(Passage(t.idx, "yard_exit", "YX", t.turn_back, t.turn_back + secs))
            continue
        assert t.inspect_end is not None
        lane = f"L{1 + t.lane_no}"
        t.passages.append(Passage(t.idx, "inspection", lane, t.inspect_start, t.inspect_end))
        out = t.inspect_end + timedelta(minutes=rng.uniform(4, 15))
        t.passages.append(Passage(t.idx, "border_exit", "X1", out, out + secs))
    for t in trucks:
        for p in t.passages:
            _read(p, t.plate, misread_rate, rng)
    return trucks


def _read(p: Passage, plate: str, rate: float, rng: random.Random) -> None:
    if rng.random() < rate:
        p.read = misread(plate, rng)
        alts = [misread(p.read, rng)]
        if rng.random() < 0.5:
            alts.insert(rng.randrange(2), plate)
        p.alternatives = tuple(dict.fromkeys(a for a in alts if a != p.read))
    else:
        p.read = plate
        p.alternatives = (misread(plate, rng),)


def _serve(trucks: list[Truck], lanes: int, rng: random.Random) -> None:
    """Discrete-event simulation of the yard queue and the inspection lanes."""
    events: list[tuple[datetime, int, str, int]] = []
    seq = 0
    for t in trucks:
        heapq.heappush(events, (t.arrive, seq := seq + 1, "arrive", t.idx))
        if t.turn_back is not None:
            heapq.heappush(events, (t.turn_back, seq := seq + 1, "turn_back", t.idx))
    free = list(range(lanes))
    waiting: list[tuple[bool, datetime, int]] = []
    gone: set[int] = set()
    while events:
        now, _, kind, idx = heapq.heappop(events)
        if kind == "arrive":
            t = trucks[idx]
            heapq.heappush(waiting, (not t.perishable, t.arrive, idx))
        elif kind == "turn_back":
            if trucks[idx].called is None:
                gone.add(idx)
            else:
                trucks[idx].turn_back = None
        else:
            free.append(idx)
        while free and waiting:
            _, _, k = heapq.heappop(waiting)
            if k in gone:
                continue
            t = trucks[k]
            lane = free.pop(0)
            t.called = now
            t.inspect_start = now + timedelta(seconds=rng.uniform(30, 120))
            service = rng.lognormvariate(math.log(240), 0.45)
            if rng.random() < 0.03:
                service *= 4  # physical inspection
            t.inspect_end = t.inspect_start + timedelta(seconds=service)
            t.lane_no = lane
            heapq.heappush(events, (t.inspect_end, seq := seq + 1, "lane_free", lane))


def _event(p: Passage) -> bytes:
    from smartgate import contract
    from smartgate.contract import Candidate, PassageEvent, PlateRead

    p.event_id = contract.new_id()
    return PassageEvent(
        event_id=p.event_id, site=SITE, node_id=f"edge-{p.lane}", lane=p.lane, role=p.role,
        started_at=p.start, ended_at=p.end,
        plate_front=PlateRead(
            text=p.read, confidence=0.92 if p.alternatives else 0.6,
            candidates=[Candidate(text=a, confidence=0.2) for a in p.alternatives[:5]]),
    ).to_json()  # fmt: skip


def _declarations(trucks: list[Truck]):  # type: ignore[no-untyped-def]
    from central.domain.declarations import Declaration, DeclarationStatus, Direction

    for t in trucks:
        yield Declaration.model_construct(
            number=f"77{t.idx:010d}", direction=Direction.IMPORT, tractor_plate=t.plate,
            trailer_plate=None, containers=(), seals=(), gross_weight_kg=None,
            window_start=DAY - timedelta(hours=6), window_end=DAY + timedelta(hours=36),
            gate=SITE, lane_group="cargo", status=DeclarationStatus.VALID,
            company=f"company-{t.idx % 7}",
            goods_category="fresh_fruit" if t.perishable else "general",
        )  # fmt: skip


def _site(lanes: int):  # type: ignore[no-untyped-def]
    from central.domain.site import SiteConfig, Zone

    return SiteConfig(site=SITE, zones=[
        Zone(name="yard", capacity=max(50, lanes * 40), enter=["yard_entry"],
             leave=["inspection", "yard_exit"], queue_for=[f"L{k + 1}" for k in range(lanes)]),
        Zone(name="inspection_area", capacity=max(10, lanes * 4), enter=["inspection"],
             leave=["border_exit"]),
    ])  # fmt: skip


class _Counter:
    """Counts what the ingest has committed, to wait until it caught up."""

    def __init__(self) -> None:
        self.done = 0
        self.cond = threading.Condition()

    def __call__(self, outcome) -> None:  # type: ignore[no-untyped-def]
        if outcome.kind in ("stored", "duplicate", "rejected"):
            with self.cond:
                self.done += 1
                self.cond.notify_all()

    def wait(self, count: int, timeout_s: float = 120.0) -> bool:
        deadline = time.monotonic() + timeout_s
        with self.cond:
            while self.done < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(left)
        return True


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(q * (len(ordered) - 1)))))]


def publish_time(p: Passage, outage_min: float) -> datetime:
    """When the edge sends the passage: at its end, or, for the yard-entry edge `E2` while it
    is offline (from OUTAGE_AT for `outage_min`), when it is back (its spool replays)."""
    back = OUTAGE_AT + timedelta(minutes=outage_min)
    if p.lane == "E2" and OUTAGE_AT <= p.end < back:
        return back
    return p.end


def run_bench(trucks_n: int, seed: int = 0, misread_rate: float = 0.04,
              broker_kind: str = "mosquitto", sample_min: float = 15.0,
              lanes: int | None = None, outage_min: float = 0.0) -> YardBench:
    """Simulate, publish, compare."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from central import store
    from central.db import make_engine, session_factory, upgrade_database
    from central.decisions import DecisionService
    from central.domain.rules import RuleSet
    from central.ingest import MqttIngest
    from central.journeys import JourneyHook, JourneyService
    from smartgate import contract

    c = lanes or max(2, round(trucks_n / 3000 * 20))
    trucks = simulate(trucks_n, seed, misread_rate, c)
    passages = sorted((p for t in trucks for p in t.passages),
                      key=lambda p: (publish_time(p, outage_min), p.end))  # fmt: skip
    outage = (OUTAGE_AT, OUTAGE_AT + timedelta(minutes=outage_min))
    misreads = sum(p.read != trucks[p.truck].plate for p in passages)
    site = _site(c)
    service = JourneyService(site)
    with tempfile.TemporaryDirectory(prefix="smartgate-yard-") as tmp:
        folder = Path(tmp)
        engine = make_engine(f"sqlite:///{folder / 'central.db'}")
        upgrade_database(engine)
        sessions = session_factory(engine)
        with sessions() as s, s.begin():
            store.import_declarations(s, _declarations(trucks))
        counter = _Counter()
        hook = JourneyHook(DecisionService(RuleSet(version="bench")).decide_passage, service)
        with broker(broker_kind, folder) as port:
            ingest = MqttIngest(sessions, "127.0.0.1", port, client_id="bench-yard-central",
                                on_passage=hook, after_commit=counter, batch_size=50)
            ingest.start()
            if not ingest.connected.wait(15):
                raise RuntimeError("central ingest could not connect to the broker")
            edge = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-yard-edge")
            edge.max_inflight_messages_set(100)
            edge.connect("127.0.0.1", port)
            edge.loop_start()
            occ_errors: list[int] = []
            fc_err: list[float] = []
            naive_err: list[float] = []
            outage_errors: list[int] = []
            naive_c_err: list[float] = []  # the same divided by the lanes: a fairer baseline
            peak = 0
            step = timedelta(minutes=sample_min)
            sample, last = DAY + step, passages[-1].end + step
            arrivals = sorted(trucks, key=lambda t: t.arrive)
            t0 = time.perf_counter()
            published = 0
            while sample <= last:
                while (published < len(passages)
                       and publish_time(passages[published], outage_min) <= sample):
                    p = passages[published]
                    edge.publish(contract.passage_topic(SITE, p.lane), _event(p), qos=1)
                    published += 1
                if not counter.wait(published):
                    log.warning("ingest did not catch up by %s", sample)
                with sessions() as s:
                    occ = {z.zone: z.count for z in service.occupancy(s, SITE)}
                    fc = service.forecast(s, SITE, sample)
                truth = Counter(t.zone_at(sample) for t in trucks)
                peak = max(peak, truth["yard"])
                errors = [abs(occ.get(z, 0) - truth[z]) for z in ZONES]
                if outage[0] <= sample < outage[1]:  # central cannot know what E2 holds back
                    outage_errors += errors
                else:
                    occ_errors += errors
                nxt = next((t for t in arrivals if sample <= t.arrive < sample + step
                            and not t.perishable and t.inspect_start is not None), None)
                if nxt is not None and fc is not None and fc.expected_wait_s is not None:
                    assert nxt.inspect_start is not None
                    wait = (nxt.inspect_start - nxt.arrive).total_seconds()
                    fc_err.append(abs(fc.expected_wait_s - wait))
                    naive_err.append(abs((fc.naive_wait_s or 0.0) - wait))
                    lanes_seen = max(1, sum(1 for r in fc.lanes if r.rate_per_s))
                    naive_c_err.append(abs((fc.naive_wait_s or 0.0) / lanes_seen - wait))
                if (sample - DAY) // timedelta(hours=2) != (sample + step - DAY) // timedelta(hours=2):
                    log.info("simulated %s: %d/%d passages, yard %d (central %d)",
                             sample.strftime("%H:%M"), published, len(passages), truth["yard"],
                             occ.get("yard", 0))  # fmt: skip
                sample += step
            counter.wait(published)
            elapsed = time.perf_counter() - t0
            edge.disconnect()
            edge.loop_stop()
            ingest.stop()
        result = _compare(sessions, trucks, passages)
        engine.dispose()
    truth_waits = [(t.inspect_start - t.arrive).total_seconds() for t in trucks
                   if t.inspect_start is not None]  # fmt: skip
    return YardBench(
        trucks=trucks_n, passages=len(passages), lanes=c, broker=broker_kind,
        misread_rate=misread_rate, misreads=misreads, **result,
        occupancy_max_abs_error=max(occ_errors, default=0),
        occupancy_mean_abs_error=round(sum(occ_errors) / max(1, len(occ_errors)), 3),
        occupancy_samples=len(occ_errors) // len(ZONES), peak_yard_occupancy=peak,
        outage_min=outage_min, occupancy_max_abs_error_in_outage=max(outage_errors, default=0),
        dwell_p50_truth_s=round(_percentile(truth_waits, 0.5), 1),
        forecast_mae_s=round(sum(fc_err) / max(1, len(fc_err)), 1),
        forecast_naive_mae_s=round(sum(naive_err) / max(1, len(naive_err)), 1),
        forecast_naive_per_lane_mae_s=round(sum(naive_c_err) / max(1, len(naive_c_err)), 1),
        forecast_samples=len(fc_err),
        passages_per_s=round(len(passages) / elapsed, 1), elapsed_s=round(elapsed, 1),
    )  # fmt: skip


def _compare(sessions, trucks: list[Truck], passages: list[Passage]) -> dict:  # type: ignore[no-untyped-def]
    """Central's journeys against the truth."""
    from central import store
    from central.domain.journeys import Checkpoint, stages

    truck_of = {p.event_id: p.truck for p in passages}
    with sessions() as s:
        rows = store.list_journeys(s, store.JourneyFilter(site=SITE, limit=10**9))
        events = store.journey_event_ids(s, [r.id for r in rows])
        stored, _ = store.passages_of_nodes(s, sorted({f"edge-{p.lane}" for p in passages}))
    by_id = {r.id: r for r in rows}
    exact = swapped = misattached = 0
    journeys_of_truck: dict[int, set[int]] = {}
    for jid, ids in events.items():
        owners = Counter(truck_of[e] for e in ids)
        for truck in owners:
            journeys_of_truck.setdefault(truck, set()).add(jid)
        if len(owners) > 1:
            swapped += 1
            misattached += sum(owners.values()) - owners.most_common(1)[0][1]
    for t in trucks:
        jids = journeys_of_truck.get(t.idx, set())
        if len(jids) != 1:
            continue
        jid = next(iter(jids))
        if set(events[jid]) != {p.event_id for p in t.passages}:
            continue
        want = stages([Checkpoint(p.role, p.start) for p in t.passages])
        row = by_id[jid]
        if (row.yard_wait_s, row.inspection_s, row.total_s) == (
                want.yard_wait_s, want.inspection_s, want.total_s):  # fmt: skip
            exact += 1
    central_waits = [r.yard_wait_s for r in rows if r.yard_wait_s is not None]
    truth_waits = [(t.inspect_start - t.arrive).total_seconds() for t in trucks
                   if t.inspect_start is not None]  # fmt: skip
    return {
        "journeys": len(rows), "journeys_exact": exact,
        "journeys_exact_rate": round(exact / max(1, len(trucks)), 4),
        "journeys_swapped": swapped, "passages_misattached": misattached,
        "journeys_split": sum(len(j) > 1 for j in journeys_of_truck.values()),
        "ambiguous": sum(r.ambiguous for r in rows),
        "dwell_p50_error_s": round(abs(_percentile(central_waits, 0.5)
                                       - _percentile(truth_waits, 0.5)), 1)
        if central_waits else float("nan"),
        "lost": len(passages) - len(stored),
    }  # fmt: skip


def bench_yard(args: argparse.Namespace) -> int:
    """Run and print the yard benchmark."""
    kind = args.broker or ("mosquitto" if mosquitto_binary() else "amqtt")
    logging.getLogger("central.decisions").setLevel(logging.WARNING)  # a line per passage
    r = run_bench(args.trucks, args.seed, args.misread_rate, kind, args.sample_min, args.lanes,
                  args.outage_min)
    print(f"trucks: {r.trucks} ({r.passages} passages, {r.misreads} misread) over {r.broker}, "
          f"{r.lanes} inspection lanes, {r.elapsed_s} s ({r.passages_per_s} passages/s)")
    print(f"journeys: {r.journeys_exact}/{r.trucks} exact ({100 * r.journeys_exact_rate:.2f}%), "
          f"{r.journeys_swapped} swapped, {r.journeys_split} split, {r.ambiguous} ambiguous")
    print(f"occupancy: max abs error {r.occupancy_max_abs_error} over {r.occupancy_samples} "
          f"samples (peak yard {r.peak_yard_occupancy}; during the {r.outage_min} min outage "
          f"{r.occupancy_max_abs_error_in_outage}); yard wait p50 error "
          f"{r.dwell_p50_error_s} s (truth {r.dwell_p50_truth_s} s)")
    print(f"forecast: MAE {r.forecast_mae_s} s vs naive {r.forecast_naive_mae_s} s "
          f"(naive / lanes {r.forecast_naive_per_lane_mae_s} s; {r.forecast_samples} samples); "
          f"lost {r.lost}")
    if args.json:
        print(json.dumps(asdict(r)))
    return 0 if r.lost == 0 else 1


def register(commands: CommandGroups) -> None:
    """Attach `smartgate bench yard`."""
    bench = commands.bench.add_parser("yard", help="a simulated day of journeys through central")
    bench.add_argument("--trucks", type=int, default=3000, help="trucks in the day")
    bench.add_argument("--lanes", type=int, help="inspection lanes (default: scaled, 20 for 3000)")
    bench.add_argument("--misread-rate", type=float, default=0.04,
                       help="share of plate reads that are wrong (default 0.04)")
    bench.add_argument("--sample-min", type=float, default=15.0,
                       help="simulated minutes between occupancy/forecast checks")
    bench.add_argument("--broker", choices=("mosquitto", "amqtt"),
                       help="default: mosquitto if installed, else amqtt")
    bench.add_argument("--outage-min", type=float, default=0.0,
                       help="the yard-entry edge E2 is offline this long from 09:30 and sends "
                       "its passages when back (default 0)")
    bench.add_argument("--seed", type=int, default=0)
    bench.add_argument("--json", action="store_true", help="last line: one JSON object")
    bench.set_defaults(func=bench_yard)

