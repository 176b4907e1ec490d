"""Frame sources: video files, image folders and network streams, as timestamped frames."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


@dataclass(frozen=True)
class Frame:
    """One frame from one camera."""

    camera: str
    index: int
    timestamp: float
    image: np.ndarray


class SourceError(RuntimeError):
    """A source that cannot be opened."""


def _folder_images(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise SourceError(f"image folder {folder} holds no images")
    return files


def iter_frames(
    camera: str, source: str, fps: float, loop: bool = False, realtime: bool = True
) -> Iterator[Frame]:
    """Frames from `source` sampled at `fps`; unreadable images are logged and skipped."""
    period = 1.0 / fps
    index = 0
    path = Path(source)
    while True:
        if path.is_dir():
            for file in _folder_images(path):
                image = cv2.imread(str(file), cv2.IMREAD_COLOR)
                if image is None:
                    log.warning("camera %s: cannot decode %s, skipped", camera, file)
                    continue
                yield Frame(camera, index, time.time(), image)
                index += 1
                if realtime:
                    time.sleep(period)
        else:
            if "://" not in source and not path.exists():
                raise SourceError(f"camera {camera}: source {source} does not exist")
            cap = cv2.VideoCapture(source)
            if not cap.isOpened():
                raise SourceError(f"camera {camera}: cannot open {source}")
            native = cap.get(cv2.CAP_PROP_FPS) or fps
            step = max(1, round(native / fps))
            n = 0
            try:
                while True:
                    ok, image = cap.read()
                    if not ok:
                        break
                    if n % step == 0:
                        yield Frame(camera, index, time.time(), image)
                        index += 1
                        if realtime:
                            time.sleep(period)
                    n += 1
            finally:
                cap.release()
        if not loop:
            return
