"""One lane at run time: presence, frames in flight, its passage assembler and devices.

`LaneRuntime` talks to the node that hosts it only through `LaneHost`: submit and cancel frames,
save an evidence image, emit a finished passage, publish a lane state, run device I/O in order.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from typing import Protocol

import cv2
import numpy as np

from edge.assembly.container_vote import ContainerObservation
from edge.assembly.frame_policy import FrameGate
from edge.assembly.passage import PLATE_ROLES, Observation, PassageAssembler
from edge.assembly.triggers import LoopState, loop_step, zone_grey
from edge.config import LaneConfig, PlateTrigger, VirtualLoopTrigger, WeighbridgeTrigger
from edge.recognition.results import ContainerCodeResult, PlateResult
from edge.runtime.scheduler import Job
from edge.runtime.sources import Frame
from hardware.barrier import BarrierClient
from hardware.config import LaneControllerConfig
from hardware.display import DisplayClient
from hardware.lane import LaneController
from hardware.weighbridge.capture import (
    CaptureEvent,
    VehicleOff,
    VehicleOn,
    WeightCaptured,
    WeightRejected,
)
from hardware.weighbridge.scale import Weighbridge
from smartgate import contract
from smartgate.contract import LaneState, PassageEvent

log = logging.getLogger(__name__)


class LaneHost(Protocol):
    """What a lane needs from the node running it."""

    site: str
    node_id: str

    def submit_frame(self, job: Job) -> None:
        """Queue a frame for inference."""

    def cancel_frames(self, which: Callable[[Job], bool]) -> None:
        """Drop queued frames that `which` selects."""

    def save_image(self, image: np.ndarray) -> str:
        """Keep an evidence image; returns its id."""

    def count_plate_reads(self, n: int) -> None:
        """Count plates read on this node."""

    def record_weight(self, lane: str, weight: contract.Weight) -> None:
        """The lane's last captured weight (for node status and tests)."""

    def set_lane_state(self, lane: LaneRuntime, state: LaneState) -> None:
        """Publish the lane's state when it changes."""

    def run_command_work(self, work: Callable[[], object]) -> None:
        """Run device I/O on the node's command worker, in order."""

    def emit(self, lane: LaneRuntime, event: PassageEvent) -> None:
        """Spool a finished passage."""


def to_frame(plate: PlateResult, dx: int, dy: int, scale: float) -> PlateResult:
    """A plate read on the scaled ROI, with its box and corners in full-frame pixels."""
    if ((dx, dy) == (0, 0) and scale == 1.0) or plate.box is None:
        return plate
    x1, y1, x2, y2 = plate.box
    quad = tuple((x / scale + dx, y / scale + dy) for x, y in plate.quad) if plate.quad else None
    box = (int(x1 / scale) + dx, int(y1 / scale) + dy, int(x2 / scale) + dx, int(y2 / scale) + dy)
    return replace(plate, box=box, quad=quad)


@dataclass
class _Flight:
    """One submitted frame of a lane: its plate role, and whether a worker is inferring it."""

    role: str
    running: bool = False


class LaneRuntime:
    """One lane's live state: presence, frames in flight, its assembler and devices."""

    def __init__(self, host: LaneHost, cfg: LaneConfig) -> None:
        self.host, self.cfg = host, cfg
        self.lock = threading.RLock()
        self.roles = {f"{cfg.lane}/{c.name}": c.role for c in cfg.cameras}
        self.scales = {f"{cfg.lane}/{c.name}": c.scale for c in cfg.cameras}
        self.gated = not isinstance(cfg.trigger, PlateTrigger)
        self.present = False
        self.closing_at: float | None = None
        self.inflight = 0  # frames submitted and not yet finished (waiting or in inference)
        # role -> frames in inference now (every role a key from the start: `rank` reads it
        # from the scheduler's thread without the lane lock)
        self.running: Counter[str] = Counter(dict.fromkeys(self.roles.values(), 0))
        self.generation = 0  # passages closed so far: results of an older one are late
        self.late = 0
        self.skipped = 0  # camera frames the frame policy did not infer
        self.loop = LoopState()
        self.frames = FrameGate(cfg.frames, self.roles,
                                {f"{cfg.lane}/{c.name}": c.fps for c in cfg.cameras},
                                settles=self.gated)
        self.state: LaneState = "idle"
        p = cfg.passage
        self.assembler = PassageAssembler(
            host.site, host.node_id, cfg.lane, cfg.direction, role=cfg.role,
            weighbridge=cfg.weighbridge is not None,
            min_reads=p.min_reads, split_reads=p.split_reads, merge_window_s=p.merge_window_s,
            max_images=p.max_images,
            gap_frames=cfg.trigger.gap_frames if isinstance(cfg.trigger, PlateTrigger) else 1,
        )
        self.controller: LaneController | None = None
        if cfg.barrier is not None and cfg.display is not None:
            self.controller = LaneController(
                LaneControllerConfig(site=host.site, lane=cfg.lane, node_id=host.node_id,
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
                self.frames.reset()
                self.assembler.open(at)
                self.host.set_lane_state(self, "on_scale" if isinstance(
                    self.cfg.trigger, WeighbridgeTrigger) else "vehicle_present")
                return
            self.closing_at = at
            if self._enough():
                self._finish_soon()
            elif self.inflight == 0:
                self._close()

    def _enough(self) -> bool:
        """Whether the open passage has the plate reads it needs."""
        return self.assembler.reads >= max(1, self.cfg.passage.min_reads)

    def _finish_soon(self) -> None:
        """A closing passage that has its reads: drop its waiting frames, close once the frames
        in inference are done or `close_wait_ms` has passed (lock held)."""
        self.host.cancel_frames(lambda j: j.key in self.roles)
        if self.inflight == 0 and self.closing_at is not None:
            self._close()
            return
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
            try:
                weight = event.to_contract()
            except WeightRejected as exc:  # never dropped silently: logged, counted, flagged
                log.warning("lane %s: weighbridge weight rejected: %s", self.cfg.lane, exc.reason)
                if self.weighbridge is not None:
                    self.weighbridge.stats["weights_rejected"] += 1
                with self.lock:
                    self.assembler.set_weight_error(exc.reason)
            else:
                with self.lock:
                    self.assembler.set_weight(weight)
                    self.host.record_weight(self.cfg.lane, weight)
            if isinstance(self.cfg.trigger, WeighbridgeTrigger):
                self.set_presence(False, event.at)  # the truck waits on the scale for central
        elif isinstance(event, VehicleOff):
            if isinstance(self.cfg.trigger, WeighbridgeTrigger):
                self.set_presence(False, event.at)
            if self.controller is not None:
                self.host.run_command_work(self.controller.on_vehicle_left)
            with self.lock:
                if not self.present and self.closing_at is None:
                    self.host.set_lane_state(self, "idle")

    # --- frames and results ---------------------------------------------------------------

    def on_frame(self, frame: Frame) -> None:
        """A camera frame: feed the virtual loop, and queue it for inference when the frame
        policy wants it (`edge.assembly.frame_policy`)."""
        trigger = self.cfg.trigger
        if isinstance(trigger, VirtualLoopTrigger) and frame.camera == f"{self.cfg.lane}/{trigger.camera}":
            self.loop, switched = loop_step(self.loop, zone_grey(frame.image, trigger.zone), trigger)
            if switched is not None:
                self.set_presence(switched, frame.timestamp)
        with self.lock:
            passage_open = self.present if self.gated else self.assembler.active
            if not self.frames.want(frame.camera, frame.index, passage_open, self.gated):
                self.skipped += 1
                return
            self.inflight += 1
        role = self.roles[frame.camera]
        kind = "plates" if role in PLATE_ROLES else "containers"
        scale = self.scales[frame.camera]
        image = frame.view if scale == 1.0 else cv2.resize(
            frame.view, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        flight = _Flight(role)
        self.host.submit_frame(
            Job(frame.camera, kind, image, rank=partial(self.rank, frame.camera),
                group=f"{self.cfg.lane}/{role}" if self.frames.settles and kind == "plates"
                else None,
                started=partial(self.job_started, flight),
                done=partial(self.on_result, frame, role, self.generation, flight),
                dropped=partial(self.job_finished, flight)),
        )

    def job_started(self, flight: _Flight) -> None:
        """A worker took one of the lane's frames (`rank` counts it as a read to come)."""
        with self.lock:
            flight.running = True
            self.running[flight.role] += 1

    def on_result(self, frame: Frame, role: str, generation: int, flight: _Flight,
                  result: list) -> None:
        """Inference result of one frame (on an inference thread)."""
        with self.lock:
            self._landed(flight)
        dx, dy = frame.offset
        scale = self.scales[frame.camera]
        events: list[PassageEvent] = []
        if self.gated and generation != self.generation:
            with self.lock:
                self.late += 1
            self.job_finished()
            return
        image_id = self.host.save_image(frame.image) if result else None
        with self.lock:
            if self.gated and generation != self.generation:
                self.late += 1
            elif role in PLATE_ROLES:
                plates: list[PlateResult] = result
                self.host.count_plate_reads(len(plates[:1]))
                obs = [Observation(frame.camera, frame.timestamp, to_frame(p, dx, dy, scale),
                                   image_id, role) for p in plates[:1]]
                enough = self._enough()
                if isinstance(self.cfg.trigger, PlateTrigger):
                    events = self.assembler.feed_frame(frame.camera, frame.index,
                                                       frame.timestamp, obs)
                    if events:
                        self.frames.reset()
                    self.host.set_lane_state(
                        self, "vehicle_present" if self.assembler.active else self.state)
                else:
                    self.assembler.add_frame(frame.camera, frame.index)
                    events = self.assembler.add_plates(obs)
                settled = self.frames.observe(frame.camera, plates[:1])
                if self.closing_at is not None and not enough and self._enough():
                    self._finish_soon()  # the closing passage's first read: stop waiting
                elif settled:
                    self.host.cancel_frames(lambda j: j.key in settled)
            else:
                codes: list[ContainerCodeResult] = result
                self.assembler.add_frame(frame.camera, frame.index)
                self.assembler.add_containers(
                    [ContainerObservation(frame.camera, frame.index, c) for c in codes], image_id)
        for event in events:
            self.host.emit(self, event)
        self.job_finished()

    def rank(self, camera: str) -> int:
        """Scheduling priority of a camera's frames (lower first): a closing passage without
        a read or a frame in inference, then cameras whose plate role has few reads, frames
        in inference counted as reads (`FrameGate.rank`)."""
        if (self.closing_at is not None and self.assembler.reads == 0
                and not any(self.running.values())):
            return -1
        return self.frames.rank(camera, self.running)

    def _landed(self, flight: _Flight | None) -> None:
        """A frame is out of inference (lock held)."""
        if flight is not None and flight.running:
            flight.running = False
            self.running[flight.role] -= 1

    def job_finished(self, flight: _Flight | None = None) -> None:
        """A frame left the pipeline (inferred or dropped); closes a passage waiting for it."""
        with self.lock:
            self._landed(flight)
            self.inflight -= 1
            if self.inflight == 0 and self.closing_at is not None:
                self._close()

    def _close(self) -> None:
        at, self.closing_at = self.closing_at, None
        assert at is not None
        self.generation += 1
        event = self.assembler.close(at)
        if event is not None:
            self.host.emit(self, event)
        elif self.assembler.last_merge is not None and self.controller is not None:
            merged = self.assembler.last_merge.event_id
            log.info("lane %s: reversing truck merged into passage %s", self.cfg.lane, merged[:8])
            self.host.run_command_work(partial(self.controller.set_passage, merged))
            self.host.set_lane_state(self, "waiting_decision")
        else:
            self.host.set_lane_state(self, "idle")
        self.assembler.last_merge = None

    def flush(self) -> None:
        """End of sources: close whatever is open."""
        with self.lock:
            if self.assembler.active:
                self.closing_at = time.time() if self.closing_at is None else self.closing_at
                self._close()
