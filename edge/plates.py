"""Licence plate reading: find plate text in frames and read it (batched PP-OCR det + rec).

Core API used by the edge runtime and `smartgate eval`:
`PlateReader.read_frames(frames) -> list[list[PlateResult]]` and
`PlateReader.read_crops(crops) -> list[PlateResult]`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from edge.ocr import TextDetector, TextRecognizer, warp_quad

PLATE_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_SEPARATORS = re.compile(r"[\s\-.·•:_/]")
_PLATE_LIKE = re.compile(r"^(?=.*\d)[0-9A-Z\u4e00-\u9fff]{4,10}$")


def normalize_plate(text: str) -> str:
    """Uppercase and strip separators (spaces, dashes, dots, middle dots)."""
    return _SEPARATORS.sub("", text.upper())


@dataclass(frozen=True)
class PlateResult:
    """One plate read in a frame or crop."""

    text: str
    display_text: str
    confidence: float
    region: str = "unknown"
    rows: int = 1
    colour: str = "unknown"
    box: tuple[int, int, int, int] | None = None
    candidates: tuple[tuple[str, float], ...] = field(default_factory=tuple)


class PlateReader:
    """Finds and reads plates with the PP-OCR detector and recognizer, batch-first."""

    def __init__(
        self,
        detector: TextDetector | None = None,
        recognizer: TextRecognizer | None = None,
        min_confidence: float = 0.5,
    ) -> None:
        self.detector = detector or TextDetector()
        self.recognizer = recognizer or TextRecognizer()
        self.min_confidence = min_confidence

    def read_frames(self, frames: Sequence[np.ndarray]) -> list[list[PlateResult]]:
        """Plates found in each frame, most confident first."""
        boxes_per_frame = self.detector.detect(frames)
        crops, owners, rects = [], [], []
        for i, (frame, boxes) in enumerate(zip(frames, boxes_per_frame, strict=True)):
            for box in boxes:
                crops.append(warp_quad(frame, box.quad))
                owners.append(i)
                rects.append(box.bbox)
        results: list[list[PlateResult]] = [[] for _ in frames]
        if not crops:
            return results
        for owner, rect, line in zip(owners, rects, self.recognizer.recognize(crops), strict=True):
            text = normalize_plate(line.text)
            if line.confidence >= self.min_confidence and _PLATE_LIKE.match(text):
                results[owner].append(
                    PlateResult(text, line.text, line.confidence, box=rect,
                                candidates=((text, line.confidence),))
                )
        for plates in results:
            plates.sort(key=lambda p: p.confidence, reverse=True)
        return results

    def read_crops(self, crops: Sequence[np.ndarray]) -> list[PlateResult]:
        """Read each crop as a single-line plate."""
        lines = self.recognizer.recognize(crops)
        return [
            PlateResult(normalize_plate(line.text), line.text, line.confidence,
                        candidates=((normalize_plate(line.text), line.confidence),))
            for line in lines
        ]
