"""Container code reading: find ISO 6346 codes in frames or crops and read them, batch-first.

The PP-OCR detector finds text boxes; wide boxes are read as lines, tall ones (codes printed
top-to-bottom on corner posts) are split into character cells that are laid side by side and read
as one line. Fragments (owner code, serial, boxed check digit; one or two rows) are chained by
position and every chain is scored with the check-digit-guided corrector of `smartgate.iso6346`.

Whole photos are read as a cascade (`ContainerReader.read_frames`): a coarse detector pass over
the photo at `COARSE_SIDE` pixels, then its text boxes read a few at a time, largest text first
(the code is among the largest text on a container face), until the fragments read so far spell a
code whose check digit holds at a confident score; only photos where that fails are searched
again at full resolution with every box read.

API used by the edge runtime and `smartgate eval`: `ContainerReader.read_frames(frames)`,
`ContainerReader.read_crops(crops)`, and the one-image helpers `find_codes`, `read_code_crop`.
Result types live in `edge.recognition.results`; multi-frame voting in `edge.assembly.container_vote`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cache, lru_cache

import cv2
import numpy as np

from edge.recognition.ocr import (
    TextBox,
    TextDetector,
    TextLine,
    TextRecognizer,
    check_image,
    warp_quad,
)
from edge.recognition.results import Box, ContainerCodeResult
from smartgate.iso6346 import (
    CODE_ALPHABET,
    CONFIDENT,
    DIGIT_TO_LETTER,
    LETTER_TO_DIGIT,
    CodeReading,
    correct_code,
    is_size_type,
)

__all__ = ["ContainerCodeResult", "ContainerReader", "find_codes", "read_code_crop"]

log = logging.getLogger(__name__)

TALL = 2.5  # a text box this many times taller than wide is read as a vertical code
MIN_CONFIDENCE = 0.05  # results below this are dropped from frame searches
COARSE_SIDE = 640  # longest side (pixels) of the first, whole-photo detector pass
CROP_SIDE = 960  # longest side of the detector pass over a code crop
STAGE = 6  # text lines read per cascade stage, largest text first


@dataclass(frozen=True)
class Fragment:
    """A recognized piece of text with its box (frame pixels) and per-character alternatives."""

    text: str
    box: Box
    alternatives: tuple[tuple[tuple[str, float], ...], ...]
    char_probs: tuple[float, ...]
    vertical: bool = False

    @property
    def height(self) -> int:
        return max(1, self.box[3] - self.box[1])

    @property
    def width(self) -> int:
        return max(1, self.box[2] - self.box[0])


def fragment_from_line(line: TextLine, box: Box, vertical: bool = False) -> Fragment:
    """Keep only code-alphabet characters of a recognized line (with their alternatives)."""
    keep = [i for i, c in enumerate(line.text) if c in CODE_ALPHABET]
    alts = tuple(line.alternatives[i] if i < len(line.alternatives) else () for i in keep)
    probs = tuple(line.char_probs[i] if i < len(line.char_probs) else 0.5 for i in keep)
    return Fragment("".join(line.text[i] for i in keep), box, alts, probs, vertical)


def _union(boxes: Sequence[Box]) -> Box:
    return (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )


def _follows(a: Fragment, b: Fragment) -> bool:
    """Whether `b` may continue the code after `a`: same row to the right, or the next row."""
    if a.vertical or b.vertical:
        if not (a.vertical and b.vertical):
            return False
        overlap_x = min(a.box[2], b.box[2]) - max(a.box[0], b.box[0])
        gap = b.box[1] - a.box[3]
        return overlap_x > 0.3 * min(a.width, b.width) and -0.2 * a.width < gap < 4 * a.width
    h = min(a.height, b.height)
    if max(a.height, b.height) > 2.5 * h:
        return False
    overlap_y = min(a.box[3], b.box[3]) - max(a.box[1], b.box[1])
    gap_x = b.box[0] - a.box[2]
    if overlap_y > 0.5 * h and -0.8 * h < gap_x < 4 * h and b.box[0] > a.box[0] + a.width / 2:
        return True
    gap_y = b.box[1] - a.box[3]
    return -0.3 * h < gap_y < 1.2 * h and abs(b.box[0] - a.box[0]) < 3 * h


def _chains(frags: Sequence[Fragment], max_len: int = 4) -> list[list[int]]:
    """Index chains of fragments that may together spell one code (10 to 13 characters)."""
    nxt = {
        i: [j for j in range(len(frags)) if j != i and _follows(frags[i], frags[j])]
        for i in range(len(frags))
    }
    out: list[list[int]] = []

    def grow(chain: list[int], length: int) -> None:
        if 10 <= length <= 13:
            out.append(chain)
        if length >= 11 or len(chain) >= max_len:
            return
        for j in nxt[chain[-1]]:
            if j not in chain:
                grow([*chain, j], length + len(frags[j].text))

    for i, f in enumerate(frags):
        if f.text and len(f.text) <= 13:
            grow([i], len(f.text))
    return out


def _size_type_in(text: str) -> str | None:
    """A size-type code read in `text`, forcing a letter and a digit where the grammar wants."""
    for start in range(len(text) - 3):
        c = text[start : start + 4]
        fixed = c[:2] + DIGIT_TO_LETTER.get(c[2], c[2]) + LETTER_TO_DIGIT.get(c[3], c[3])
        if is_size_type(fixed):
            return fixed
    return None


def _size_type_near(frags: Sequence[Fragment], used: set[int], box: Box) -> str | None:
    """The size-type fragment closest to a code box (below or beside it)."""
    best, best_d = None, float("inf")
    h = max(1, box[3] - box[1])
    for i, f in enumerate(frags):
        if i in used:
            continue
        st = _size_type_in(f.text)
        if st is None:
            continue
        dx = max(0, f.box[0] - box[2], box[0] - f.box[2])
        dy = max(0, f.box[1] - box[3], box[1] - f.box[3])
        d = dx + dy
        if d < 6 * h and d < best_d:
            best, best_d = st, d
    return best


@lru_cache(maxsize=4096)
def _corrected(
    text: str, alts: tuple[tuple[tuple[str, float], ...], ...], probs: tuple[float, ...]
) -> CodeReading | None:
    """`correct_code` of a chain's reading, kept: a staged photo assembles its fragments again
    after every stage, so the chains of earlier stages come back unchanged."""
    return correct_code(text, alts, probs)


def assemble(frags: Sequence[Fragment]) -> list[ContainerCodeResult]:
    """Container codes spelled by chains of fragments of one image, best first, deduplicated."""
    found: dict[str, tuple[ContainerCodeResult, float]] = {}
    for chain in _chains(frags):
        parts = [frags[i] for i in chain]
        text = "".join(p.text for p in parts)
        alts = tuple(a for p in parts for a in p.alternatives)
        probs = tuple(q for p in parts for q in p.char_probs)
        reading = _corrected(text, alts, probs)
        if reading is None:
            continue
        box = _union([p.box for p in parts])
        rank = reading.confidence + (0.5 if reading.check_ok else 0.0)
        if reading.code in found and found[reading.code][1] >= rank:
            continue
        result = ContainerCodeResult(
            code=reading.code,
            check_digit_ok=reading.check_ok,
            confidence=reading.confidence,
            size_type=_size_type_near(frags, set(chain), box),
            box=box,
            orientation="vertical" if parts[0].vertical else "horizontal",
            candidates=reading.candidates,
        )
        found[reading.code] = (result, rank)
    ordered = sorted(found.values(), key=lambda t: -t[1])
    return _drop_overlapping([r for r, _ in ordered])


def _drop_overlapping(results: list[ContainerCodeResult]) -> list[ContainerCodeResult]:
    """Keep the best result among those whose boxes overlap much (the same printed code)."""
    kept: list[ContainerCodeResult] = []
    for r in results:
        if all(_iou(r.box, k.box) < 0.3 for k in kept):
            kept.append(r)
    return kept


def _iou(a: Box | None, b: Box | None) -> float:
    if a is None or b is None:
        return 0.0
    iw = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


# --- vertical codes: split a column into character cells ---------------------------------------


def _ink_mask(gray: np.ndarray) -> np.ndarray:
    """Binary mask of the characters in a column crop (polarity from the side borders)."""
    blur = cv2.GaussianBlur(gray, (3, 3), 0)
    _, mask = cv2.threshold(blur, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    w = mask.shape[1]
    edge = max(1, w // 10)
    border = np.concatenate([mask[:, :edge].ravel(), mask[:, -edge:].ravel()])
    if border.mean() > 127:
        mask = 255 - mask
    return mask


def split_cells(column: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Character cells (x1, y1, x2, y2) of a vertical code crop, top to bottom."""
    gray = cv2.cvtColor(check_image(column, "column"), cv2.COLOR_BGR2GRAY)
    h, w = gray.shape
    mask = _ink_mask(gray)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    keep = np.zeros(n, dtype=bool)
    for k in range(1, n):
        x, y, cw, ch, area = stats[k]
        touches_side = x == 0 and x + cw >= w  # spans the whole width: background, not ink
        if area < max(4, 0.002 * h * w) or ch > 0.3 * h or touches_side or ch < 0.01 * h:
            continue
        keep[k] = True
    ink = keep[labels]
    rows = ink.any(axis=1)
    runs: list[list[int]] = []
    y = 0
    while y < h:
        if rows[y]:
            start = y
            while y < h and rows[y]:
                y += 1
            runs.append([start, y])
        y += 1
    if not runs:
        return []
    heights = sorted(b - a for a, b in runs)
    typical = heights[len(heights) // 2]
    merged: list[list[int]] = []
    for a, b in runs:  # pieces of one broken character are close together and short
        if merged and (b - merged[-1][0]) < 1.3 * typical and (a - merged[-1][1]) < 0.25 * typical:
            merged[-1][1] = b
        else:
            merged.append([a, b])
    cells = []
    for a, b in merged:
        if b - a < 0.35 * typical:
            continue
        cols = np.nonzero(ink[a:b].any(axis=0))[0]
        cells.append((int(cols.min()), a, int(cols.max()) + 1, b))
    return cells


def cells_to_line(column: np.ndarray, cells: Sequence[Box], height: int = 40) -> np.ndarray:
    """Lay the character cells of a vertical code side by side as one horizontal text line."""
    image = check_image(column, "column")
    pad_v = max(2, height // 6)
    gap = height // 3
    pieces = []
    for x1, y1, x2, y2 in cells:
        m = max(1, (y2 - y1) // 8)
        crop = image[max(0, y1 - m) : y2 + m, max(0, x1 - m) : x2 + m]
        scale = height / crop.shape[0]
        resized = cv2.resize(crop, (max(2, int(round(crop.shape[1] * scale))), height))
        pieces.append(
            cv2.copyMakeBorder(resized, 0, 0, gap // 2, gap - gap // 2, cv2.BORDER_REPLICATE)
        )
    line = np.concatenate(pieces, axis=1)
    return cv2.copyMakeBorder(line, pad_v, pad_v, gap, gap, cv2.BORDER_REPLICATE)


def vertical_columns(boxes: Sequence[Box], shape: tuple[int, ...]) -> list[Box]:
    """Regions of vertical codes: tall text boxes, and narrow boxes stacked 4+ characters high.

    Returned boxes are widened a little so the column crop shows background on both sides.
    """
    pieces = sorted((b for b in boxes if b[2] - b[0] <= 1.3 * (b[3] - b[1])), key=lambda b: b[1])
    used = [False] * len(pieces)
    columns: list[Box] = []
    for i, first in enumerate(pieces):
        if used[i]:
            continue
        chain = [first]
        for j in range(i + 1, len(pieces)):
            last, b = chain[-1], pieces[j]
            width = min(last[2] - last[0], b[2] - b[0])
            overlap = min(last[2], b[2]) - max(last[0], b[0])
            if not used[j] and overlap > 0.4 * width and b[1] - last[3] < 1.5 * width:
                chain.append(b)
                used[j] = True
        x1, y1, x2, y2 = _union(chain)
        w = x2 - x1
        if y2 - y1 > TALL * w:
            mx, my = int(0.3 * w) + 2, int(0.3 * w) + 2
            columns.append(
                (max(0, x1 - mx), max(0, y1 - my), min(shape[1], x2 + mx), min(shape[0], y2 + my))
            )
    return columns


# --- the reader -------------------------------------------------------------------------------


class ContainerReader:
    """Finds and reads container codes with the PP-OCR detector and recognizer, batch-first."""

    def __init__(
        self,
        detector: TextDetector | None = None,
        recognizer: TextRecognizer | None = None,
        min_confidence: float = MIN_CONFIDENCE,
    ) -> None:
        self.detector = detector or TextDetector()
        self.recognizer = recognizer or TextRecognizer()
        self.allowed = self.recognizer.alphabet_mask(CODE_ALPHABET)
        self.min_confidence = min_confidence

    def _items(self, image: np.ndarray, found: Sequence[TextBox]) -> list[_Item]:
        """What to read in one image: its vertical code columns (cells laid side by side), then its
        text lines, the tallest text first."""
        items: list[_Item] = []
        for column_box in vertical_columns([tb.bbox for tb in found], image.shape):
            x1, y1, x2, y2 = column_box
            column = image[y1:y2, x1:x2]
            cells = split_cells(column)
            if len(cells) >= 4:
                items.append(_Item(cells_to_line(column, cells), column_box, True))
        lines = [tb for tb in found if tb.bbox[3] - tb.bbox[1] <= TALL * (tb.bbox[2] - tb.bbox[0])]
        lines.sort(key=lambda tb: -(tb.bbox[3] - tb.bbox[1]))
        return items + [_Item(warp_quad(image, tb.quad), tb.bbox, False) for tb in lines]

    def _recognize(self, items: Sequence[_Item]) -> list[Fragment | None]:
        """The fragment read in each item (one recognizer batch); None where no code character
        was read."""
        lines = self.recognizer.recognize([it.crop for it in items], allowed=self.allowed) \
            if items else []
        frags = [fragment_from_line(line, it.box, it.vertical)
                 for it, line in zip(items, lines, strict=True)]
        return [f if f.text else None for f in frags]

    def _fragments(
        self, images: Sequence[np.ndarray], boxes: Sequence[Sequence[TextBox]]
    ) -> list[list[Fragment]]:
        """Recognize every text box and every vertical column of every image in one batch."""
        items = [(i, it) for i, (image, found) in enumerate(zip(images, boxes, strict=True))
                 for it in self._items(image, found)]
        out: list[list[Fragment]] = [[] for _ in images]
        for (i, _), frag in zip(items, self._recognize([it for _, it in items]), strict=True):
            if frag is not None:
                out[i].append(frag)
        return out

    def _detect(
        self, images: Sequence[np.ndarray], side: int | None = None
    ) -> list[list[TextBox]]:
        """Text boxes per image; images of one shape share a detector batch (no padding). With
        `side`, images are searched at that longest side at most (never above the detector's
        default scale)."""
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for i, image in enumerate(images):
            by_shape.setdefault(image.shape, []).append(i)
        out: list[list[TextBox]] = [[] for _ in images]
        for shape, idx in by_shape.items():
            scale = None
            if side is not None:
                scale = min(side / max(shape[:2]), self.detector.input_scale(*shape[:2]))
            found = self.detector.detect([images[i] for i in idx], scale=scale)
            for i, boxes in zip(idx, found, strict=True):
                out[i] = boxes
        return out

    def _assemble(self, frags: list[Fragment]) -> list[ContainerCodeResult]:
        return [r for r in assemble(_with_columns(frags)) if r.confidence >= self.min_confidence]

    def _read_staged(
        self, frames: Sequence[np.ndarray], boxes: Sequence[Sequence[TextBox]]
    ) -> list[list[ContainerCodeResult]]:
        """Codes per frame, reading `STAGE` items of every undecided frame per recognizer batch
        (`_items` order) until a frame's best code is confident or its items run out."""
        todo = [self._items(f, b) for f, b in zip(frames, boxes, strict=True)]
        frags: list[list[Fragment]] = [[] for _ in frames]
        results: list[list[ContainerCodeResult]] = [[] for _ in frames]
        while any(todo):
            stage = [(i, it) for i, items in enumerate(todo) for it in items[:STAGE]]
            todo = [items[STAGE:] for items in todo]
            for (i, _), frag in zip(stage, self._recognize([it for _, it in stage]), strict=True):
                if frag is not None:
                    frags[i].append(frag)
            for i in {i for i, _ in stage}:
                results[i] = self._assemble(frags[i])
                if results[i] and is_confident(results[i][0]):
                    todo[i] = []
        return results

    def read_frames(self, frames: Sequence[np.ndarray]) -> list[list[ContainerCodeResult]]:
        """Container codes found in each frame, best first.

        The cascade: a detector pass at `COARSE_SIDE`, its boxes read in stages
        (`_read_staged`); frames without a confident code are searched again at the detector's
        full scale with every box read, and keep whichever search ranks its best code higher.
        """
        if not frames:
            return []
        frames = [check_image(f, f"frame {i}") for i, f in enumerate(frames)]
        results = self._read_staged(frames, self._detect(frames, COARSE_SIDE))
        unsure = [i for i, found in enumerate(results) if not (found and is_confident(found[0]))]
        if unsure:
            again = [frames[i] for i in unsure]
            for i, frags in zip(unsure, self._fragments(again, self._detect(again)), strict=True):
                full = self._assemble(frags)
                if _rank(full[0] if full else None) >= _rank(results[i][0] if results[i] else None):
                    results[i] = full
        for i, found in enumerate(results):
            log.debug("frame %d: %d codes", i, len(found))
        return results

    def read_crops(self, crops: Sequence[np.ndarray]) -> list[ContainerCodeResult | None]:
        """The code in each crop (horizontal, two-row or vertical), or None when unreadable."""
        crops = [check_image(c, f"crop {i}") for i, c in enumerate(crops)]
        padded = [_pad(c) for c in crops]
        best = self._read_padded(padded, CROP_SIDE)
        unsure = [i for i, r in enumerate(best) if r is None or not is_confident(r)]
        if unsure:
            again = self._read_padded([padded[i] for i in unsure], None)
            for i, full in zip(unsure, again, strict=True):
                if _rank(full) >= _rank(best[i]):
                    best[i] = full
        return [_shift(r, c.shape) if r is not None else None
                for r, c in zip(best, crops, strict=True)]

    def _read_padded(
        self, padded: Sequence[np.ndarray], side: int | None
    ) -> list[ContainerCodeResult | None]:
        """The best code in each padded crop: its detected text boxes and the whole crop read."""
        whole = [TextBox(_full_quad(p), 1.0) for p in padded]
        boxes = [[*b, w] for b, w in zip(self._detect(padded, side), whole, strict=True)]
        out: list[ContainerCodeResult | None] = []
        for found in self._fragments(padded, boxes):
            results = assemble(_with_columns(found))
            out.append(results[0] if results else None)
        return out


@dataclass(frozen=True)
class _Item:
    """A line image to recognize: a text line, or a vertical code's cells laid side by side."""

    crop: np.ndarray
    box: Box
    vertical: bool


def _rank(best: ContainerCodeResult | None) -> float:
    """How good a search's best code is (as `assemble` ranks: confidence, check digit)."""
    if best is None:
        return -1.0
    return best.confidence + (0.5 if best.check_digit_ok else 0.0)


PAD = 0.1


def _pad(image: np.ndarray) -> np.ndarray:
    p = max(4, int(PAD * min(image.shape[:2])))
    return cv2.copyMakeBorder(image, p, p, p, p, cv2.BORDER_REPLICATE)


def _full_quad(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    p = max(4, int(PAD * min(h, w) / (1 + 2 * PAD)))
    return np.array([[p, p], [w - p, p], [w - p, h - p], [p, h - p]], dtype=np.float32)


def _shift(result: ContainerCodeResult, shape: tuple[int, ...]) -> ContainerCodeResult:
    """Move a result's box from padded-crop to crop coordinates."""
    if result.box is None:
        return result
    h, w = shape[:2]
    p = max(4, int(PAD * min(h, w)))
    x1, y1, x2, y2 = result.box
    return replace(result, box=(max(0, x1 - p), max(0, y1 - p), min(w, x2 - p), min(h, y2 - p)))


def _with_columns(frags: list[Fragment]) -> list[Fragment]:
    """Fragments of single characters stacked in a column, joined into vertical fragments."""
    singles = [
        f for f in frags if not f.vertical and len(f.text) <= 2 and f.height >= 0.6 * f.width
    ]
    singles.sort(key=lambda f: f.box[1])
    used: set[int] = set()
    columns: list[Fragment] = []
    for i in range(len(singles)):
        if i in used:
            continue
        column = [i]
        for j in range(i + 1, len(singles)):
            last = singles[column[-1]]
            g = singles[j]
            overlap = min(last.box[2], g.box[2]) - max(last.box[0], g.box[0])
            if overlap > 0.4 * min(last.width, g.width) and g.box[1] - last.box[3] < last.height:
                column.append(j)
        if len(column) >= 4:
            used.update(column)
            parts = [singles[k] for k in column]
            columns.append(
                Fragment(
                    "".join(p.text for p in parts),
                    _union([p.box for p in parts]),
                    tuple(a for p in parts for a in p.alternatives),
                    tuple(q for p in parts for q in p.char_probs),
                    vertical=True,
                )
            )
    return frags + columns


@cache
def default_reader() -> ContainerReader:
    """One shared reader (its ONNX sessions load on first use)."""
    return ContainerReader()


def read_code_crop(image: np.ndarray) -> ContainerCodeResult | None:
    """Read the container code in a crop that contains it (horizontal or vertical)."""
    return default_reader().read_crops([image])[0]


def find_codes(frame: np.ndarray) -> list[ContainerCodeResult]:
    """Container codes in a whole photo, best first."""
    return default_reader().read_frames([frame])[0]


def is_confident(result: ContainerCodeResult) -> bool:
    """A result good enough to act on: check digit accepted and confidence high."""
    return result.check_digit_ok and result.confidence >= CONFIDENT
