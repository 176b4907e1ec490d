"""Prometheus metrics of an edge node, served on `metrics_port` at /metrics.

Inference batches are timed where the scheduler calls its runners (`timed`); passages are
counted as they are spooled (`passage`); everything the node already counts (published
messages, spool depth, frames dropped, rejected messages) is read at scrape time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    start_http_server,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from smartgate.contract import PassageEvent

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


@dataclass(frozen=True)
class NodeCounts:
    """What the node counts itself, read at scrape time."""

    published: int = 0
    spool_depth: int = 0
    spool_rejected: int = 0
    mqtt_connected: bool = False
    frames_dropped: int = 0
    frames_failed: int = 0
    evidence_pending: int = 0
    evidence_refused: int = 0
    counters: dict[str, int] = field(default_factory=dict)  # reason -> count


class _NodeCollector(Collector):
    """Reads the node's own counters (through `counts`) when Prometheus scrapes."""

    def __init__(self, counts: Callable[[], NodeCounts]) -> None:
        self.counts = counts

    def collect(self) -> Iterator[Metric]:
        node = self.counts()
        yield CounterMetricFamily("smartgate_edge_passages_out",
                                  "passages acknowledged by the broker (left the spool)",
                                  value=node.published)
        yield GaugeMetricFamily("smartgate_edge_spool_depth", "passages waiting in the spool",
                                value=node.spool_depth)
        yield GaugeMetricFamily("smartgate_edge_spool_rejected",
                                "passages central rejected, kept in the spool, not re-sent",
                                value=node.spool_rejected)
        yield GaugeMetricFamily("smartgate_edge_mqtt_connected", "1 while connected",
                                value=int(node.mqtt_connected))
        yield CounterMetricFamily("smartgate_edge_frames_dropped",
                                  "frames dropped before inference (queue full, cancelled)",
                                  value=node.frames_dropped)
        yield CounterMetricFamily("smartgate_edge_frames_failed",
                                  "frames whose inference batch raised",
                                  value=node.frames_failed)
        yield GaugeMetricFamily("smartgate_edge_evidence_pending",
                                "evidence images waiting for central's confirmation",
                                value=node.evidence_pending)
        yield GaugeMetricFamily("smartgate_edge_evidence_refused",
                                "evidence images central refused for good, kept on the edge",
                                value=node.evidence_refused)
        yield CounterMetricFamily("smartgate_edge_evidence_uploaded",
                                  "evidence images central confirmed",
                                  value=node.counters.get("evidence_uploaded", 0))
        yield CounterMetricFamily("smartgate_edge_evidence_lost",
                                  "evidence images gone from the ring buffer before queueing",
                                  value=node.counters.get("evidence_lost", 0))
        rejects = CounterMetricFamily("smartgate_edge_rejects",
                                      "messages, triggers and commands rejected, by reason",
                                      labels=["reason"])
        for reason, n in sorted(node.counters.items()):
            if reason.endswith(("_rejected", "_refused")):
                rejects.add_metric([reason], n)
        yield rejects


class EdgeMetrics:
    """The node's registry: inference histograms, passages by read, node counters."""

    def __init__(
        self, counts: Callable[[], NodeCounts], registry: CollectorRegistry | None = None
    ) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.batch_size = Histogram("smartgate_edge_inference_batch_size",
                                    "frames per inference batch", ["kind"],
                                    buckets=BATCH_BUCKETS, registry=r)
        self.batch_latency = Histogram("smartgate_edge_inference_batch_seconds",
                                       "wall time of one inference batch", ["kind"],
                                       buckets=LATENCY_BUCKETS, registry=r)
        self.passages = Counter("smartgate_edge_passages",
                                "passages spooled, by whether a plate was read (read rate = "
                                "read=\"yes\" / all)", ["read"], registry=r)
        r.register(_NodeCollector(counts))

    def timed(self, kind: str, runner: Callable[[Sequence[Any]], list]) -> Callable:
        """`runner` observed into the batch size and latency histograms of `kind`."""
        size, latency = self.batch_size.labels(kind), self.batch_latency.labels(kind)

        def run(images: Sequence[Any]) -> list:
            started = time.perf_counter()
            try:
                return runner(images)
            finally:
                size.observe(len(images))
                latency.observe(time.perf_counter() - started)

        return run

    def passage(self, event: PassageEvent) -> None:
        """Count a spooled passage."""
        self.passages.labels("yes" if event.best_plate is not None else "no").inc()

    def render(self) -> bytes:
        """The registry in Prometheus text format."""
        return generate_latest(self.registry)

    def serve(self, port: int, host: str = "127.0.0.1") -> None:
        """Serve /metrics on its own port."""
        start_http_server(port, host, registry=self.registry)
