"""Container code reading on rendered faces (horizontal, two-row, vertical) and crops."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge.recognition.containers import (
    COARSE_SIDE,
    STAGE,
    ContainerCodeResult,
    ContainerReader,
    Fragment,
    assemble,
    default_reader,
    find_codes,
    read_code_crop,
    split_cells,
    vertical_columns,
)
from smartgate.iso6346 import is_valid
from tools.synth.containers import FontNotFoundError, find_fonts, generate, random_code


@pytest.fixture(scope="module")
def faces():
    return list(generate(9, seed=7))


def test_generator_is_deterministic_and_valid(faces) -> None:
    again = list(generate(3, seed=7))
    assert [f.code for f in again] == [f.code for f in faces[:3]]
    assert np.array_equal(again[0].image, faces[0].image)
    assert all(is_valid(f.code) for f in faces)
    assert {f.layout for f in faces} == {"row", "two_rows", "vertical"}
    assert is_valid(random_code(np.random.default_rng(1)))


def test_find_fonts_fails_clearly(tmp_path) -> None:
    with pytest.raises(FontNotFoundError, match="DejaVu"):
        find_fonts((tmp_path,))


def test_reads_whole_faces_in_a_batch(faces) -> None:
    results = default_reader().read_frames([f.image for f in faces])
    hits = 0
    for face, found in zip(faces, results, strict=True):
        if found and found[0].code == face.code:
            hits += 1
            best = found[0]
            assert best.check_digit_ok and best.orientation == face.orientation
            assert best.box is not None
    assert hits >= 8  # 9 faces, all three layouts


def test_size_type_is_read_next_to_a_horizontal_code(faces) -> None:
    face = next(f for f in faces if f.layout == "row")
    found = find_codes(face.image)
    assert found and found[0].size_type == face.size_type


def test_reads_vertical_and_horizontal_crops(faces) -> None:
    for face in faces[:3]:
        x1, y1, x2, y2 = face.box
        m = 12
        crop = face.image[max(0, y1 - m) : y2 + m, max(0, x1 - m) : x2 + m]
        result = read_code_crop(crop)
        assert isinstance(result, ContainerCodeResult)
        assert result.code == face.code, face.layout


def test_blank_crop_reads_nothing() -> None:
    assert read_code_crop(np.full((60, 300, 3), 128, np.uint8)) is None
    assert find_codes(np.full((240, 320, 3), 90, np.uint8)) == []


def test_split_cells_counts_stacked_characters(faces) -> None:
    face = next(f for f in faces if f.layout == "vertical")
    x1, y1, x2, y2 = face.box
    w = x2 - x1
    column = face.image[y1 - 5 : y2 + 5, x1 - w // 2 : x2 + w // 2]
    assert len(split_cells(column)) == 11


def test_vertical_columns_join_stacked_boxes() -> None:
    boxes = [(100, 10 + 40 * i, 125, 45 + 40 * i) for i in range(11)] + [(300, 20, 420, 50)]
    cols = vertical_columns(boxes, (600, 600, 3))
    assert len(cols) == 1
    x1, y1, x2, y2 = cols[0]
    assert x1 < 100 and x2 > 125 and y1 < 10 and y2 > 445


def _frag(text: str, box: tuple[int, int, int, int]) -> Fragment:
    return Fragment(text, box, tuple(((c, 0.99),) for c in text), tuple(0.99 for _ in text))


def test_assemble_joins_owner_serial_and_check_digit() -> None:
    one_row = [_frag("CSQU", (0, 0, 80, 30)), _frag("305438", (100, 0, 220, 30)),
               _frag("3", (235, 0, 255, 30)), _frag("22G1", (100, 45, 180, 70))]  # fmt: skip
    best = assemble(one_row)[0]
    assert (best.code, best.check_digit_ok, best.size_type) == ("CSQU3054383", True, "22G1")
    two_rows = [_frag("CSQU", (0, 0, 80, 30)), _frag("3054383", (0, 40, 150, 70))]
    assert assemble(two_rows)[0].code == "CSQU3054383"
    apart = [_frag("CSQU", (0, 0, 80, 30)), _frag("3054383", (600, 400, 750, 430))]
    assert all(r.code != "CSQU3054383" for r in assemble(apart))


def test_a_photo_is_read_coarsely_in_stages_largest_text_first(faces) -> None:
    face = next(f for f in faces if f.layout == "row")
    photo = cv2.copyMakeBorder(face.image, 0, 260, 0, 0, cv2.BORDER_CONSTANT, value=(200, 200, 200))
    for k in range(12):  # a door's small print: many lines, none of them a code
        cv2.putText(photo, f"MAX GROSS {30480 + k} KG", (20 + 300 * (k % 2), photo.shape[0] - 20
                    - 20 * (k // 2)), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (20, 20, 20), 1)
    shared = default_reader()
    reader = ContainerReader(shared.detector, shared.recognizer)
    scales: list[float | None] = []
    lines: list[int] = []
    detect, recognize = reader.detector.detect, reader.recognizer.recognize
    reader.detector.detect = lambda frames, scale=None: scales.append(scale) or detect(  # type: ignore[method-assign]
        frames, scale)
    reader.recognizer.recognize = lambda crops, allowed=None: lines.append(len(crops)) or recognize(  # type: ignore[method-assign]
        crops, allowed)
    try:
        found = reader.read_frames([photo])[0]
        photo_scales, photo_lines = list(scales), list(lines)
        blank = reader.read_frames([np.full((900, 1200, 3), 90, np.uint8)])[0]
    finally:
        del reader.detector.detect, reader.recognizer.recognize
    boxes = len(detect([photo], COARSE_SIDE / max(photo.shape[:2]))[0])
    assert found and found[0].code == face.code and found[0].check_digit_ok
    assert photo_scales == [pytest.approx(COARSE_SIDE / max(photo.shape[:2]))]  # no 2nd search
    assert photo_lines == [STAGE] and boxes > STAGE  # the code read in the first stage
    assert blank == [] and scales[1:] == [pytest.approx(COARSE_SIDE / 1200), None]
