"""FastAPI dependencies shared by the routes: database session, services, roles."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from central.auth import CurrentUser, require_role
from central.decisions import DecisionService
from central.events import EventBus
from smartgate.contract import LaneCommand


def get_db(request: Request) -> Iterator[Session]:
    """A database session for one request."""
    with request.app.state.sessions() as session:
        yield session


@dataclass(frozen=True)
class Outbox:
    """What a route hands on after its commit: lane commands (MQTT) and live events."""

    send_command: Callable[[LaneCommand], None]
    events: EventBus


def get_decisions(request: Request) -> DecisionService:
    """The app's decision service (site rules and fee table)."""
    return request.app.state.decisions


def get_outbox(request: Request) -> Outbox:
    """The app's outbox."""
    return request.app.state.outbox


Db = Annotated[Session, Depends(get_db)]
Decisions = Annotated[DecisionService, Depends(get_decisions)]
Out = Annotated[Outbox, Depends(get_outbox)]
Reader = Annotated[CurrentUser, Depends(require_role("officer", "operator"))]
Officer = Annotated[CurrentUser, Depends(require_role("officer"))]
Admin = Annotated[CurrentUser, Depends(require_role("admin"))]
