"""Who is asking and may they: sessions, CSRF, API tokens, roles, and the startup safety check.

- Browsers sign in at /login and get a random session id in an HttpOnly, SameSite=Lax cookie
  (Secure unless `cookie_secure` is off); the database keeps only its HMAC digest and an expiry.
- Every state-changing request made with a session must carry the session's CSRF token, in the
  `csrf_token` form field or the `X-CSRF-Token` header. The token is derived from the session id
  with the secret key, so it needs no storage and dies with the session.
- Machines send `Authorization: Bearer <token>`; tokens are created with `smartgate users token
  add` (or `POST /api/tokens`), stored as digests, have a scope (`full`, `read`, `edge-ingest`:
  `auth_store.TokenScope`) and may expire. Bearer requests need no CSRF token (a browser never
  sends one itself).
- `require_role(*roles)` is the FastAPI dependency every protected route uses; admin passes
  every role check. Anonymous page requests are redirected to /login, API requests get 401.
- `LoginThrottle`: after `MAX_FAILED_LOGINS` failed sign-ins for one user name from one client
  address, or `MAX_FAILED_LOGINS_PER_ADDRESS` from one address for any names, within
  `FAILED_LOGIN_WINDOW_S`, further attempts are refused (429) until the oldest of them ages
  out. A try is counted before its password is checked (under a lock), so parallel guesses
  cannot overtake the count. Kept in memory, per process.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import quote

from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse
from sqlalchemy.orm import sessionmaker
from starlette.concurrency import run_in_threadpool

from central import auth_store
from central.auth_store import Role, TokenScope
from central.config import CentralSettings
from central.db import utcnow

log = logging.getLogger(__name__)

SESSION_COOKIE = "sg_session"
LOGIN_CSRF_COOKIE = "sg_login_csrf"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MIN_SECRET_LENGTH = 32
MIN_SECRET_DISTINCT_CHARS = 10
# Published example keys of 32+ characters that get copied into real deployments: the one in
# FastAPI's OAuth2/JWT tutorial and Apache Superset's shipped default.
KNOWN_DEFAULT_SECRETS = frozenset({
    "09d25e094faa6ca2556c818166b7a9563b93f7099f6f0f4caa6cf63b88e8d3e7",
    "change_me_to_a_complex_random_secret",
})  # fmt: skip
# Placeholder words of example configurations (compared without case and punctuation).
PLACEHOLDER_SECRET_WORDS = ("changeme", "changethis", "replaceme", "yoursecret", "insecure")
MAX_FAILED_LOGINS = 5
MAX_FAILED_LOGINS_PER_ADDRESS = 20
FAILED_LOGIN_WINDOW_S = 15 * 60
THROTTLE_KEYS_KEPT = 10_000  # past this many names/addresses, forget those with no recent failure


class InsecureConfigError(RuntimeError):
    """Central would start with credentials anyone could guess; the message says which."""


class NotAuthenticated(Exception):
    """No valid session or token: pages redirect to /login, the API answers 401."""


@dataclass(frozen=True)
class AuthConfig:
    """Auth settings resolved at start: the key, session lifetime and cookie flags."""

    secret: bytes
    session_ttl: timedelta
    cookie_secure: bool

    def digest(self, purpose: str, value: str) -> str:
        """Keyed digest of a session id or token, as stored or compared."""
        return hmac.new(self.secret, f"{purpose}:{value}".encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class CurrentUser:
    """The authenticated caller; `csrf_token` is None for bearer-token (machine) requests,
    whose token `scope` may be narrower than the role (sessions are always `full`)."""

    id: int
    username: str
    role: str
    csrf_token: str | None
    scope: str = TokenScope.FULL

    def has_role(self, *roles: str) -> bool:
        """Whether this user may act in one of `roles` (admin may act in all)."""
        return self.role == Role.ADMIN or self.role in roles


class LoginThrottle:
    """Failed sign-ins per (user name, client address) and per client address, over a
    sliding window.

    `begin` is called before the password is checked: it refuses (returns the seconds to wait,
    counting nothing) or counts the try as a failure at once and returns 0, all under one lock,
    so forty parallel guesses get at most `limit` password checks. `succeeded` takes the try
    back and forgets the name's failures from that address. A name's failures from one address
    never lock it out from another, so a stranger cannot lock the real user out.
    """

    def __init__(
        self,
        limit: int = MAX_FAILED_LOGINS,
        window_s: float = FAILED_LOGIN_WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
        address_limit: int = MAX_FAILED_LOGINS_PER_ADDRESS,
    ) -> None:
        self.limit = limit
        self.address_limit = address_limit
        self.window_s = window_s
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _keys(self, username: str, address: str) -> tuple[tuple[str, int], tuple[str, int]]:
        return (
            (f"user:{username.strip().lower()}@{address}", self.limit),
            (f"addr:{address}", self.address_limit),
        )

    def _recent(self, key: str, now: float) -> deque[float] | None:
        times = self._failures.get(key)
        while times and times[0] <= now - self.window_s:
            times.popleft()
        return times

    def begin(self, username: str, address: str) -> float:
        """Seconds until this name may try again from this address (nothing counted); or 0,
        and this try is counted as a failure until `succeeded` takes it back."""
        now = self._clock()
        with self._lock:
            keys = self._keys(username, address)
            waits = [
                times[0] + self.window_s - now
                for key, limit in keys
                if (times := self._recent(key, now)) and len(times) >= limit
            ]
            if waits:
                return max(waits)
            if len(self._failures) > THROTTLE_KEYS_KEPT:
                self._failures = {
                    k: t for k, t in self._failures.items() if t and t[-1] > now - self.window_s
                }
            for key, _limit in keys:
                self._failures.setdefault(key, deque()).append(now)
            return 0.0

    def succeeded(self, username: str, address: str) -> None:
        """The try was right: forget the name's failures from this address and uncount the
        try from the address's (the address's other failures stay: an attacker's own account
        must not reset them)."""
        pair, by_address = self._keys(username, address)
        with self._lock:
            self._failures.pop(pair[0], None)
            times = self._failures.get(by_address[0])
            if times:
                times.pop()


def weak_secret(key: str) -> str | None:
    """Why `key` is not good enough as the secret key, or None when it is."""
    plain = "".join(ch for ch in key.lower() if ch.isalnum())
    if len(key) < MIN_SECRET_LENGTH:
        return f"shorter than {MIN_SECRET_LENGTH} characters"
    if key.lower() in KNOWN_DEFAULT_SECRETS:
        return "a published example key"
    if any(word in plain for word in PLACEHOLDER_SECRET_WORDS):
        return "a placeholder of an example configuration"
    if len(set(key)) < MIN_SECRET_DISTINCT_CHARS:
        return f"fewer than {MIN_SECRET_DISTINCT_CHARS} distinct characters"
    return None


def auth_config(settings: CentralSettings) -> AuthConfig:
    """Resolve the auth settings; a demo without a key gets a random one for this process."""
    if settings.secret_key is not None:
        secret = settings.secret_key.get_secret_value().encode()
    else:
        secret = secrets.token_bytes(32)
    return AuthConfig(secret, timedelta(hours=settings.session_hours), settings.cookie_secure)


def check_startup(settings: CentralSettings, sessions: sessionmaker) -> None:
    """Refuse to run outside demo mode with a missing/weak key, a demo account or a default
    password; raises InsecureConfigError naming the problem."""
    problems = []
    if not settings.demo_mode:
        key = settings.secret_key.get_secret_value() if settings.secret_key else ""
        why = weak_secret(key)
        if why is not None:
            problems.append(
                f"secret_key is {why}: it must be at least {MIN_SECRET_LENGTH} random "
                "characters (set SMARTGATE_CENTRAL_SECRET_KEY)"
            )
    with sessions() as session, session.begin():
        if not settings.demo_mode and auth_store.demo_users_exist(session):
            problems.append(
                f"the demo account {auth_store.DEMO_USERNAME!r} exists; "
                f"remove it with `smartgate users remove {auth_store.DEMO_USERNAME}`"
            )
        weak = auth_store.users_with_default_password(session)
        if weak:
            problems.append(f"users with a default password (admin or own name): {weak}")
        auth_store.purge_expired_sessions(session, utcnow())
        if not settings.demo_mode and not auth_store.list_users(session):
            log.warning("no users yet: add one with `smartgate users add NAME --role admin`")
    if problems:
        raise InsecureConfigError("central refuses to start: " + "; ".join(problems))


def _config(request: Request) -> AuthConfig:
    return request.app.state.auth


def csrf_for(config: AuthConfig, session_id: str) -> str:
    """The CSRF token belonging to a session id."""
    return config.digest("csrf", session_id)


def lookup_user(request: Request) -> CurrentUser | None:
    """The caller of `request` as the database says now (blocking; see `current_user`)."""
    config = _config(request)
    header = request.headers.get("authorization", "")
    with request.app.state.sessions() as session:
        if header.lower().startswith("bearer "):
            token = header[7:].strip()
            owner = auth_store.token_owner(session, config.digest("token", token), utcnow())
            if owner is None:
                return None
            user, api_token = owner
            return CurrentUser(user.id, user.username, user.role, None, api_token.scope)
        session_id = request.cookies.get(SESSION_COOKIE)
        if not session_id:
            return None
        user = auth_store.session_user(session, config.digest("session", session_id), utcnow())
        if user is None:
            return None
        return CurrentUser(user.id, user.username, user.role, csrf_for(config, session_id))


async def current_user(request: Request) -> CurrentUser | None:
    """The caller, from a bearer token or the session cookie; None when anonymous."""
    if hasattr(request.state, "user"):
        cached: CurrentUser | None = request.state.user
        return cached
    user = await run_in_threadpool(lookup_user, request)
    request.state.user = user
    return user


async def _check_csrf(request: Request, user: CurrentUser) -> None:
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        value = (await request.form()).get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    if not sent or not hmac.compare_digest(sent, user.csrf_token or ""):
        raise HTTPException(403, "missing or wrong CSRF token")


def scope_allows(scope: str, method: str, edge_ingest: bool) -> bool:
    """Whether a token of `scope` may make a `method` request to a route (`edge_ingest`: one
    an edge node calls to hand data to central)."""
    if scope == TokenScope.FULL:
        return True
    if scope == TokenScope.READ:
        return method in SAFE_METHODS
    return scope == TokenScope.EDGE_INGEST and edge_ingest


def require_role(
    *roles: str, edge_ingest: bool = False
) -> Callable[[Request], Awaitable[CurrentUser]]:
    """Dependency: the signed-in user if they hold one of `roles` (or admin); 401 / 403 else.

    A bearer token must also have a scope allowing the request (`scope_allows`; pass
    `edge_ingest=True` on the routes an edge node calls). State-changing requests
    authenticated by cookie must also carry the CSRF token.
    """
    unknown = set(roles) - set(Role)
    if unknown:
        raise ValueError(f"unknown roles {sorted(unknown)}")

    async def dependency(request: Request) -> CurrentUser:
        user = await current_user(request)
        if user is None:
            raise NotAuthenticated()
        if not user.has_role(*roles):
            raise HTTPException(403, f"needs role {' or '.join(roles)}")
        if not scope_allows(user.scope, request.method, edge_ingest):
            raise HTTPException(403, f"an API token of scope {user.scope!r} may not do this")
        if request.method not in SAFE_METHODS and user.csrf_token is not None:
            await _check_csrf(request, user)
        return user

    return dependency


async def may_read_metrics(request: Request) -> bool:
    """Whether the caller may read /metrics and the full /api/health: the `metrics_token` as
    bearer, or any signed-in user or valid API token."""
    token = request.app.state.settings.metrics_token
    header = request.headers.get("authorization", "")
    if token is not None and header.lower().startswith("bearer "):
        sent = header[7:].strip().encode()
        if hmac.compare_digest(sent, token.get_secret_value().encode()):
            return True
    return await current_user(request) is not None


def set_session_cookie(response: Response, config: AuthConfig, session_id: str) -> None:
    """Attach the session cookie (HttpOnly, SameSite=Lax, Secure per settings)."""
    response.set_cookie(
        SESSION_COOKIE,
        session_id,
        max_age=int(config.session_ttl.total_seconds()),
        httponly=True,
        secure=config.cookie_secure,
        samesite="lax",
        path="/",
    )


def start_session(sessions: sessionmaker, config: AuthConfig, user_id: int) -> str:
    """Record a new session for the user; returns the id for the cookie."""
    session_id = secrets.token_urlsafe(32)
    with sessions() as session, session.begin():
        user = session.get(auth_store.User, user_id)
        if user is None:
            raise NotAuthenticated()
        expires = utcnow() + config.session_ttl
        auth_store.add_web_session(session, config.digest("session", session_id), user, expires)
    return session_id


def wants_html(request: Request) -> bool:
    """Whether the request comes from a page navigation rather than the API or a fetch."""
    return not request.url.path.startswith("/api/") and "text/html" in request.headers.get(
        "accept", ""
    )


def install(app: FastAPI, settings: CentralSettings) -> None:
    """Put the auth config and the sign-in throttle on the app and turn NotAuthenticated into a
    redirect or a 401."""
    app.state.auth = auth_config(settings)
    app.state.login_throttle = LoginThrottle()

    @app.exception_handler(NotAuthenticated)
    async def _not_authenticated(request: Request, _exc: NotAuthenticated) -> Response:
        return not_authenticated_response(request)


def not_authenticated_response(request: Request) -> Response:
    """What an anonymous caller gets: page navigations a redirect to /login, the rest a 401."""
    if wants_html(request):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
    return JSONResponse(
        {"detail": "not authenticated"},
        status_code=401,
        headers={"WWW-Authenticate": "Bearer"},
    )
