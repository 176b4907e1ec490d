"""Edge node wiring: cameras → triggers → batched inference → per-lane passages → spool → MQTT.

Threads: one reader per camera, one inference worker (the scheduler, sole owner of the ONNX
sessions), the weighbridge readers, the MQTT client loop plus the spool drain, one worker for
lane commands (barrier and display I/O never block the MQTT loop) and the status reporter.
Per-lane state sits behind the lane's lock; the pure cores (`edge.passage`, `edge.triggers`,
`hardware.lane.decide`) hold the logic.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import cv2

from edge.config import (
    EdgeConfig,
    InferenceConfig,
    LaneConfig,
    MqttTrigger,
    PlateTrigger,
    VirtualLoopTrigger,
    WeighbridgeTrigger,
)
from edge.container_vote import ContainerObservation
from edge.containers import ContainerCodeResult, ContainerReader
from edge.images import ImageServer, ImageStore
from edge.metrics import EdgeMetrics
from edge.passage import PLATE_ROLES, Observation, PassageAssembler
from edge.plates import PlateReader, PlateResult
from edge.publisher import EdgePublisher
from edge.scheduler import BatchScheduler, Job
from edge.sources import CameraReader, Frame, SimulatedCamera
from edge.spool import Spool
from edge.triggers import LoopState, TriggerError, loop_step, parse_trigger_payload, zone_grey
from hardware.barrier import BarrierClient
from hardware.capture import CaptureEvent, VehicleOff, VehicleOn, WeightCaptured
from hardware.config import LaneControllerConfig
from hardware.display import DisplayClient
from hardware.lane import LaneController
from hardware.scale import Weighbridge
from smartgate import contract
from smartgate.contract import ContractError, LaneState, PassageEvent

log = logging.getLogger(__name__)


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
        from edge.ocr import TextDetector, TextRecognizer
        from edge.province_prior import ProvincePrior
        from models.registry import create_session, get_spec

        if cfg.model_dir is not None:
            from models.quantize import use_model_dir

            use_model_dir(cfg.model_dir)

        def session(kind: str, model: str) -> Any:
            return wrap(kind, create_session(get_spec(model).path, cfg.threads))

        det = TextDetector(session("det", "ppocr_det"), limit_side=cfg.det_limit_side)
        rec = TextRecognizer(session("rec", "ppocr_rec"), max_batch=rec_batch)
        province = "cn" in cfg.regions and TextRecognizer(session("rec", "ppocr_rec_v5"),
                                                          max_batch=rec_batch)
        prior = ProvincePrior() if cfg.province_prior == "adaptive" else None
        return cls(PlateReader(det, rec, regions=cfg.regions, province_recognizer=province,
                               province_prior=prior),
                   ContainerReader(det, rec))


def to_frame(plate: PlateResult, dx: int, dy: int, scale: float) -> PlateResult:
    """A plate read on the scaled ROI, with its box and corners in full-frame pixels."""
    if ((dx, dy) == (0, 0) and scale == 1.0) or plate.box is None:
        return plate
    x1, y1, x2, y2 = plate.box
    quad = tuple((x / scale + dx, y / scale + dy) for x, y in plate.quad) if plate.quad else None
    box = (int(x1 / scale) + dx, int(y1 / scale) + dy, int(x2 / scale) + dx, int(y2 / scale) + dy)
    return replace(plate, box=box, quad=quad)


class LaneRuntime:
    """One lane's live state: presence, frames in flight, its assembler and devices."""

    def __init__(self, node: EdgeNode, cfg: LaneConfig) -> None:
        self.node, self.cfg = node, cfg
        self.lock = threading.RLock()
        self.roles = {f"{cfg.lane}/{c.name}": c.role for c in cfg.cameras}
        self.scales = {f"{cfg.lane}/{c.name}": c.scale for c in cfg.cameras}
        self.gated = not isinstance(cfg.trigger, PlateTrigger)
        self.present = False
        self.closing_at: float | None = None
        self.inflight = 0
        self.generation = 0  # passages closed so far: results of an older one are late
        self.late = 0
        self.loop = LoopState()
        self.state: LaneState = "idle"
        p = cfg.passage
        self.assembler = PassageAssembler(
            node.config.site, node.config.node_id, cfg.lane, cfg.direction,
            min_reads=p.min_reads, split_reads=p.split_reads, merge_window_s=p.merge_window_s,
            max_images=p.max_images,
            gap_frames=cfg.trigger.gap_frames if isinstance(cfg.trigger, PlateTrigger) else 1,
            image_url=node.image_url,
        )
        self.controller: LaneController | None = None
        if cfg.barrier is not None and cfg.display is not None:
            self.controller = LaneController(
                LaneControllerConfig(site=node.config.site, lane=cfg.lane,
                                     node_id=node.config.node_id,
                                     auto_close_seconds=cfg.controller.auto_close_seconds),
                BarrierClient(cfg.barrier), DisplayClient(cfg.display),
            )
        self.weighbridge: Weighbridge | None = None
        if cfg.weighbridge is not None:
            self.weighbridge = Weighbridge(cfg.weighbridge, on_event=self.on_weighbridge)

    # --- presence -------------------------------------------------------------------------

    def set_presence(self, present: bool, at: float) -> None:
        """A trigger edge: open a passage, or close it once its frames in flight are done."""
        with self.lock:
            if present == self.present:
                return
            self.present = present
            if present:
                if self.closing_at is not None:  # the previous vehicle is still finishing
                    self._close()
                self.assembler.open(at)
                self.node.set_lane_state(self, "on_scale" if isinstance(
                    self.cfg.trigger, WeighbridgeTrigger) else "vehicle_present")
                return
            self.closing_at = at
            enough = self.assembler.reads >= max(1, self.cfg.passage.min_reads)
            if enough:
                self.node.scheduler.cancel(lambda j: j.key in self.roles)
            if self.inflight == 0 and self.closing_at is not None:
                self._close()
            elif enough:
                timer = threading.Timer(self.cfg.passage.close_wait_ms / 1000,
                                        self._close_late, args=(self.generation,))
                timer.daemon = True
                timer.start()

    def _close_late(self, generation: int) -> None:
        """`close_wait_ms` after trigger off: close without the frames still in flight."""
        with self.lock:
            if self.generation == generation and self.closing_at is not None:
                self._close()

    def on_weighbridge(self, event: CaptureEvent) -> None:
        """Weighbridge capture events: on → passage; weight → emitted; off → vehicle left."""
        if isinstance(event, VehicleOn):
            if self.gated:
                self.set_presence(True, event.at)
        elif isinstance(event, WeightCaptured):
            with self.lock:
                self.assembler.set_weight(event.to_contract())
                self.node.last_weight[self.cfg.lane] = event.to_contract()
            if isinstance(self.cfg.trigger, WeighbridgeTrigger):
                self.set_presence(False, event.at)  # the truck waits on the scale for central
        elif isinstance(event, VehicleOff):
            if isinstance(self.cfg.trigger, WeighbridgeTrigger):
                self.set_presence(False, event.at)
            if self.controller is not None:
                self.node.run_command_work(self.controller.on_vehicle_left)
            with self.lock:
                if not self.present and self.closing_at is None:
                    self.node.set_lane_state(self, "idle")

    # --- frames and results ---------------------------------------------------------------

    def on_frame(self, frame: Frame) -> None:
        """A camera frame: feed the virtual loop, and queue it for inference when present."""
        trigger = self.cfg.trigger
        if isinstance(trigger, VirtualLoopTrigger) and frame.camera == f"{self.cfg.lane}/{trigger.camera}":
            self.loop, switched = loop_step(self.loop, zone_grey(frame.image, trigger.zone), trigger)
            if switched is not None:
                self.set_presence(switched, frame.timestamp)
        with self.lock:
            if self.gated and not self.present:
                return
            self.inflight += 1
        role = self.roles[frame.camera]
        kind = "plates" if role in PLATE_ROLES else "containers"
        scale = self.scales[frame.camera]
        image = frame.view if scale == 1.0 else cv2.resize(
            frame.view, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        self.node.scheduler.submit(
            Job(frame.camera, kind, image, rank=self.rank,
                done=partial(self.on_result, frame, role, self.generation),
                dropped=self.job_finished),
            block=not self.node.realtime,
        )

    def on_result(self, frame: Frame, role: str, generation: int, result: list) -> None:
        """Inference result of one frame (on the inference thread)."""
        dx, dy = frame.offset
        scale = self.scales[frame.camera]
        events: list[PassageEvent] = []
        if self.gated and generation != self.generation:
            with self.lock:
                self.late += 1
            self.job_finished()
            return
        image_id = self.node.images.save(frame.image) if result else None
        with self.lock:
            if self.gated and generation != self.generation:
                self.late += 1
            elif role in PLATE_ROLES:
                plates: list[PlateResult] = result
                self.node.plates_read += len(plates[:1])
                obs = [Observation(frame.camera, frame.timestamp, to_frame(p, dx, dy, scale),
                                   image_id, role) for p in plates[:1]]
                if isinstance(self.cfg.trigger, PlateTrigger):
                    events = self.assembler.feed_frame(frame.camera, frame.index,
                                                       frame.timestamp, obs)
                    self.node.set_lane_state(
                        self, "vehicle_present" if self.assembler.active else self.state)
                else:
                    self.assembler.add_frame(frame.camera, frame.index)
                    events = self.assembler.add_plates(obs)
            else:
                codes: list[ContainerCodeResult] = result
                self.assembler.add_frame(frame.camera, frame.index)
                self.assembler.add_containers(
                    [ContainerObservation(frame.camera, frame.index, c) for c in codes], image_id)
        for event in events:
            self.node.emit(self, event)
        self.job_finished()

    def rank(self) -> int:
        """Scheduling priority of this lane's frames (lower first): a closing passage without
        a read, then passages with few reads; a well-read passage waits."""
        reads = self.assembler.reads
        if self.closing_at is not None and reads == 0:
            return -1
        return min(reads, 3)

    def job_finished(self) -> None:
        """A frame left the pipeline (inferred or dropped); closes a passage waiting for it."""
        with self.lock:
            self.inflight -= 1
            if self.inflight == 0 and self.closing_at is not None:
                self._close()

    def _close(self) -> None:
        at, self.closing_at = self.closing_at, None
        assert at is not None
        self.generation += 1
        event = self.assembler.close(at)
        if event is not None:
            self.node.emit(self, event)
        elif self.assembler.last_merge is not None and self.controller is not None:
            merged = self.assembler.last_merge.event_id
            log.info("lane %s: reversing truck merged into passage %s", self.cfg.lane, merged[:8])
            self.node.run_command_work(partial(self.controller.set_passage, merged))
            self.node.set_lane_state(self, "waiting_decision")
        else:
            self.node.set_lane_state(self, "idle")
        self.assembler.last_merge = None

    def flush(self) -> None:
        """End of sources: close whatever is open."""
        with self.lock:
            if self.assembler.active:
                self.closing_at = time.time() if self.closing_at is None else self.closing_at
                self._close()


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
        self.metrics = EdgeMetrics(self)
        self.scheduler = BatchScheduler(
            {"plates": self.metrics.timed("plates", self.readers.plates.read_frames),
             "containers": self.metrics.timed("containers", self.readers.containers.read_frames)},
            max_batch=config.inference.max_batch,
            max_delay_s=config.inference.max_delay_ms / 1000,
            queue_size=config.inference.queue_frames,
        )
        self.spool = Spool(config.data_dir / "spool.db", config.spool_max_messages)
        self.images = ImageStore(config.data_dir / "images", config.images.capacity,
                                 config.images.quality)
        self.image_server: ImageServer | None = None
        self.counters: Counter[str] = Counter()
        self.last_weight: dict[str, contract.Weight] = {}
        self.lanes = {lane.lane: LaneRuntime(self, lane) for lane in config.lanes}
        self.lane_of = {key: rt for rt in self.lanes.values() for key in rt.roles}
        subscriptions = [contract.command_topic(config.site, lane) for lane in self.lanes]
        subscriptions += [contract.trigger_topic(config.site, lane.lane) for lane in config.lanes
                          if isinstance(lane.trigger, MqttTrigger)]
        self.publisher = EdgePublisher(
            config.site, config.node_id, subscriptions, config.mqtt, self.spool,
            on_message=self.on_message, on_connection=self.on_connection,
        )
        self.cameras: list[CameraReader] = []
        self.cameras_ok: dict[str, bool] = {}
        self.stop_event = threading.Event()
        self.passages_emitted = 0
        self.plates_read = 0
        self.spool_depth_at_stop = 0
        self._ended = 0
        self._ended_lock = threading.Lock()
        self._work: queue.Queue[Callable[[], object] | None] = queue.Queue()
        self._threads: list[threading.Thread] = []

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Start inference, devices, the image server, MQTT and one reader per camera."""
        self.scheduler.start()
        img = self.config.images
        self.image_server = ImageServer(self.images, img.http_host, img.http_port).start()
        if self.config.metrics_port is not None:
            self.metrics.serve(self.config.metrics_port, img.http_host)
        for rt in self.lanes.values():
            if rt.weighbridge is not None:
                rt.weighbridge.start()
        self._spawn(self._command_worker, "lane-commands")
        self._spawn(self._status_loop, "node-status")
        self.publisher.start()
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
        self._work.put(None)
        self.publisher.stop()
        self._publish_node_status()
        if self.image_server is not None:
            self.image_server.stop()
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

    # --- passages and status --------------------------------------------------------------

    def image_url(self, image_id: str) -> str | None:
        """Where central fetches an evidence image."""
        if self.config.images.public_url:
            return f"{self.config.images.public_url.rstrip('/')}/images/{image_id}.jpg"
        if self.image_server is None:
            return None
        return f"http://{self.image_server.host}:{self.image_server.port}/images/{image_id}.jpg"

    def emit(self, lane: LaneRuntime, event: PassageEvent) -> None:
        """Spool a finished passage, tell the lane controller, announce the lane state."""
        topic = contract.passage_topic(event.site, event.lane)
        self.spool.put(event.event_id, topic, event.to_json())
        self.publisher.notify()
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
            spool_depth=self.spool.depth(), software="smartgate-edge",
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
        self._work.put(work)

    def _command_worker(self) -> None:
        while (work := self._work.get()) is not None:
            try:
                work()
            except Exception:
                log.exception("lane command work failed")

    def on_connection(self, connected: bool) -> None:
        """Broker lost: every lane controller closes its barrier (central is unreachable)."""
        if connected:
            self.run_command_work(self._publish_node_status)
            return
        for rt in self.lanes.values():
            if rt.controller is not None:
                self.run_command_work(rt.controller.on_central_lost)

    def on_message(self, topic: str, payload: bytes) -> None:
        """A command or trigger message (on the MQTT thread; never raises)."""
        try:
            site, lane, kind = contract.parse_topic(topic)
        except ContractError as exc:
            self.counters["messages_rejected"] += 1
            log.warning("message on unexpected topic %s: %s", topic, exc)
            return
        rt = self.lanes.get(lane)
        if site != self.config.site or rt is None:
            self.counters["messages_rejected"] += 1
            log.warning("message for %s/%s, not a lane of this node", site, lane)
            return
        if kind == "trigger":
            try:
                rt.set_presence(parse_trigger_payload(payload), time.time())
            except TriggerError as exc:
                self.counters["triggers_rejected"] += 1
                log.warning("lane %s: %s", lane, exc)
            return
        if kind == "command":
            self.run_command_work(partial(self._command, rt, payload))

    def _command(self, rt: LaneRuntime, payload: bytes) -> None:
        try:
            command = contract.parse_command(payload)
        except ContractError as exc:
            self.counters["commands_rejected"] += 1
            log.warning("lane %s: malformed command rejected: %s", rt.cfg.lane, exc)
            command_id = _command_id(payload)
            if command_id is not None:
                self._ack(rt, command_id, False, f"malformed command: {exc}")
            return
        if rt.controller is None:
            self.counters["commands_refused"] += 1
            self._ack(rt, command.command_id, False, "lane has no barrier and display configured")
            return
        ack = rt.controller.handle(command)
        self.counters["commands_ok" if ack.ok else "commands_refused"] += 1
        self.publisher.publish_now(contract.command_ack_topic(self.config.site, rt.cfg.lane),
                                   ack.to_json())
        with rt.lock:
            if rt.controller.state.barrier_open:
                self.set_lane_state(rt, "barrier_open")
            elif rt.state == "barrier_open":
                self.set_lane_state(rt, "idle")

    def _ack(self, rt: LaneRuntime, command_id: str, ok: bool, detail: str) -> None:
        ack = contract.CommandAck(command_id=command_id, site=self.config.site,
                                  lane=rt.cfg.lane, node_id=self.config.node_id, ok=ok,
                                  detail=detail[:200])
        self.publisher.publish_now(contract.command_ack_topic(self.config.site, rt.cfg.lane),
                                   ack.to_json())


def _command_id(payload: bytes) -> str | None:
    """The command_id of a malformed command, when one can be read, to refuse it by id."""
    try:
        data = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return None
    cid = data.get("command_id") if isinstance(data, dict) else None
    return cid if isinstance(cid, str) and 8 <= len(cid) <= 64 else None
