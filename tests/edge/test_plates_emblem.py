"""Shape test of the ink under read glyphs: emblems between Latin plate groups are no characters."""

from __future__ import annotations

import numpy as np
import pytest

from edge.recognition.grammar import LATIN_PLATE, decode
from edge.recognition.plates import PlateReader, non_character_frames, prepare_line
from tools.synth.plates import draw_text


def latin_line(emblem: bool) -> np.ndarray:
    """`ABC 1234` on a light plate, with a small raised `O`-like emblem between the groups."""
    line = np.full((60, 330, 3), 235, np.uint8)
    line = draw_text(line, "ABC", (10, 5), 44)
    line = draw_text(line, "1234", (190, 5), 44)
    return draw_text(line, "O", (148, 12), 26) if emblem else line


@pytest.fixture(scope="module")
def reader() -> PlateReader:
    return PlateReader(regions=("us",))


def _merged(reader: PlateReader, line: np.ndarray) -> np.ndarray:
    """The line's CTC matrix with blank and separators as one column, as the grammar reads it."""
    p = reader.recognizer.probabilities([line], reader.columns)[0]
    first = 1 + reader.n_separators
    return np.concatenate((p[:, :first].sum(axis=1, keepdims=True),
                           p[:, first : first + len(reader.chars)]), axis=1)


def test_emblem_between_groups_is_blanked_and_dropped(reader: PlateReader) -> None:
    line = prepare_line(latin_line(emblem=True))
    probs = _merged(reader, line)
    assert decode(probs, reader.chars, (LATIN_PLATE,))[0].text == "ABC01234"  # read as a glyph
    marked = non_character_frames(line, probs, reader.recognizer.STRIDE)
    glyph_frames = np.flatnonzero(probs.argmax(axis=1) != 0)
    assert marked.sum() == 1 and marked[glyph_frames].sum() == 1  # only the emblem's glyph
    assert reader.read_crops([latin_line(emblem=True)])[0].text == "ABC1234"


def test_characters_are_kept(reader: PlateReader) -> None:
    line = prepare_line(latin_line(emblem=False))
    assert not non_character_frames(line, _merged(reader, line), reader.recognizer.STRIDE).any()
    short = prepare_line(draw_text(np.full((60, 330, 3), 235, np.uint8), "AB", (10, 5), 44))
    probs = np.zeros((short.shape[1] // 8, len(reader.chars) + 1), np.float32)
    probs[:, 0] = 1.0
    probs[-3] = np.eye(len(reader.chars) + 1)[1]  # a glyph over empty plate
    assert not non_character_frames(short, probs, 8).any()  # under 3 characters: no band to judge
