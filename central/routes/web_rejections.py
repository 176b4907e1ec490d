"""The admin page of rejected MQTT messages (the page of `GET /api/rejections`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from central import store
from central.deps import Admin, Db
from central.routes.rejections import rejection_out
from central.routes.web_render import render

router = APIRouter(tags=["rejections"])

PAGE_SIZE = 100


@router.get("/rejections", response_class=HTMLResponse, include_in_schema=False)
def rejections_page(
    request: Request, db: Db, user: Admin,
    before_id: Annotated[int | None, Query(ge=1)] = None,
) -> Response:
    """Rejected messages, newest first, a page at a time (admins)."""
    rows = [rejection_out(r) for r in store.list_rejections(db, PAGE_SIZE, before_id)]
    older = rows[-1].id if len(rows) == PAGE_SIZE else None
    return render(request, "rejections.html",
                  {"nav": "rejections", "rows": rows, "older": older}, user)
