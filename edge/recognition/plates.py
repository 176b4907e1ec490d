"""Licence plate reading: find plates in frames, rectify them and read them format-aware.

Pipeline, batch-first: PP-OCR text detection over a batch of frames → text lines grouped into
plate candidates (vertically stacked lines of a 2-row plate are merged) → each line rectified
from its 4 corners → one recognizer batch for every line of every candidate → plate grammars
(`edge.recognition.grammar`) pick and correct the reading → ranked `PlateResult`s.

Core API used by the edge runtime and `smartgate eval`:
`PlateReader.read_frames(frames) -> list[list[PlateResult]]` and
`PlateReader.read_crops(crops) -> list[PlateResult]`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

from edge.recognition.ctc import text_log_likelihood
from edge.recognition.grammar import (
    CN_PROVINCES,
    CONFUSABLE,
    GRAMMARS,
    Candidate,
    Grammar,
    decode,
    normalize_plate,
)
from edge.recognition.ocr import (
    TextBox,
    TextDetector,
    TextRecognizer,
    check_image,
    order_quad,
    warp_quad,
)
from edge.recognition.plate_detect import PlateDetector
from edge.recognition.plate_locate import (
    COARSE_THRESH,
    cascade_windows,
    coarse_scale,
    detector_windows,
    plate_prior,
    read_prior,
    search_window,
    too_wide,
)
from edge.recognition.plate_rec import PlateRecognizer, widen_quad
from edge.recognition.province_prior import ProvincePrior
from edge.recognition.results import Box, PlateResult
from models.plate_lines import TWO_ROW_ASPECT, prepare_line, row_layouts

__all__ = ["PlateReader", "PlateResult", "normalize_plate", "plate_colour"]

log = logging.getLogger(__name__)

SEPARATORS = "-.·:"
ALIASES = {"Đ": "D"}  # glyphs read as another plate character
CROP_DETECT_SIDE = 320  # crops are searched for text lines at this longest side
MAX_CROP_GROUPS = 3
MAX_FRAME_GROUPS = 8  # plate candidates read per frame, most plate-like first (`too_wide` not)
MAX_SPLIT_GROUPS = 3  # of those, the most plate-like single boxes also read as 2 rows
# Candidates read first; a frame reads its others only when none of these gave a read at least
# `COARSE_CERTAIN` sure (below: the level at which a read is not bettered by searching more).
FIRST_GROUPS = 4
MAX_WINDOW_GROUPS = 4  # cascade: the most plate-like coarse candidates searched at full scale
CASCADE_CERTAIN = 0.8  # a cascaded frame whose best read is less sure is searched again whole
# A frame whose best read from the coarse pass's own boxes is at least this sure skips the
# full-scale search in windows: chosen by 5-fold cross-validation over the 174 cascaded frames of
# openalpr-endtoend and cn-real (per fold, the most confident coarse read the windows search
# turned from wrong to right in the four training folds, plus 0.05, rounded up to 0.05: 0.95 in
# every fold; held out, 113 frames skipped it, none read wrong that it read right, 2 read right
# that it read wrong). docs/plates.md has the table.
COARSE_CERTAIN = 0.95
COARSE, WINDOWS, WHOLE = "coarse", "windows", "whole"  # how a frame was searched (`_locate`)
SIZE_TOLERANCE = 0.8  # reads with rows at least this share of the tallest read rank unscaled
SMALL_ROW = 24  # candidates with rows lower than this (px) get an upscaled second pass
# Text lines taller than this (detector-input pixels) are beyond what the DB detector separates
# well (a close 2-row plate in a high-resolution photo comes out as two boxes each spanning parts
# of both rows): such a frame is searched again at half the scale (`refine_tall_lines`).
TALL_LINE = 240
# A crop read this well skips the detector pass, and a crop's first layout read this well skips
# its other layouts: checked by 5-fold cross-validation over the 31 real crops that have two
# layouts (vn-real, cn-real): no held-out first reading at or above it was changed by the other
# layout (docs/plates.md has the table).
CONFIDENT = 0.85
NEW_ENERGY_COLOURS = ("green", "white")  # CN 8-character plates are green (white at the top)
WRONG_COLOUR_FACTOR = 0.5  # score factor for an 8-character CN read on another colour
TOP_CANDIDATES = 5  # readings kept per plate
RECOGNIZERS = ("ppocr", "own", "fused")  # who reads the text: PP-OCR, our plate model, or both
PROVINCE_ALIGN = 3  # frames over which the second opinion's province glyph may peak (±1)
# A Chinese reading at least this confident skips the second opinion: chosen by 5-fold
# cross-validation over the CN candidates of cn-real, lprnet-cn-crops and ccpd-samples-clpr
# (the most confident reading the second opinion changed in the training folds, plus 0.1, came
# to 0.8 in every fold; on the held-out folds 277 of 387 readings skipped it, none of which it
# would have changed). docs/plates.md has the table.
PROVINCE_CERTAIN = 0.8
# Shape test of the ink under each read glyph of a Latin plate line (emblems, crests, cacti):
GLYPH_SHORT = 0.7  # ink lower than this share of the line's character height is no character
GLYPH_OFFSET = 0.25  # ink ending this share of the character height inside the row's top/bottom


@dataclass(frozen=True)
class _Layout:
    """One way to read a plate image: its text lines in reading order."""

    rows: int
    lines: tuple[np.ndarray, ...]


@dataclass
class _Candidates:
    """Plate candidates of a batch of frames: owning frame, corners, ways to read each."""

    owners: list[int] = field(default_factory=list)
    quads: list[np.ndarray] = field(default_factory=list)
    layouts: list[list[_Layout]] = field(default_factory=list)


def plate_colour(crop: np.ndarray) -> str:
    """Background colour of a rectified plate crop, by majority vote of its inner pixels."""
    h, w = crop.shape[:2]
    inner = crop[h // 8 : h - h // 8 or h, w // 10 : w - w // 10 or w]
    hue, sat, val = cv2.split(cv2.cvtColor(inner, cv2.COLOR_BGR2HSV))
    chromatic = (sat >= 70) & (val >= 50)
    votes = {
        "black": np.count_nonzero(val < 70),
        "white": np.count_nonzero((sat < 70) & (val >= 70)),
        "red": np.count_nonzero(chromatic & ((hue < 8) | (hue >= 165))),
        "yellow": np.count_nonzero(chromatic & (hue >= 12) & (hue < 35)),
        "green": np.count_nonzero(chromatic & (hue >= 35) & (hue < 90)),
        "blue": np.count_nonzero(chromatic & (hue >= 90) & (hue < 135)),
    }
    return max(votes, key=lambda k: votes[k])


def _character_like(stats: np.ndarray, height: int) -> np.ndarray:
    """Mask of the blobs (connected-component stats rows) shaped like a character of a line
    `height` high: 0.4–0.95 of the line high, at most 1.2 times as wide as high."""
    h, w = stats[:, cv2.CC_STAT_HEIGHT], stats[:, cv2.CC_STAT_WIDTH]
    return (h >= 0.4 * height) & (h < 0.95 * height) & (w <= 1.2 * h)


def _character_band(stats: np.ndarray, height: int) -> tuple[float, float] | None:
    """Median top and bottom of the character-like blobs of a line, if it has at least 3."""
    chars = stats[_character_like(stats, height)]
    if len(chars) < 3:
        return None
    top = chars[:, cv2.CC_STAT_TOP]
    return float(np.median(top)), float(np.median(top + chars[:, cv2.CC_STAT_HEIGHT]))


def _ink_blobs(gray: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Connected components (labels, stats) of the ink of a grey text line.

    The line is binarized with Otsu's threshold; dark and light ink are both tried and the
    polarity that gives more character-like blobs wins.
    """
    _, binary = cv2.threshold(gray, 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    options = [cv2.connectedComponentsWithStats(ink, connectivity=8)[1:3]
               for ink in (1 - binary, binary)]
    return max(options,
               key=lambda blobs: int(np.sum(_character_like(blobs[1][1:], gray.shape[0]))))


def non_character_frames(line: np.ndarray, probs: np.ndarray, stride: int) -> np.ndarray:
    """Frames of a line's CTC matrix (column 0 = blank) whose read glyph has no character under it.

    The line is binarized (Otsu, ink = minority class) into blobs; the character band is the
    median top/bottom of the character-like blobs. A glyph (a run of frames with one argmax,
    `stride` pixels per frame) is marked when no blob centred in the band lies under it, or when
    the ink under it is lower than `GLYPH_SHORT` of the character height or stops short of the
    band's top or bottom by `GLYPH_OFFSET` (ink reaching beyond it, a character merged with the
    plate border, counts). Glyphs over blobs as large as the line (a border or dark surround merged
    with characters) are not judged.
    """
    marked = np.zeros(len(probs), dtype=bool)
    height, width = line.shape[:2]
    labels, stats = _ink_blobs(cv2.cvtColor(line, cv2.COLOR_BGR2GRAY))
    big = ((stats[:, cv2.CC_STAT_WIDTH] >= 0.5 * width)
           | (stats[:, cv2.CC_STAT_HEIGHT] >= 0.95 * height))
    big[0] = False  # the background
    blobs = ~big & (stats[:, cv2.CC_STAT_AREA] >= (0.06 * height) ** 2)
    blobs[0] = False
    stats = stats[blobs]
    band = _character_band(stats, height)
    if band is None:
        return marked
    top, bottom = band
    char_h = bottom - top
    centre = stats[:, cv2.CC_STAT_TOP] + stats[:, cv2.CC_STAT_HEIGHT] / 2
    stats = stats[(centre > top) & (centre < bottom)]  # not border bits or text above/below
    x1 = stats[:, cv2.CC_STAT_LEFT]
    x2 = x1 + stats[:, cv2.CC_STAT_WIDTH]
    in_big = big[labels[int(top) : int(bottom)]]
    greedy = probs.argmax(axis=1)
    starts = np.flatnonzero((greedy != 0) & (np.diff(greedy, prepend=0) != 0))
    for t0 in starts:
        t1 = t0
        while t1 + 1 < len(greedy) and greedy[t1 + 1] == greedy[t0]:
            t1 += 1
        lo, hi = (t0 - 0.5) * stride, (t1 + 1.5) * stride
        merged = in_big[:, max(0, int(lo)) : int(hi)]
        if merged.size and merged.mean() > 0.1:
            continue
        overlap = np.minimum(x2, hi) - np.maximum(x1, lo)
        under = stats[overlap >= 0.5 * np.minimum(x2 - x1, hi - lo)]
        if len(under):
            y1 = under[:, cv2.CC_STAT_TOP]
            y2 = y1 + under[:, cv2.CC_STAT_HEIGHT]
            ink_top, ink_bottom = float(y1.min()), float(y2.max())
            if (ink_bottom - ink_top >= GLYPH_SHORT * char_h
                    and ink_top <= top + GLYPH_OFFSET * char_h
                    and ink_bottom >= bottom - GLYPH_OFFSET * char_h):
                continue
        marked[t0 : t1 + 1] = True
    return marked


def _aspect(image: np.ndarray) -> float:
    return image.shape[1] / image.shape[0]


def crop_layouts(crop: np.ndarray) -> list[_Layout]:
    """Candidate layouts of a plate crop: 1 row and/or 2 rows split at the ink valley."""
    return [_Layout(len(lines), lines) for lines in row_layouts(crop)]


def _union_quad(quads: Sequence[np.ndarray]) -> np.ndarray:
    """Minimum-area rectangle around several quads, ordered tl, tr, br, bl."""
    return order_quad(cv2.boxPoints(cv2.minAreaRect(np.concatenate(quads).astype(np.float32))))


def _stacked(upper: TextBox, lower: TextBox) -> bool:
    """Whether `lower` is the second row of a plate whose first row is `upper`."""
    ux1, uy1, ux2, uy2 = upper.bbox
    lx1, ly1, lx2, ly2 = lower.bbox
    uh, lh = uy2 - uy1, ly2 - ly1
    overlap = min(ux2, lx2) - max(ux1, lx1)
    return (
        ly1 > uy1
        and overlap > 0.6 * min(ux2 - ux1, lx2 - lx1)
        and -0.35 * lh < ly1 - uy2 < 0.5 * lh
        and 0.4 < uh / max(lh, 1) < 1.6
        and (ux2 - ux1) < 1.3 * (lx2 - lx1)
    )


def _side_by_side(left: TextBox, right: TextBox) -> bool:
    """Whether `right` continues the text line of `left` (a plate split at a dot or gap)."""
    lx1, ly1, lx2, ly2 = left.bbox
    rx1, ry1, rx2, ry2 = right.bbox
    lh, rh = ly2 - ly1, ry2 - ry1
    overlap = min(ly2, ry2) - max(ly1, ry1)
    return (
        rx1 > lx1
        and overlap > 0.6 * min(lh, rh)
        and 0.6 < lh / max(rh, 1) < 1.6
        and -0.3 * lh < rx1 - lx2 < 0.8 * max(lh, rh)
    )


def plate_groups(boxes: Sequence[TextBox]) -> list[list[TextBox]]:
    """Plate candidates from text boxes, each a list of its text rows top to bottom.

    Every plausible line alone, lines split at a gap joined again, and stacked line pairs.
    """
    lines = []
    for b in boxes:
        x1, y1, x2, y2 = b.bbox
        if y2 - y1 >= 6 and 0.8 <= (x2 - x1) / max(y2 - y1, 1) <= 12:
            lines.append(b)
    joined = [
        TextBox(_union_quad([a.quad, b.quad]), min(a.score, b.score))
        for a in lines for b in lines if a is not b and _side_by_side(a, b)
    ]
    lines.sort(key=lambda b: -b.score)
    groups = [[b] for b in lines + joined]
    for upper in lines:
        for lower in lines + joined:
            if lower is not upper and _stacked(upper, lower):
                groups.append([upper, lower])
    return groups


def _group_bbox(group: Sequence[TextBox]) -> Box:
    boxes = [b.bbox for b in group]
    return (min(b[0] for b in boxes), min(b[1] for b in boxes),
            max(b[2] for b in boxes), max(b[3] for b in boxes))


def _ranked_groups(groups: list[list[TextBox]], shape: tuple[int, ...]) -> list[list[TextBox]]:
    """Text-line groups most plate-like first: weakest line score times `plate_prior`."""
    return sorted(groups, key=lambda g: -min(b.score for b in g) * plate_prior(_group_bbox(g),
                                                                              len(g), shape))


def _distinct(boxes: Sequence[TextBox]) -> list[TextBox]:
    """The boxes, best first, without those mostly inside a kept one (a line found in two
    neighbouring windows)."""
    kept: list[TextBox] = []
    for b in sorted(boxes, key=lambda b: -b.score):
        if all(_overlap(b.bbox, k.bbox) < 0.8 for k in kept):
            kept.append(b)
    return kept


def _inside(inner: Box, outer: Box) -> bool:
    return (inner[0] >= outer[0] and inner[1] >= outer[1] and inner[2] <= outer[2]
            and inner[3] <= outer[3])


def _area(box: Box) -> int:
    return max(0, box[2] - box[0]) * max(0, box[3] - box[1])


def _overlap(a: Box, b: Box) -> float:
    """Intersection over the smaller box."""
    inter = _area((max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])))
    return inter / max(1, min(_area(a), _area(b)))


def tall_lines(boxes: Sequence[TextBox], scale: float) -> list[TextBox]:
    """The boxes taller than `TALL_LINE` once scaled by `scale` (frame → detector input)."""
    return [b for b in boxes if (b.bbox[3] - b.bbox[1]) * scale > TALL_LINE]


def merge_coarse(
    boxes: Sequence[TextBox], tall: Sequence[TextBox], coarse: Sequence[TextBox]
) -> list[TextBox]:
    """`boxes` with the `tall` ones replaced by the `coarse` pass's boxes that do not overlap a
    kept box (a line found at both scales keeps its finer box)."""
    keep = [b for b in boxes if not any(b is t for t in tall)]
    return keep + [c for c in coarse if all(_overlap(c.bbox, k.bbox) < 0.5 for k in keep)]


def refine_tall_lines(
    detector: TextDetector, frames: Sequence[np.ndarray], found: list[list[TextBox]]
) -> list[list[TextBox]]:
    """Text boxes per frame, frames with lines taller than `TALL_LINE` searched again at half
    the detector's scale (`merge_coarse`)."""
    out = list(found)
    for i, frame in enumerate(frames):
        scale = detector.input_scale(*frame.shape[:2])
        tall = tall_lines(found[i], scale)
        if tall:
            coarse = detector.detect([frame], scale=scale / 2)[0]
            out[i] = merge_coarse(found[i], tall, coarse)
    return out


def second_opinion(primary: np.ndarray, second: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """`primary` (T, C) CTC probabilities with the distribution over `columns` replaced, frame by
    frame, by the normalized geometric mean of both models' distributions over those columns.

    Used for Chinese province glyphs, the least legible characters at plate resolution: two
    recognizers trained apart err on different glyphs. The probability mass of the columns stays
    the primary model's (where a glyph is, and that it is a province, is its call); the second
    model's distribution is max-pooled over `PROVINCE_ALIGN` frames because two CTC models may
    place the same glyph's peak a frame apart.
    """
    n = min(len(primary), len(second))
    out = primary.copy()
    theirs = second[:n, columns]
    pad = PROVINCE_ALIGN // 2
    padded = np.pad(theirs, ((pad, pad), (0, 0)))
    theirs = np.max([padded[k : k + n] for k in range(PROVINCE_ALIGN)], axis=0)
    ours = primary[:n, columns]
    mass = ours.sum(axis=1, keepdims=True)
    mixed = np.sqrt(ours / np.maximum(mass, 1e-9)
                    * theirs / np.maximum(theirs.sum(axis=1, keepdims=True), 1e-9))
    out[:n, columns] = mixed / np.maximum(mixed.sum(axis=1, keepdims=True), 1e-12) * mass
    return out


class PlateReader:
    """Finds and reads plates with the PP-OCR detector and recognizer plus plate grammars.

    `regions` are the plate formats expected at the site (e.g. ("vn", "cn") at a VN–CN gate;
    "us", "eu", "br" or "other" use the generic Latin grammar). With Chinese plates expected,
    `province_recognizer` (default: the PP-OCRv5 recognizer) gives a second opinion on province
    glyphs (`second_opinion`); pass `province_recognizer=False` to read with one model only.
    A `province_prior` (`edge.recognition.province_prior.ProvincePrior`) learns the site's provinces from
    the confident reads and weighs the province glyph with them.
    """

    def __init__(
        self,
        detector: TextDetector | None = None,
        recognizer: TextRecognizer | None = None,
        regions: Sequence[str] = ("vn", "cn"),
        min_confidence: float = 0.3,
        province_recognizer: TextRecognizer | None | bool = None,
        province_prior: ProvincePrior | None = None,
        recognizer_mode: str = "ppocr",
        plate_model: Path | None = None,
        threads: int = 0,
        cascade: bool = True,
        plate_detector: PlateDetector | bool = False,
    ) -> None:
        self.detector = detector or TextDetector()
        self.crop_detector = TextDetector(self.detector.session, limit_side=32)
        self.coarse_detector = TextDetector(self.detector.session, thresh=COARSE_THRESH[0],
                                            box_thresh=COARSE_THRESH[1])
        self.recognizer = recognizer or TextRecognizer()
        self.grammars: tuple[Grammar, ...] = tuple(
            dict.fromkeys(g for r in regions for g in GRAMMARS[r]))
        self.latin_grammars = tuple(g for g in self.grammars if g.latin)
        if province_recognizer is None and "cn" in regions:
            from models.registry import shared_session

            province_recognizer = TextRecognizer(shared_session("ppocr_rec_v5"))
        self.province_recognizer = (
            province_recognizer if isinstance(province_recognizer, TextRecognizer) else None)
        self.province_prior = province_prior
        index = self.recognizer.index
        self.chars = "".join(c for c in dict.fromkeys("".join(g.alphabet for g in self.grammars))
                             if c in index)
        separators = [index[c] for c in SEPARATORS if c in index]
        self.n_separators = len(separators)
        self.aliases = [(self.chars.index(t), index[a]) for a, t in ALIASES.items()
                        if a in index and t in self.chars]
        self.columns = np.array([0, *separators, *(index[c] for c in self.chars),
                                 *(col for _, col in self.aliases)])
        self.min_confidence = min_confidence
        self.province_columns = np.array(
            [i for i, col in enumerate(self.columns) if i and self.recognizer.charset[col]
             in CN_PROVINCES])
        if self.province_recognizer is not None:  # our columns in the second model's classes
            theirs = self.province_recognizer.index
            self.second_columns = np.array(
                [theirs.get(self.recognizer.charset[col], 0) if i else 0
                 for i, col in enumerate(self.columns)])
        if recognizer_mode not in RECOGNIZERS:
            raise ValueError(f"recognizer_mode must be one of {RECOGNIZERS}, got {recognizer_mode!r}")
        self.mode = recognizer_mode
        self.cascade = cascade
        self.plate_detector: PlateDetector | None = None  # opt-in: docs/plates.md
        if cascade and plate_detector:
            self.plate_detector = (plate_detector if isinstance(plate_detector, PlateDetector)
                                   else PlateDetector())
        self.own: PlateRecognizer | None = None
        if recognizer_mode != "ppocr":
            if plate_model is None:
                from models.registry import get_spec

                plate_model = get_spec("plate_rec").path
            self.own = PlateRecognizer.from_files(plate_model, self.chars, threads)

    def read_frames(self, frames: Sequence[np.ndarray]) -> list[list[PlateResult]]:
        """Plates found in each frame, most confident first.

        Frames are searched by a cascade (`_locate`, with `cascade` on), each stage only where
        the one before read no plate with certainty: a coarse detector pass over the whole frame,
        whose own boxes are read first; a frame whose best read there is below `COARSE_CERTAIN`
        is searched at full scale in windows around its most plate-like coarse candidates
        (`_search_windows`), and one whose best read there is below `CASCADE_CERTAIN` is
        searched whole and takes that search's reads.
        Text-line groups are ranked by detector score times a geometric plate prior and only the
        top `MAX_FRAME_GROUPS` are read (a frame with very tall lines is searched at half scale
        too: `refine_tall_lines`); a candidate with small rows also gets a second detector
        pass over an upscaled window around it. All lines of all frames share one recognizer call.
        """
        frames = [check_image(f, f"frame {i}") for i, f in enumerate(frames)]
        if self.cascade:
            boxes, stages = self._locate(frames)
        else:
            boxes, stages = self._search_whole(frames), [WHOLE] * len(frames)
        results = self._read_frames(frames, boxes)
        missed, windowed = [], []
        for i, stage in enumerate(stages):
            if stage == COARSE and not _certain(results[i], COARSE_CERTAIN):
                fine = self._search_windows(frames[i], boxes[i])
                if fine is None:  # windows over most of the frame: search it whole
                    missed.append(i)
                    continue
                boxes[i], stages[i] = fine, WINDOWS
                windowed.append(i)
        self._read_again(frames, windowed, boxes, results)
        missed = sorted(missed + [i for i, stage in enumerate(stages) if stage == WINDOWS
                                  and not _certain(results[i], CASCADE_CERTAIN)])
        for i, found in zip(missed, self._search_whole([frames[i] for i in missed]), strict=True):
            boxes[i] = found
        self._read_again(frames, missed, boxes, results)
        self._learn(plates[0] for plates in results if plates)
        return results

    def _read_again(
        self, frames: Sequence[np.ndarray], idx: Sequence[int], boxes: Sequence[list[TextBox]],
        results: list[list[PlateResult]],
    ) -> None:
        """Replace the reads of frames `idx` by those of their (new) `boxes`."""
        if idx:
            again = self._read_frames([frames[i] for i in idx], [boxes[i] for i in idx])
            for i, plates in zip(idx, again, strict=True):
                results[i] = plates

    def _read_frames(
        self, frames: Sequence[np.ndarray], boxes_per_frame: Sequence[list[TextBox]]
    ) -> list[list[PlateResult]]:
        """The reads of each frame from its text boxes: its `FIRST_GROUPS` most plate-like
        candidates first, the others (up to `MAX_FRAME_GROUPS`) only where none of those was
        read with certainty (`COARSE_CERTAIN`)."""
        placed = self._place_reads(frames, self._candidates(frames, boxes_per_frame,
                                                            0, FIRST_GROUPS))
        results = [_suppress(plates, frame.shape)
                   for plates, frame in zip(placed, frames, strict=True)]
        rest = [i for i, plates in enumerate(results) if not _certain(plates, COARSE_CERTAIN)]
        if rest:
            more = self._place_reads(
                [frames[i] for i in rest],
                self._candidates([frames[i] for i in rest], [boxes_per_frame[i] for i in rest],
                                 FIRST_GROUPS, MAX_FRAME_GROUPS))
            for i, extra in zip(rest, more, strict=True):
                results[i] = _suppress(placed[i] + extra, frames[i].shape)
        return results

    def _place_reads(
        self, frames: Sequence[np.ndarray], found: _Candidates
    ) -> list[list[PlateResult]]:
        """The confident reads of `found`'s candidates, per frame (not yet ranked)."""
        colours = [plate_colour(warp_quad(frames[o], q))
                   for o, q in zip(found.owners, found.quads, strict=True)]
        plates = ([warp_quad(frames[o], widen_quad(q))
                   for o, q in zip(found.owners, found.quads, strict=True)]
                  if self.own is not None else None)
        reads = self._read(found.layouts, colours, plates)
        return _place(len(frames), found, colours, reads, self.min_confidence)

    def _search_whole(self, frames: Sequence[np.ndarray]) -> list[list[TextBox]]:
        """Text boxes of whole frames searched at the detector's full scale (frames with very
        tall lines also at half scale: `refine_tall_lines`)."""
        if not frames:
            return []
        return refine_tall_lines(self.detector, frames, self.detector.detect(frames))

    def _search_windows(self, frame: np.ndarray, coarse: list[TextBox]) -> list[TextBox] | None:
        """Text boxes of a frame from its coarse pass's boxes `coarse`: the merged windows
        around the top `MAX_WINDOW_GROUPS` candidates (`cascade_windows`) searched again at the
        detector's full scale (`TextDetector.detect_windows`: the boxes a whole-frame pass finds
        there), whose boxes replace the coarse ones inside; None when the windows would cover
        most of the frame (search it whole)."""
        ranked = _ranked_groups(plate_groups(coarse), frame.shape)[:MAX_WINDOW_GROUPS]
        windows = cascade_windows([(_group_bbox(g), len(g)) for g in ranked], frame.shape)
        if windows is None:
            return None
        fine = self.detector.detect_windows(
            frame, windows, self.detector.input_scale(*frame.shape[:2]))
        return _distinct(fine) + [b for b in coarse
                                  if not any(_inside(b.bbox, w) for w in windows)]

    def _locate(self, frames: Sequence[np.ndarray]) -> tuple[list[list[TextBox]], list[str]]:
        """The first stage of the cascade: text boxes per frame, and how each was searched.

        Frames of one shape share a coarse detector pass at `coarse_scale`: its boxes are the
        frame's (stage `COARSE`). With a plate detector, a frame where it finds a plate with
        certainty (`detector_windows`) is searched at full scale only in windows around the
        plates it found, and skips the coarse pass (stage `WINDOWS`). Frames too small to gain
        are searched whole at full scale (stage `WHOLE`).
        """
        out: list[list[TextBox]] = [[] for _ in frames]
        stages = [WHOLE] * len(frames)
        whole: list[int] = []
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for i, frame in enumerate(frames):
            by_shape.setdefault(frame.shape, []).append(i)
        for shape, idx in by_shape.items():
            full = self.detector.input_scale(*shape[:2])
            scale = coarse_scale(full, shape)
            if scale is None:
                whole += idx
                continue
            if self.plate_detector is not None:
                coarse_idx = []
                for i, plates in zip(idx, self.plate_detector.detect([frames[i] for i in idx]),
                                     strict=True):
                    windows = detector_windows([(p.box, p.score) for p in plates], shape)
                    if windows is None:
                        coarse_idx.append(i)
                        continue
                    out[i] = _distinct(self.detector.detect_windows(frames[i], windows, full))
                    stages[i] = WINDOWS
                idx = coarse_idx
                if not idx:
                    continue
            for i, coarse in zip(idx, self.coarse_detector.detect([frames[i] for i in idx],
                                                                  scale=scale), strict=True):
                out[i], stages[i] = coarse, COARSE
        for i, boxes in zip(whole, self._search_whole([frames[i] for i in whole]), strict=True):
            out[i] = boxes
        return out, stages

    def _candidates(
        self, frames: Sequence[np.ndarray], boxes_per_frame: Sequence[list[TextBox]],
        first: int = 0, last: int = MAX_FRAME_GROUPS,
    ) -> _Candidates:
        """The plate candidates of every frame from its text boxes: the top-ranked text-line
        groups but those with rows of no plate's aspect (`too_wide`), those ranked `first` to
        `last` (from 0), each with its ways to be read, plus what an upscaled second detector
        pass found around small ones."""
        found = _Candidates()
        windows: list[tuple[int, np.ndarray]] = []  # (candidate index, window image)
        for i, (frame, boxes) in enumerate(zip(frames, boxes_per_frame, strict=True)):
            warped: dict[int, np.ndarray] = {}
            ranked = [g for g in _ranked_groups(plate_groups(boxes), frame.shape)[:MAX_FRAME_GROUPS]
                      if not too_wide(_group_bbox(g), len(g))]
            for rank, group in enumerate(ranked[:last]):
                if rank < first:
                    continue
                lines = tuple(warped.setdefault(id(b), warp_quad(frame, b.quad)) for b in group)
                bbox = _group_bbox(group)
                if (bbox[3] - bbox[1]) / len(group) < SMALL_ROW:
                    x1, y1, x2, y2 = search_window(bbox, len(group), frame.shape)
                    windows.append((len(found.layouts), frame[y1:y2, x1:x2]))
                found.owners.append(i)
                found.quads.append(group[0].quad if len(group) == 1 else
                                   _union_quad([b.quad for b in group]))
                options = [_Layout(len(lines), lines)]
                if (rank < MAX_SPLIT_GROUPS and len(group) == 1
                        and TWO_ROW_ASPECT[0] <= _aspect(lines[0]) < TWO_ROW_ASPECT[1]):
                    # one box around both rows of a 2-row plate: also read it split in two
                    options += [lay for lay in crop_layouts(lines[0]) if lay.rows == 2]
                found.layouts.append(options)
        for (index, _), extra in zip(
            windows, self._detected_layouts([w for _, w in windows]), strict=True
        ):
            found.layouts[index] += extra
        return found

    def read_crops(self, crops: Sequence[np.ndarray]) -> list[PlateResult]:
        """Read each crop as one plate (1 or 2 rows, whichever its grammar fits best).

        With PP-OCR alone, a crop's first layout is read first and its other layouts only where
        that reading is below `CONFIDENT` (most 1-row crops then cost one recognizer line
        instead of three); crops still below it are searched by the detector too.
        """
        crops = [check_image(c, f"crop {i}") for i, c in enumerate(crops)]
        colours = [plate_colour(c) for c in crops]
        whole = crops if self.own is not None else None
        layouts = [crop_layouts(c) for c in crops]
        if self.own is None:
            results = self._read([options[:1] for options in layouts], colours)
            more = [i for i, r in enumerate(results)
                    if len(layouts[i]) > 1 and r.confidence < CONFIDENT]
            for i, other in zip(more, self._read([layouts[i][1:] for i in more],
                                                 [colours[i] for i in more]), strict=True):
                if other.confidence > results[i].confidence:
                    results[i] = other
        else:  # our plate model reads the whole crop beside every layout (`fuse`)
            results = self._read(layouts, colours, whole)
        unsure = [i for i, r in enumerate(results) if r.confidence < CONFIDENT]
        detected = self._detected_layouts([crops[i] for i in unsure])
        again = [crops[i] for i in unsure] if self.own is not None else None
        for i, retry in zip(unsure, self._read(detected, [colours[i] for i in unsure], again),
                            strict=True):
            if retry.confidence > results[i].confidence:
                results[i] = retry
        self._learn(results)
        return [replace(r, colour=c) for r, c in zip(results, colours, strict=True)]

    def _learn(self, results: Iterable[PlateResult]) -> None:
        """Feed the site province prior with the Chinese reads just made."""
        if self.province_prior is not None:
            self.province_prior.observe((r.text, r.confidence) for r in results
                                        if r.region == "cn")

    def _site_grammars(self) -> tuple[Grammar, ...]:
        """The non-Latin grammars, the Chinese one with the site province prior on its province
        glyphs (as learned so far)."""
        factors = self.province_prior.factors() if self.province_prior is not None else ()
        return tuple(replace(g, priors=g.priors + factors) if g.region == "cn" and factors else g
                     for g in self.grammars if not g.latin)

    def _detected_layouts(self, crops: Sequence[np.ndarray]) -> list[list[_Layout]]:
        """Layouts from text lines the detector finds in each crop (handles tilted plates)."""
        sized, scales = [], []
        for crop in crops:
            scale = CROP_DETECT_SIDE / max(crop.shape[:2])
            small = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            pad = CROP_DETECT_SIDE // 16
            sized.append(cv2.copyMakeBorder(small, pad, pad, pad, pad, cv2.BORDER_REPLICATE))
            scales.append((scale, pad))
        out = []
        for crop, (scale, pad), boxes in zip(
            crops, scales, self.crop_detector.detect(sized), strict=True
        ):
            boxes = [TextBox((b.quad - pad) / scale, b.score) for b in boxes]
            groups = sorted(plate_groups(boxes), key=lambda g: -_area(_group_bbox(g)))
            layouts = [_Layout(len(g), tuple(warp_quad(crop, b.quad) for b in g))
                       for g in groups[:MAX_CROP_GROUPS]]
            out.append(layouts)
        return out

    def _read(
        self, layouts: Sequence[Sequence[_Layout]], colours: Sequence[str],
        plates: Sequence[np.ndarray] | None = None,
    ) -> list[PlateResult]:
        """Recognize every line of every layout in one batch; keep each plate's best layout.

        With our plate model (`recognizer_mode` own or fused), the whole-plate images `plates`
        (one per candidate) are read in one more batch and fused with PP-OCR's reading (`fuse`).

        Plates whose best reading is Chinese and confident enough to be reported
        (`min_confidence`) but not already certain (`PROVINCE_CERTAIN`) have all their lines read
        again by the province recognizer (one more batch) and are interpreted again with its
        `second_opinion`. Fainter reads (mostly other text in the frame) are not worth a second
        recognizer call.
        """
        unique = {id(line): line for options in layouts for lay in options for line in lay.lines}
        flat = {key: prepare_line(line) for key, line in unique.items()}
        probs = self.recognizer.probabilities(list(flat.values()), self.columns) if flat else []
        read = dict(zip(flat, zip(flat.values(), probs, strict=True), strict=True))
        grammars = self._site_grammars()
        out = [self._best_layout(options, colour, read, grammars)
               for options, colour in zip(layouts, colours, strict=True)]
        chinese = [k for k, result in enumerate(out) if result.region == "cn"
                   and self.min_confidence <= result.confidence < PROVINCE_CERTAIN]
        if chinese and self.province_recognizer is not None and len(self.province_columns):
            keys = list(dict.fromkeys(id(line) for k in chinese for lay in layouts[k]
                                      for line in lay.lines))
            seconds = self.province_recognizer.probabilities([flat[k] for k in keys],
                                                             self.second_columns)
            for key, second in zip(keys, seconds, strict=True):
                image, first = read[key]
                read[key] = (image, second_opinion(first, second, self.province_columns))
            for k in chinese:
                out[k] = self._best_layout(layouts[k], colours[k], read, grammars)
        if self.own is not None and plates is not None and len(plates):
            both = grammars + self.latin_grammars
            for k, probs in enumerate(self.own.probabilities(plates)):
                own = decode(probs, self.chars, both, top_n=TOP_CANDIDATES)
                out[k] = fuse(out[k], own, self.mode, probs, self.chars)
        return out

    def _best_layout(
        self, options: Sequence[_Layout], colour: str,
        read: dict[int, tuple[np.ndarray, np.ndarray]], grammars: tuple[Grammar, ...],
    ) -> PlateResult:
        """The most confident interpretation over a plate's layouts."""
        best: PlateResult | None = None
        for layout in options:
            result = self._interpret([read[id(line)] for line in layout.lines], layout.rows,
                                     colour, grammars)
            if best is None or result.confidence > best.confidence:
                best = result
        return best or PlateResult("", "", 0.0)

    def _interpret(
        self, lines: Sequence[tuple[np.ndarray, np.ndarray]], rows: int, colour: str,
        other: tuple[Grammar, ...],
    ) -> PlateResult:
        """Grammar-decoded candidates for the (line image, CTC matrix) pairs of one layout.

        Lines are joined in reading order and decoded with the `other` (non-Latin) grammars.
        Latin grammars read the matrix with the frames of glyphs that have no character-shaped
        ink under them blanked (`non_character_frames`). A CN 8-character (new-energy) reading
        on a plate that is not green is scored down.
        """
        gap = np.zeros((1, len(self.chars) + 1), dtype=np.float32)
        gap[0, 0] = 1.0
        latin = self.latin_grammars
        parts, blanked = [], []
        first = 1 + self.n_separators
        for image, p in lines:
            glyphs = p[:, first : first + len(self.chars)].copy()
            for j, (target, _) in enumerate(self.aliases):
                glyphs[:, target] += p[:, first + len(self.chars) + j]
            merged = np.concatenate((p[:, :first].sum(axis=1, keepdims=True), glyphs), axis=1)
            parts += [merged, gap]
            if latin:
                marked = non_character_frames(image, merged, self.recognizer.STRIDE)
                blanked += [np.where(marked[:, None], gap, merged), gap]
        candidates = decode(np.concatenate(parts[:-1]), self.chars, other) if other else []
        if latin:
            candidates = sorted(
                candidates + decode(np.concatenate(blanked[:-1]), self.chars, latin),
                key=lambda c: -c.score)[:TOP_CANDIDATES]
        if colour not in NEW_ENERGY_COLOURS:
            candidates = sorted(
                (replace(c, score=c.score * WRONG_COLOUR_FACTOR)
                 if c.region == "cn" and len(c.text) == 8 else c for c in candidates),
                key=lambda c: -c.score)
        if not candidates:
            return PlateResult("", "", 0.0, "unknown", rows)
        top = candidates[0]
        grammar = GRAMMARS[top.region][0]
        return PlateResult(
            top.text, grammar.display(top.text), top.score, top.region, rows,
            candidates=tuple((c.text, round(c.score, 4)) for c in candidates),
        )


def _certain(plates: Sequence[PlateResult], level: float) -> bool:
    """Whether a frame's best read (reads best first) is at least `level` sure."""
    return bool(plates) and plates[0].confidence >= level


@dataclass(frozen=True)
class Fusion:
    """How PP-OCR's readings of a plate are rescored with our plate model (`fuse`)."""

    weight: float  # of our model's per-character CTC log-likelihood beside PP-OCR's log score
    margin: float  # per-character log-likelihood lead ours needs to overturn PP-OCR's top reading
    absent: float  # a reading only ours proposes scores this × PP-OCR's least listed score (0: none)
    # whether ours may overturn PP-OCR's top reading on look-alike glyphs alone (grammar
    # CONFUSABLE pairs such as 1/T, 6/G, 0/D: where rendered typefaces differ most from real ones)
    confusable: bool = True


# Fusion (`fuse`, mode fused), by the region of PP-OCR's reading (`Fusion`); a region not
# listed keeps PP-OCR's reading. Chosen by 5-fold cross-validation over the shared plate sets
# (tools/eval/fusion_cv.py, `smartgate eval-fusion`; docs/plates.md has the per-fold table).
FUSION: dict[str, Fusion] = {}


def fuse(
    ppocr: PlateResult, own: Sequence[Candidate], mode: str, probs: np.ndarray | None = None,
    chars: str = "", fusion: Fusion | None = None,
) -> PlateResult:
    """PP-OCR's reading of a plate combined with our plate model's.

    `own`: our model's grammar candidates `own` replace PP-OCR's. `fused`: PP-OCR's candidate
    readings, plus ours when `fusion.absent` > 0, are rescored by log PP-OCR score +
    `fusion.weight` × our model's per-character CTC log-likelihood of the reading on its matrix
    `probs` (columns: blank, then `chars`; `edge.recognition.ctc`). PP-OCR's top reading is
    overturned only when ours supports the winner by at least `fusion.margin` more than it.
    `fusion` defaults to `FUSION` of the region PP-OCR read (none: PP-OCR's reading stands).
    Where the plate is, and how sure the reader is of it, stay PP-OCR's: the confidence (which
    drives the re-reads and the frame's ranking) is unchanged, only the text and its ranked
    candidates move.
    """
    if mode == "fused":
        fusion = fusion or FUSION.get(ppocr.region)
        if fusion is None or fusion.weight == 0 or probs is None or not ppocr.candidates:
            return ppocr
        return _rescore(ppocr, own, probs, chars, fusion)
    ranked = [(c.text, c.score) for c in own][:TOP_CANDIDATES]
    if not ranked:
        return replace(ppocr, text="", display_text="", confidence=0.0, region="unknown",
                       candidates=())
    top = own[0]
    return replace(ppocr, text=top.text, display_text=GRAMMARS[top.region][0].display(top.text),
                   confidence=top.score, region=top.region,
                   candidates=tuple((t, round(v, 4)) for t, v in ranked))


def _rescore(
    ppocr: PlateResult, own: Sequence[Candidate], probs: np.ndarray, chars: str, fusion: Fusion,
) -> PlateResult:
    """The `fused` mode of `fuse`, for a plate PP-OCR read."""
    texts = fusion_texts(ppocr, own, fusion)
    support = text_log_likelihood(probs, texts, chars)
    order, scores = fused_order(ppocr, texts, support, fusion)
    text = texts[order[0]]
    regions = {c.text: c.region for c in own}
    region = (ppocr.region if text == ppocr.text
              else regions.get(text) or _region_of(text, ppocr.region))
    return replace(ppocr, text=text, display_text=GRAMMARS[region][0].display(text),
                   region=region,
                   candidates=tuple((texts[i], round(float(np.exp(scores[i])), 4))
                                    for i in order))


def fusion_texts(ppocr: PlateResult, own: Sequence[Candidate], fusion: Fusion) -> list[str]:
    """The readings `fuse` rescores: PP-OCR's, then ours it did not list (if `fusion.absent`)."""
    theirs = [t for t, _ in ppocr.candidates]
    return theirs + [c.text for c in own if c.text not in theirs and fusion.absent > 0]


def fused_order(
    ppocr: PlateResult, texts: Sequence[str], support: np.ndarray, fusion: Fusion,
) -> tuple[list[int], np.ndarray]:
    """The top `TOP_CANDIDATES` of `texts` (`fusion_texts`) best first, and every text's fused
    log score, given our model's per-character log-likelihood `support` of each."""
    theirs = dict(ppocr.candidates)
    floor = fusion.absent * min(theirs.values())
    prior = np.log(np.maximum([theirs.get(t, floor) for t in texts], 1e-12))
    scores = prior + fusion.weight * np.asarray(support)
    order = [int(i) for i in np.argsort(-scores, kind="stable")]
    top = texts.index(ppocr.text) if ppocr.text in theirs else 0
    if order[0] != top and (support[order[0]] - support[top] < fusion.margin or (
            not fusion.confusable and _look_alike(texts[order[0]], ppocr.text))):
        order = [top, *(i for i in order if i != top)]
    return order[:TOP_CANDIDATES], scores


def _look_alike(a: str, b: str) -> bool:
    """Whether two readings of one length differ only by grammar-confusable glyph pairs."""
    return len(a) == len(b) and all(x == y or y in CONFUSABLE.get(x, "") or x in CONFUSABLE.get(y, "")
                                    for x, y in zip(a, b, strict=True))


def _region_of(text: str, default: str) -> str:
    """The region of the first grammar `text` fits, else `default`."""
    return next((g.region for gs in GRAMMARS.values() for g in gs if g.matches(text)), default)


def _place(
    n_frames: int, found: _Candidates, colours: Sequence[str], reads: Sequence[PlateResult],
    min_confidence: float,
) -> list[list[PlateResult]]:
    """The confident reads of each frame, with their box, corners and colour."""
    results: list[list[PlateResult]] = [[] for _ in range(n_frames)]
    for owner, quad, colour, result in zip(
        found.owners, found.quads, colours, reads, strict=True
    ):
        if result.region == "unknown" or result.confidence < min_confidence:
            continue
        x1, y1 = quad.min(axis=0)
        x2, y2 = quad.max(axis=0)
        results[owner].append(
            replace(result, box=(int(x1), int(y1), int(x2), int(y2)), colour=colour,
                    quad=tuple((float(x), float(y)) for x, y in quad))
        )
    return results


def _suppress(plates: list[PlateResult], frame_shape: tuple[int, ...]) -> list[PlateResult]:
    """Best first, dropping reads that overlap a kept plate.

    Reads rank by confidence times a size factor (a row much lower than the frame's tallest
    read row is more likely a badge, sticker or caption than the plate) times `read_prior`
    (camera timestamps on the top/bottom border, text cut by the frame edge, rows of no
    plate's aspect rank lower).
    """
    row_h = {id(p): (p.box[3] - p.box[1]) / p.rows for p in plates if p.box is not None}
    tallest = max(row_h.values(), default=1.0)

    def rank(p: PlateResult) -> float:
        prior = read_prior(p.box, p.rows, frame_shape) if p.box is not None else 1.0
        return (p.confidence * prior
                * min(1.0, row_h.get(id(p), tallest) / (SIZE_TOLERANCE * tallest)))

    kept: list[PlateResult] = []
    for p in sorted(plates, key=rank, reverse=True):
        if all(k.box is None or p.box is None or _overlap(p.box, k.box) < 0.5 for k in kept):
            kept.append(p)
    return kept
