"""Site province prior: counting confident reads, decay, and its effect on decoding."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from edge.recognition.grammar import CN, CN_PROVINCES, decode
from edge.recognition.province_prior import STRENGTH, ProvincePrior

ALPHABET = "0123456789ABCDEFGHJKLMNPQRSTUVWXYZ" + CN_PROVINCES


def ctc(text: str, split: tuple[str, float] | None = None) -> np.ndarray:
    """A CTC matrix for `text` whose first glyph gives `split[1]` of itself to `split[0]`."""
    frames = []
    for i, ch in enumerate(text):
        row = np.full(len(ALPHABET) + 1, 0.001)
        row[1 + ALPHABET.index(ch)] = 0.95
        if i == 0 and split:
            row[1 + ALPHABET.index(split[0])] = 0.95 * split[1]
            row[1 + ALPHABET.index(ch)] = 0.95 * (1 - split[1])
        blank = np.full(len(ALPHABET) + 1, 0.001)
        blank[0] = 0.97
        frames += [row, blank]
    p = np.array(frames)
    return p / p.sum(axis=1, keepdims=True)


def test_uniform_before_any_read_and_counts_only_confident_chinese_reads() -> None:
    prior = ProvincePrior()
    assert all(f == pytest.approx(1.0) for _, f in prior.factors())
    counted = prior.observe([("皖A12345", 0.95), ("皖A54321", 0.5), ("29C12345", 0.99), ("", 1.0)])
    assert counted == 1 and prior.reads == pytest.approx(1.0)
    factors = dict(prior.factors())
    k = len(CN_PROVINCES)
    assert factors["皖"] == pytest.approx((k * 2 / (k + 1)) ** STRENGTH)
    assert factors["桂"] == pytest.approx((k / (k + 1)) ** STRENGTH)
    shares = {p: f ** (1 / STRENGTH) for p, f in factors.items()}
    assert sum(shares.values()) == pytest.approx(k)  # a distribution over the uniform share


def test_old_reads_fade_with_the_half_life() -> None:
    prior = ProvincePrior(half_life=10)
    prior.observe([("皖A12345", 0.9)] * 10)
    prior.observe([("桂A12345", 0.9)] * 10)
    assert prior.counts["皖"] == pytest.approx(prior.counts["桂"] / 2, rel=0.05)
    with pytest.raises(ValueError, match="half_life"):
        ProvincePrior(half_life=0)


def test_site_prior_decides_a_close_province_but_not_a_clear_one() -> None:
    prior = ProvincePrior()
    prior.observe([("桂A12345", 0.95)] * 50 + [("粤B12345", 0.95)] * 2)
    site = replace(CN, priors=prior.factors())
    close = ctc("粤A12345", split=("桂", 0.45))  # 粤 55 %, 桂 45 %
    assert decode(close, ALPHABET, [CN])[0].text == "粤A12345"
    assert decode(close, ALPHABET, [site])[0].text == "桂A12345"
    clear = ctc("苏A12345", split=("桂", 0.02))  # a confident 苏 plate stays 苏
    assert decode(clear, ALPHABET, [site])[0].text == "苏A12345"


def test_saved_counts_survive_a_restart_and_bad_files_are_ignored(tmp_path, caplog) -> None:
    path = tmp_path / "province_prior.json"
    learned = ProvincePrior()
    learned.observe([("桂A12345", 0.9)] * 20 + [("粤B12345", 0.9)] * 3)
    learned.save(path)
    restarted = ProvincePrior()
    assert restarted.restore(path)
    assert dict(restarted.factors()) == pytest.approx(dict(learned.factors()))
    assert not ProvincePrior().restore(tmp_path / "missing.json")
    for bad in ("{not json", '{"version": 1, "counts": {"X": 3}}',
                '{"version": 1, "counts": {"桂": -1}}', '{"version": 2, "counts": {}}', "[]"):
        path.write_text(bad, encoding="utf-8")
        fresh = ProvincePrior()
        assert not fresh.restore(path)
        assert fresh.reads == 0
    assert "ignoring the saved province prior" in caplog.text
