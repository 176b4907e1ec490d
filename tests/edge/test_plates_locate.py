"""Scene localisation helpers: plate prior, second-pass window, line preparation, read ranking."""

from __future__ import annotations

import numpy as np

from edge.recognition.plate_locate import (
    COARSE_SIDE,
    UNLIKELY,
    cascade_windows,
    coarse_scale,
    plate_prior,
    read_prior,
    search_window,
    too_wide,
)
from edge.recognition.plates import PlateResult, _suppress
from models.plate_lines import LINE_HEIGHT, prepare_line

FRAME = (720, 1280, 3)


def test_plate_shaped_line_mid_frame_is_most_likely() -> None:
    plate = plate_prior((600, 500, 760, 540), 1, FRAME)
    assert plate == 1.0
    assert plate_prior((600, 500, 640, 540), 1, FRAME) == UNLIKELY  # square: a logo or glyph
    assert plate_prior((20, 5, 200, 30), 1, FRAME) == UNLIKELY  # timestamp on the top border
    assert plate_prior((600, 500, 603, 502), 1, FRAME) < UNLIKELY  # a speck
    assert plate_prior((600, 460, 700, 540), 2, FRAME) == 1.0  # 2-row plate


def test_search_window_contains_candidate_and_stays_in_frame() -> None:
    x1, y1, x2, y2 = search_window((600, 500, 700, 520), 1, FRAME)
    assert x1 < 600 and y1 < 500 and x2 > 700 and y2 > 520
    assert search_window((0, 0, 1280, 720), 1, FRAME) == (0, 0, 1280, 720)


def test_prepare_line_upscales_and_stretches_contrast() -> None:
    line = np.full((24, 94, 3), 100, np.uint8)
    line[6:18, 10:80] = 140  # faint text
    ready = prepare_line(line)
    assert ready.shape[0] == LINE_HEIGHT and ready.shape[1] == 188
    assert int(ready.max()) - int(ready.min()) > 200


def test_small_reads_rank_after_the_plate() -> None:
    badge = PlateResult("GS300", "GS300", 0.9, "other", box=(100, 100, 160, 115))
    plate = PlateResult("SK2W6K", "SK2W6K", 0.8, "other", box=(300, 300, 420, 340))
    assert [p.text for p in _suppress([badge, plate], FRAME)] == ["SK2W6K", "GS300"]
    twin = PlateResult("SK2W6X", "SK2W6X", 0.7, "other", box=(305, 300, 420, 340))
    assert [p.text for p in _suppress([plate, twin], FRAME)] == ["SK2W6K"]


def test_timestamps_and_cut_text_rank_after_the_plate() -> None:
    plate = PlateResult("1365847", "1365847", 0.7, "us", box=(428, 382, 512, 427))
    stamp = PlateResult("20140513", "20140513", 0.8, "us", box=(600, 695, 700, 716))
    cut = PlateResult("6F1A", "6F1A", 0.8, "other", box=(0, 323, 47, 359))
    assert [p.text for p in _suppress([stamp, cut, plate], FRAME)][0] == "1365847"
    assert read_prior(cut.box, 1, FRAME) < plate_prior(cut.box, 1, FRAME)


def test_coarse_pass_only_where_it_saves_enough() -> None:
    assert coarse_scale(1.0, (1080, 1920, 3)) == COARSE_SIDE / 1920
    assert coarse_scale(1.0, (600, 800, 3)) is None  # 0.8 of full scale: search it whole
    assert coarse_scale(736 / 480, (480, 640, 3)) is None  # upscaled small frame


def test_cascade_windows_merge_and_give_up_on_most_of_the_frame() -> None:
    frame = (1080, 1920, 3)
    one = cascade_windows([((900, 800, 1000, 820), 1)], frame)
    assert one is not None and len(one) == 1
    x1, y1, x2, y2 = one[0]
    assert x1 < 900 and y1 < 800 and x2 > 1000 and y2 > 820
    near = cascade_windows([((900, 800, 1000, 820), 1), ((1010, 805, 1100, 822), 1)], frame)
    assert near is not None and len(near) == 1  # overlapping windows are searched once
    apart = cascade_windows([((100, 100, 200, 120), 1), ((1500, 900, 1600, 920), 1)], frame)
    assert apart is not None and len(apart) == 2
    assert cascade_windows([], frame) == []
    assert cascade_windows([((0, 0, 1900, 900), 1)], frame) is None


def test_rows_wider_than_any_plate_row_are_too_wide_to_read() -> None:
    assert not too_wide((600, 500, 760, 540), 1)  # a plate row, 4:1
    assert too_wide((100, 50, 620, 100), 1)  # a gantry sign line, 10.4:1
    assert not too_wide((600, 460, 700, 540), 2)  # a 2-row plate: 2.5:1 per row
    assert too_wide((600, 500, 800, 540), 2)  # two stacked lines of 10:1
