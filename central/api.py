"""FastAPI application: JSON API, health, and the passage list page."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated

from fastapi import FastAPI, Query, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel

from central import store
from central.config import CentralSettings
from central.db import make_engine, session_factory, upgrade_database
from central.deps import Db
from central.ingest import MqttIngest

log = logging.getLogger(__name__)

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).resolve().parent / "web" / "templates"))


class PassageOut(BaseModel):
    """A passage as the API lists it."""

    event_id: str
    site: str
    lane: str
    node_id: str
    started_at: datetime
    ended_at: datetime
    received_at: datetime
    plate_text: str | None
    plate_confidence: float | None
    trailer_text: str | None
    container_codes: list[str]
    gross_kg: float | None
    payload: dict


def _passage_out(row) -> PassageOut:  # type: ignore[no-untyped-def]
    return PassageOut(
        event_id=row.event_id, site=row.site, lane=row.lane, node_id=row.node_id,
        started_at=row.started_at, ended_at=row.ended_at, received_at=row.received_at,
        plate_text=row.plate_text, plate_confidence=row.plate_confidence,
        trailer_text=row.trailer_text, container_codes=row.container_codes.split(),
        gross_kg=row.gross_kg, payload=row.payload,
    )


def create_app(settings: CentralSettings, start_ingest: bool = True) -> FastAPI:
    """The central app; its lifespan migrates the database and runs the MQTT ingest."""
    engine = make_engine(settings.database_url)
    sessions = session_factory(engine)
    ingest = MqttIngest(
        sessions, settings.mqtt_host, settings.mqtt_port, client_id=settings.mqtt_client_id,
        site=settings.site, username=settings.mqtt_username, password=settings.mqtt_password,
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        upgrade_database(engine)
        if start_ingest:
            ingest.start()
        yield
        if start_ingest:
            ingest.stop()
        engine.dispose()

    app = FastAPI(title="SmartGate central", version="0.1.0", lifespan=lifespan)
    app.state.settings = settings
    app.state.sessions = sessions
    app.state.ingest = ingest

    @app.get("/api/health")
    def health() -> dict:
        """Liveness plus MQTT connection and ingest counters."""
        return {
            "status": "ok",
            "mqtt_connected": ingest.connected.is_set(),
            "ingest": dict(ingest.stats),
            "rejects_by_reason": dict(ingest.reject_reasons),
        }

    @app.get("/api/passages", response_model=list[PassageOut])
    def passages(
        db: Db,
        lane: str | None = None,
        site: str | None = None,
        plate: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> list[PassageOut]:
        """Stored passages, newest first, with optional filters."""
        f = store.PassageFilter(lane, site, plate, since, until, limit, offset)
        return [_passage_out(r) for r in store.list_passages(db, f)]

    @app.get("/", response_class=HTMLResponse)
    def passage_page(request: Request, db: Db) -> HTMLResponse:
        """Plain HTML list of the latest passages with their reads."""
        rows = store.list_passages(db, store.PassageFilter(limit=200))
        return TEMPLATES.TemplateResponse(
            request, "passages.html", {"passages": rows, "nodes": store.list_nodes(db)}
        )

    return app
