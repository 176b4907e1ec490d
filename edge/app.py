"""Edge node wiring: cameras → triggers → batched inference → per-lane passages → spool → MQTT.

Threads: one reader per camera, the inference workers (of the scheduler, sole user of the ONNX
sessions: `inference_threads`), the weighbridge readers, the MQTT client loop plus the spool drain, one worker for
lane commands (barrier and display I/O never block the MQTT loop) and the status reporter.
Per-lane state sits behind the lane's lock (`edge.runtime.lane`); MQTT commands and triggers go
through `edge.runtime.commands`; the pure cores (`edge.assembly`, `hardware.lane.decide`) hold
the logic.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from edge.config import (
    EdgeConfig,
    InferenceConfig,
    MqttTrigger,
)
from edge.recognition.containers import ContainerReader
from edge.recognition.plates import PlateReader
from edge.runtime.commands import LaneCommands
from edge.runtime.evidence import EvidenceQueue, EvidenceUploader, enqueue_passage
from edge.runtime.images import ImageStore
from edge.runtime.lane import LaneRuntime
from edge.runtime.metrics import EdgeMetrics, NodeCounts
from edge.runtime.publisher import EdgePublisher
from edge.runtime.scheduler import BatchScheduler, Job
from edge.runtime.sources import CameraReader, SimulatedCamera
from edge.runtime.spool import Spool
from smartgate import contract
from smartgate.contract import LaneState, PassageEvent

log = logging.getLogger(__name__)


def inference_threads(cfg: InferenceConfig, cpus: int | None = None) -> tuple[int, int]:
    """(workers, intra-op threads per session run) of `cfg`, its zeros resolved over `cpus`
    (default: the CPUs this process may run on, `taskset` and container cpusets respected):
    by default one worker per CPU, each running its frame on one thread."""
    cpus = cpus or len(os.sched_getaffinity(0))
    workers = cfg.workers or max(1, cpus // max(1, cfg.threads))
    return workers, cfg.threads or max(1, cpus // workers)


@dataclass(frozen=True)
class Readers:
    """The plate and container readers sharing one detector and one recognizer session (plus the
    second recognizer for Chinese province glyphs when Chinese plates are expected)."""

    plates: PlateReader
    containers: ContainerReader

    @classmethod
    def from_config(
        cls, cfg: InferenceConfig, rec_batch: int = 32,
        wrap: Callable[[str, Any], Any] = lambda _name, session: session,
    ) -> Readers:
        """Sessions per `cfg` (threads, det resolution, optional replacement model folder);
        `wrap(name, session)` may replace each session (the benchmark times them)."""
        from edge.recognition.ocr import TextDetector, TextRecognizer
        from edge.recognition.plate_detect import PlateDetector
        from edge.recognition.province_prior import ProvincePrior
        from models.registry import create_session, get_spec

        if cfg.model_dir is not None:
            from models.quantize import use_model_dir

            use_model_dir(cfg.model_dir)

        _, threads = inference_threads(cfg)

        def session(kind: str, model: str) -> Any:
            return wrap(kind, create_session(get_spec(model).path, threads))

        det = TextDetector(session("det", "ppocr_det"), limit_side=cfg.det_limit_side)
        rec = TextRecognizer(session("rec", "ppocr_rec"), max_batch=rec_batch)
        province = "cn" in cfg.regions and TextRecognizer(session("rec", "ppocr_rec_v5"),
                                                          max_batch=rec_batch)
        prior = ProvincePrior() if cfg.province_prior == "adaptive" else None
        locator = (cfg.plate_locator == "detector"
                   and PlateDetector(session("det", "plate_det")))
        return cls(PlateReader(det, rec, regions=cfg.regions, province_recognizer=province,
                               province_prior=prior, recognizer_mode=cfg.plate_recognizer,
                               threads=threads, plate_detector=locator),
                   ContainerReader(det, rec))


class EdgeNode:
    """One edge node running all lanes of its configuration."""

    def __init__(
        self, config: EdgeConfig, readers: Readers | None = None, realtime: bool = True,
        on_passage: Callable[[PassageEvent], None] | None = None,
        simulated: Mapping[str, SimulatedCamera] | None = None,
    ) -> None:
        self.config = config
        self.realtime = realtime
        self.on_passage = on_passage
        self.simulated = dict(simulated or {})
        self.readers = readers or Readers.from_config(config.inference)
        self.province_prior_path = config.data_dir / "province_prior.json"
        if self.readers.plates.province_prior is not None:
            self.readers.plates.province_prior.restore(self.province_prior_path)
        self.metrics = EdgeMetrics(self.node_counts)
        self.scheduler = BatchScheduler(
            {"plates": self.metrics.timed("plates", self.readers.plates.read_frames),
             "containers": self.metrics.timed("containers", self.readers.containers.read_frames)},
            max_batch=config.inference.max_batch,
            max_delay_s=config.inference.max_delay_ms / 1000,
            queue_size=config.inference.queue_frames,
            max_pixels=config.inference.max_batch_pixels,
            workers=inference_threads(config.inference)[0],
        )
        self.spool = Spool(config.data_dir / "spool.db", config.spool_max_messages)
        self.images = ImageStore(config.data_dir / "images", config.images.capacity,
                                 config.images.quality)
        self.counters: Counter[str] = Counter()
        self.evidence: EvidenceUploader | None = None
        ev = config.evidence
        if ev.central_url is not None:
            self.evidence = EvidenceUploader(
                EvidenceQueue(config.data_dir / "evidence.db"), ev.central_url, ev.bearer() or "",
                timeout_s=ev.timeout_s, retry_initial_s=ev.retry_initial_s,
                retry_max_s=ev.retry_max_s, warn_pending=ev.warn_pending, counters=self.counters)
        self.last_weight: dict[str, contract.Weight] = {}
        self.site, self.node_id = config.site, config.node_id
        self.lanes = {lane.lane: LaneRuntime(self, lane) for lane in config.lanes}
        self.lane_of = {key: rt for rt in self.lanes.values() for key in rt.roles}
        subscriptions = [contract.command_topic(config.site, lane) for lane in self.lanes]
        subscriptions += [contract.trigger_topic(config.site, lane.lane) for lane in config.lanes
                          if isinstance(lane.trigger, MqttTrigger)]
        self.commands = LaneCommands(config.site, config.node_id, self.lanes, self.counters,
                                     publish=lambda topic, payload: self.publisher.publish_now(
                                         topic, payload),
                                     set_lane_state=self.set_lane_state)
        self.publisher = EdgePublisher(
            config.site, config.node_id, subscriptions, config.mqtt, self.spool,
            on_message=self.commands.on_message, on_connection=self.on_connection,
        )
        self.cameras: list[CameraReader] = []
        self.cameras_ok: dict[str, bool] = {}
        self.stop_event = threading.Event()
        self.passages_emitted = 0
        self.plates_read = 0
        self.spool_depth_at_stop = 0
        self._ended = 0
        self._ended_lock = threading.Lock()
        self._count_lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Start inference, devices, MQTT, the evidence upload and one reader per camera."""
        self.scheduler.start()
        if self.config.metrics_port is not None:
            self.metrics.serve(self.config.metrics_port, self.config.metrics_host)
        for rt in self.lanes.values():
            if rt.weighbridge is not None:
                rt.weighbridge.start()
        self.commands.start()
        self._spawn(self._status_loop, "node-status")
        self.publisher.start()
        if self.evidence is not None:
            self.evidence.start()
        for lane in self.config.lanes:
            rt = self.lanes[lane.lane]
            for cam in lane.cameras:
                key = f"{lane.lane}/{cam.name}"
                self.cameras_ok[key] = False
                self.cameras.append(CameraReader(
                    key, cam.source, cam.fps, rt.on_frame, loop=cam.loop, roi=cam.roi,
                    realtime=self.realtime, on_status=self._camera_status, on_end=self._camera_end,
                    simulated=self.simulated.get(key), reconnect_initial_s=cam.reconnect_initial_s,
                    reconnect_max_s=cam.reconnect_max_s,
                ).start())

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        t = threading.Thread(target=target, name=name, daemon=True)
        t.start()
        self._threads.append(t)

    def run(self) -> None:
        """Block until every source ends or `stop_event` is set; then finish open passages."""
        while not self.stop_event.is_set():
            with self._ended_lock:
                if self._ended >= len(self.cameras):
                    break
            self.stop_event.wait(0.1)
        if self.stop_event.is_set():
            return
        deadline = time.monotonic() + 300
        while any(rt.inflight for rt in self.lanes.values()) and time.monotonic() < deadline:
            time.sleep(0.05)
        for rt in self.lanes.values():
            rt.flush()

    def stop(self) -> None:
        """Stop sources and devices, publish what is spooled if the broker is there, disconnect."""
        self.stop_event.set()
        for cam in self.cameras:
            cam.stop()
        self.scheduler.stop()
        for rt in self.lanes.values():
            if rt.weighbridge is not None:
                rt.weighbridge.stop()
            if rt.controller is not None:
                rt.controller.stop()
        self.commands.stop()
        self.publisher.stop()
        if self.evidence is not None:
            self.evidence.stop(drain_timeout_s=2.0)
            self.evidence.queue.close()
        self._publish_node_status()
        self._save_province_prior()
        self.spool_depth_at_stop = self.spool.depth()
        self.spool.close()

    def wait_drained(self, timeout_s: float = 30.0) -> bool:
        """Wait until the spool is empty (every event acknowledged by the broker)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.spool.depth() == 0:
                return True
            time.sleep(0.05)
        return False

    # --- LaneHost: what the lanes use ------------------------------------------------------

    def submit_frame(self, job: Job) -> None:
        """Queue a frame for inference (blocking when not real time: no frame is dropped)."""
        self.scheduler.submit(job, block=not self.realtime)

    def cancel_frames(self, which: Callable[[Job], bool]) -> None:
        """Drop queued frames that `which` selects."""
        self.scheduler.cancel(which)

    def save_image(self, image: np.ndarray) -> str:
        """Keep an evidence image in the ring buffer; returns its id."""
        return self.images.save(image)

    def count_plate_reads(self, n: int) -> None:
        """Count plates read on this node (from any inference worker)."""
        with self._count_lock:
            self.plates_read += n

    def record_weight(self, lane: str, weight: contract.Weight) -> None:
        """The lane's last captured weight."""
        self.last_weight[lane] = weight

    def node_counts(self) -> NodeCounts:
        """What the node counts, for the metrics collector."""
        return NodeCounts(
            published=self.publisher.published, spool_depth=self.spool.depth(),
            spool_rejected=self.spool.rejected_count(),
            mqtt_connected=self.publisher.connected.is_set(),
            frames_dropped=self.scheduler.stats.dropped,
            frames_failed=self.scheduler.stats.failed, counters=dict(self.counters),
            evidence_pending=self.evidence.queue.depth() if self.evidence else 0,
            evidence_refused=self.evidence.queue.refused_count() if self.evidence else 0,
        )

    # --- passages and status --------------------------------------------------------------

    def emit(self, lane: LaneRuntime, event: PassageEvent) -> None:
        """Spool a finished passage, tell the lane controller, announce the lane state."""
        topic = contract.passage_topic(event.site, event.lane)
        if self.evidence is not None:  # images first: no passage is spooled without them
            enqueue_passage(self.evidence.queue, event, self.images.read, self.counters)
            self.evidence.notify()
        self.spool.put(event.event_id, topic, event.to_json())
        self.publisher.notify()
        with self._count_lock:
            self.passages_emitted += 1
        self.metrics.passage(event)
        plate = event.best_plate
        log.info("passage %s lane %s plate %s weight %s", event.event_id[:8], event.lane,
                 plate.display_text if plate else "-",
                 f"{event.weight.gross_kg:.0f} kg" if event.weight else "-")
        if lane.controller is not None:
            self.run_command_work(partial(lane.controller.set_passage, event.event_id))
        self.set_lane_state(lane, "waiting_decision")
        if self.on_passage is not None:
            self.on_passage(event)

    def set_lane_state(self, lane: LaneRuntime, state: LaneState) -> None:
        """Publish the lane's LaneStatus (retained) when its state changes."""
        if state == lane.state:
            return
        lane.state = state
        status = contract.LaneStatus(site=self.config.site, lane=lane.cfg.lane,
                                     node_id=self.config.node_id, state=state)
        self.publisher.publish_now(contract.lane_status_topic(self.config.site, lane.cfg.lane),
                                   status.to_json(), retain=True)

    def node_status(self) -> contract.NodeStatus:
        """The node's health report."""
        scales = [rt.weighbridge.connected for rt in self.lanes.values() if rt.weighbridge]
        return contract.NodeStatus(
            site=self.config.site, node_id=self.config.node_id, lanes=list(self.lanes),
            cameras_ok=dict(self.cameras_ok), scale_connected=all(scales) if scales else None,
            spool_depth=self.spool.depth(), spool_rejected=self.spool.rejected_count(),
            software="smartgate-edge",
        )

    def _publish_node_status(self) -> None:
        if self.publisher.connected.is_set():
            self.publisher.publish_now(
                contract.node_status_topic(self.config.site, self.config.node_id),
                self.node_status().to_json(), retain=True)

    def _status_loop(self) -> None:
        while not self.stop_event.wait(self.config.status_interval_s):
            self._publish_node_status()
            self._save_province_prior()

    def _save_province_prior(self) -> None:
        """Keep what the plate reader learned of the site's provinces across restarts."""
        prior = self.readers.plates.province_prior
        if prior is None:
            return
        try:
            prior.save(self.province_prior_path)
        except OSError as exc:
            log.warning("cannot save the province prior to %s: %s", self.province_prior_path, exc)

    def _camera_status(self, key: str, ok: bool) -> None:
        self.cameras_ok[key] = ok

    def _camera_end(self, key: str) -> None:
        with self._ended_lock:
            self._ended += 1

    # --- MQTT: commands, triggers, connection ---------------------------------------------

    def run_command_work(self, work: Callable[[], object]) -> None:
        """Run device I/O on the lane-command worker, in order."""
        self.commands.run(work)

    def on_connection(self, connected: bool) -> None:
        """Broker lost: every lane controller closes its barrier (central is unreachable)."""
        if connected:
            self.run_command_work(self._publish_node_status)
            return
        for rt in self.lanes.values():
            if rt.controller is not None:
                self.run_command_work(rt.controller.on_central_lost)
