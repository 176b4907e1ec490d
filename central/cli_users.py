"""`smartgate users ...`: add, list and remove users; add, list and revoke machine API tokens."""

from __future__ import annotations

import argparse
import getpass
import hashlib
import secrets
import sys
from datetime import UTC, datetime, timedelta

from smartgate.cli import CommandGroups, subcommands


def _sessions(database_url: str | None):  # type: ignore[no-untyped-def]
    from central.config import CentralSettings
    from central.db import make_engine, session_factory, upgrade_database

    settings = CentralSettings(**({"database_url": database_url} if database_url else {}))
    engine = make_engine(settings.database_url)
    upgrade_database(engine)
    return session_factory(engine)


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise SystemExit("error: the passwords differ")
    return first


def add_user(args: argparse.Namespace) -> int:
    """Create a user with a role; the password comes from stdin or a prompt."""
    from central import auth_store

    password = _read_password(args)
    try:
        with _sessions(args.database_url)() as session, session.begin():
            auth_store.add_user(session, args.username, password, args.role)
    except auth_store.UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"added {args.username} ({args.role})")
    return 0


def list_users(args: argparse.Namespace) -> int:
    """Print every user with role and state."""
    from central import auth_store

    with _sessions(args.database_url)() as session:
        for user in auth_store.list_users(session):
            flags = ("" if user.active else " disabled") + (" demo" if user.is_demo else "")
            print(f"{user.username}\t{user.role}{flags}")
    return 0


def remove_user(args: argparse.Namespace) -> int:
    """Delete a user with their sessions and tokens."""
    from central import auth_store

    with _sessions(args.database_url)() as session, session.begin():
        user = auth_store.get_user(session, args.username)
        if user is None:
            print(f"error: no user {args.username!r}", file=sys.stderr)
            return 1
        session.delete(user)
    print(f"removed {args.username}")
    return 0


def _expiry(args: argparse.Namespace) -> datetime | None:
    """The token's expiry from --expires (a date or date-time; UTC when it names no offset)
    or --days; None for --no-expiry."""
    if args.no_expiry:
        return None
    if args.expires:
        when = datetime.fromisoformat(args.expires)
        return when if when.tzinfo else when.replace(tzinfo=UTC)
    return datetime.now(UTC) + timedelta(days=args.days)


def add_token(args: argparse.Namespace) -> int:
    """Create a bearer token acting as a user within a scope until it expires; it is printed
    once and stored as a keyed digest."""
    from central import auth_store
    from central.auth import auth_config
    from central.config import CentralSettings

    settings = CentralSettings(**({"database_url": args.database_url} if args.database_url else {}))
    if settings.secret_key is None:
        print("error: set SMARTGATE_CENTRAL_SECRET_KEY (tokens are keyed with it)", file=sys.stderr)
        return 1
    try:
        expires = _expiry(args)
    except ValueError as exc:
        print(f"error: --expires: {exc}", file=sys.stderr)
        return 1
    token = secrets.token_urlsafe(32)
    try:
        with _sessions(args.database_url)() as session, session.begin():
            user = auth_store.get_user(session, args.username)
            if user is None:
                print(f"error: no user {args.username!r}", file=sys.stderr)
                return 1
            row = auth_store.add_api_token(
                session, user, args.name, auth_config(settings).digest("token", token),
                scope=args.scope, expires_at=expires,
            )  # fmt: skip
            token_id = row.id
    except auth_store.UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    until = expires.isoformat(timespec="minutes") if expires else "never"
    print(f"token {token_id} for {args.username} ({args.scope}, expires {until}):", file=sys.stderr)
    key = settings.secret_key.get_secret_value().encode()
    print(f"keyed with SMARTGATE_CENTRAL_SECRET_KEY (sha256 fingerprint "
          f"{hashlib.sha256(key).hexdigest()[:12]}): only a central running with this secret key "
          "accepts it", file=sys.stderr)
    print(token)
    return 0


def list_tokens(args: argparse.Namespace) -> int:
    """Print every API token (or one user's): id, user, name, scope, created, expiry, state."""
    from central import auth_store
    from central.db import utcnow

    now = utcnow()
    with _sessions(args.database_url)() as session:
        print("id\tuser\tname\tscope\tcreated\texpires\tstate")
        for token, username in auth_store.list_tokens(session, args.user):
            expires = auth_store.aware(token.expires_at) if token.expires_at else None
            state = ("revoked" if token.revoked
                     else "expired" if expires is not None and expires <= now else "active")
            print("\t".join([
                str(token.id), username, token.name, token.scope,
                auth_store.aware(token.created_at).isoformat(timespec="minutes"),
                expires.isoformat(timespec="minutes") if expires else "never", state,
            ]))  # fmt: skip
    return 0


def revoke_token(args: argparse.Namespace) -> int:
    """Revoke a token by its id (from `users token list`); it stops working at once."""
    from central import auth_store

    with _sessions(args.database_url)() as session, session.begin():
        token = auth_store.revoke_token(session, args.token_id)
        if token is None:
            print(f"error: no token {args.token_id}", file=sys.stderr)
            return 1
        name = token.name
    print(f"revoked token {args.token_id} ({name})")
    return 0


def register(commands: CommandGroups) -> None:
    """Attach `smartgate users add|list|remove|token`."""
    from central.auth_store import Role, TokenScope

    users = commands.top.add_parser("users", help="central web users and API tokens")
    users.add_argument("--database-url", help="SQLAlchemy URL (default: central settings)")
    sub = subcommands(users, "users_command")
    add = sub.add_parser("add", help="add a user")
    add.add_argument("username")
    add.add_argument("--role", required=True, choices=[r.value for r in Role])
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    add.set_defaults(func=add_user)
    sub.add_parser("list", help="list users").set_defaults(func=list_users)
    remove = sub.add_parser("remove", help="remove a user")
    remove.add_argument("username")
    remove.set_defaults(func=remove_user)
    tokens = subcommands(
        sub.add_parser("token", help="API tokens: add (printed once), list, revoke"),
        "token_command",
    )
    add_tok = tokens.add_parser("add", help="create an API token for a user (printed once)")
    add_tok.add_argument("username")
    add_tok.add_argument("--name", default="machine", help="what the token is for")
    add_tok.add_argument("--scope", default=TokenScope.FULL.value,
                         choices=[s.value for s in TokenScope],
                         help="full: the user's role; read: GET only; edge-ingest: only the "
                         "routes an edge node calls (evidence upload)")  # fmt: skip
    when = add_tok.add_mutually_exclusive_group()
    when.add_argument("--days", type=int, default=365, help="valid this many days (default 365)")
    when.add_argument("--expires", help="valid until this date or date-time (ISO 8601; UTC "
                      "unless it names an offset)")  # fmt: skip
    when.add_argument("--no-expiry", action="store_true", help="never expires (revoke it)")
    add_tok.set_defaults(func=add_token)
    list_tok = tokens.add_parser("list", help="list API tokens (never the tokens themselves)")
    list_tok.add_argument("--user", help="only this user's")
    list_tok.set_defaults(func=list_tokens)
    revoke = tokens.add_parser("revoke", help="revoke an API token by its id")
    revoke.add_argument("token_id", type=int)
    revoke.set_defaults(func=revoke_token)
