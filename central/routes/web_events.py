"""Live updates for the pages: server-sent events from the app's event bus (`/events`)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from central.auth import lookup_user
from central.deps import Reader

log = logging.getLogger(__name__)

router = APIRouter(tags=["events"], include_in_schema=False)

HEARTBEAT_S = 10.0


async def event_stream(request: Request) -> AsyncIterator[str]:
    """SSE frames: every bus event as JSON, a comment as heartbeat; ends when the client goes
    or its session ends (the browser then reconnects and is refused)."""
    async with request.app.state.events.subscribe() as queue:
        yield "retry: 2000\n\n"
        while True:
            try:
                event = await asyncio.wait_for(queue.get(), timeout=HEARTBEAT_S)
            except TimeoutError:
                if await request.is_disconnected():
                    return
                if await run_in_threadpool(lookup_user, request) is None:
                    return
                yield ": keep-alive\n\n"
                continue
            yield f"data: {json.dumps(event, default=str)}\n\n"


@router.get("/events")
async def events(request: Request, _user: Reader) -> StreamingResponse:
    """Passages, decisions, lane states and node health as they happen."""
    return StreamingResponse(
        event_stream(request),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
