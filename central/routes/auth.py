"""Sign-in and sign-out pages, and `/` sending each role to its page."""

from __future__ import annotations

import hmac
import logging
import math
import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from central import auth_store
from central.auth import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    CurrentUser,
    current_user,
    require_role,
    set_session_cookie,
    start_session,
)
from central.auth_store import Role
from central.routes.web_render import render

log = logging.getLogger(__name__)

router = APIRouter(tags=["auth"])
AnyUser = Annotated[CurrentUser, Depends(require_role(*Role))]


def home_for(user: CurrentUser) -> str:
    """The first page of a role: operators watch lanes, officers (and admins) review."""
    return "/dashboard" if user.role == Role.OPERATOR else "/review"


def safe_next(target: str | None) -> str | None:
    """A same-site path to return to after sign-in, or None (no open redirects)."""
    if target and target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return None


def _login_page(
    request: Request, next_url: str, error: str = "", status: int = 200, retry_after: int = 0
) -> Response:
    token = secrets.token_urlsafe(24)
    minutes = str(-(-retry_after // 60))
    response = render(
        request,
        "login.html",
        {"login_csrf": token, "next": next_url, "error": error, "retry_minutes": minutes},
        status_code=status,
    )
    if retry_after:
        response.headers["Retry-After"] = str(retry_after)
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        max_age=1800,
        httponly=True,
        samesite="strict",
        path="/login",
        secure=request.app.state.auth.cookie_secure,
    )
    return response


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request, next: str = "") -> Response:
    """The sign-in form; a signed-in user goes straight on."""
    user = await current_user(request)
    if user is not None:
        return RedirectResponse(safe_next(next) or home_for(user), status_code=303)
    return _login_page(request, next)


@router.post("/login", response_class=HTMLResponse)
def login(
    request: Request,
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=256)],
    csrf_token: Annotated[str, Form(max_length=64)] = "",
    next: Annotated[str, Form(max_length=512)] = "",
) -> Response:
    """Check the password; on success start a session and go to `next` or the role's page.

    Too many recent failures for the name from this address, or from the address for any
    name: 429 without checking the password (the try is counted before the check).
    """
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not expected or not hmac.compare_digest(expected, csrf_token):
        return _login_page(request, next, "login_expired", status=403)
    throttle = request.app.state.login_throttle
    address = request.client.host if request.client else "unknown"
    wait = math.ceil(throttle.begin(username, address))
    if wait > 0:
        log.warning("sign-in for %r from %s refused for %d s: too many failures",
                    username, address, wait)  # fmt: skip
        return _login_page(request, next, "login_throttled", status=429, retry_after=wait)
    sessions = request.app.state.sessions
    with sessions() as session, session.begin():
        user = auth_store.authenticate(session, username, password)
        found = None if user is None else CurrentUser(user.id, user.username, user.role, None)
    if found is None:
        log.warning("failed sign-in for %r from %s", username, address)
        return _login_page(request, next, "login_failed", status=401)
    throttle.succeeded(username, address)
    config = request.app.state.auth
    session_id = start_session(sessions, config, found.id)
    log.info("%s signed in", found.username)
    response = RedirectResponse(safe_next(next) or home_for(found), status_code=303)
    set_session_cookie(response, config, session_id)
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


@router.post("/logout")
def logout(request: Request, user: AnyUser) -> Response:
    """End this browser's session."""
    config = request.app.state.auth
    session_id = request.cookies.get(SESSION_COOKIE, "")
    with request.app.state.sessions() as session, session.begin():
        auth_store.delete_web_session(session, config.digest("session", session_id))
    log.info("%s signed out", user.username)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/", include_in_schema=False)
async def home(request: Request) -> Response:
    """Each role's first page; anyone not signed in (browser or not) goes to the sign-in form."""
    user = await current_user(request)
    return RedirectResponse(home_for(user) if user else "/login", status_code=303)
