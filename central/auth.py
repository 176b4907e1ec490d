"""Who is asking and may they: sessions, CSRF, API tokens, roles, and the startup safety check.

- Browsers sign in at /login and get a random session id in an HttpOnly, SameSite=Lax cookie
  (Secure unless `cookie_secure` is off); the database keeps only its HMAC digest and an expiry.
- Every state-changing request made with a session must carry the session's CSRF token, in the
  `csrf_token` form field or the `X-CSRF-Token` header. The token is derived from the session id
  with the secret key, so it needs no storage and dies with the session.
- Machines send `Authorization: Bearer <token>`; tokens are created with `smartgate users token`
  and stored as digests. Bearer requests need no CSRF token (a browser never sends one itself).
- `require_role(*roles)` is the FastAPI dependency every protected route uses; admin passes
  every role check. Anonymous page requests are redirected to /login, API requests get 401.
- `LoginThrottle`: after `MAX_FAILED_LOGINS` failed sign-ins for a user name or from a client
  address within `FAILED_LOGIN_WINDOW_S`, further attempts are refused (429) until the oldest of
  them ages out. Kept in memory, per process.
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
from central.auth_store import Role
from central.config import CentralSettings
from central.db import utcnow

log = logging.getLogger(__name__)

SESSION_COOKIE = "sg_session"
LOGIN_CSRF_COOKIE = "sg_login_csrf"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MIN_SECRET_LENGTH = 32
KNOWN_DEFAULT_SECRETS = frozenset({"changeme", "secret", "smartgate", "admin"})
MAX_FAILED_LOGINS = 5
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
    """The authenticated caller; `csrf_token` is None for bearer-token (machine) requests."""

    id: int
    username: str
    role: str
    csrf_token: str | None

    def has_role(self, *roles: str) -> bool:
        """Whether this user may act in one of `roles` (admin may act in all)."""
        return self.role == Role.ADMIN or self.role in roles


class LoginThrottle:
    """Failed sign-ins per user name and per client address over a sliding window.

    `retry_after` says how long a sign-in for that name from that address must wait (0: go
    ahead); refused attempts are not counted. A success forgets the name's failures, not the
    address's (an attacker's own account must not reset the count for the address).
    """

    def __init__(
        self,
        limit: int = MAX_FAILED_LOGINS,
        window_s: float = FAILED_LOGIN_WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window_s = window_s
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _keys(username: str, address: str) -> tuple[str, str]:
        return f"user:{username.strip().lower()}", f"addr:{address}"

    def retry_after(self, username: str, address: str) -> float:
        """Seconds until this name may try again from this address; 0 when it may now."""
        now = self._clock()
        with self._lock:
            recent = [self._failures.get(key) for key in self._keys(username, address)]
        waits = [t[0] + self.window_s - now for t in recent if t and len(t) >= self.limit]
        return max([0.0, *waits])

    def failed(self, username: str, address: str) -> None:
        """Count a failed sign-in against the name and the address."""
        now = self._clock()
        with self._lock:
            if len(self._failures) > THROTTLE_KEYS_KEPT:
                self._failures = {
                    k: t for k, t in self._failures.items() if t[-1] > now - self.window_s
                }
            for key in self._keys(username, address):
                self._failures.setdefault(key, deque(maxlen=self.limit)).append(now)

    def succeeded(self, username: str) -> None:
        """Forget the name's failures after a successful sign-in."""
        with self._lock:
            self._failures.pop(self._keys(username, "")[0], None)


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
        if len(key) < MIN_SECRET_LENGTH or key.lower() in KNOWN_DEFAULT_SECRETS:
            problems.append(
                f"secret_key must be at least {MIN_SECRET_LENGTH} random characters "
                "(set SMARTGATE_CENTRAL_SECRET_KEY)"
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
            user = auth_store.token_user(session, config.digest("token", token))
            return None if user is None else CurrentUser(user.id, user.username, user.role, None)
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


def require_role(*roles: str) -> Callable[[Request], Awaitable[CurrentUser]]:
    """Dependency: the signed-in user if they hold one of `roles` (or admin); 401 / 403 else.

    State-changing requests authenticated by cookie must also carry the CSRF token.
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
        if request.method not in SAFE_METHODS and user.csrf_token is not None:
            await _check_csrf(request, user)
        return user

    return dependency


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
        if wants_html(request):
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
        return JSONResponse(
            {"detail": "not authenticated"},
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )
