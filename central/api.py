"""The central FastAPI application: JSON API, health, passage page, ingest and decisions.

`create_app` wires the parts: database (migrated at startup), the decision service with the
site's rules and fee table, the MQTT ingest that decides each passage in its transaction, the
live event bus (`app.state.events`) and the routers. OpenAPI docs are at /docs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Response

from central import auth
from central.config import CentralSettings
from central.db import make_engine, session_factory, upgrade_database
from central.decisions import DecisionService
from central.deps import Outbox
from central.domain.fees import DEFAULT_FEE_TABLE, load_fee_table
from central.domain.rules import DEFAULT_RULES, load_rules
from central.events import EventBus
from central.ingest import IngestOutcome, MqttIngest
from central.livefeed import LiveFeed
from central.routes import declarations, lanes, passages
from central.routes.web import install_web

log = logging.getLogger(__name__)


def decision_service(settings: CentralSettings) -> DecisionService:
    """The decision service for the configured rules and fee table (defaults when unset)."""
    rules = load_rules(settings.rules_file) if settings.rules_file else DEFAULT_RULES
    fees = load_fee_table(settings.fee_table_file) if settings.fee_table_file else DEFAULT_FEE_TABLE
    log.info("matching rules %s, fee table %s", rules.version, fees.version)
    return DecisionService(rules, fees)


def create_app(settings: CentralSettings, start_ingest: bool = True) -> FastAPI:
    """The central app; its lifespan migrates the database and runs the MQTT ingest."""
    engine = make_engine(settings.database_url)
    sessions = session_factory(engine)
    decisions = decision_service(settings)
    events = EventBus()

    def after_commit(outcome: IngestOutcome) -> None:
        if outcome.notice is not None:
            events.publish(outcome.notice)

    workers = settings.ingest_workers > 0  # then this process only publishes officer commands
    ingest = MqttIngest(
        sessions, settings.mqtt_host, settings.mqtt_port,
        client_id=settings.mqtt_client_id + ("-http" if workers else ""),
        site=settings.site, username=settings.mqtt_username, password=settings.mqtt_password,
        on_passage=decisions.decide_passage, after_commit=after_commit,
        batch_size=settings.ingest_batch, subscribe=not workers,
    )

    # with workers the ingest happens elsewhere: the pages follow the broker instead
    feed = LiveFeed(
        sessions, settings.mqtt_host, settings.mqtt_port, events.publish,
        client_id=settings.mqtt_client_id + "-live", site=settings.site,
        username=settings.mqtt_username, password=settings.mqtt_password,
    ) if workers else None

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        upgrade_database(engine)
        auth.check_startup(settings, sessions)
        events.bind(asyncio.get_running_loop())
        if start_ingest:
            ingest.start()
            if feed is not None:
                feed.start()
        yield
        if start_ingest:
            if feed is not None:
                feed.stop()
            ingest.stop()
        events.bind(None)
        engine.dispose()

    app = FastAPI(title="SmartGate central", version="0.2.0", lifespan=lifespan)
    app.state.settings = settings
    app.state.sessions = sessions
    app.state.ingest = ingest
    app.state.decisions = decisions
    app.state.events = events
    app.state.outbox = Outbox(ingest.send_command, events)
    auth.install(app, settings)
    for router in (passages.router, declarations.router, lanes.router):
        app.include_router(router)
    install_web(app)

    @app.get("/api/health", tags=["health"])
    def health() -> dict:
        """Liveness plus MQTT connection, ingest counters and the rules in force."""
        return {
            "status": "ok",
            "mqtt_connected": ingest.connected.is_set(),
            "ingest": dict(ingest.stats),
            "rejects_by_reason": dict(ingest.reject_reasons),
            "rules_version": decisions.rules.version,
        }

    @app.get("/metrics", tags=["health"], include_in_schema=False)
    def metrics() -> Response:
        """Prometheus text format: this process's ingest counters (workers serve their own)."""
        return Response(ingest.metrics.render(), media_type=ingest.metrics.content_type)

    return app
