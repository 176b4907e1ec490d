"""Users, web sessions and API tokens: tables, password hashing and every query auth makes.

Passwords are stored as argon2id hashes (pwdlib). Session ids and API tokens are stored only as
digests (computed by `central.auth`), so a copy of the database cannot be replayed as a login.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from enum import StrEnum
from functools import cache

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from sqlalchemy import Boolean, DateTime, ForeignKey, Integer, String, delete, select
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from central.db import Base, utcnow

log = logging.getLogger(__name__)

PASSWORDS = PasswordHash((Argon2Hasher(),))
MIN_PASSWORD_LENGTH = 10
DEMO_USERNAME = "demo"


class Role(StrEnum):
    """What a user may do: review passages, watch lanes, or everything (admin)."""

    OFFICER = "officer"
    OPERATOR = "operator"
    ADMIN = "admin"


class User(Base):
    """A person (or machine account) that signs in."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    role: Mapped[str] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    is_demo: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class WebSession(Base):
    """A signed-in browser; the cookie holds the id, the table only its digest."""

    __tablename__ = "web_sessions"

    id_digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class TokenScope(StrEnum):
    """What an API token may do, at most what its user's role allows.

    `full`: everything the role allows; `read`: only reading (GET/HEAD); `edge-ingest`: only
    the routes an edge node calls to hand data to central (declared with
    `require_role(..., edge_ingest=True)`), nothing else.
    """

    FULL = "full"
    READ = "read"
    EDGE_INGEST = "edge-ingest"


class ApiToken(Base):
    """A bearer token for a machine client, acting as its user within its scope until it
    expires or is revoked."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    token_digest: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    scope: Mapped[str] = mapped_column(
        String(16), default=TokenScope.FULL.value, server_default=TokenScope.FULL.value
    )
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


@cache
def _dummy_hash() -> str:
    """A hash to verify against for unknown users, so timing does not reveal which names exist."""
    return PASSWORDS.hash(secrets.token_urlsafe(16))


class UserError(ValueError):
    """A user that cannot be created as asked (taken name, weak password, unknown role)."""


def check_password_strength(username: str, password: str) -> None:
    """Raise UserError for a password too short or equal to the user name."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"password must have at least {MIN_PASSWORD_LENGTH} characters")
    if password.lower() == username.lower():
        raise UserError("password must differ from the user name")


def add_user(
    session: Session, username: str, password: str, role: str, is_demo: bool = False
) -> User:
    """Create a user with a hashed password (the caller commits)."""
    if role not in set(Role):
        raise UserError(f"unknown role {role!r}; use one of {', '.join(Role)}")
    check_password_strength(username, password)
    if get_user(session, username) is not None:
        raise UserError(f"user {username!r} already exists")
    user = User(
        username=username,
        password_hash=PASSWORDS.hash(password),
        role=role,
        active=True,
        is_demo=is_demo,
        created_at=utcnow(),
    )
    session.add(user)
    session.flush()
    return user


def get_user(session: Session, username: str) -> User | None:
    """The user with this name, if any."""
    return session.scalar(select(User).where(User.username == username))


def list_users(session: Session) -> Sequence[User]:
    """Every user, by name."""
    return session.scalars(select(User).order_by(User.username)).all()


def authenticate(session: Session, username: str, password: str) -> User | None:
    """The active user whose password this is; None otherwise (same cost for unknown names)."""
    user = get_user(session, username)
    if user is None or not user.active:
        PASSWORDS.verify(password, _dummy_hash())
        return None
    ok, new_hash = PASSWORDS.verify_and_update(password, user.password_hash)
    if not ok:
        return None
    if new_hash is not None:
        user.password_hash = new_hash
    return user


def add_web_session(session: Session, id_digest: str, user: User, expires_at: datetime) -> None:
    """Record a new signed-in browser session."""
    session.add(WebSession(id_digest=id_digest, user_id=user.id, expires_at=expires_at))


def session_user(session: Session, id_digest: str, now: datetime) -> User | None:
    """The active user of an unexpired session, or None."""
    return session.scalar(
        select(User)
        .join(WebSession, WebSession.user_id == User.id)
        .where(WebSession.id_digest == id_digest, WebSession.expires_at > now, User.active)
    )


def delete_web_session(session: Session, id_digest: str) -> None:
    """Sign a session out."""
    session.execute(delete(WebSession).where(WebSession.id_digest == id_digest))


def purge_expired_sessions(session: Session, now: datetime) -> int:
    """Delete expired sessions; returns how many."""
    result = session.execute(delete(WebSession).where(WebSession.expires_at <= now))
    return result.rowcount or 0  # type: ignore[attr-defined]


def add_api_token(
    session: Session,
    user: User,
    name: str,
    token_digest: str,
    scope: str = TokenScope.FULL,
    expires_at: datetime | None = None,
) -> ApiToken:
    """Record a machine token for `user` (UserError for an unknown scope or a past expiry)."""
    if scope not in set(TokenScope):
        raise UserError(f"unknown token scope {scope!r}; use one of {', '.join(TokenScope)}")
    if expires_at is not None and expires_at <= utcnow():
        raise UserError(f"expiry {expires_at.isoformat()} is in the past")
    token = ApiToken(
        name=name, token_digest=token_digest, user_id=user.id, revoked=False,
        scope=TokenScope(scope).value, expires_at=expires_at, created_at=utcnow(),
    )  # fmt: skip
    session.add(token)
    session.flush()
    return token


def token_owner(session: Session, token_digest: str, now: datetime) -> tuple[User, ApiToken] | None:
    """The active user and the token of an unrevoked, unexpired API token, or None."""
    row = session.execute(
        select(User, ApiToken)
        .join(ApiToken, ApiToken.user_id == User.id)
        .where(
            ApiToken.token_digest == token_digest, ~ApiToken.revoked, User.active,
            (ApiToken.expires_at.is_(None)) | (ApiToken.expires_at > now),
        )  # fmt: skip
    ).first()
    return None if row is None else (row[0], row[1])


def aware(when: datetime) -> datetime:
    """A stored time as timezone-aware UTC (SQLite hands them back naive)."""
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def list_tokens(session: Session, username: str | None = None) -> Sequence[tuple[ApiToken, str]]:
    """Every API token (of one user, if named) with its user's name, oldest first; digests
    only, the tokens themselves are never stored."""
    q = select(ApiToken, User.username).join(User, ApiToken.user_id == User.id)
    if username is not None:
        q = q.where(User.username == username)
    return [(t, name) for t, name in session.execute(q.order_by(ApiToken.id))]


def revoke_token(session: Session, token_id: int) -> ApiToken | None:
    """Revoke a token by id (idempotent); None when there is no such token."""
    token = session.get(ApiToken, token_id)
    if token is not None and not token.revoked:
        token.revoked = True
        token.revoked_at = utcnow()
    return token


def demo_users_exist(session: Session) -> bool:
    """Whether a demo account (whose password was printed) is present."""
    return session.scalar(select(User.id).where(User.is_demo).limit(1)) is not None


DEFAULT_USERNAMES = ("admin", "administrator", "root", "smartgate", "operator", "officer")


def users_with_default_password(session: Session) -> list[str]:
    """Names of active stock accounts (admin, root, ...) whose password is `admin`, `password`
    or their own name (`add_user` refuses such passwords; this catches rows made otherwise)."""
    weak = []
    stock = select(User).where(User.active, User.username.in_(DEFAULT_USERNAMES))
    for user in session.scalars(stock):
        guesses = {"admin", "password", user.username}
        if any(PASSWORDS.verify(p, user.password_hash) for p in guesses):
            weak.append(user.username)
    return weak


def ensure_demo_user(sessions: sessionmaker) -> tuple[str, str]:
    """(Re)create the admin-role `demo` account with a fresh random password; returns both.

    Needs the migrated schema (call it once central has started). Central refuses to start
    outside demo mode while this account exists.
    """
    password = secrets.token_urlsafe(12)
    with sessions() as session, session.begin():
        old = get_user(session, DEMO_USERNAME)
        if old is not None:
            session.delete(old)
            session.flush()
        add_user(session, DEMO_USERNAME, password, Role.ADMIN, is_demo=True)
    log.warning("demo account %r created (demo mode only)", DEMO_USERNAME)
    return DEMO_USERNAME, password
