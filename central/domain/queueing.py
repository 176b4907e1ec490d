"""Expected wait for a truck arriving now: a multi-server (M/M/c-style) estimate (pure).

The queue is the trucks in a zone (the yard) that its service lanes (the inspection lanes)
have not cleared yet; a truck on a lane counts until its passage there completes, so up to c of
the n trucks are being served. Each lane's service rate μ_k is observed from the last hour: the
lane's departures per second of busy time, where the lane counts as busy between two
consecutive passages less than `busy_gap_s` apart (a longer gap is idle time, not service).
With all c lanes busy, departures form a Poisson stream of rate Σμ_k (memoryless, so the
residual service of the trucks on the lanes does not matter), and a truck arriving behind n
trucks waits for n − c + 1 departures:

    E[W] = max(0, n − c + 1) / (Σμ_k − λ_p)

where λ_p is the arrival rate of priority (perishable) trucks over the last hour: they go ahead
of a general-goods truck that is already waiting, so they take that much of the departures
(capped at half of Σμ_k, see `expected_wait`).

The naive baseline the benchmark compares against is n × mean service time (one lane's), in
`naive_wait`. See docs/yard.md.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class LaneRate:
    """Observed service of one lane over the window."""

    lane: str
    served: int
    busy_s: float
    rate_per_s: float | None

    @property
    def mean_service_s(self) -> float | None:
        """1/μ, when a rate was observed."""
        return 1 / self.rate_per_s if self.rate_per_s else None


@dataclass(frozen=True)
class Forecast:
    """The expected wait for a truck arriving now, with what it was computed from."""

    queue: int
    lanes: list[LaneRate]
    expected_wait_s: float | None
    naive_wait_s: float | None


def lane_rate(lane: str, times: Sequence[datetime], busy_gap_s: float) -> LaneRate:
    """Service rate of a lane from its passage times in the window (any order)."""
    ordered = sorted(times)
    gaps = [(b - a).total_seconds() for a, b in zip(ordered, ordered[1:], strict=False)]
    busy = [g for g in gaps if 0 < g <= busy_gap_s]
    busy_s = sum(busy)
    rate = len(busy) / busy_s if busy_s > 0 else None
    return LaneRate(lane, len(ordered), round(busy_s, 1), rate)


def expected_wait(
    queue: int, rates: Sequence[LaneRate], priority_rate_per_s: float = 0.0
) -> float | None:
    """E[W] for a general-goods truck joining `queue` trucks not yet served; None without an
    observed rate (unless the queue is empty).

    Priority trucks arriving while it waits (rate `priority_rate_per_s`) go ahead of it, so
    of the departure rate Σμ only Σμ − λ_p serves the trucks it queues behind. λ_p is the last
    hour's rate and a wait can span a peak, so the reduction is capped at half of Σμ (at most
    twice the FIFO estimate; measured in `smartgate bench yard`, docs/yard.md).
    """
    observed = [r.rate_per_s for r in rates if r.rate_per_s]
    if not observed:
        return None if queue > 0 else 0.0
    total = sum(observed)
    return max(0, queue - len(observed) + 1) / max(total - priority_rate_per_s, 0.5 * total)


def naive_wait(queue: int, rates: Sequence[LaneRate]) -> float | None:
    """The naive baseline: queue length × mean service time (over the lanes observed)."""
    means = [r.mean_service_s for r in rates if r.mean_service_s]
    if not means:
        return None
    return queue * sum(means) / len(means)


def forecast(
    queue: int,
    lane_times: Mapping[str, Sequence[datetime]],
    busy_gap_s: float = 900.0,
    priority_rate_per_s: float = 0.0,
) -> Forecast:
    """The forecast from the queue length, each service lane's recent passage times and the
    recent arrival rate of priority trucks."""
    rates = [lane_rate(lane, times, busy_gap_s) for lane, times in sorted(lane_times.items())]
    wait = expected_wait(queue, rates, priority_rate_per_s)
    naive = naive_wait(queue, rates)
    return Forecast(
        queue=queue,
        lanes=rates,
        expected_wait_s=None if wait is None else round(wait, 1),
        naive_wait_s=None if naive is None else round(naive, 1),
    )
