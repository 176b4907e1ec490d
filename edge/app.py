"""Edge node wiring: camera threads → batched plate reading → per-lane passages → spool → MQTT."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

from edge.config import EdgeConfig
from edge.images import ImageStore
from edge.passage import Observation, PassageAssembler
from edge.plates import PlateReader
from edge.publisher import EdgePublisher
from edge.sources import Frame, SourceError, iter_frames
from edge.spool import Spool
from smartgate import contract
from smartgate.contract import PassageEvent

log = logging.getLogger(__name__)

_END = object()


class EdgeNode:
    """One edge node running all lanes of its configuration."""

    def __init__(
        self, config: EdgeConfig, reader: PlateReader | None = None, realtime: bool = True,
        on_passage: Callable[[PassageEvent], None] | None = None,
    ) -> None:
        self.config = config
        self.realtime = realtime
        self.on_passage = on_passage
        self.reader = reader or PlateReader()
        self.spool = Spool(config.data_dir / "spool.db")
        self.images = ImageStore(config.data_dir / "images")
        self.publisher = EdgePublisher(
            config.site, config.node_id, [lane.lane for lane in config.lanes], config.mqtt,
            self.spool,
        )
        self.lane_of: dict[str, str] = {}
        self.assemblers: dict[str, PassageAssembler] = {}
        for lane in config.lanes:
            self.assemblers[lane.lane] = PassageAssembler(
                config.site, config.node_id, lane.lane, lane.direction,
                lane.passage.gap_frames, lane.passage.min_reads,
            )
            for cam in lane.cameras:
                self.lane_of[f"{lane.lane}/{cam.name}"] = lane.lane
        self.frames: queue.Queue = queue.Queue(maxsize=64)
        self.stop_event = threading.Event()
        self.passages_emitted = 0
        self._camera_threads: list[threading.Thread] = []

    def _camera_loop(self, key: str, source: str, fps: float, loop: bool) -> None:
        try:
            for frame in iter_frames(key, source, fps, loop, self.realtime):
                if self.stop_event.is_set():
                    break
                self.frames.put(frame)
        except SourceError as exc:
            log.error("%s", exc)
        finally:
            self.frames.put(_END)

    def start(self) -> None:
        """Start the MQTT connection and one reader thread per camera."""
        self.publisher.start()
        for lane in self.config.lanes:
            for cam in lane.cameras:
                key = f"{lane.lane}/{cam.name}"
                t = threading.Thread(
                    target=self._camera_loop, args=(key, cam.source, cam.fps, cam.loop),
                    name=f"camera-{key}", daemon=True,
                )
                t.start()
                self._camera_threads.append(t)

    def _emit(self, event: PassageEvent) -> None:
        topic = contract.passage_topic(event.site, event.lane)
        self.spool.put(event.event_id, topic, event.to_json())
        self.publisher.notify()
        self.passages_emitted += 1
        plate = event.best_plate
        log.info("passage %s lane %s plate %s", event.event_id[:8], event.lane,
                 plate.display_text if plate else "-")
        if self.on_passage is not None:
            self.on_passage(event)

    def _process(self, batch: list[Frame]) -> None:
        results = self.reader.read_frames([f.image for f in batch])
        for frame, plates in zip(batch, results, strict=True):
            lane = self.lane_of[frame.camera]
            observations = []
            if plates:
                image_id = self.images.save(frame.image)
                observations = [
                    Observation(frame.camera, frame.timestamp, p, image_id) for p in plates[:1]
                ]
            event = self.assemblers[lane].feed(frame.timestamp, observations)
            if event is not None:
                self._emit(event)

    def run(self) -> None:
        """Process frames until every source ends or `stop()` is called; then flush and drain."""
        remaining = len(self._camera_threads)
        while remaining and not self.stop_event.is_set():
            try:
                item = self.frames.get(timeout=0.5)
            except queue.Empty:
                continue
            batch: list[Frame] = []
            while True:
                if item is _END:
                    remaining -= 1
                else:
                    batch.append(item)
                if len(batch) >= self.config.max_batch:
                    break
                try:
                    item = self.frames.get_nowait()
                except queue.Empty:
                    break
            if batch:
                self._process(batch)
        for assembler in self.assemblers.values():
            event = assembler.flush()
            if event is not None:
                self._emit(event)

    def stop(self) -> None:
        """Stop sources, publish what is spooled if the broker is there, disconnect."""
        self.stop_event.set()
        self.publisher.stop()
        self.spool.close()

    def wait_drained(self, timeout_s: float = 30.0) -> bool:
        """Wait until the spool is empty (every event acknowledged by the broker)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.spool.depth() == 0:
                return True
            time.sleep(0.1)
        return False
