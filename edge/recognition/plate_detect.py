"""Plate localisation in whole frames by the project's plate detector (models/plate_detector).

The detector sees a frame letterboxed to `INPUT_SIDE` pixels on its long side and gives, per
stride-4 cell, the probability that a plate is centred there and the log of the plate's box
width and height in cells. `decode` (pure) turns those maps into plate boxes in frame pixels;
`PlateDetector` is the thin ONNX shell around it. The boxes only say where to look: the text
detector and recognizer read the plate in a window around each one (`PlateReader._locate`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import onnxruntime as ort

from edge.recognition.ocr import check_image
from edge.recognition.results import Box

log = logging.getLogger(__name__)

INPUT_SIDE = 384  # long side of the detector input (the model was trained at this scale)
STRIDE = 4  # frame-input pixels per output cell
MIN_SCORE = 0.2  # peaks below this centre probability are not plates
MAX_PLATES = 4  # at most this many boxes per frame, best first


@dataclass(frozen=True)
class PlateBox:
    """A plate the detector found: its axis-aligned box in frame pixels and centre score."""

    box: Box
    score: float


def input_size(height: int, width: int, side: int = INPUT_SIDE) -> tuple[float, int, int]:
    """(scale, padded height, padded width) of a frame's detector input: the long side brought
    to `side`, each side then padded up to a multiple of 32."""
    scale = side / max(height, width)
    h = max(32, -(-round(height * scale) // 32) * 32)
    w = max(32, -(-round(width * scale) // 32) * 32)
    return scale, h, w


def prepare(frame: np.ndarray, side: int = INPUT_SIDE) -> tuple[np.ndarray, float]:
    """The (3, H, W) float32 input of one BGR frame (resized, zero-padded right and bottom)
    and its scale from frame to input pixels."""
    height, width = frame.shape[:2]
    scale, h, w = input_size(height, width, side)
    rh, rw = min(h, round(height * scale)), min(w, round(width * scale))
    resized = cv2.resize(frame, (rw, rh), interpolation=cv2.INTER_AREA)
    out = np.zeros((3, h, w), np.float32)
    out[:, :rh, :rw] = resized.transpose(2, 0, 1) / np.float32(255)
    return out, scale


def decode(maps: np.ndarray, scale: float, frame_shape: tuple[int, ...],
           min_score: float = MIN_SCORE, max_plates: int = MAX_PLATES) -> list[PlateBox]:
    """Plate boxes (frame pixels, best first) of one frame's detector output `maps`
    ((3, h, w): centre probability, log box width and height in cells), for an input made at
    `scale` from a frame of `frame_shape`: the local maxima (3 x 3) of the centre map at or
    above `min_score`, at most `max_plates`."""
    heat = maps[0]
    padded = np.pad(heat, 1, constant_values=-1.0)
    h, w = heat.shape
    neighbours = np.max([padded[dy:dy + h, dx:dx + w] for dy in range(3) for dx in range(3)],
                        axis=0)
    rows, cols = np.nonzero((heat >= neighbours) & (heat >= min_score))
    order = np.argsort(-heat[rows, cols], kind="stable")[:max_plates]
    height, width = frame_shape[:2]
    found = []
    for r, c in zip(rows[order], cols[order], strict=True):
        cx, cy = (c + 0.5) * STRIDE / scale, (r + 0.5) * STRIDE / scale
        bw = float(np.exp(maps[1, r, c])) * STRIDE / scale
        bh = float(np.exp(maps[2, r, c])) * STRIDE / scale
        box = (max(0, int(cx - bw / 2)), max(0, int(cy - bh / 2)),
               min(width, int(np.ceil(cx + bw / 2))), min(height, int(np.ceil(cy + bh / 2))))
        if box[2] > box[0] and box[3] > box[1]:
            found.append(PlateBox(box, float(heat[r, c])))
    return found


class PlateDetector:
    """The plate detector's ONNX session over frames (one run per frame shape)."""

    def __init__(self, session: ort.InferenceSession | None = None, side: int = INPUT_SIDE,
                 min_score: float = MIN_SCORE) -> None:
        if session is None:
            from models.registry import shared_session

            session = shared_session("plate_det")
        self.session = session
        self.input_name = session.get_inputs()[0].name
        self.side = side
        self.min_score = min_score

    def detect(self, frames: Sequence[np.ndarray]) -> list[list[PlateBox]]:
        """Plate boxes per frame, best first; frames of one shape share a batch."""
        out: list[list[PlateBox]] = [[] for _ in frames]
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for i, frame in enumerate(frames):
            by_shape.setdefault(check_image(frame, f"frame {i}").shape, []).append(i)
        for shape, idx in by_shape.items():
            inputs = [prepare(frames[i], self.side) for i in idx]
            batch = np.stack([x for x, _ in inputs])
            maps = self.session.run(None, {self.input_name: batch})[0]
            for k, i in enumerate(idx):
                out[i] = decode(maps[k], inputs[k][1], shape, self.min_score)
        return out
