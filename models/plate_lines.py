"""The text lines of a plate crop as PP-OCR's recognizer is fed them: 1 row and/or 2 rows split
at the ink valley, each contrast-stretched and brought to the recognizer's height.

Pure functions over numpy arrays, shared by the edge's plate reader
(`edge.recognition.plates`) and the calibration of the quantized recognizer (`models.quantize`),
so both cut and prepare lines the same way.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

LINE_HEIGHT = 48  # the recognizer's input height: lines are brought to it before reading
ONE_ROW_MIN_ASPECT = 1.6  # a crop at least this wide for its height is read as one row
TWO_ROW_ASPECT = (1.2, 3.4)  # width/height of a box that may hold both rows of a 2-row plate


def _percentiles(image: np.ndarray, qs: Sequence[float]) -> list[float]:
    """`np.percentile(image, qs)` (linear interpolation) of a uint8 image, from its histogram."""
    cum = np.cumsum(np.bincount(image.ravel(), minlength=256))
    out = []
    for q in qs:
        at = q / 100 * (cum[-1] - 1)
        below = int(np.floor(at))
        # the k-th smallest value is the first level whose cumulative count exceeds k
        a, b = (float(np.searchsorted(cum, k, side="right"))
                for k in (below, min(below + 1, cum[-1] - 1)))
        t = at - below
        out.append(b - (b - a) * (1 - t) if t >= 0.5 else a + (b - a) * t)  # numpy's lerp
    return out


def prepare_line(line: np.ndarray) -> np.ndarray:
    """A text line ready for the recognizer: contrast-stretched and at the recognizer's height.

    Small lines (94x24 plate crops, far plates) are upscaled with cubic interpolation.
    """
    lab = cv2.cvtColor(line, cv2.COLOR_BGR2LAB)
    light = lab[:, :, 0]
    lo, hi = _percentiles(light, (2, 98))
    if hi - lo > 8:
        levels = np.arange(256, dtype=np.uint8)
        stretch = np.clip((levels - lo) * (255.0 / (hi - lo)), 0, 255).astype(np.uint8)
        lab[:, :, 0] = cv2.LUT(light, stretch)
        line = cv2.cvtColor(lab, cv2.COLOR_LAB2BGR)
    scale = LINE_HEIGHT / line.shape[0]
    interp = cv2.INTER_CUBIC if scale > 1 else cv2.INTER_AREA
    return cv2.resize(line, None, fx=scale, fy=scale, interpolation=interp)


def split_rows(crop: np.ndarray) -> int:
    """Row index between the two text rows of a 2-row plate crop (least ink mid-height)."""
    gray = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
    _, binary = cv2.threshold(gray, 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    h, w = binary.shape
    core = binary[:, w // 10 : w - w // 10 or w]
    ink = core if core.mean() < 0.5 else 1 - core  # text is the minority class
    profile = np.convolve(ink.sum(axis=1).astype(np.float32), np.ones(3) / 3, mode="same")
    lo, hi = int(h * 0.3), int(h * 0.7)
    return lo + int(np.argmin(profile[lo:hi])) if hi > lo else h // 2


def row_layouts(crop: np.ndarray) -> list[tuple[np.ndarray, ...]]:
    """The ways to read a plate crop, each as its text lines: the crop as one row if wide
    enough, and its two rows split at the ink valley (`split_rows`) if not too wide."""
    h, w = crop.shape[:2]
    layouts: list[tuple[np.ndarray, ...]] = []
    if w / h >= ONE_ROW_MIN_ASPECT:
        layouts.append((crop,))
    if w / h < TWO_ROW_ASPECT[1] and h >= 16:
        cut = split_rows(crop)
        margin = max(1, h // 20)
        layouts.append((crop[: cut + margin], crop[max(0, cut - margin) :]))
    return layouts
