"""Plate grammars: matching, display forms, normalization and constrained CTC decoding."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.recognition.grammar import (
    CN,
    EU,
    FORMAT_FALLBACK,
    LATIN_PLATE,
    US,
    VN,
    VN_LETTERS,
    apply_priors,
    decode,
    normalize_plate,
)

ALPHABET = "0123456789ABCDEFGHJKLMNPRSTUVXYZ桂皖挂"


def ctc(
    text: str, blanks: bool = True, confusions: dict[int, str] | None = None,
    alphabet: str = ALPHABET,
) -> np.ndarray:
    """A confident CTC matrix for `text` (column 0 blank), optionally with a glyph swapped."""
    frames = []
    for i, ch in enumerate(text):
        row = np.full(len(alphabet) + 1, 0.001)
        row[1 + alphabet.index((confusions or {}).get(i, ch))] = 0.95
        frames.append(row)
        if blanks:
            blank = np.full(len(alphabet) + 1, 0.001)
            blank[0] = 0.97
            frames.append(blank)
    p = np.array(frames)
    return p / p.sum(axis=1, keepdims=True)


vn_plates = st.builds(
    lambda p, s, d, n: f"{p:02d}{s}{d}{n}",
    st.integers(11, 99), st.sampled_from(VN_LETTERS), st.sampled_from(["", "1", "5"]),
    st.from_regex(r"\A[0-9]{5}\Z"),
)


@given(vn_plates)
def test_vn_display_normalizes_back(text: str) -> None:
    assert VN.matches(text)
    assert normalize_plate(VN.display(text)) == text


@given(st.sampled_from("桂皖粤"), st.sampled_from("ABFK"), st.from_regex(r"\A[0-9A-H]{5}\Z"))
def test_cn_display_normalizes_back(province: str, letter: str, rest: str) -> None:
    text = province + letter + rest
    assert CN.matches(text)
    assert CN.display(text) == f"{province}{letter}·{rest}"
    assert normalize_plate(CN.display(text)) == text


def test_display_forms() -> None:
    assert VN.display("51F58214") == "51F-582.14"
    assert VN.display("59C211894") == "59C2-118.94"
    assert VN.display("12C34567") == "12C-345.67"
    assert VN.display("29MD1521") == "29MD-1521"
    assert normalize_plate(" 12c-345.67 ") == "12C34567"


def test_vn_grammar_rejects_unused_letters() -> None:
    assert not VN.matches("51O58214")
    assert not VN.matches("51W58214")
    assert CN.matches("桂FA123挂") and not CN.matches("桂FI1234")


def test_decode_reads_clean_plate() -> None:
    assert decode(ctc("51F58214"), ALPHABET, [VN])[0].text == "51F58214"


def test_decode_maps_confusable_by_position() -> None:
    # the model reads Z where the province code needs a digit, 8 where the series needs a letter
    probs = ctc("52B58214", confusions={1: "Z", 2: "8"})
    assert decode(probs, ALPHABET, [VN])[0].text == "52B58214"


def test_decode_finds_nothing_in_a_non_plate() -> None:
    assert decode(ctc("5S"), ALPHABET, [VN, CN]) == []


def test_decode_keeps_adjacent_characters_without_blank() -> None:
    probs = np.concatenate([ctc("59S"), ctc("1", blanks=False), ctc("35252")])
    assert decode(probs, ALPHABET, [VN])[0].text == "59S135252"


def test_decode_picks_region_and_ranks_candidates() -> None:
    best = decode(ctc("桂FA1234"), ALPHABET, [VN, CN, LATIN_PLATE])
    assert best[0].text == "桂FA1234" and best[0].region == "cn"
    assert all(a.score >= b.score for a, b in zip(best, best[1:], strict=False))


def test_cn_embassy_plates_and_missing_classes() -> None:
    assert CN.matches("使198476") and not CN.matches("使19847A")
    # an alphabet without 使 simply skips the embassy template
    assert decode(ctc("皖A13H25"), ALPHABET, [CN])[0].text == "皖A13H25"


def test_province_counts_half_in_the_score() -> None:
    weak = ctc("皖A13H25")
    weak[0, 1 + ALPHABET.index("皖")] = weak[0, 0] = 0.3  # a blurred province glyph
    score = decode(weak, ALPHABET, [CN])[0].score
    unweighted = 0.3 ** (1 / 7) * 0.95 ** (6 / 7)
    assert decode(weak, ALPHABET, [CN])[0].text == "皖A13H25" and score > unweighted


def test_vn_flagged_one_prior_moves_probability_between_glyphs_only() -> None:
    split = ctc("59N176049")
    seven, one = 1 + ALPHABET.index("7"), 1 + ALPHABET.index("1")
    split[6, one], split[6, seven] = 0.15, 0.8  # the flagged 1 read mostly as 7
    assert decode(split, ALPHABET, [VN])[0].text == "59N176049"
    assert decode(ctc("59N776049"), ALPHABET, [VN])[0].text == "59N776049"  # a clear 7 stays
    weighted = apply_priors(split, ALPHABET, VN.priors)
    assert np.allclose(weighted.sum(axis=1), split.sum(axis=1))
    assert np.allclose(weighted[:, 0], split[:, 0])  # blanks keep their probability


LATIN_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def latin_split(text: str, position: int, second: str, share: float) -> np.ndarray:
    """A Latin CTC matrix for `text` whose glyph at `position` gives `share` to `second`."""
    p = ctc(text, alphabet=LATIN_ALPHABET)
    row = p[2 * position]
    first = row[1 + LATIN_ALPHABET.index(text[position])]
    row[1 + LATIN_ALPHABET.index(text[position])] = first * (1 - share)
    row[1 + LATIN_ALPHABET.index(second)] = first * share
    return p


def test_latin_format_overrules_a_close_confusable_only() -> None:
    # Slovak AB123CD: a trailing I read 60/40 as 1 is put back to I by the format
    close = decode(latin_split("RK776A1", 6, "I", 0.4), LATIN_ALPHABET, (EU, LATIN_PLATE))[0]
    assert (close.text, close.region) == ("RK776AI", "eu")
    # a confident 1 stays: the format may not overrule the recognizer
    sure = decode(ctc("RK776A1", alphabet=LATIN_ALPHABET), LATIN_ALPHABET, (EU, LATIN_PLATE))[0]
    assert (sure.text, sure.region) == ("RK776A1", "other")
    assert sure.score == pytest.approx(FORMAT_FALLBACK * 0.95, abs=0.03)
    # US layouts are their own: a Missouri AB1C2D plate with a doubtful 1 keeps its digit
    mo = decode(latin_split("UH1N2A", 2, "I", 0.4), LATIN_ALPHABET, (US, LATIN_PLATE))[0]
    assert (mo.text, mo.region) == ("UH1N2A", "us")


def test_us_emblem_between_groups_is_not_part_of_the_plate() -> None:
    # a Missouri AB1·C2D plate whose mid-plate emblem the recognizer read as a B
    emblem = ctc("HK0BE7C", alphabet=LATIN_ALPHABET)
    best = decode(emblem, LATIN_ALPHABET, (US, LATIN_PLATE))[0]
    assert (best.text, best.region) == ("HK0E7C", "us")
    assert US.matches("HK0E7C") and US.matches("ABC1234")
    plain = decode(ctc("ABC1234", alphabet=LATIN_ALPHABET), LATIN_ALPHABET, (US, LATIN_PLATE))[0]
    assert (plain.text, plain.region) == ("ABC1234", "us")


def test_cn_serial_holds_at_most_two_letters() -> None:
    probs = ctc("桂AR201Z", confusions={5: "J"})  # the 1 read as a J: R, J and Z would be 3
    unconstrained = decode(probs, ALPHABET, [replace(CN, max_serial_letters=None)])[0]
    assert unconstrained.text == "桂AR20JZ"
    best = decode(probs, ALPHABET, [CN])
    assert best and all(sum(c.isascii() and c.isalpha() for c in b.text[2:]) <= 2 for b in best)
    assert best[0].text in ("桂AR201Z", "桂AR20J2")  # one confusable swapped back


@given(st.integers(1, 6), st.integers(1, 7), st.integers(1, 40), st.integers(0, 2**31 - 1))
def test_templates_aligned_together_as_each_alone(m: int, n: int, t: int, seed: int) -> None:
    """Templates of different lengths padded into one Viterbi align as each does alone."""
    from edge.recognition.grammar import _align

    rng = np.random.default_rng(seed)
    logb = np.log(rng.uniform(1e-6, 1.0, t))
    lengths = rng.integers(1, n + 1, m)
    slot_logp = np.log(rng.uniform(1e-6, 1.0, (m, t, n)))
    slot_arg = rng.integers(0, 3, (m, t, n))  # few glyphs, so neighbours often repeat one
    for k, length in enumerate(lengths):  # padding past a template's own slots
        slot_logp[k, :, length:] = -np.inf
        slot_arg[k, :, length:] = -1
    together = _align(logb, slot_logp, slot_arg, lengths)
    for k, length in enumerate(lengths):
        alone = _align(logb, slot_logp[k : k + 1, :, :length], slot_arg[k : k + 1, :, :length],
                       lengths[k : k + 1])[0]
        assert (alone is None) == (together[k] is None)
        assert alone is None or length <= t  # a slot needs a frame of its own
        if alone is not None:
            assert np.array_equal(alone, together[k])
            assert set(np.unique(alone[alone >= 0])) == set(range(length))  # every slot emitted
