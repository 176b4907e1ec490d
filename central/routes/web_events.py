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
SESSION_CHECK_S = 2.0  # how stale the stream's view of its session may get


async def event_stream(request: Request) -> AsyncIterator[str]:
    """SSE frames: every bus event as JSON, a comment as heartbeat; ends when the client goes
    or, within `SESSION_CHECK_S`, when its session ends (sign-out, expiry, the user removed or
    disabled, the API token revoked or expired): the session is looked up again before an
    event is sent whenever the last look is that old, and at least that often while idle. The
    browser then reconnects and is refused."""
    loop = asyncio.get_running_loop()
    async with request.app.state.events.subscribe() as queue:
        yield "retry: 2000\n\n"
        checked = last_sent = loop.time()
        while True:
            try:
                event = await asyncio.wait_for(queue.get(), timeout=SESSION_CHECK_S)
            except TimeoutError:
                event = None
            if await request.is_disconnected():
                return
            if loop.time() - checked >= SESSION_CHECK_S or event is None:
                if await run_in_threadpool(lookup_user, request) is None:
                    log.info("live stream ended: its session is no longer valid")
                    return
                checked = loop.time()
            if event is not None:
                yield f"data: {json.dumps(event, default=str)}\n\n"
                last_sent = loop.time()
            elif loop.time() - last_sent >= HEARTBEAT_S:
                yield ": keep-alive\n\n"
                last_sent = loop.time()


@router.get("/events")
async def events(request: Request, _user: Reader) -> StreamingResponse:
    """Passages, decisions, lane states and node health as they happen."""
    return StreamingResponse(
        event_stream(request),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
