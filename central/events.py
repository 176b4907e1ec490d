"""In-process live events for the web pages: a small pub/sub that any thread may publish to.

The ingest runs in its own thread and publishes after each commit; subscribers are asyncio
queues on the app's event loop (an SSE endpoint), so publishing hops onto that loop with
`call_soon_threadsafe`. A subscriber that falls behind loses its oldest events, never blocks
the ingest. Event shapes are listed in docs/central.md.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from smartgate.contract import CommandAck, LaneStatus

log = logging.getLogger(__name__)


class EventBus:
    """Fan-out of dict events to asyncio subscribers; `publish` is safe from any thread."""

    def __init__(self, queue_size: int = 256) -> None:
        self.queue_size = queue_size
        self._loop: asyncio.AbstractEventLoop | None = None
        self._subscribers: set[asyncio.Queue[dict]] = set()
        self._lock = threading.Lock()

    def bind(self, loop: asyncio.AbstractEventLoop | None) -> None:
        """Deliver on `loop` (the app's loop, set at startup); None stops delivery."""
        self._loop = loop

    def publish(self, event: dict) -> None:
        """Send an event to every subscriber; dropped when no loop is bound."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._deliver(event)
        else:
            loop.call_soon_threadsafe(self._deliver, event)

    def _deliver(self, event: dict) -> None:
        with self._lock:
            queues = list(self._subscribers)
        for queue in queues:
            if queue.full():
                queue.get_nowait()
                log.debug("live-event subscriber is behind; dropped its oldest event")
            queue.put_nowait(event)

    @asynccontextmanager
    async def subscribe(self) -> AsyncIterator[asyncio.Queue[dict]]:
        """A queue receiving every event published while the context is open."""
        queue: asyncio.Queue[dict] = asyncio.Queue(self.queue_size)
        with self._lock:
            self._subscribers.add(queue)
        try:
            yield queue
        finally:
            with self._lock:
                self._subscribers.discard(queue)


def passage_notice(
    event_id: str, site: str, lane: str, plate: str | None, outcome: str | None
) -> dict:
    """A passage was stored (and decided, when `outcome` is set)."""
    return {"type": "passage", "event_id": event_id, "site": site, "lane": lane,
            "plate": plate, "outcome": outcome}


def node_notice(site: str, node_id: str, online: bool | None) -> dict:
    """An edge node's availability (or, with `online` None, its health report) changed."""
    return {"type": "node", "site": site, "node_id": node_id, "online": online}


def lane_status_notice(site: str, lane: str, status: LaneStatus) -> dict:
    """A lane reported its state."""
    return {"type": "lane_status", "site": site, "lane": lane, "state": status.state,
            "queue_length": status.queue_length}


def command_ack_notice(site: str, lane: str, ack: CommandAck) -> dict:
    """An edge acknowledged (or refused) a command."""
    return {"type": "command_ack", "command_id": ack.command_id, "site": site, "lane": lane,
            "ok": ack.ok, "detail": ack.detail}
