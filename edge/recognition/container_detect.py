"""Container body detection behind one `ContainerDetector` protocol.

Two implementations: `ClassicalContainerDetector` (no weights: large regions dense in the straight
ribs of corrugated steel) and `YoloOnnxContainerDetector`, which runs a user's YOLOv5/YOLOv8 ONNX
export (no pretrained container detector ships with SmartGate). `decode_yolo` and `nms` are pure
functions over the raw output arrays.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import cv2
import numpy as np

from edge.recognition.ocr import check_image
from edge.recognition.results import Box
from models.registry import create_session

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class ContainerBox:
    """A detected container body in frame pixels."""

    box: Box
    score: float
    label: str = "container"


@runtime_checkable
class ContainerDetector(Protocol):
    """Anything that finds container bodies in a batch of BGR frames."""

    def detect(self, frames: Sequence[np.ndarray]) -> list[list[ContainerBox]]: ...


class ClassicalContainerDetector:
    """Large rectangular regions dense in long straight edges (corrugation, panel seams)."""

    def __init__(self, work_width: int = 320, min_area: float = 0.06, min_fill: float = 0.55):
        self.work_width = work_width
        self.min_area = min_area
        self.min_fill = min_fill

    def detect(self, frames: Sequence[np.ndarray]) -> list[list[ContainerBox]]:
        """Container bodies per frame, largest first."""
        return [self._detect_one(check_image(f, f"frame {i}")) for i, f in enumerate(frames)]

    def _detect_one(self, frame: np.ndarray) -> list[ContainerBox]:
        h, w = frame.shape[:2]
        scale = self.work_width / w
        small = cv2.resize(frame, (self.work_width, max(8, int(round(h * scale)))))
        gray = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY).astype(np.float32)
        gx = np.abs(cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3))
        gy = np.abs(cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3))
        edges = (np.maximum(gx, gy) > max(20.0, 2.0 * float(np.mean(np.maximum(gx, gy))))).astype(
            np.float32
        )
        k = max(5, self.work_width // 20)
        density = cv2.blur(edges, (k, k))
        dense = (density > 0.12).astype(np.uint8)
        closed = cv2.morphologyEx(dense, cv2.MORPH_CLOSE, np.ones((k, k), np.uint8))
        mask = cv2.morphologyEx(closed, cv2.MORPH_OPEN, np.ones((k // 2, k // 2), np.uint8))
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        area_total = mask.shape[0] * mask.shape[1]
        found = []
        for contour in contours:
            x, y, cw, ch = cv2.boundingRect(contour)
            fill = cv2.contourArea(contour) / max(1, cw * ch)
            if cw * ch < self.min_area * area_total or fill < self.min_fill:
                continue
            box = (int(x / scale), int(y / scale), int((x + cw) / scale), int((y + ch) / scale))
            found.append(ContainerBox(box, round(float(fill), 3)))
        found.sort(key=lambda b: -(b.box[2] - b.box[0]) * (b.box[3] - b.box[1]))
        return found


# --- YOLO ONNX ---------------------------------------------------------------------------------


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> list[int]:
    """Greedy non-maximum suppression over (N, 4) x1y1x2y2 boxes; kept indices, best first."""
    order = np.argsort(-scores)
    keep: list[int] = []
    areas = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(
        boxes[:, 3] - boxes[:, 1], 0, None
    )
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        ix1 = np.maximum(boxes[i, 0], boxes[rest, 0])
        iy1 = np.maximum(boxes[i, 1], boxes[rest, 1])
        ix2 = np.minimum(boxes[i, 2], boxes[rest, 2])
        iy2 = np.minimum(boxes[i, 3], boxes[rest, 3])
        inter = np.clip(ix2 - ix1, 0, None) * np.clip(iy2 - iy1, 0, None)
        overlap = inter / np.maximum(areas[i] + areas[rest] - inter, 1e-9)
        order = rest[overlap <= iou]
    return keep


def decode_yolo(
    output: np.ndarray, num_classes: int, conf: float = 0.25, iou: float = 0.45
) -> list[tuple[np.ndarray, float, int]]:
    """Decode one image's raw YOLO output into (x1y1x2y2, score, class) in input pixels.

    Accepts YOLOv5 layout (boxes, 5 + classes: cx cy w h objectness scores...) and YOLOv8 layout
    (4 + classes, boxes: cx cy w h scores...); NMS is per class.
    """
    out = np.asarray(output, dtype=np.float32)
    if out.ndim == 3 and out.shape[0] == 1:
        out = out[0]
    if out.ndim != 2:
        raise ValueError(f"YOLO output must be 2-D per image, got shape {output.shape}")
    if out.shape[0] == 4 + num_classes and out.shape[1] != 5 + num_classes:
        out = out.T  # v8: (4 + nc, N) -> (N, 4 + nc)
        cls_scores = out[:, 4:]
    elif out.shape[1] == 5 + num_classes:
        cls_scores = out[:, 5:] * out[:, 4:5]
    elif out.shape[1] == 4 + num_classes:
        cls_scores = out[:, 4:]
    else:
        raise ValueError(f"YOLO output shape {output.shape} does not fit {num_classes} classes")
    cls = cls_scores.argmax(axis=1)
    score = cls_scores[np.arange(len(cls)), cls]
    sel = score >= conf
    cx, cy, bw, bh = (out[sel, k] for k in range(4))
    xyxy = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1)
    score, cls = score[sel], cls[sel]
    results = []
    for c in np.unique(cls):
        idx = np.nonzero(cls == c)[0]
        for k in nms(xyxy[idx], score[idx], iou):
            results.append((xyxy[idx[k]], float(score[idx[k]]), int(c)))
    results.sort(key=lambda r: -r[1])
    return results


def letterbox(image: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, float, int, int]:
    """Resize keeping aspect and pad to `size` (h, w) with grey; returns image, scale, pad x, y."""
    h, w = image.shape[:2]
    scale = min(size[0] / h, size[1] / w)
    nh, nw = int(round(h * scale)), int(round(w * scale))
    top, left = (size[0] - nh) // 2, (size[1] - nw) // 2
    canvas = np.full((size[0], size[1], 3), 114, dtype=np.uint8)
    canvas[top : top + nh, left : left + nw] = cv2.resize(image, (nw, nh))
    return canvas, scale, left, top


class YoloOnnxContainerDetector:
    """A user's YOLOv5/YOLOv8 ONNX export (NCHW, RGB 0..1, letterboxed) as a ContainerDetector."""

    def __init__(
        self,
        path: Path | str,
        classes: Sequence[str] = ("container",),
        keep: Sequence[str] | None = None,
        conf: float = 0.25,
        iou: float = 0.45,
        threads: int = 0,
    ) -> None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"YOLO container model {path} not found")
        self.session = create_session(path, threads)
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.one_at_a_time = inp.shape[0] == 1  # an export with a fixed batch of 1
        h, w = inp.shape[2], inp.shape[3]
        self.size = (h if isinstance(h, int) else 640, w if isinstance(w, int) else 640)
        self.classes = tuple(classes)
        self.keep = set(keep) if keep is not None else set(self.classes)
        self.conf = conf
        self.iou = iou

    def detect(self, frames: Sequence[np.ndarray]) -> list[list[ContainerBox]]:
        """Container boxes per frame, best first, in frame pixels."""
        if not frames:
            return []
        prepared = [
            letterbox(check_image(f, f"frame {i}"), self.size) for i, f in enumerate(frames)
        ]
        batch = np.stack([p[0][:, :, ::-1].transpose(2, 0, 1) for p in prepared])
        batch = batch.astype(np.float32) / 255.0
        if self.one_at_a_time:
            raw = np.concatenate(
                [self.session.run(None, {self.input_name: b[None]})[0] for b in batch]
            )
        else:
            raw = self.session.run(None, {self.input_name: batch})[0]
        out = []
        for i, (frame, (_, scale, px, py)) in enumerate(zip(frames, prepared, strict=True)):
            h, w = frame.shape[:2]
            found = []
            for xyxy, score, c in decode_yolo(raw[i], len(self.classes), self.conf, self.iou):
                label = self.classes[c]
                if label not in self.keep:
                    continue
                x1, x2 = ((xyxy[[0, 2]] - px) / scale).clip(0, w)
                y1, y2 = ((xyxy[[1, 3]] - py) / scale).clip(0, h)
                found.append(ContainerBox((int(x1), int(y1), int(x2), int(y2)), score, label))
            out.append(found)
        return out
