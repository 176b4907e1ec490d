"""The central FastAPI application: JSON API, health, passage page, ingest and decisions.

`create_app` wires the parts: database (migrated at startup), the decision service with the
site's rules and fee table, the MQTT ingest that decides each passage in its transaction, the
live event bus (`app.state.events`), the HTTP guard (body caps, authentication before bodies,
no-store: `central.http_guard`) and the routers. OpenAPI docs are at /docs (served from our
own files), the schema at /openapi.json. `uvicorn_config` is how central runs it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI, HTTPException, Request, Response

from central import auth, store
from central.config import CentralSettings
from central.db import make_engine, session_factory, upgrade_database
from central.decisions import DecisionService, decision_message
from central.deps import Outbox
from central.domain.fees import DEFAULT_FEE_TABLE, load_fee_table
from central.domain.rules import DEFAULT_RULES, load_rules
from central.events import EventBus
from central.evidence.job import RetentionJob, policy_of
from central.evidence.store import open_store
from central.http_guard import BodyLimits, HttpGuard
from central.ingest import (
    IngestOutcome,
    MqttIngest,
    connection_options,
    lane_owners,
    warn_if_insecure,
)
from central.journeys import JourneyHook, YardEvents, YardWatch, journey_service
from central.livefeed import LiveFeed
from central.routes import declarations, lanes, passages, rejections, tokens, yard
from central.routes import evidence as evidence_routes
from central.routes.web import install_web
from smartgate.contract import LaneCommand

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
    journeys = journey_service(settings)
    on_passage = JourneyHook(decisions.decide_passage, journeys)

    def after_commit(outcome: IngestOutcome) -> None:
        if outcome.notice is not None:
            events.publish(outcome.notice)
        if outcome.event is not None:
            yard_events.send(on_passage.take(outcome.event.event_id))

    workers = settings.ingest_workers > 0  # then this process only publishes officer commands
    ingest = MqttIngest(
        sessions, settings.mqtt_host, settings.mqtt_port,
        **connection_options(settings, "-http" if workers else ""),
        site=settings.site, on_passage=on_passage, after_commit=after_commit,
        batch_size=settings.ingest_batch, subscribe=not workers,
        lane_owners=lane_owners(settings), on_batch=decisions.prefetch,
    )

    # with workers the ingest happens elsewhere: the pages follow the broker instead
    feed = LiveFeed(
        sessions, settings.mqtt_host, settings.mqtt_port, events.publish,
        **connection_options(settings, "-live"), site=settings.site,
    ) if workers else None

    def send_command(command: LaneCommand) -> None:
        """An officer's command, and the decision it carries out pushed on the decision topic."""
        ingest.send_command(command)
        if command.passage_event_id is None:
            return
        with sessions() as session:
            row = store.current_decision(session, command.passage_event_id)
            if row is not None:
                ingest.send_decision(decision_message(row, command.site, command.lane))

    secret = settings.yard_webhook_secret
    yard_events = YardEvents(ingest.publish, settings.yard_webhook_url,
                             secret.get_secret_value() if secret else None)
    yard_watch = YardWatch(sessions, journeys, yard_events)
    evidence = open_store(settings)
    retention = RetentionJob(sessions, evidence, policy_of(settings),
                             settings.retention_purge_interval_s)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        upgrade_database(engine)
        auth.check_startup(settings, sessions)
        events.bind(asyncio.get_running_loop())
        if start_ingest:
            warn_if_insecure(settings)
            ingest.start()
            if feed is not None:
                feed.start()
        if settings.retention_purge_interval_s > 0:
            retention.start()
        yard_watch.start()
        yield
        yard_watch.stop()
        retention.stop()
        if start_ingest:
            if feed is not None:
                feed.stop()
            ingest.stop()
        yard_events.stop()
        events.bind(None)
        engine.dispose()

    app = FastAPI(title="SmartGate central", version="0.2.0", lifespan=lifespan,
                  docs_url=None, redoc_url=None)  # served from local files: routes/web.py
    app.state.settings = settings
    app.state.sessions = sessions
    app.state.ingest = ingest
    app.state.decisions = decisions
    app.state.events = events
    app.state.outbox = Outbox(send_command, events)
    app.state.evidence = evidence
    app.state.journeys = journeys
    app.state.yard_events = yard_events
    app.state.retention = retention
    auth.install(app, settings)
    app.state.body_limits = BodyLimits.from_settings(settings)
    app.state.body_limits.add("PUT", evidence_routes.UPLOAD_PATH, settings.evidence_max_image_bytes)
    app.add_middleware(HttpGuard, limits=app.state.body_limits)
    for router in (passages.router, declarations.router, lanes.router, evidence_routes.router,
                   rejections.router, yard.router, yard.pages, tokens.router):
        app.include_router(router)
    install_web(app)

    @app.get("/api/health", tags=["health"])
    async def health(request: Request, response: Response) -> dict:
        """Liveness (503 with status `ingest_stopped` when the storing thread of the ingest has
        died); with the metrics token or as a signed-in user or API token also the MQTT
        connection (true once the broker granted the subscriptions), ingest counters and the
        rules in force."""
        status = "ok"
        if start_ingest and ingest.subscribe and not ingest.alive:
            status = "ingest_stopped"
            response.status_code = 503
        if not await auth.may_read_metrics(request):
            return {"status": status}
        return {
            "status": status,
            "ingest_alive": ingest.alive,
            "mqtt_connected": ingest.connected.is_set(),
            "ingest": dict(ingest.stats),
            "rejects_by_reason": dict(ingest.reject_reasons),
            "rules_version": decisions.rules.version,
        }

    @app.get("/metrics", tags=["health"], include_in_schema=False)
    async def metrics(request: Request) -> Response:
        """Prometheus text format: this process's ingest counters (workers serve their own);
        needs the metrics token, a signed-in user or an API token."""
        if not await auth.may_read_metrics(request):
            raise HTTPException(401, "needs the metrics token", {"WWW-Authenticate": "Bearer"})
        return Response(ingest.metrics.render(), media_type=ingest.metrics.content_type)

    return app


def uvicorn_config(
    app: FastAPI, settings: CentralSettings, log_level: str = "info"
) -> uvicorn.Config:
    """How central serves `app`: X-Forwarded-* believed only from `forwarded_allow_ips`
    (none by default, so a client cannot pick its own address for the sign-in throttle)."""
    proxies = [ip.strip() for ip in settings.forwarded_allow_ips.split(",") if ip.strip()]
    return uvicorn.Config(
        app, host=settings.http_host, port=settings.http_port, log_level=log_level,
        proxy_headers=bool(proxies), forwarded_allow_ips=proxies or [],
    )  # fmt: skip
