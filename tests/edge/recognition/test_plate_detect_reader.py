"""PlateReader with the plate detector (models/weights/plate_det.onnx) in front of the cascade."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge.recognition.plate_detect import PlateDetector
from edge.recognition.plates import PlateReader
from tools.synth.plates import render_plate


@pytest.fixture(scope="module")
def reader() -> PlateReader:
    return PlateReader(regions=("vn", "cn"), province_recognizer=False,
                       plate_detector=PlateDetector())


def _spy(reader: PlateReader, passes: list[str]) -> None:
    coarse, whole, windows = (reader.coarse_detector.detect, reader.detector.detect,
                              reader.detector.detect_windows)
    reader.coarse_detector.detect = (  # type: ignore[method-assign]
        lambda frames, scale=None: passes.append("coarse") or coarse(frames, scale))
    reader.detector.detect = (  # type: ignore[method-assign]
        lambda frames, scale=None: passes.append("whole") or whole(frames, scale))
    reader.detector.detect_windows = (  # type: ignore[method-assign]
        lambda image, boxes, scale: passes.append("windows") or windows(image, boxes, scale))


def test_a_found_plate_is_read_in_its_window_without_the_coarse_pass(
    reader: PlateReader,
) -> None:
    frame = np.full((1080, 1920, 3), 90, np.uint8)
    frame[500:760, 600:960] = cv2.resize(render_plate("29LD12345", "vn", 2, "white"), (360, 260))
    (plate,) = reader.plate_detector.detect([frame])[0][:1]  # type: ignore[union-attr]
    x1, y1, x2, y2 = plate.box
    assert x1 < 780 < x2 and y1 < 630 < y2  # the best box holds the plate's centre
    passes: list[str] = []
    _spy(reader, passes)
    try:
        found = reader.read_frames([frame])[0]
        empty = reader.read_frames([np.full((1080, 1920, 3), 90, np.uint8)])[0]
    finally:
        del reader.coarse_detector.detect, reader.detector.detect, reader.detector.detect_windows
    assert [p.text for p in found] == ["29LD12345"]
    assert passes[0] == "windows"  # no coarse pass, no whole-frame search
    assert not empty
    # nothing found: the coarse cascade, then the whole frame
    assert passes[1] == "coarse" and passes[-1] == "whole"


def test_the_detector_is_opt_in_and_needs_the_cascade() -> None:
    assert PlateReader(regions=("vn",)).plate_detector is None
    assert PlateReader(regions=("vn",), plate_detector=True).plate_detector is not None
    assert PlateReader(regions=("vn",), cascade=False, plate_detector=True).plate_detector is None
