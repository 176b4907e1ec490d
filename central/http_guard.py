"""Central's HTTP front door: body caps, authentication before any body is read, no caching.

`HttpGuard` is a plain ASGI middleware around the whole app, so it acts before FastAPI reads
and parses a body (which FastAPI does before it solves a route's dependencies):

- **Body caps per route** (`BodyLimits`): a declared `Content-Length` over the route's cap is
  answered 413 at once, without reading a byte of the body; a body sent without one (chunked)
  is counted as it streams and refused with 413 as soon as it passes the cap. The connection
  is then closed, so the rest of the body is never read.
- **Authentication first**: a state-changing request (POST, PUT, PATCH, DELETE) to anything but
  the sign-in form must carry a valid session cookie or API token, checked before its body is
  read; otherwise it gets what an anonymous caller gets (401, or a redirect to /login).
- **`Cache-Control: no-store`** on every response but static files (`/static`,
  `/docs-static`): pages and API answers hold personal data and must not sit in shared or
  browser caches (a route that sets its own Cache-Control keeps it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from fastapi import HTTPException
from fastapi.responses import JSONResponse
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from central.auth import SAFE_METHODS, current_user, not_authenticated_response
from central.config import CentralSettings

ANONYMOUS_POSTS = frozenset({"/login"})  # the only state-changing route open to anyone
CACHEABLE_PREFIXES = ("/static/", "/docs-static/")


class BodyTooLarge(HTTPException):
    """A request body over its route's cap (413)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body larger than {limit} bytes")
        self.limit = limit


@dataclass
class BodyLimits:
    """The largest body each route accepts: `routes` (method, path pattern, bytes) first
    match wins, `default` for the rest."""

    default: int
    routes: list[tuple[str, re.Pattern[str], int]] = field(default_factory=list)

    @classmethod
    def from_settings(cls, settings: CentralSettings) -> BodyLimits:
        """The caps in `settings`: the declaration imports get their own, the rest the default."""
        limits = cls(settings.max_body_bytes)
        limits.add("POST", r"/api/declarations", settings.max_json_import_bytes)
        limits.add("POST", r"/api/declarations/import", settings.max_csv_import_bytes)
        return limits

    def add(self, method: str, path_pattern: str, max_bytes: int) -> None:
        """Give the routes whose whole path matches `path_pattern` their own cap."""
        self.routes.append((method.upper(), re.compile(path_pattern), max_bytes))

    def for_request(self, method: str, path: str) -> int:
        """The cap for one request."""
        for route_method, pattern, max_bytes in self.routes:
            if route_method == method and pattern.fullmatch(path):
                return max_bytes
        return self.default


class HttpGuard:
    """The ASGI middleware described in the module docstring."""

    def __init__(self, app: ASGIApp, limits: BodyLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        method: str = scope["method"]
        if not path.startswith(CACHEABLE_PREFIXES):
            send = _no_store(send)
        limit = self.limits.for_request(method, path)
        declared = _content_length(scope)
        if declared is None:
            await JSONResponse({"detail": "bad Content-Length"}, 400)(scope, receive, send)
            return
        if declared > limit:
            await _too_large(limit)(scope, receive, send)
            return
        if method not in SAFE_METHODS and path not in ANONYMOUS_POSTS:
            request = Request(scope)
            if await current_user(request) is None:
                await not_authenticated_response(request)(scope, receive, send)
                return
        started = False

        async def counted_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, _counting(receive, limit), counted_send)
        except BodyTooLarge:
            if started:
                raise
            await _too_large(limit)(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    """The declared body length (0 when none is declared); None when it is not a number."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                length = int(value)
            except ValueError:
                return None
            return length if length >= 0 else None
    return 0


def _too_large(limit: int) -> JSONResponse:
    return JSONResponse(
        {"detail": f"request body larger than {limit} bytes"},
        status_code=413,
        headers={"Connection": "close"},
    )


def _counting(receive: Receive, limit: int) -> Receive:
    """`receive` that raises BodyTooLarge once more than `limit` body bytes have come."""
    seen = 0

    async def counted() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise BodyTooLarge(limit)
        return message

    return counted


def _no_store(send: Send) -> Send:
    """`send` that adds `Cache-Control: no-store` to a response that set no Cache-Control."""

    async def with_header(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            if not any(name.lower() == b"cache-control" for name, _ in headers):
                headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
        await send(message)

    return with_header
