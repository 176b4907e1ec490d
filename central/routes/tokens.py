"""API tokens for admins: list, create (the token is shown once), revoke.

The same as `smartgate users token add|list|revoke`. Tokens are stored only as keyed digests;
each has a scope (`full`, `read`, `edge-ingest`: `central.auth_store.TokenScope`) and may
expire. Every change is audited.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from fastapi import APIRouter, HTTPException, Request, status
from pydantic import BaseModel, Field, field_validator

from central import auth_store, store
from central.auth_store import ApiToken, TokenScope
from central.db import utcnow
from central.deps import Admin, Db

router = APIRouter(prefix="/api/tokens", tags=["tokens"])


class TokenIn(BaseModel):
    """A token to create: for which user, what for, how far it reaches, until when."""

    username: str = Field(max_length=64)
    name: str = Field(default="machine", min_length=1, max_length=64, pattern=r"^[\w .:@-]+$")
    scope: TokenScope = TokenScope.FULL
    expires_at: datetime | None = Field(
        default=None, description="with a UTC offset; none: `days` from now"
    )
    days: int | None = Field(
        default=365, ge=1, le=3650, description="valid this many days; null with no "
        "expires_at: never expires"
    )

    @field_validator("expires_at")
    @classmethod
    def _aware(cls, v: datetime | None) -> datetime | None:
        if v is not None and v.utcoffset() is None:
            raise ValueError("expires_at needs a UTC offset, e.g. 2027-01-01T00:00+07:00")
        return v

    def expiry(self) -> datetime | None:
        """When the token stops working (None: never)."""
        if self.expires_at is not None:
            return self.expires_at
        return None if self.days is None else utcnow() + timedelta(days=self.days)


class TokenOut(BaseModel):
    """A token as listed: never the token itself."""

    id: int
    username: str
    name: str
    scope: str
    created_at: datetime
    expires_at: datetime | None
    revoked: bool
    active: bool = Field(description="neither revoked nor expired")

    @classmethod
    def of(cls, token: ApiToken, username: str) -> TokenOut:
        """From a stored token and its user's name."""
        expires = auth_store.aware(token.expires_at) if token.expires_at else None
        return cls(
            id=token.id, username=username, name=token.name, scope=token.scope,
            created_at=auth_store.aware(token.created_at), expires_at=expires,
            revoked=token.revoked,
            active=not token.revoked and (expires is None or expires > utcnow()),
        )  # fmt: skip


class TokenCreated(TokenOut):
    """A new token: `token` is shown this once; central keeps only its digest."""

    token: str


@router.get("", response_model=list[TokenOut])
def list_tokens(db: Db, _user: Admin, username: str | None = None) -> list[TokenOut]:
    """Every API token (or one user's), oldest first."""
    return [TokenOut.of(t, name) for t, name in auth_store.list_tokens(db, username)]


@router.post("", response_model=TokenCreated, status_code=status.HTTP_201_CREATED)
def create_token(body: TokenIn, request: Request, db: Db, user: Admin) -> TokenCreated:
    """Create a token for a user; the reply is the only place the token appears."""
    owner = auth_store.get_user(db, body.username)
    if owner is None:
        raise HTTPException(404, f"no user {body.username}")
    token = secrets.token_urlsafe(32)
    digest = request.app.state.auth.digest("token", token)
    try:
        row = auth_store.add_api_token(db, owner, body.name, digest, body.scope, body.expiry())
    except auth_store.UserError as exc:
        raise HTTPException(422, str(exc)) from None
    store.add_audit(db, user.username, "token.create", "api_token", str(row.id), {
        "user": owner.username, "name": row.name, "scope": row.scope,
        "expires_at": row.expires_at.isoformat() if row.expires_at else None,
    })  # fmt: skip
    db.commit()
    return TokenCreated(**TokenOut.of(row, owner.username).model_dump(), token=token)


@router.post("/{token_id}/revoke", response_model=TokenOut)
def revoke_token(token_id: int, db: Db, user: Admin) -> TokenOut:
    """Revoke a token: it stops working at once (idempotent)."""
    row = auth_store.revoke_token(db, token_id)
    if row is None:
        raise HTTPException(404, f"no token {token_id}")
    owner = db.get(auth_store.User, row.user_id)
    store.add_audit(db, user.username, "token.revoke", "api_token", str(token_id), {
        "name": row.name,
    })  # fmt: skip
    db.commit()
    return TokenOut.of(row, owner.username if owner else "?")
