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
`min_confidence` are not counted, so one doubtful read cannot feed itself. The edge saves the
counts in its data folder (`save` / `restore`, JSON) so a restarted node keeps what it learned.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
from collections.abc import Iterable
from pathlib import Path

from edge.recognition.grammar import CN_PROVINCES

log = logging.getLogger(__name__)

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

    def save(self, path: Path) -> None:
        """Write the counts to `path` (JSON, replaced atomically)."""
        with self._lock:
            data = {"version": 1, "counts": {p: n for p, n in self.counts.items() if n > 0}}
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, path)

    def restore(self, path: Path) -> bool:
        """Load counts saved by `save`; a missing file leaves the prior as it is, an unreadable
        one is logged and ignored. Returns whether counts were loaded."""
        if not path.is_file():
            return False
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            counts = {p: float(n) for p, n in data["counts"].items()}
            if data.get("version") != 1 or any(
                p not in self.counts or not math.isfinite(n) or n < 0 for p, n in counts.items()
            ):
                raise ValueError("unexpected provinces or counts")
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("ignoring the saved province prior %s: %s", path, exc)
            return False
        with self._lock:
            self.counts = dict.fromkeys(self.counts, 0.0) | counts
        return True
