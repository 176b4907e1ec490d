"""What the API and page routes share: 404s for missing records, announcing officer decisions."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypeVar

from fastapi import HTTPException

from central import store
from central.db import DecisionRow
from central.deps import Outbox
from smartgate.contract import LaneCommand

T = TypeVar("T")


def found(value: T | None, message: str) -> T:
    """`value`, or a 404 with `message` when it is None."""
    if value is None:
        raise HTTPException(404, message)
    return value


@contextmanager
def passage_or_404(event_id: str) -> Iterator[None]:
    """Turn store.PassageNotFound raised inside into a 404 naming the event id."""
    try:
        yield
    except store.PassageNotFound:
        raise HTTPException(404, f"no passage {event_id}") from None


def announce_decision(out: Outbox, command: LaneCommand, row: DecisionRow) -> None:
    """After the commit: send the lane its command and tell the live pages."""
    out.send_command(command)
    out.events.publish({
        "type": "decision", "event_id": row.passage_event_id, "site": command.site,
        "lane": command.lane, "outcome": row.outcome, "decided_by": row.decided_by,
    })  # fmt: skip
