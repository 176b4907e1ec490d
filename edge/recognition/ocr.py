"""PP-OCR text detection and recognition on our own ONNX Runtime sessions, batch-first.

`TextDetector.detect(frames)` finds text quadrilaterals in a batch of BGR frames (DB
post-processing); `TextRecognizer.recognize(crops)` reads a batch of BGR line crops (CTC
decoding), bucketing crops by width (`width_buckets`) so padding wastes little work, and can
restrict decoding to an allowed character set (a plate or container alphabet).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import onnxruntime as ort

from models.registry import rec_charset, shared_session


class ImageError(ValueError):
    """An image that cannot be processed (empty, wrong dtype/shape, too large)."""


MAX_PIXELS = 40_000_000


def check_image(image: np.ndarray, what: str = "image") -> np.ndarray:
    """Return a 3-channel uint8 BGR view of `image` or raise ImageError saying why not."""
    if not isinstance(image, np.ndarray):
        raise ImageError(f"{what} is {type(image).__name__}, not a numpy array")
    if image.size == 0 or image.ndim not in (2, 3) or min(image.shape[:2]) < 2:
        raise ImageError(f"{what} has unusable shape {image.shape}")
    if image.shape[0] * image.shape[1] > MAX_PIXELS:
        raise ImageError(f"{what} of {image.shape[1]}x{image.shape[0]} exceeds {MAX_PIXELS} pixels")
    if image.dtype != np.uint8:
        raise ImageError(f"{what} has dtype {image.dtype}, expected uint8")
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.shape[2] != 3:
        raise ImageError(f"{what} has {image.shape[2]} channels")
    return image


def decode_image(data: bytes) -> np.ndarray:
    """Decode JPEG/PNG bytes to BGR, raising ImageError for corrupt or empty data."""
    if not data:
        raise ImageError("empty image data")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ImageError(f"cannot decode {len(data)} bytes as an image")
    return check_image(image)


@dataclass(frozen=True)
class TextBox:
    """A detected text region: 4 corners (tl, tr, br, bl) in frame pixels and a score."""

    quad: np.ndarray  # (4, 2) float32
    score: float

    @property
    def bbox(self) -> tuple[int, int, int, int]:
        """Axis-aligned (x1, y1, x2, y2)."""
        x1, y1 = self.quad.min(axis=0)
        x2, y2 = self.quad.max(axis=0)
        return int(x1), int(y1), int(x2), int(y2)


@dataclass(frozen=True)
class TextLine:
    """A recognized line: text, mean character confidence, and per-character alternatives."""

    text: str
    confidence: float
    char_probs: tuple[float, ...]
    alternatives: tuple[tuple[tuple[str, float], ...], ...]  # per char: top-k (char, prob)


def order_quad(points: np.ndarray) -> np.ndarray:
    """Order 4 points as top-left, top-right, bottom-right, bottom-left."""
    pts = np.asarray(points, dtype=np.float32).reshape(4, 2)
    s = pts.sum(axis=1)
    d = np.diff(pts, axis=1).ravel()
    return np.array(
        [pts[np.argmin(s)], pts[np.argmin(d)], pts[np.argmax(s)], pts[np.argmax(d)]],
        dtype=np.float32,
    )


def warp_quad(image: np.ndarray, quad: np.ndarray, height: int | None = None) -> np.ndarray:
    """Perspective-rectify the quadrilateral `quad` (tl, tr, br, bl) out of `image`."""
    q = order_quad(quad)
    w = int(max(np.linalg.norm(q[0] - q[1]), np.linalg.norm(q[3] - q[2])))
    h = int(max(np.linalg.norm(q[0] - q[3]), np.linalg.norm(q[1] - q[2])))
    w, h = max(w, 2), max(h, 2)
    if height is not None and h != height:
        w, h = max(2, int(round(w * height / h))), height
    dst = np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], dtype=np.float32)
    m = cv2.getPerspectiveTransform(q, dst)
    return cv2.warpPerspective(image, m, (w, h), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REPLICATE)


class TextDetector:
    """DB text detector (PP-OCR det) over batches of frames."""

    def __init__(
        self,
        session: ort.InferenceSession | None = None,
        limit_side: int = 736,
        thresh: float = 0.3,
        box_thresh: float = 0.5,
        unclip_ratio: float = 1.6,
        min_size: int = 3,
    ) -> None:
        self.session = session or shared_session("ppocr_det")
        self.input_name = self.session.get_inputs()[0].name
        self.limit_side = limit_side
        self.thresh = thresh
        self.box_thresh = box_thresh
        self.unclip_ratio = unclip_ratio
        self.min_size = min_size

    def input_scale(self, h: int, w: int) -> float:
        """Scale from frame pixels to detector-input pixels for an `h` x `w` frame (short side
        brought up to `limit_side`, long side at most 2000)."""
        th, _ = self._target_size(h, w)
        return th / h

    def _target_size(self, h: int, w: int, scale: float | None = None) -> tuple[int, int]:
        if scale is not None:
            ratio = scale
        else:
            ratio = self.limit_side / min(h, w) if min(h, w) < self.limit_side else 1.0
        if max(h, w) * ratio > 2000:
            ratio = 2000 / max(h, w)
        th = max(32, int(round(h * ratio / 32) * 32))
        tw = max(32, int(round(w * ratio / 32) * 32))
        return th, tw

    def preprocess(
        self, frames: Sequence[np.ndarray], scale: float | None = None
    ) -> tuple[np.ndarray, list[tuple]]:
        """Resize each frame (by `scale`, default: `limit_side` on the short side) to a multiple
        of 32 and pad into one (N,3,H,W) batch."""
        sized = []
        for i, f in enumerate(frames):
            f = check_image(f, f"frame {i}")
            h, w = f.shape[:2]
            th, tw = self._target_size(h, w, scale)
            sized.append((cv2.resize(f, (tw, th)), f.shape[:2]))
        bh = max(s[0].shape[0] for s in sized)
        bw = max(s[0].shape[1] for s in sized)
        batch = np.zeros((len(sized), 3, bh, bw), dtype=np.float32)
        meta = []
        for i, (img, orig) in enumerate(sized):
            h, w = img.shape[:2]
            batch[i, :, :h, :w] = (img.astype(np.float32).transpose(2, 0, 1) / 127.5) - 1.0
            meta.append((h, w, orig))
        return batch, meta

    def detect(
        self, frames: Sequence[np.ndarray], scale: float | None = None
    ) -> list[list[TextBox]]:
        """Text boxes per frame, in frame pixels, for a batch of BGR frames (resized by `scale`
        if given, else as `preprocess` does by default)."""
        if not frames:
            return []
        batch, meta = self.preprocess(frames, scale)
        prob = self.session.run(None, {self.input_name: batch})[0][:, 0]
        return [self.postprocess(prob[i], meta[i]) for i in range(len(meta))]

    def detect_windows(
        self, frame: np.ndarray, windows: Sequence[tuple[int, int, int, int]], scale: float
    ) -> list[TextBox]:
        """Text boxes inside `windows` (x1, y1, x2, y2 in frame pixels) of one frame, in frame
        pixels, searched as a whole-frame pass at `scale` sees them there: the frame is resized
        once, and each window, widened to the 32-pixel grid of the detector input, is cut from
        it and run alone. A line in two windows is found in both."""
        frame = check_image(frame, "frame")
        h, w = frame.shape[:2]
        th, tw = self._target_size(h, w, scale)
        resized = cv2.resize(frame, (tw, th))
        rx, ry = tw / w, th / h
        found: list[TextBox] = []
        for x1, y1, x2, y2 in windows:
            ix1, iy1 = int(x1 * rx) // 32 * 32, int(y1 * ry) // 32 * 32
            ix2 = min(tw, -(-int(np.ceil(x2 * rx)) // 32) * 32)
            iy2 = min(th, -(-int(np.ceil(y2 * ry)) // 32) * 32)
            if ix2 <= ix1 or iy2 <= iy1:
                continue
            crop = resized[iy1:iy2, ix1:ix2]
            batch = (crop.astype(np.float32).transpose(2, 0, 1) / 127.5 - 1.0)[None]
            prob = self.session.run(None, {self.input_name: batch})[0][0, 0]
            ch, cw = crop.shape[:2]
            offset = np.array([ix1 / rx, iy1 / ry], dtype=np.float32)
            found += [TextBox(b.quad + offset, b.score)
                      for b in self.postprocess(prob, (ch, cw, (ch / ry, cw / rx)))]
        return found

    def postprocess(self, prob: np.ndarray, meta: tuple) -> list[TextBox]:
        """DB post-processing of one probability map into boxes in original pixels."""
        h, w, (oh, ow) = meta
        prob = prob[:h, :w]
        mask = cv2.dilate((prob > self.thresh).astype(np.uint8), np.ones((2, 2), np.uint8))
        contours, _ = cv2.findContours(mask * 255, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
        boxes = []
        for contour in contours[:1000]:
            rect = cv2.minAreaRect(contour)
            if min(rect[1]) < self.min_size:
                continue
            score = _box_score(prob, cv2.boxPoints(rect))
            if score < self.box_thresh:
                continue
            (cx, cy), (rw, rh), angle = rect
            area, perim = rw * rh, 2 * (rw + rh)
            dist = area * self.unclip_ratio / max(perim, 1e-6)
            grown = ((cx, cy), (rw + 2 * dist, rh + 2 * dist), angle)
            if min(grown[1]) < self.min_size + 2:
                continue
            pts = order_quad(cv2.boxPoints(grown))
            pts[:, 0] = np.clip(pts[:, 0] * ow / w, 0, ow - 1)
            pts[:, 1] = np.clip(pts[:, 1] * oh / h, 0, oh - 1)
            boxes.append(TextBox(pts, float(score)))
        boxes.sort(key=lambda b: (b.bbox[1], b.bbox[0]))
        return boxes


def _box_score(prob: np.ndarray, pts: np.ndarray) -> float:
    h, w = prob.shape
    x1 = int(np.clip(np.floor(pts[:, 0].min()), 0, w - 1))
    x2 = int(np.clip(np.ceil(pts[:, 0].max()), 0, w - 1))
    y1 = int(np.clip(np.floor(pts[:, 1].min()), 0, h - 1))
    y2 = int(np.clip(np.ceil(pts[:, 1].max()), 0, h - 1))
    mask = np.zeros((y2 - y1 + 1, x2 - x1 + 1), dtype=np.uint8)
    shifted = (pts - np.array([x1, y1])).astype(np.int32)
    cv2.fillPoly(mask, [shifted], 1)
    return float(cv2.mean(prob[y1 : y2 + 1, x1 : x2 + 1], mask)[0])


BUCKET_SPREAD = 1.25  # a recognizer batch pads its lines to at most this times the narrowest


def width_buckets(widths: Sequence[int], max_batch: int) -> list[list[int]]:
    """Indices of `widths` in batches of at most `max_batch`, narrowest first, each padded to
    no more than BUCKET_SPREAD times its narrowest line (so padding wastes little work)."""
    buckets: list[list[int]] = []
    for i in sorted(range(len(widths)), key=lambda k: widths[k]):
        if (not buckets or len(buckets[-1]) >= max_batch
                or widths[i] > BUCKET_SPREAD * widths[buckets[-1][0]]):
            buckets.append([])
        buckets[-1].append(i)
    return buckets


class TextRecognizer:
    """CTC line recognizer (PP-OCR rec) over batches of crops, optionally alphabet-restricted."""

    HEIGHT = 48
    STRIDE = 8  # input pixels per output frame

    def __init__(
        self, session: ort.InferenceSession | None = None, max_batch: int = 32, top_k: int = 3
    ) -> None:
        self.session = session or shared_session("ppocr_rec")
        self.input_name = self.session.get_inputs()[0].name
        self.charset = rec_charset(self.session)
        self.index = {c: i for i, c in enumerate(self.charset)}
        self.max_batch = max_batch
        self.top_k = top_k

    def alphabet_mask(self, alphabet: str) -> np.ndarray:
        """Boolean mask over model classes keeping the blank and the characters in `alphabet`."""
        mask = np.zeros(len(self.charset), dtype=bool)
        mask[0] = True
        for ch in alphabet:
            if ch in self.index:
                mask[self.index[ch]] = True
        return mask

    def _normalize(self, crop: np.ndarray, width: int) -> np.ndarray:
        h, w = crop.shape[:2]
        new_w = min(width, max(1, int(np.ceil(self.HEIGHT * w / h))))
        resized = cv2.resize(crop, (new_w, self.HEIGHT)).astype(np.float32)
        out = np.zeros((3, self.HEIGHT, width), dtype=np.float32)
        out[:, :, :new_w] = resized.transpose(2, 0, 1) / 127.5 - 1.0
        return out

    def recognize(
        self, crops: Sequence[np.ndarray], allowed: np.ndarray | None = None
    ) -> list[TextLine]:
        """Read each BGR crop as one text line; batches are grouped by width."""
        return [self.decode(p, allowed) for p in self.probabilities(crops)]

    def probabilities(
        self, crops: Sequence[np.ndarray], columns: np.ndarray | None = None
    ) -> list[np.ndarray]:
        """Per crop, the (T, C) CTC probability matrix over the frames covering the crop.

        `columns` (class indices, blank first) keeps only those classes, renormalized.
        """
        checked = [check_image(c, f"crop {i}") for i, c in enumerate(crops)]
        results: list[np.ndarray | None] = [None] * len(checked)
        ratios = [c.shape[1] / c.shape[0] for c in checked]
        widths = [min(1600, int(np.ceil(self.HEIGHT * max(r, 4.0) / 8) * 8)) for r in ratios]
        for idx in width_buckets(widths, self.max_batch):
            width = max(widths[i] for i in idx)
            batch = np.stack([self._normalize(checked[i], width) for i in idx])
            probs = self.session.run(None, {self.input_name: batch})[0]
            step = width / probs.shape[1]
            for j, i in enumerate(idx):
                frames = min(probs.shape[1], int(np.ceil(self.HEIGHT * ratios[i] / step)) + 1)
                p = probs[j, :frames]
                if columns is not None:
                    p = p[:, columns]
                    p = p / np.maximum(p.sum(axis=1, keepdims=True), 1e-9)
                results[i] = p
        return [r for r in results if r is not None]

    def decode(self, probs: np.ndarray, allowed: np.ndarray | None = None) -> TextLine:
        """Greedy CTC decoding of one (T, C) probability matrix (only `allowed` classes, if
        given, renormalized)."""
        if allowed is not None:
            probs = np.where(allowed[None, :], probs, 0.0)
            probs = probs / np.maximum(probs.sum(axis=1, keepdims=True), 1e-9)
        best = probs.argmax(axis=1)
        starts = (best != 0) & (best != np.concatenate(([-1], best[:-1]))) & (
            best < len(self.charset))
        frames = np.flatnonzero(starts)
        if not len(frames):
            return TextLine("", 0.0, (), ())
        rows = probs[frames]
        # the k most probable classes per frame, most probable first: only allowed classes can
        # be (the others are 0), and only the k are sorted
        classes = np.flatnonzero(allowed) if allowed is not None else np.arange(rows.shape[1])
        sub = rows[:, classes]
        k = min(self.top_k + 1, len(classes))
        top = np.argpartition(sub, len(classes) - k, axis=1)[:, -k:]
        top = classes[np.take_along_axis(
            top, np.argsort(np.take_along_axis(sub, top, axis=1), axis=1)[:, ::-1], axis=1)]
        confs = [float(rows[j, c]) for j, c in enumerate(best[frames])]
        alts = tuple(
            tuple((self.charset[c], float(row[c])) for c in cols if c != 0)[: self.top_k]
            for row, cols in zip(rows, top, strict=True)
        )
        text = "".join(self.charset[c] for c in best[frames]).strip()
        return TextLine(text, float(np.mean(confs)), tuple(confs), alts)
