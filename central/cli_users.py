"""`smartgate users ...`: add, list and remove users, and create machine API tokens."""

from __future__ import annotations

import argparse
import getpass
import secrets
import sys

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


def add_token(args: argparse.Namespace) -> int:
    """Create a bearer token acting as a user; it is printed once and stored as a digest."""
    from central import auth_store
    from central.auth import auth_config
    from central.config import CentralSettings

    settings = CentralSettings(**({"database_url": args.database_url} if args.database_url else {}))
    if settings.secret_key is None:
        print("error: set SMARTGATE_CENTRAL_SECRET_KEY (tokens are keyed with it)", file=sys.stderr)
        return 1
    token = secrets.token_urlsafe(32)
    with _sessions(args.database_url)() as session, session.begin():
        user = auth_store.get_user(session, args.username)
        if user is None:
            print(f"error: no user {args.username!r}", file=sys.stderr)
            return 1
        auth_store.add_api_token(
            session, user, args.name, auth_config(settings).digest("token", token)
        )
    print(token)
    return 0


def register(commands: CommandGroups) -> None:
    """Attach `smartgate users add|list|remove|token`."""
    from central.auth_store import Role

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
    token = sub.add_parser("token", help="create an API token for a user (printed once)")
    token.add_argument("username")
    token.add_argument("--name", default="machine", help="what the token is for")
    token.set_defaults(func=add_token)
