"""Prometheus metrics of central's ingest (text format at `GET /metrics` or a worker's port).

Each `IngestMetrics` owns its registry, so several ingests in one process (tests, the HTTP
process beside its workers) never collide. A multi-process central exposes one endpoint per
ingest worker (`smartgate central ingest --metrics-port`); Prometheus scrapes each and sums
with `sum by (...)` — docs/deploy.md.
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class IngestMetrics:
    """Counters of one ingest: messages by kind, decisions, rejects, latency, DB errors, link."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.messages = Counter(
            "smartgate_central_messages", "MQTT messages handled, by outcome kind "
            "(stored, duplicate, rejected, node, lane_status, command_ack, ignored)",
            ["kind"], registry=r)
        self.passages = Counter(
            "smartgate_central_passages_in", "new passages stored (duplicates not counted)",
            registry=r)
        self.decisions = Counter(
            "smartgate_central_decisions", "rules decisions on new passages, by outcome",
            ["outcome"], registry=r)
        self.rejects = Counter(
            "smartgate_central_rejects", "messages rejected, by reason", ["reason"], registry=r)
        self.latency = Histogram(
            "smartgate_central_ingest_latency_seconds",
            "message received from the broker -> its transaction committed",
            buckets=LATENCY_BUCKETS, registry=r)
        self.db_errors = Counter(
            "smartgate_central_db_errors", "failed database transactions (retried)", registry=r)
        self.connected = Gauge(
            "smartgate_central_mqtt_connected", "1 while connected to the broker", registry=r)

    def render(self) -> bytes:
        """The registry in Prometheus text format."""
        return generate_latest(self.registry)

    def serve(self, port: int, host: str = "127.0.0.1") -> None:
        """Serve /metrics on its own port (an ingest worker without the HTTP app)."""
        start_http_server(port, host, registry=self.registry)
