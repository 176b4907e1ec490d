"""Site province prior: which Chinese provinces a gate's traffic comes from, learned online.

A plate camera at one gate sees a few provinces most of the time (Guangxi 桂 at Huu Nghi, Anhui 皖
around Hefei), and the province glyph is the least legible character of a Chinese plate: the
recognizer often ranks the right province a close second. `ProvincePrior` counts the provinces
of the reader's own confident reads (no labels) and turns them into prior factors
`(K * (n_c + 1) / (N + K)) ** STRENGTH` for K provinces (Laplace smoothing: 1 for every province
before any read), which the Chinese grammar applies to the province glyph columns before
decoding. STRENGTH 1 would be Bayes' rule for a calibrated recognizer; the recognizer is not
calibrated, and at full strength a 93 % read of a rare province would flip to the site's main
one (tests/test_province_prior.py), so the prior counts half (its square root).

Counts decay with a half-life in reads, so the prior follows the traffic of the day; reads below
`min_confidence` are not counted, so one doubtful read cannot feed itself.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable

from edge.grammar import CN_PROVINCES

HALF_LIFE_READS = 500.0  # counted reads after which an old read weighs half
MIN_CONFIDENCE = 0.8  # reads at least this confident are counted
STRENGTH = 0.5  # exponent of the site share over the uniform share


class ProvincePrior:
    """Online province distribution of a site's Chinese plates, as prior factors per glyph."""

    def __init__(
        self, half_life: float = HALF_LIFE_READS, min_confidence: float = MIN_CONFIDENCE
    ) -> None:
        if half_life <= 0:
            raise ValueError("half_life must be > 0")
        self.decay = math.pow(0.5, 1.0 / half_life)
        self.min_confidence = min_confidence
        self.counts = dict.fromkeys(CN_PROVINCES, 0.0)
        self._lock = threading.Lock()

    def observe(self, reads: Iterable[tuple[str, float]]) -> int:
        """Count the province of each confident Chinese read `(text, confidence)`; returns how
        many were counted."""
        counted = 0
        with self._lock:
            for text, confidence in reads:
                if confidence < self.min_confidence or text[:1] not in self.counts:
                    continue
                for province in self.counts:
                    self.counts[province] *= self.decay
                self.counts[text[0]] += 1.0
                counted += 1
        return counted

    @property
    def reads(self) -> float:
        """Decayed number of counted reads."""
        return sum(self.counts.values())

    def factors(self) -> tuple[tuple[str, float], ...]:
        """(province, factor) pairs: the site's smoothed share of each province over the uniform
        share, to the power STRENGTH (all 1.0 before any read)."""
        with self._lock:
            k = len(self.counts)
            total = sum(self.counts.values()) + k
            return tuple((p, (k * (n + 1.0) / total) ** STRENGTH)
                         for p, n in self.counts.items())
