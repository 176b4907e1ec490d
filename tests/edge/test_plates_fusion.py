"""The CTC likelihood of candidate strings (edge.recognition.ctc) and the PP-OCR + own-model
fusion that rescores PP-OCR's readings with it (plates.fuse, mode fused)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from edge.recognition import plates
from edge.recognition.ctc import ctc_log_likelihood, text_log_likelihood
from edge.recognition.grammar import Candidate
from edge.recognition.plates import Fusion, fuse
from edge.recognition.results import PlateResult


def _collapse(path: tuple[int, ...]) -> tuple[int, ...]:
    out: list[int] = []
    prev = -1
    for s in path:
        if s != prev and s != 0:
            out.append(s)
        prev = s
    return tuple(out)


def _brute_force(probs: np.ndarray, label: tuple[int, ...]) -> float:
    """log of the sum over every frame path that collapses to `label`."""
    t_len, c = probs.shape
    total = sum(np.prod(probs[np.arange(t_len), path])
                for path in itertools.product(range(c), repeat=t_len)
                if _collapse(path) == label)
    return float(np.log(total)) if total > 0 else -np.inf


@pytest.mark.parametrize("seed", range(3))
def test_forward_algorithm_equals_the_sum_over_all_paths(seed: int) -> None:
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.ones(4), size=5)  # 5 frames, blank + 3 glyphs
    labels = [(1,), (1, 2), (2, 2), (1, 2, 3), (3, 3, 3), ()]
    got = ctc_log_likelihood(probs, labels)
    want = [_brute_force(probs, lab) for lab in labels]
    np.testing.assert_allclose(got, want, rtol=1e-9)


def test_impossible_sequences_get_only_the_floor() -> None:
    probs = np.full((3, 3), 1 / 3)
    ll = ctc_log_likelihood(probs, [(1, 1, 1), (1, 2)])  # 1 1 1 needs 5 frames
    assert ll[0] < -100 < ll[1]


def test_per_character_likelihood_prefers_what_the_matrix_shows() -> None:
    chars = "AB1"
    probs = np.zeros((6, 4))
    probs[:, 0] = 0.05
    for t, col in enumerate([1, 0, 3, 0, 2, 0]):  # A _ 1 _ B _
        probs[t, col] += 0.95
    ll = text_log_likelihood(probs, ["A1B", "A1A", "AB", "A1Z"], chars)
    assert ll[0] > ll[1] and ll[0] > ll[2]
    assert ll[0] == pytest.approx(ctc_log_likelihood(probs, [(1, 3, 2)])[0] / 3)
    assert ll[3] == -np.inf  # Z is not a column of the matrix


def _matrix(text: str, chars: str, strength: float = 0.9) -> np.ndarray:
    """A CTC matrix that reads `text` (glyph, blank, glyph, blank, ...)."""
    probs = np.full((2 * len(text) + 2, len(chars) + 1), (1 - strength) / len(chars))
    probs[:, 0] = strength
    for i, ch in enumerate(text):
        probs[2 * i + 1] = (1 - strength) / len(chars)
        probs[2 * i + 1, chars.index(ch) + 1] = strength
    return probs / probs.sum(axis=1, keepdims=True)


CHARS = "0123456789ABCDEFGHKLMNPRSTUVXYZ"
PPOCR = PlateResult("51F58214", "51F-582.14", 0.6, "vn", 1,
                    candidates=(("51F58214", 0.6), ("51F58244", 0.55), ("51F53214", 0.3)))


def test_fused_follows_a_strong_own_reading_among_ppocr_candidates() -> None:
    probs = _matrix("51F58244", CHARS)
    out = fuse(PPOCR, [], "fused", probs, CHARS, Fusion(1.0, 0.5, 0.0))
    assert out.text == "51F58244" and out.display_text == "51F-582.44"
    assert out.confidence == PPOCR.confidence  # where the plate is and how sure: PP-OCR's
    assert [t for t, _ in out.candidates][:2] == ["51F58244", "51F58214"]


def test_fused_keeps_ppocr_when_the_own_lead_is_below_the_margin() -> None:
    probs = _matrix("51F58244", CHARS, strength=0.9)
    lead = np.subtract(*text_log_likelihood(probs, ["51F58244", "51F58214"], CHARS))
    kept = fuse(PPOCR, [], "fused", probs, CHARS, Fusion(4.0, lead + 0.01, 0.0))
    assert kept.text == PPOCR.text
    moved = fuse(PPOCR, [], "fused", probs, CHARS, Fusion(4.0, lead - 0.01, 0.0))
    assert moved.text == "51F58244"


def test_look_alike_glyphs_alone_overturn_only_when_allowed() -> None:
    ppocr = PlateResult("51F15585", "51F-155.85", 0.9, "vn", 1,
                        candidates=(("51F15585", 0.9), ("51FT5585", 0.5)))
    probs = _matrix("51FT5585", CHARS)  # 1 and T are a grammar-confusable pair
    strict = fuse(ppocr, [], "fused", probs, CHARS, Fusion(2.0, 0.0, 0.0, confusable=False))
    assert strict.text == "51F15585"
    assert fuse(ppocr, [], "fused", probs, CHARS, Fusion(2.0, 0.0, 0.0)).text == "51FT5585"


def test_fused_weight_zero_is_ppocr_alone() -> None:
    probs = _matrix("51F53214", CHARS)
    out = fuse(PPOCR, [Candidate("51F53214", 0.9, "vn")], "fused", probs, CHARS,
               Fusion(0.0, 0.0, 0.5))
    assert out == PPOCR


def test_fused_without_a_setting_for_the_region_is_ppocr(monkeypatch: pytest.MonkeyPatch) -> None:
    probs = _matrix("51F58244", CHARS)
    monkeypatch.setattr(plates, "FUSION", {})
    assert fuse(PPOCR, [], "fused", probs, CHARS) == PPOCR
    monkeypatch.setattr(plates, "FUSION", {"vn": Fusion(1.0, 0.5, 0.0)})
    assert fuse(PPOCR, [], "fused", probs, CHARS).text == "51F58244"


def test_own_only_readings_join_when_absent_is_positive() -> None:
    probs = _matrix("51F88214", CHARS)
    own = [Candidate("51F88214", 0.9, "vn")]
    without = fuse(PPOCR, own, "fused", probs, CHARS, Fusion(2.0, 0.0, 0.0))
    assert without.text != "51F88214"
    joined = fuse(PPOCR, own, "fused", probs, CHARS, Fusion(2.0, 0.0, 0.5))
    assert joined.text == "51F88214" and joined.region == "vn"


def test_fused_without_a_ppocr_reading_or_matrix_is_ppocr() -> None:
    empty = PlateResult("", "", 0.0, "unknown", 1)
    setting = Fusion(1.0, 0.0, 0.5)
    assert fuse(empty, [Candidate("51F58214", 0.9, "vn")], "fused", _matrix("51F58214", CHARS),
                CHARS, setting) == empty
    assert fuse(PPOCR, [], "fused", None, CHARS, setting) == PPOCR


def test_own_mode_takes_our_candidates() -> None:
    out = fuse(PPOCR, [Candidate("51F88214", 0.7, "vn")], "own")
    assert (out.text, out.confidence, out.candidates) == ("51F88214", 0.7, (("51F88214", 0.7),))
    assert fuse(PPOCR, [], "own").text == ""
