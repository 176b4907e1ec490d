"""Plate localisation in whole scenes: which text lines are plate candidates, and where to look.

Pure functions over boxes and frame shapes: a plate-likeness prior from a candidate's geometry
(ranks the detector's text-line groups so only the top few are read, and with `read_prior` the
reads of a frame), the expanded window around a small candidate that a second, upscaled
detector pass searches, and the cascade's plan: the scale of a coarse whole-frame pass
(`coarse_scale`) and the merged windows around its best candidates (`cascade_windows`) that the
full-scale pass then searches instead of the whole frame; or, with the plate detector
(`edge.recognition.plate_detect`), the windows around the plates it found (`detector_windows`).
"""

from __future__ import annotations

from edge.recognition.results import Box

ROW_ASPECT = (1.8, 9.0)  # width / row height of a plate's text row (2-row plates: the lower row)
MIN_ROW_FRACTION = 0.006  # rows lower than this share of the frame height are too small to read
EDGE_BAND = 0.04  # timestamps and captions hug the top and bottom frame borders
CUT_MARGIN = 1  # a box within this many pixels of the left or right frame edge is cut by it
UNLIKELY = 0.4  # prior factor for each feature that does not look like a plate
COARSE_SIDE = 800  # longest side (pixels) of the cascade's coarse whole-frame detector pass
COARSE_GAIN = 0.65  # the cascade runs only where the coarse pass is at most this share of full scale
COARSE_THRESH = (0.2, 0.3)  # the coarse pass's DB pixel and box thresholds (full pass: 0.3, 0.5):
# small plates are faint at the coarse scale, and a false candidate costs only a small window
WINDOW_MARGIN = 0.5  # coarse boxes are loose: windows grow by this many rows more on each side
WINDOW_CONTEXT = 32  # and by this many pixels (frame pixels at scale 1) of context for the detector
WINDOW_SHARE = 0.5  # windows covering more of the frame than this: search the frame whole
# Plate detector (`detector_windows`): a frame whose best plate scores below DETECTOR_CERTAIN
# goes through the coarse cascade instead; plates scoring at least DETECTOR_KEEP get a window.
DETECTOR_CERTAIN = 0.5
DETECTOR_KEEP = 0.3
DETECTOR_MARGIN = (0.35, 0.8)  # a plate box grows by this share of its width, height per side


def plate_prior(bbox: Box, rows: int, frame_shape: tuple[int, ...]) -> float:
    """How plate-like a text-line group looks from its geometry alone, in (0, 1]."""
    x1, y1, x2, y2 = bbox
    height, width = frame_shape[:2]
    row_h = max(1, y2 - y1) / rows
    aspect = (x2 - x1) / row_h
    prior = 1.0
    if not ROW_ASPECT[0] * (0.6 if rows == 2 else 1.0) <= aspect <= ROW_ASPECT[1]:
        prior *= UNLIKELY
    if row_h < MIN_ROW_FRACTION * height:
        prior *= UNLIKELY
    if y1 < EDGE_BAND * height or y2 > (1 - EDGE_BAND) * height:
        prior *= UNLIKELY
    return prior


def too_wide(bbox: Box, rows: int) -> bool:
    """Whether a text-line group's rows are wider for their height than any plate's row
    (`ROW_ASPECT`): gantry signs, liveries, timestamps. Such a group is not worth reading."""
    x1, y1, x2, y2 = bbox
    return (x2 - x1) * rows > ROW_ASPECT[1] * max(1, y2 - y1)


def read_prior(bbox: Box, rows: int, frame_shape: tuple[int, ...]) -> float:
    """`plate_prior` of a read plate's box, also scaled by UNLIKELY when the box touches the
    left or right frame edge (a plate cut by the edge cannot have been read whole)."""
    prior = plate_prior(bbox, rows, frame_shape)
    if bbox[0] <= CUT_MARGIN or bbox[2] >= frame_shape[1] - 1 - CUT_MARGIN:
        prior *= UNLIKELY
    return prior


def search_window(bbox: Box, rows: int, frame_shape: tuple[int, ...]) -> Box:
    """Window around a candidate for the second pass: wide enough for the plate's border and a
    row of a 2-row plate the first pass missed."""
    x1, y1, x2, y2 = bbox
    height, width = frame_shape[:2]
    row_h = max(1, y2 - y1) / rows
    dx, dy = 0.25 * (x2 - x1) + row_h, 1.2 * row_h
    return (max(0, int(x1 - dx)), max(0, int(y1 - dy)),
            min(width, int(x2 + dx)), min(height, int(y2 + dy)))


def coarse_scale(full_scale: float, frame_shape: tuple[int, ...]) -> float | None:
    """Detector scale of the coarse pass over a frame whose full pass runs at `full_scale`, or
    None where a coarse pass would save too little (small frames: search them whole)."""
    scale = COARSE_SIDE / max(frame_shape[:2])
    return scale if scale <= COARSE_GAIN * full_scale else None


def _merge(windows: list[Box]) -> list[Box]:
    """Overlapping or touching windows joined into their bounding boxes, until none overlap."""
    merged = list(windows)
    changed = True
    while changed:
        changed = False
        for i in range(len(merged)):
            for j in range(i + 1, len(merged)):
                a, b = merged[i], merged[j]
                if a[0] <= b[2] and b[0] <= a[2] and a[1] <= b[3] and b[1] <= a[3]:
                    merged[i] = (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]),
                                 max(a[3], b[3]))
                    del merged[j]
                    changed = True
                    break
            if changed:
                break
    return merged


def cascade_windows(
    candidates: list[tuple[Box, int]], frame_shape: tuple[int, ...]
) -> list[Box] | None:
    """Windows for the full-scale pass around the coarse pass's best plate candidates
    ((bbox, rows), best first), merged where they overlap; None when they would cover more than
    `WINDOW_SHARE` of the frame (the whole frame is then cheaper to search in one pass)."""
    height, width = frame_shape[:2]
    windows = []
    for bbox, rows in candidates:
        x1, y1, x2, y2 = search_window(bbox, rows, frame_shape)
        pad = int(WINDOW_MARGIN * max(1, bbox[3] - bbox[1]) / rows + WINDOW_CONTEXT)
        windows.append((max(0, x1 - pad), max(0, y1 - pad), min(width, x2 + pad),
                        min(height, y2 + pad)))
    merged = _merge(windows)
    covered = sum((x2 - x1) * (y2 - y1) for x1, y1, x2, y2 in merged)
    return merged if covered <= WINDOW_SHARE * height * width else None


def detector_windows(
    plates: list[tuple[Box, float]], frame_shape: tuple[int, ...],
    certain: float = DETECTOR_CERTAIN, keep: float = DETECTOR_KEEP,
) -> list[Box] | None:
    """Windows for the full-scale text-detector pass around the plate detector's boxes
    ((box, score), best first), merged where they overlap; None when the best scores below
    `certain` or the windows would cover more than `WINDOW_SHARE` of the frame (the frame then
    goes through the coarse cascade). Each window holds its plate box grown by
    `DETECTOR_MARGIN` (the box size is an estimate) plus `WINDOW_CONTEXT` pixels."""
    if not plates or plates[0][1] < certain:
        return None
    height, width = frame_shape[:2]
    windows = []
    for (x1, y1, x2, y2), score in plates:
        if score < keep:
            continue
        dx = int(DETECTOR_MARGIN[0] * (x2 - x1)) + WINDOW_CONTEXT
        dy = int(DETECTOR_MARGIN[1] * (y2 - y1)) + WINDOW_CONTEXT
        windows.append((max(0, x1 - dx), max(0, y1 - dy), min(width, x2 + dx),
                        min(height, y2 + dy)))
    merged = _merge(windows)
    covered = sum((x2 - x1) * (y2 - y1) for x1, y1, x2, y2 in merged)
    return merged if covered <= WINDOW_SHARE * height * width else None
