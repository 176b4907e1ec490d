"""Plate localisation in whole scenes: which text lines are plate candidates, and where to look.

Pure functions over boxes and frame shapes: a plate-likeness prior from a candidate's geometry
(ranks the detector's text-line groups so only the top few are read, and with `read_prior` the
reads of a frame) and the expanded window around a small candidate that a second, upscaled
detector pass searches.
"""

from __future__ import annotations

from edge.recognition.results import Box

ROW_ASPECT = (1.8, 9.0)  # width / row height of a plate's text row (2-row plates: the lower row)
MIN_ROW_FRACTION = 0.006  # rows lower than this share of the frame height are too small to read
EDGE_BAND = 0.04  # timestamps and captions hug the top and bottom frame borders
CUT_MARGIN = 1  # a box within this many pixels of the left or right frame edge is cut by it
UNLIKELY = 0.4  # prior factor for each feature that does not look like a plate


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
