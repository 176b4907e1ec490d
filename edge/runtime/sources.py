"""Frame sources: image folders, video files, network streams and simulated cameras.

A stream (`open_stream`) yields raw images; `CameraReader` is the thread shell around one camera:
it samples the stream at the configured fps, timestamps frames, attaches the region of interest,
reconnects with exponential backoff when a live source fails and reports the camera's status.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
Rect = tuple[int, int, int, int]


@dataclass(frozen=True)
class Frame:
    """One frame of one camera (`camera` is `lane/name`); inference sees `view` (the ROI)."""

    camera: str
    index: int
    timestamp: float
    image: np.ndarray
    roi: Rect | None = None

    @property
    def view(self) -> np.ndarray:
        """The region of interest (a view, no copy), or the whole image."""
        if self.roi is None:
            return self.image
        x, y, w, h = self.roi
        return self.image[y : y + h, x : x + w]

    @property
    def offset(self) -> tuple[int, int]:
        """Position of `view` in `image`."""
        return (self.roi[0], self.roi[1]) if self.roi else (0, 0)


class SourceError(RuntimeError):
    """A source that cannot be opened."""


class SourceLost(RuntimeError):
    """A live source stopped delivering frames."""


class Stream(Protocol):
    """Raw images of one source: `read` gives None at the end of a finite source."""

    live: bool
    native_fps: float | None

    def read(self) -> np.ndarray | None: ...

    def close(self) -> None: ...


class FolderStream:
    """The images of a folder in name order; unreadable files are logged and skipped."""

    live = False
    native_fps = None

    def __init__(self, folder: Path) -> None:
        self.files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.files:
            raise SourceError(f"image folder {folder} holds no images")
        self._next = 0

    def read(self) -> np.ndarray | None:
        while self._next < len(self.files):
            file = self.files[self._next]
            self._next += 1
            image = cv2.imread(str(file), cv2.IMREAD_COLOR)
            if image is not None:
                return image
            log.warning("cannot decode %s, skipped", file)
        return None

    def close(self) -> None:
        self._next = len(self.files)


class CaptureStream:
    """A video file or network stream (RTSP/HTTP) through OpenCV."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.live = "://" in source
        if not self.live and not Path(source).exists():
            raise SourceError(f"source {source} does not exist")
        self.cap = cv2.VideoCapture(source)
        if not self.cap.isOpened():
            raise SourceError(f"cannot open {source}")
        self.native_fps = self.cap.get(cv2.CAP_PROP_FPS) or None

    def read(self) -> np.ndarray | None:
        ok, image = self.cap.read()
        if ok:
            return image
        if self.live:
            raise SourceLost(f"{self.source} stopped delivering frames")
        return None

    def close(self) -> None:
        self.cap.release()


class SimulatedCamera:
    """An in-process camera showing a scene (a list of images played in a loop); thread-safe."""

    live = True
    native_fps = None

    def __init__(self, empty: np.ndarray) -> None:
        self.empty = empty
        self._lock = threading.Lock()
        self._scene: tuple[np.ndarray, ...] = (empty,)
        self._next = 0

    def show(self, images: Sequence[np.ndarray] | None) -> None:
        """Show these images from now on (None: the empty lane)."""
        with self._lock:
            self._scene = tuple(images) if images else (self.empty,)
            self._next = 0

    def read(self) -> np.ndarray | None:
        with self._lock:
            image = self._scene[self._next % len(self._scene)]
            self._next += 1
        return image

    def close(self) -> None:
        """Nothing to release."""


def open_stream(source: str, simulated: SimulatedCamera | None = None) -> Stream:
    """The stream for a configured `source`; `sim` needs the program's simulated camera."""
    if source == "sim":
        if simulated is None:
            raise SourceError("source `sim` needs a simulated camera supplied by the program")
        return simulated
    path = Path(source)
    if "://" not in source and path.is_dir():
        return FolderStream(path)
    return CaptureStream(source)


def clip_roi(roi: Rect | None, shape: tuple[int, ...]) -> Rect | None:
    """The ROI clipped to an image of `shape`; None when it would be empty or is the whole."""
    if roi is None:
        return None
    h, w = shape[:2]
    x, y = min(roi[0], w - 1), min(roi[1], h - 1)
    rw, rh = min(roi[2], w - x), min(roi[3], h - y)
    if (x, y, rw, rh) == (0, 0, w, h):
        return None
    return (x, y, rw, rh)


def backoff(attempt: int, initial_s: float, max_s: float) -> float:
    """Exponential reconnect delay for the `attempt`-th failure in a row."""
    return min(max_s, initial_s * (2 ** min(attempt, 20)))


FrameSink = Callable[[Frame], None]
StatusSink = Callable[[str, bool], None]


class CameraReader:
    """Reads one camera in a thread and hands each sampled frame to `sink`.

    Finite sources (files, folders) end unless `loop`; live sources reconnect with backoff.
    `realtime=False` reads files as fast as the sink accepts them.
    """

    def __init__(
        self,
        key: str,
        source: str,
        fps: float,
        sink: FrameSink,
        *,
        loop: bool = False,
        roi: Rect | None = None,
        realtime: bool = True,
        on_status: StatusSink | None = None,
        on_end: Callable[[str], None] | None = None,
        simulated: SimulatedCamera | None = None,
        reconnect_initial_s: float = 0.5,
        reconnect_max_s: float = 30.0,
    ) -> None:
        self.key, self.source, self.fps = key, source, fps
        self.sink, self.loop, self.roi, self.realtime = sink, loop, roi, realtime
        self.on_status, self.on_end, self.simulated = on_status, on_end, simulated
        self.reconnect = (reconnect_initial_s, reconnect_max_s)
        self.ok = False
        self.frames = 0
        self.reconnects = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"camera-{key}", daemon=True)

    def start(self) -> CameraReader:
        """Start reading."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop reading (the thread ends after its current frame)."""
        self._stop.set()

    def join(self, timeout: float | None = None) -> None:
        """Wait for the reader thread."""
        self._thread.join(timeout)

    def _status(self, ok: bool) -> None:
        if ok != self.ok:
            self.ok = ok
            (log.info if ok else log.warning)("camera %s %s", self.key, "ok" if ok else "DOWN")
            if self.on_status is not None:
                self.on_status(self.key, ok)

    def _run(self) -> None:
        attempt = 0
        try:
            while not self._stop.is_set():
                try:
                    stream = open_stream(self.source, self.simulated)
                except SourceError as exc:
                    self._status(False)
                    if "://" not in self.source:
                        log.error("camera %s: %s", self.key, exc)
                        return
                    delay = backoff(attempt, *self.reconnect)
                    attempt += 1
                    log.warning("camera %s: %s; retrying in %.1fs", self.key, exc, delay)
                    self._stop.wait(delay)
                    continue
                attempt = 0
                self._status(True)
                try:
                    finished = self._read(stream)
                except SourceLost as exc:
                    self._status(False)
                    self.reconnects += 1
                    log.warning("camera %s: %s; reconnecting", self.key, exc)
                    self._stop.wait(backoff(0, *self.reconnect))
                    continue
                finally:
                    stream.close()
                if finished and not self.loop:
                    return
        finally:
            if self.on_end is not None:
                self.on_end(self.key)

    def _read(self, stream: Stream) -> bool:
        """Sample frames until the stream ends (True) or the reader is stopped (False)."""
        period = 1.0 / self.fps
        step = max(1, round(stream.native_fps / self.fps)) if stream.native_fps else 1
        n = 0
        next_at = time.monotonic()
        while not self._stop.is_set():
            sampled = n % step == 0
            if sampled and (self.realtime or stream.live):  # wait, then read: the newest frame
                delay = next_at - time.monotonic()
                if delay > 0 and self._stop.wait(delay):
                    return False
                next_at = max(next_at + period, time.monotonic() - period)
            image = stream.read()
            if image is None:
                return True
            n += 1
            if not sampled:
                continue
            frame = Frame(
                self.key, self.frames, time.time(), image, clip_roi(self.roi, image.shape)
            )
            self.frames += 1
            self.sink(frame)
        return False
