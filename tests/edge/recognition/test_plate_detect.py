"""The plate detector's decoding and the windows it gives the text detector
(edge/recognition/plate_detect.py, plate_locate.detector_windows)."""

from __future__ import annotations

import numpy as np
import pytest

from edge.recognition.plate_detect import STRIDE, decode, input_size, prepare
from edge.recognition.plate_locate import WINDOW_SHARE, detector_windows

FRAME = (720, 1280, 3)


def _maps(h: int, w: int, peaks: list[tuple[int, int, float, float, float]]) -> np.ndarray:
    """Detector output with centre peaks (row, col, score, width, height in cells)."""
    maps = np.zeros((3, h, w), np.float32)
    maps[0] = 0.01
    for r, c, score, bw, bh in peaks:
        maps[0, r, c] = score
        maps[0, r, c + 1] = score * 0.9  # the shoulder of a peak is no second plate
        maps[1, r, c], maps[2, r, c] = np.log(bw), np.log(bh)
    return maps


def test_input_keeps_aspect_and_pads_to_the_grid() -> None:
    scale, h, w = input_size(720, 1280)
    assert scale == pytest.approx(384 / 1280)
    assert (h, w) == (224, 384)  # 216 rows padded to 224
    x, s = prepare(np.full(FRAME, 255, np.uint8))
    assert x.shape == (3, 224, 384) and x.dtype == np.float32 and s == scale
    assert x[:, :216].min() == 1.0 and x[:, 216:].max() == 0.0  # zero letterbox band


def test_decode_maps_peaks_to_frame_boxes_best_first() -> None:
    scale = 0.3
    maps = _maps(56, 96, [(30, 40, 0.6, 20.0, 5.0), (10, 10, 0.9, 8.0, 4.0)])
    found = decode(maps, scale, FRAME)
    assert [round(p.score, 2) for p in found] == [0.9, 0.6]
    x1, y1, x2, y2 = found[1].box
    cx, cy = (40 + 0.5) * STRIDE / scale, (30 + 0.5) * STRIDE / scale
    assert (x1 + x2) / 2 == pytest.approx(cx, abs=1)
    assert (y1 + y2) / 2 == pytest.approx(cy, abs=1)
    assert x2 - x1 == pytest.approx(20 * STRIDE / scale, abs=2)
    assert y2 - y1 == pytest.approx(5 * STRIDE / scale, abs=2)


def test_decode_drops_weak_peaks_clips_to_the_frame_and_caps_the_count() -> None:
    maps = _maps(56, 96, [(0, 0, 0.8, 40.0, 10.0), (20, 20, 0.1, 8.0, 4.0)])
    found = decode(maps, 0.3, FRAME)
    assert len(found) == 1 and found[0].box[:2] == (0, 0)
    many = _maps(56, 96, [(r, 10 * k + 5, 0.5 + 0.01 * k, 8.0, 4.0)
                          for k in range(8) for r in (10,)])
    assert len(decode(many, 0.3, FRAME, max_plates=4)) == 4
    assert decode(_maps(56, 96, []), 0.3, FRAME) == []


def test_windows_only_for_a_certain_plate_and_around_each_kept_one() -> None:
    plate, sign = ((600, 500, 700, 530), 0.9), ((100, 100, 160, 120), 0.35)
    assert detector_windows([], FRAME) is None
    assert detector_windows([((600, 500, 700, 530), 0.4)], FRAME) is None  # not certain
    windows = detector_windows([plate, sign, ((900, 100, 950, 120), 0.1)], FRAME)
    assert windows is not None and len(windows) == 2
    big = windows[0]
    assert big[0] < 600 and big[1] < 500 and big[2] > 700 and big[3] > 530
    assert all(0 <= x1 < x2 <= FRAME[1] and 0 <= y1 < y2 <= FRAME[0]
               for x1, y1, x2, y2 in windows)


def test_windows_give_up_when_they_cover_most_of_the_frame() -> None:
    huge = ((100, 50, 1200, 650), 0.9)
    assert detector_windows([huge], FRAME) is None
    small = detector_windows([((600, 500, 700, 530), 0.9)], FRAME)
    assert small is not None
    area = sum((x2 - x1) * (y2 - y1) for x1, y1, x2, y2 in small)
    assert area <= WINDOW_SHARE * FRAME[0] * FRAME[1]

