"""Whole-pipeline edge benchmark on synthetic lanes: throughput, latency, batched vs unbatched.

Every lane has `cameras` simulated cameras (plate cameras) and a scripted external trigger: a
truck is present for `dwell_s`, then the lane is empty for `gap_s`; lanes are staggered so the
inference scheduler is never idle. Frames are rendered once (`tools.synth.plates.render_scene`).
The same script runs with dynamic batching (`max_batch`) and with batching disabled (batch size
1 for frames and for recognizer crops), alternating in `rounds` segments per mode in ABBA order
(batched, unbatched, unbatched, batched, ...) so a machine whose load drifts favours neither.
Trigger-to-event latency is measured from the trigger going off to the passage being spooled.
With `full_frame` the cameras send whole 1920x1080 gate frames (`render_gate_scene`: the truck,
other vehicles with livery text, gate signs, the timestamp overlay) with no ROI at scale 1, and
every lane's first truck arrives in the same second (a burst). `sweep` runs the batched node at
1, 2, 4, 8, ... lanes and reports `lanes_per_box`: the most lanes whose p95 trigger-to-event
latency stays within `LATENCY_BUDGET_MS` with every passage read right.
Time inside the detector and recognizer sessions is measured per frame, so the part of the
pipeline batching can speed up (ONNX) and the part it cannot (pre/post-processing, grammar
decoding inside the reader) are reported apart.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.app import EdgeNode, Readers
from edge.config import EdgeConfig
from edge.runtime.sources import SimulatedCamera
from smartgate.contract import PassageEvent

log = logging.getLogger(__name__)

PLATES = (("29C12345", "vn", 1), ("51D67890", "vn", 2), ("30H98765", "vn", 1),
          ("15C24680", "vn", 2), ("88C13579", "vn", 1), ("43A11223", "vn", 1))
SIZE = (1280, 720)
FULL_SIZE = (1920, 1080)  # --full-frame: what a site's cameras send
ROI = (0, 272, 1280, 288)  # the band where render_scene puts plates
LATENCY_BUDGET_MS = 1000.0  # p95 trigger -> event a lane may take (lanes_per_box)


@dataclass(frozen=True)
class BenchSetup:
    """What to run."""

    lanes: int = 4
    cameras: int = 4
    seconds: float = 30.0
    fps: float = 5.0
    dwell_s: float = 3.0
    gap_s: float = 1.5
    max_batch: int = 4
    max_delay_ms: float = 20.0
    threads: int = 0
    workers: int = 0  # inference.workers (0: one per CPU of the process's CPU set)
    roi: bool = True
    scale: float = 0.5
    det_limit_side: int = 144
    close_wait_ms: float = 200.0
    rounds: int = 2  # segments per mode, `seconds / rounds` each
    full_frame: bool = False  # 1080p gate scenes, no ROI, scale 1, all lanes' trucks at once
    plate_locator: str = "cascade"  # inference.plate_locator: cascade | detector
    settle_reads: int | None = None  # frame policy (lanes.*.frames); None: the node's default
    max_batch_pixels: int | None = 2_500_000  # inference.max_batch_pixels (None: no limit)

    @property
    def size(self) -> tuple[int, int]:
        """Frame (width, height) the cameras send."""
        return FULL_SIZE if self.full_frame else SIZE


@dataclass
class RunResult:
    """Numbers of one run."""

    seconds: float
    frames: int
    plates: int
    passages: int
    passages_expected: int
    correct: int
    dropped: int
    mean_batch: float
    latencies_ms: list[float] = field(default_factory=list)
    busy_s: float = 0.0  # the inference worker inside its runners
    cpu_s: float = 0.0  # process CPU time over the run (every thread), load-independent
    skipped: int = 0  # camera frames the frame policy did not infer
    misread: list[tuple[str, str]] = field(default_factory=list)  # (expected, read) per passage
    onnx_s: defaultdict[str, float] = field(  # per session ("det", "rec")
        default_factory=lambda: defaultdict(float))

    @property
    def frames_per_s(self) -> float:
        return self.frames / self.seconds

    @property
    def plates_per_s(self) -> float:
        return self.plates / self.seconds

    def ms_per_frame(self, seconds: float) -> float:
        """`seconds` of inference work spread over the frames inferred, in ms."""
        return 1000 * seconds / self.frames if self.frames else float("nan")

    @property
    def other_s(self) -> float:
        """Inference-worker time outside the ONNX sessions (pre/post-processing, grammar)."""
        return self.busy_s - sum(self.onnx_s.values())

    @property
    def frames_per_passage(self) -> float:
        """Frames inferred per expected passage (what the frame policy saves)."""
        return self.frames / self.passages_expected if self.passages_expected else float("nan")

    @property
    def cpu_ms_per_frame(self) -> float:
        """Process CPU time per inferred frame in ms (what a frame costs, whatever the load)."""
        return self.ms_per_frame(self.cpu_s)

    def percentile(self, q: float) -> float:
        """Latency percentile in ms (nan without passages)."""
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else float("nan")

    def __add__(self, other: RunResult) -> RunResult:
        """Two segments of the same mode as one run."""
        frames = self.frames + other.frames
        batches = sum(r.frames / r.mean_batch for r in (self, other) if r.mean_batch)
        return RunResult(
            self.seconds + other.seconds, frames, self.plates + other.plates,
            self.passages + other.passages, self.passages_expected + other.passages_expected,
            self.correct + other.correct, self.dropped + other.dropped,
            frames / batches if batches else 0.0, self.latencies_ms + other.latencies_ms,
            busy_s=self.busy_s + other.busy_s, cpu_s=self.cpu_s + other.cpu_s,
            skipped=self.skipped + other.skipped, misread=self.misread + other.misread,
            onnx_s=defaultdict(float, {k: self.onnx_s[k] + other.onnx_s[k]
                                       for k in {*self.onnx_s, *other.onnx_s}}),
        )


class _TimedSession:
    """An ONNX session whose `run` adds its wall time to `clock[name]` (from any worker)."""

    _lock = threading.Lock()

    def __init__(self, name: str, session: Any, clock: defaultdict[str, float]) -> None:
        self._name, self._session, self._clock = name, session, clock

    def run(self, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return self._session.run(*args, **kwargs)
        finally:
            elapsed = time.perf_counter() - started
            with self._lock:
                self._clock[self._name] += elapsed

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._session, attr)


def render_trucks(cameras: int, full_frame: bool = False) -> list[list[np.ndarray]]:
    """For each benchmark plate, one frame per camera (different viewpoints via seeds); with
    `full_frame`, whole 1080p gate scenes with vehicles, signs and text that are not plates."""
    from tools.synth.plates import render_gate_scene, render_scene

    if full_frame:
        return [[render_gate_scene(text, region, rows, seed=1000 * i + c, size=FULL_SIZE,
                                   lane=1 + c)[0]
                 for c in range(cameras)] for i, (text, region, rows) in enumerate(PLATES)]
    return [[render_scene(text, region, rows, seed=1000 * i + c, size=SIZE)
             for c in range(cameras)] for i, (text, region, rows) in enumerate(PLATES)]


def bench_config(setup: BenchSetup, data_dir: Path, batched: bool) -> EdgeConfig:
    """The benchmark node: lanes of simulated plate cameras with the MQTT (external) trigger."""
    roles = ("front_plate", "rear_plate")
    lanes = [
        {
            "lane": f"L{k + 1}",
            "cameras": [
                {"name": f"cam{c + 1}", "role": roles[c % 2], "source": "sim", "fps": setup.fps,
                 "roi": list(ROI) if setup.roi and not setup.full_frame else None,
                 "scale": 1.0 if setup.full_frame else setup.scale}
                for c in range(setup.cameras)
            ],
            "trigger": {"type": "mqtt"},
            "passage": {"merge_window_s": 0, "close_wait_ms": setup.close_wait_ms},
            "frames": {} if setup.settle_reads is None else {"settle_reads": setup.settle_reads},
        }
        for k in range(setup.lanes)
    ]
    return EdgeConfig.model_validate({
        "site": "bench", "node_id": "bench", "data_dir": str(data_dir),
        "mqtt": {"host": "127.0.0.1", "port": 9},  # no broker: events stay spooled
        "inference": {"threads": setup.threads, "workers": setup.workers,
                      "max_batch": setup.max_batch if batched else 1,
                      "max_delay_ms": setup.max_delay_ms, "queue_frames": 1,
                      "max_batch_pixels": setup.max_batch_pixels,
                      "det_limit_side": setup.det_limit_side
                      if setup.roi and not setup.full_frame else 736,
                      "plate_locator": setup.plate_locator},
        "lanes": lanes,
    })


def run_modes(
    setup: BenchSetup, trucks: list[list[np.ndarray]],
    progress: Callable[[float], None] = lambda _s: None,
) -> dict[bool, RunResult]:
    """Batched and unbatched runs (keyed by `batched`), alternated ABBA in `setup.rounds`
    segments per mode."""
    segment = replace(setup, seconds=setup.seconds / setup.rounds)
    order = [m for r in range(setup.rounds)
             for m in ((True, False) if r % 2 == 0 else (False, True))]
    results: dict[bool, RunResult] = {}
    done = 0.0
    for batched in order:
        def segment_progress(elapsed: float, base: float = done) -> None:
            progress(base + elapsed)

        part = run_once(segment, trucks, batched, segment_progress)
        done += segment.seconds
        results[batched] = results[batched] + part if batched in results else part
    return results


def _timed_readers(
    setup: BenchSetup, config: EdgeConfig, trucks: list[list[np.ndarray]], batched: bool,
) -> tuple[Readers, defaultdict[str, float]]:
    """Readers whose ONNX sessions add their run time into the returned clock, warmed up."""
    onnx: defaultdict[str, float] = defaultdict(float)
    readers = Readers.from_config(config.inference, rec_batch=32 if batched else 1,
                                  wrap=lambda name, s: _TimedSession(name, s, onnx))
    if setup.full_frame:
        warm = trucks[0][0]
    else:
        view = trucks[0][0][ROI[1]:ROI[1] + ROI[3]] if setup.roi else trucks[0][0]
        warm = cv2.resize(view, None, fx=setup.scale, fy=setup.scale)
    readers.plates.read_frames([warm] * (setup.max_batch if batched else 1))
    onnx.clear()
    return readers, onnx


class _Traffic:
    """Scripted trucks through every lane: what each lane should read, what came out."""

    def __init__(self, setup: BenchSetup, trucks: list[list[np.ndarray]],
                 cams: dict[str, SimulatedCamera]) -> None:
        self.setup, self.trucks, self.cams = setup, trucks, cams
        self.result = RunResult(setup.seconds, 0, 0, 0, 0, 0, 0, 0.0)
        self.off_at: dict[str, float] = {}
        self.expected: dict[tuple[str, float], str] = {}  # (lane, trigger-on time) -> plate
        self.lock = threading.Lock()
        self.stop = threading.Event()

    def on_passage(self, event: PassageEvent) -> None:
        """Score one passage the node emitted."""
        now = time.time()
        plate = event.best_plate
        with self.lock:
            self.result.passages += 1
            key = (event.lane, round(event.started_at.timestamp(), 3))
            expected = self.expected.get(key, "?")
            if plate is not None and plate.text == expected:
                self.result.correct += 1
            else:
                self.result.misread.append((expected, plate.text if plate else ""))
            if event.lane in self.off_at:
                self.result.latencies_ms.append(1000 * (now - self.off_at.pop(event.lane)))

    def drive(self, node: EdgeNode, k: int) -> None:
        """Lane k: show a truck to its cameras, trigger on, dwell, trigger off, gap; repeat."""
        setup, name = self.setup, f"L{k + 1}"
        lane = node.lanes[name]
        if not setup.full_frame:  # staggered; full frame: every lane's truck at once
            self.stop.wait(k * (setup.dwell_s + setup.gap_s) / setup.lanes)
        v = k
        while not self.stop.is_set():
            frames = self.trucks[v % len(self.trucks)]
            for c in range(setup.cameras):
                self.cams[f"{name}/cam{c + 1}"].show([frames[c]])
            on = time.time()
            self.expected[(name, round(on, 3))] = PLATES[v % len(PLATES)][0]
            lane.set_presence(True, on)
            with self.lock:
                self.result.passages_expected += 1
            if self.stop.wait(setup.dwell_s):
                with self.lock:
                    self.result.passages_expected -= 1
                return
            for c in range(setup.cameras):
                self.cams[f"{name}/cam{c + 1}"].show(None)
            with self.lock:
                self.off_at[name] = time.time()
            lane.set_presence(False, self.off_at[name])
            v += setup.lanes
            self.stop.wait(setup.gap_s)


def _collect(node: EdgeNode, traffic: _Traffic, onnx: defaultdict[str, float],
             start: float, cpu_start: float) -> RunResult:
    """The node's counters at a batch boundary, once the last passages closed."""
    result, stats = traffic.result, node.scheduler.stats
    batches = stats.batches  # read at a batch boundary: ONNX time and counts agree
    boundary = time.monotonic() + 5
    while stats.batches == batches and time.monotonic() < boundary:
        time.sleep(0.001)
    result.frames = stats.items
    result.plates = node.plates_read
    result.seconds = time.monotonic() - start
    result.cpu_s = time.process_time() - cpu_start
    result.skipped = sum(lane.skipped for lane in node.lanes.values())
    result.dropped = stats.dropped
    result.mean_batch = stats.mean_batch
    result.busy_s = stats.busy_s
    result.onnx_s = defaultdict(float, onnx)
    deadline = time.monotonic() + 30
    while traffic.off_at and time.monotonic() < deadline:  # let the last passages close
        time.sleep(0.05)
    return result


def run_once(
    setup: BenchSetup, trucks: list[list[np.ndarray]], batched: bool,
    progress: Callable[[float], None] = lambda _s: None,
) -> RunResult:
    """Run the scripted lanes through a fresh node and measure it."""
    with tempfile.TemporaryDirectory(prefix="smartgate-bench-") as tmp:
        config = bench_config(setup, Path(tmp), batched)
        readers, onnx = _timed_readers(setup, config, trucks, batched)
        width, height = setup.size
        cams = {f"L{k + 1}/cam{c + 1}": SimulatedCamera(np.zeros((height, width, 3), np.uint8))
                for k in range(setup.lanes) for c in range(setup.cameras)}
        traffic = _Traffic(setup, trucks, cams)
        node = EdgeNode(config, readers=readers, on_passage=traffic.on_passage, simulated=cams)
        node.start()
        start, cpu_start = time.monotonic(), time.process_time()
        drivers = [threading.Thread(target=traffic.drive, args=(node, k), daemon=True)
                   for k in range(setup.lanes)]
        for t in drivers:
            t.start()
        while (elapsed := time.monotonic() - start) < setup.seconds:
            progress(elapsed)
            time.sleep(0.5)
        traffic.stop.set()
        for t in drivers:
            t.join()
        result = _collect(node, traffic, onnx, start, cpu_start)
        node.stop()
        return result


def lanes_per_box(rows: list[tuple[int, RunResult]]) -> int:
    """The most lanes (of (lanes, batched run) rows) whose p95 trigger-to-event latency is within
    `LATENCY_BUDGET_MS` with every expected passage read right; 0 when none."""
    ok = [lanes for lanes, r in rows
          if r.passages_expected and r.correct == r.passages_expected
          and r.percentile(95) <= LATENCY_BUDGET_MS]
    return max(ok, default=0)


def sweep(
    setup: BenchSetup, trucks: list[list[np.ndarray]], max_lanes: int,
    progress: Callable[[int], None] = lambda _n: None,
) -> list[tuple[int, RunResult]]:
    """Batched runs at 1, 2, 4, 8, ... lanes (up to `max_lanes`), stopping after the first lane
    count that misses the latency budget or misreads a passage."""
    rows: list[tuple[int, RunResult]] = []
    lanes = 1
    while lanes <= max_lanes:
        progress(lanes)
        result = run_once(replace(setup, lanes=lanes), trucks, batched=True)
        rows.append((lanes, result))
        if lanes_per_box(rows[-1:]) != lanes:
            break
        lanes *= 2
    return rows


BATCH_INPUTS = {  # the inputs the edge benchmark feeds: a scaled ROI, short and long plate lines
    "det 160x640": ("ppocr_det", (3, 160, 640)),
    "rec 48x192": ("ppocr_rec", (3, 48, 192)),
    "rec 48x320": ("ppocr_rec", (3, 48, 320)),
}


def time_batches(
    session: Any, item_shape: tuple[int, ...], batches: list[int], seconds: float,
) -> dict[int, float]:
    """Milliseconds per item of `session` on random inputs at each batch size (each timed for
    about `seconds` after one warm-up run)."""
    rng = np.random.default_rng(0)
    name = session.get_inputs()[0].name
    out = {}
    for batch in batches:
        feed = {name: rng.random((batch, *item_shape), dtype=np.float32)}
        session.run(None, feed)
        runs, started = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - started) < seconds or runs == 0:
            session.run(None, feed)
            runs += 1
        out[batch] = 1000 * elapsed / (runs * batch)
    return out
