"""The project's own plate recognizer (models/plate_recognizer): one grey 64x192 image per plate,
both rows of a 2-row plate in it, one CTC matrix out.

`PlateRecognizer.probabilities(crops)` is the batch-first core: BGR crops in, (N, T, 1 + len(chars))
probabilities out, column 0 the blank, in the column order of the `chars` it was built for (the
reader's grammar alphabet), so `edge.recognition.grammar.decode` reads it like PP-OCR's matrix.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.recognition.ocr import check_image

MAX_BATCH = 64
MARGIN = 0.06  # a located plate (text lines) is widened by this share of its size on each side


class PlateRecognizer:
    """An ONNX session of the plate recognizer with the charset that travels beside it."""

    def __init__(self, session: Any, charset: str, input_hw: tuple[int, int], chars: str) -> None:
        self.session = session
        self.input_name = session.get_inputs()[0].name
        self.height, self.width = input_hw
        self.charset = charset
        index = {c: i + 1 for i, c in enumerate(charset)}
        # our columns: blank, then each reader char (a char the model lacks gets no probability)
        self.columns = np.array([0, *(index.get(c, -1) for c in chars)])
        self.missing = self.columns < 0

    @classmethod
    def from_files(cls, onnx_path: Path, chars: str, threads: int = 0) -> PlateRecognizer:
        """Load `plate_rec.onnx` and its `plate_rec.json` (charset, input size)."""
        from models.registry import create_session

        meta = json.loads(onnx_path.with_suffix(".json").read_text(encoding="utf-8"))
        session = create_session(onnx_path, threads)
        _, _, height, width = meta["input"]["shape"]
        return cls(session, meta["charset"], (int(height), int(width)), chars)

    def preprocess(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """BGR (or grey) crops -> (N, 1, H, W) float32 grey in [0, 1]."""
        batch = np.empty((len(crops), 1, self.height, self.width), dtype=np.float32)
        for i, crop in enumerate(crops):
            crop = check_image(crop, f"plate {i}")
            small = cv2.resize(crop, (self.width, self.height), interpolation=cv2.INTER_AREA)
            grey = small.mean(axis=2) if small.ndim == 3 else small
            batch[i, 0] = grey / 255.0
        return batch

    def probabilities(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """(N, T, 1 + len(chars)) CTC probabilities, renormalized over the reader's columns."""
        if not crops:
            return np.zeros((0, 0, len(self.columns)), dtype=np.float32)
        out = []
        for start in range(0, len(crops), MAX_BATCH):
            x = self.preprocess(crops[start:start + MAX_BATCH])
            out.append(self.session.run(None, {self.input_name: x})[0])
        probs = np.concatenate(out)
        ours = probs[:, :, np.maximum(self.columns, 0)]
        ours[:, :, self.missing] = 0.0
        return ours / np.maximum(ours.sum(axis=2, keepdims=True), 1e-9)


def widen_quad(quad: np.ndarray, margin: float = MARGIN) -> np.ndarray:
    """The quad of located text lines grown by `margin` of its width/height on every side, so the
    crop looks like a plate crop (the recognizer was trained on plates with their border)."""
    centre = quad.mean(axis=0)
    return centre + (quad - centre) * (1 + 2 * margin)
