"""PlateReader on generated plates and scenes, and its handling of unusable images."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.recognition import plates
from edge.recognition.ocr import BUCKET_SPREAD, ImageError, TextBox, decode_image, width_buckets
from edge.recognition.plate_locate import COARSE_SIDE, WINDOW_SHARE
from edge.recognition.plates import (
    PlateReader,
    merge_coarse,
    plate_colour,
    second_opinion,
    tall_lines,
)
from tools.synth.plates import font_path, render_crop, render_plate, render_scene_with_box


@pytest.fixture(scope="module")
def reader() -> PlateReader:
    return PlateReader(regions=("vn", "cn"))


@pytest.mark.parametrize(("text", "region", "rows"), [
    ("12C34567", "vn", 2), ("59C211894", "vn", 2), ("29LD12345", "vn", 2),
    ("51R01234", "vn", 1), ("桂FA1234", "cn", 2), ("桂F1234挂", "cn", 1),
])
def test_reads_generated_crops(reader: PlateReader, text: str, region: str, rows: int) -> None:
    result = reader.read_crops([render_crop(text, region, rows, seed=3)])[0]
    assert (result.text, result.region, result.rows) == (text, region, rows)
    assert 0 < result.confidence <= 1 and result.candidates[0][0] == text


def test_finds_plate_in_scene(reader: PlateReader) -> None:
    scene, (x1, y1, x2, y2) = render_scene_with_box("12C34567", "vn", 2, seed=5)
    plates = reader.read_frames([scene, scene[:, ::-1].copy()])
    assert plates[0] and plates[0][0].text == "12C34567"
    assert plates[0][0].display_text == "12C-345.67" and plates[0][0].rows == 2
    bx1, by1, bx2, by2 = plates[0][0].box
    assert bx1 >= x1 - 15 and by1 >= y1 - 15 and bx2 <= x2 + 15 and by2 <= y2 + 15


def test_plate_colour() -> None:
    assert plate_colour(render_plate("12C34567", "vn", 2, "yellow")) == "yellow"
    assert plate_colour(render_plate("桂FA1234", "cn", 1, "blue")) == "blue"
    assert plate_colour(render_plate("51F58214", "vn", 1, "white")) == "white"


@pytest.mark.parametrize("bad", [
    np.zeros((0, 10, 3), np.uint8), np.zeros((10, 10, 3), np.float32),
    np.zeros((7000, 7000), np.uint8), "not an image",
])
def test_unusable_images_raise(reader: PlateReader, bad: object) -> None:
    with pytest.raises(ImageError):
        reader.read_crops([bad])  # type: ignore[list-item]
    with pytest.raises(ImageError):
        reader.read_frames([bad])  # type: ignore[list-item]


def test_corrupt_bytes_raise() -> None:
    with pytest.raises(ImageError, match="cannot decode"):
        decode_image(b"\xff\xd8 not really a jpeg")
    with pytest.raises(ImageError, match="empty"):
        decode_image(b"")


def test_font_lookup_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    import tools.synth.plates as synth

    assert font_path(cjk=True).is_file()
    monkeypatch.setattr(synth, "CJK_FONTS", ("/nonexistent.ttc",))
    with pytest.raises(synth.FontMissingError, match="fonts-wqy-microhei"):
        synth.font_path(cjk=True)


def test_second_opinion_decides_between_provinces_only() -> None:
    # columns: blank, two provinces, one letter; frame 1 is the province glyph, frame 3 a letter
    primary = np.array([[0.9, 0.05, 0.03, 0.02], [0.1, 0.5, 0.4, 0.0],
                        [0.9, 0.05, 0.05, 0.0], [0.1, 0.0, 0.0, 0.9]], dtype=np.float32)
    second = np.array([[0.9, 0.0, 0.1, 0.0], [0.8, 0.0, 0.2, 0.0],  # peaks a frame late
                       [0.0, 0.1, 0.9, 0.0], [0.1, 0.0, 0.0, 0.9]], dtype=np.float32)
    mixed = second_opinion(primary, second, np.array([1, 2]))
    assert mixed[1, 2] > mixed[1, 1]  # the second model's province wins the glyph frame
    assert np.allclose(mixed[:, 1:3].sum(axis=1), primary[:, 1:3].sum(axis=1))  # mass kept
    assert np.array_equal(mixed[:, [0, 3]], primary[:, [0, 3]])  # other columns untouched
    assert np.allclose(second_opinion(primary, primary, np.array([1, 2]))[1], primary[1],
                       atol=0.06)  # agreeing models change little (pooling only)


@given(st.lists(st.integers(192, 1600), max_size=60), st.integers(1, 32))
def test_width_buckets_cover_every_line_once_with_little_padding(widths: list[int],
                                                                   max_batch: int) -> None:
    buckets = width_buckets(widths, max_batch)
    assert sorted(i for b in buckets for i in b) == list(range(len(widths)))
    for bucket in buckets:
        assert 1 <= len(bucket) <= max_batch
        assert max(widths[i] for i in bucket) <= BUCKET_SPREAD * min(widths[i] for i in bucket)


def _box(x1: float, y1: float, x2: float, y2: float) -> TextBox:
    return TextBox(np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]], np.float32), 0.9)


def test_tall_lines_are_replaced_by_the_coarse_pass() -> None:
    small, tall = _box(10, 10, 200, 40), _box(100, 300, 1100, 700)
    assert tall_lines([small, tall], scale=1.0) == [tall]
    assert tall_lines([small, tall], scale=0.5) == []  # 200 px at that scale: not too tall
    rows = [_box(120, 300, 1080, 480), _box(120, 500, 1080, 690)]  # the two rows, found apart
    again = _box(12, 11, 199, 41)  # a line both passes found: the finer box stays
    merged = merge_coarse([small, tall], [tall], [*rows, again])
    assert merged[0] is small and merged[1:] == rows


def test_a_frame_with_tall_lines_is_searched_again_at_half_scale(reader: PlateReader) -> None:
    frame = np.full((1536, 2048, 3), 80, np.uint8)
    plate = cv2.resize(render_plate("14MD104880", "vn", 2, "white"), (1000, 714))
    frame[700:1414, 500:1500] = plate
    calls: list[float | None] = []
    detect = reader.detector.detect

    def spy(frames, scale=None):
        calls.append(scale)
        return detect(frames, scale)

    reader.detector.detect = spy  # type: ignore[method-assign]
    reader.cascade = False  # the whole-frame search
    try:
        found = reader.read_frames([frame, np.full((720, 1280, 3), 80, np.uint8)])
    finally:
        del reader.detector.detect
        reader.cascade = True
    full = reader.detector.input_scale(1536, 2048)
    assert calls[0] is None and calls[1] == pytest.approx(full / 2)
    assert len([c for c in calls if c is not None]) == 1  # the empty frame: no second pass
    assert found[0][0].text == "14MD104880" and not found[1]


def test_cascade_searches_a_full_hd_frame_coarsely_then_only_around_candidates(
    reader: PlateReader, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(plates, "COARSE_CERTAIN", 1.01)  # no coarse read is certain enough
    frame = np.full((1080, 1920, 3), 90, np.uint8)
    frame[700:728, 1200:1330] = cv2.resize(render_plate("51R01234", "vn", 1, "white"), (130, 28))
    large = np.full((1080, 1920, 3), 90, np.uint8)
    large[500:760, 600:960] = cv2.resize(render_plate("29LD12345", "vn", 2, "white"), (360, 260))
    passes: list[tuple[str, float | None]] = []
    searched: list[float] = []  # share of the frame searched at full scale around candidates
    coarse_detect, detect = reader.coarse_detector.detect, reader.detector.detect
    windows = reader.detector.detect_windows

    def spy_coarse(frames, scale=None):
        passes.append(("coarse", scale))
        return coarse_detect(frames, scale)

    def spy_whole(frames, scale=None):
        passes.append(("whole", scale))
        return detect(frames, scale)

    def spy_windows(image, boxes, scale):
        passes.append(("windows", scale))
        searched.append(sum((x2 - x1) * (y2 - y1) for x1, y1, x2, y2 in boxes) / 1920 / 1080)
        return windows(image, boxes, scale)

    reader.coarse_detector.detect = spy_coarse  # type: ignore[method-assign]
    reader.detector.detect = spy_whole  # type: ignore[method-assign]
    reader.detector.detect_windows = spy_windows  # type: ignore[method-assign]
    try:
        found = reader.read_frames([frame])[0]
        found_large = reader.read_frames([large])[0]
        empty = reader.read_frames([np.full((1080, 1920, 3), 90, np.uint8)])[0]
    finally:
        del reader.coarse_detector.detect, reader.detector.detect, reader.detector.detect_windows
    full = reader.detector.input_scale(1080, 1920)
    coarse = COARSE_SIDE / 1920
    assert [t.text for t in found] == ["51R01234"]
    assert [t.text for t in found_large] == ["29LD12345"]
    assert passes[:4] == [("coarse", pytest.approx(coarse)), ("windows", pytest.approx(full))] * 2
    assert 0 < searched[0] < 0.15 and 0 < searched[1] <= WINDOW_SHARE  # never the whole frame
    assert not empty  # nothing read: searched whole at full scale after the coarse pass
    assert passes[4:] == [("coarse", pytest.approx(coarse)), ("windows", pytest.approx(full)),
                          ("whole", None)]


def test_a_certain_read_of_the_coarse_boxes_skips_the_full_scale_search(
    reader: PlateReader, monkeypatch: pytest.MonkeyPatch
) -> None:
    frame = np.full((1080, 1920, 3), 90, np.uint8)
    frame[500:760, 600:960] = cv2.resize(render_plate("29LD12345", "vn", 2, "white"), (360, 260))
    passes: list[str] = []
    for detector, method in ((reader.coarse_detector, "detect"), (reader.detector, "detect"),
                             (reader.detector, "detect_windows")):
        spied = getattr(detector, method)
        name = "coarse" if detector is reader.coarse_detector else method
        monkeypatch.setattr(detector, method, lambda *args, spied=spied, name=name, **kw: (
            passes.append(name) or spied(*args, **kw)))
    (found,) = reader.read_frames([frame])[0]
    assert found.text == "29LD12345" and found.confidence >= plates.COARSE_CERTAIN
    assert passes == ["coarse"]
    monkeypatch.setattr(plates, "COARSE_CERTAIN", 1.01)
    assert reader.read_frames([frame])[0][0].text == "29LD12345"
    assert passes[1:] == ["coarse", "detect_windows"]


def test_a_certain_chinese_reading_skips_the_second_opinion(
    reader: PlateReader, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert reader.province_recognizer is not None
    calls: list[int] = []
    second = reader.province_recognizer.probabilities
    monkeypatch.setattr(reader.province_recognizer, "probabilities",
                        lambda crops, columns=None: calls.append(len(crops)) or second(crops,
                                                                                       columns))
    crop = render_crop("桂FA1234", "cn", 1, seed=3)
    certain = reader.read_crops([crop])[0]
    assert certain.text == "桂FA1234" and certain.confidence >= plates.PROVINCE_CERTAIN
    assert calls == []
    monkeypatch.setattr(plates, "PROVINCE_CERTAIN", 1.01)  # nothing is certain: ask it
    assert reader.read_crops([crop])[0].text == "桂FA1234" and calls


def test_a_confident_first_layout_skips_the_other_layouts(
    reader: PlateReader, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines: list[int] = []
    probabilities = reader.recognizer.probabilities
    monkeypatch.setattr(reader.recognizer, "probabilities",
                        lambda crops, columns=None: lines.append(len(crops)) or probabilities(
                            crops, columns))
    crop = render_crop("51R01234", "vn", 1, seed=3)
    assert len(plates.crop_layouts(crop)) == 2  # 1 row, and 2 rows split at the ink valley
    certain = reader.read_crops([crop])[0]
    assert certain.text == "51R01234" and certain.confidence >= plates.CONFIDENT
    assert lines == [1]  # the 1-row line alone
    lines.clear()
    monkeypatch.setattr(plates, "CONFIDENT", 1.01)  # nothing is certain: read every layout
    again = reader.read_crops([crop])[0]
    assert again.text == "51R01234" and lines[:2] == [1, 2]


def test_a_gate_frame_reads_its_other_candidates_only_without_a_certain_read(
    reader: PlateReader, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tools.synth.plates import render_gate_scene

    scene, _ = render_gate_scene("29C12345", "vn", 1, seed=3, lane=4)
    read: list[int] = []  # candidates read per recognizer round
    spied = reader._read
    monkeypatch.setattr(reader, "_read", lambda layouts, colours, whole=None: (
        read.append(len(layouts)) or spied(layouts, colours, whole)))
    (first, *_) = reader.read_frames([scene])[0]
    assert first.text == "29C12345" and first.confidence >= plates.COARSE_CERTAIN
    assert read == [plates.FIRST_GROUPS]  # the signs and liveries ranked after: never read
    read.clear()
    monkeypatch.setattr(plates, "FIRST_GROUPS", 1)  # the plate is not the first candidate here
    assert reader.read_frames([scene])[0][0].text == "29C12345"
    assert read[0] == 1 and read[1] > 1  # nothing certain in the first: the others are read
