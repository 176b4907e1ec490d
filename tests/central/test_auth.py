"""Access control: sign-in, roles, CSRF, API tokens, session expiry and the startup check."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from central import auth, auth_store
from central.api import create_app
from central.config import CentralSettings
from central.db import make_engine, session_factory, upgrade_database
from smartgate.contract import LaneCommand

SECRET = "test-secret-key-0123456789-abcdefghijkl"
PASSWORD = "correct horse battery"


def settings_for(tmp_path: Path, **extra) -> CentralSettings:
    """Settings for a test app on a temporary SQLite database."""
    values = {
        "database_url": f"sqlite:///{tmp_path / 'central.db'}",
        "data_dir": tmp_path,
        "secret_key": SECRET,
        **extra,
    }
    return CentralSettings(**values)


def add_users(settings: CentralSettings, *names_roles: tuple[str, str]) -> None:
    """Create users (password PASSWORD) in the settings' database."""
    engine = make_engine(settings.database_url)
    upgrade_database(engine)
    with session_factory(engine)() as session, session.begin():
        for name, role in names_roles:
            auth_store.add_user(session, name, PASSWORD, role)
    engine.dispose()


def login(client: TestClient, username: str, password: str = PASSWORD) -> str:
    """Sign in through the form; returns the CSRF token of the new session."""
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    reply = client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": token},
        follow_redirects=False,
    )
    assert reply.status_code == 303, reply.text
    return re.search(r'name="csrf-token" content="([^"]+)"', client.get("/passages").text).group(1)


@pytest.fixture(autouse=True)
def fast_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cheap argon2 parameters: the production cost (about 0.5 s a hash) adds up in tests."""
    cheap = PasswordHash((Argon2Hasher(time_cost=1, memory_cost=1024, parallelism=1),))
    monkeypatch.setattr(auth_store, "PASSWORDS", cheap)


@pytest.fixture
def app_settings(tmp_path: Path) -> CentralSettings:
    settings = settings_for(tmp_path)
    add_users(settings, ("olga", "officer"), ("oscar", "operator"), ("ada", "admin"))
    return settings


@pytest.fixture
def client(app_settings: CentralSettings) -> Iterator[TestClient]:
    app = create_app(app_settings, start_ingest=False)
    sent: list[LaneCommand] = []
    with TestClient(app, base_url="https://testserver") as c:
        app.state.outbox = type(app.state.outbox)(sent.append, app.state.events)
        c.sent = sent  # type: ignore[attr-defined]
        yield c


PAGES = ["/review", "/dashboard", "/passages", "/passages/nope"]
APIS = ["/api/passages", "/api/review", "/api/stats/lanes", "/api/dashboard/stats"]


@pytest.mark.parametrize("path", PAGES)
def test_anonymous_page_redirects_to_login(client: TestClient, path: str) -> None:
    reply = client.get(path, headers={"Accept": "text/html"}, follow_redirects=False)
    assert reply.status_code == 303
    assert reply.headers["location"].startswith("/login?next=")


def test_home_sends_anyone_signed_out_to_login_then_to_their_page(client: TestClient) -> None:
    for headers in ({"Accept": "text/html"}, {}):
        reply = client.get("/", headers=headers, follow_redirects=False)
        assert (reply.status_code, reply.headers["location"]) == (303, "/login")
    login(client, "oscar")
    assert client.get("/", follow_redirects=False).headers["location"] == "/dashboard"


@pytest.mark.parametrize("path", APIS + ["/events"])
def test_anonymous_api_gets_401(client: TestClient, path: str) -> None:
    reply = client.get(path)
    assert reply.status_code == 401
    assert reply.headers["www-authenticate"] == "Bearer"


def test_wrong_password_is_refused(client: TestClient) -> None:
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    reply = client.post(
        "/login", data={"username": "olga", "password": "wrong-password", "csrf_token": token}
    )
    assert reply.status_code == 401
    assert auth.SESSION_COOKIE not in client.cookies


def _try_login(client: TestClient, username: str, password: str):  # type: ignore[no-untyped-def]
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text).group(1)
    return client.post("/login", data={"username": username, "password": password,
                                       "csrf_token": token}, follow_redirects=False)  # fmt: skip


def test_repeated_failures_are_throttled(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    now = [1000.0]
    client.app.state.login_throttle = auth.LoginThrottle(clock=lambda: now[0])
    for _ in range(auth.MAX_FAILED_LOGINS):
        assert _try_login(client, "olga", "wrong-password").status_code == 401
    refused = _try_login(client, "olga", PASSWORD)  # the right password, too late
    assert refused.status_code == 429 and auth.SESSION_COOKIE not in client.cookies
    assert int(refused.headers["retry-after"]) == auth.FAILED_LOGIN_WINDOW_S
    assert "15 phút" in refused.text
    assert "too many failures" in caplog.text
    assert _try_login(client, "oscar", PASSWORD).status_code == 303  # another name: not locked
    client.cookies.clear()
    now[0] += auth.FAILED_LOGIN_WINDOW_S - 60
    assert int(_try_login(client, "olga", PASSWORD).headers["retry-after"]) == 60
    now[0] += 61
    assert _try_login(client, "olga", PASSWORD).status_code == 303


def test_throttle_is_per_name_and_address_and_forgets_on_success() -> None:
    now = [0.0]
    throttle = auth.LoginThrottle(limit=3, window_s=100, clock=lambda: now[0], address_limit=5)
    for _ in range(3):
        assert throttle.begin("olga", "10.0.0.1") == 0  # three wrong guesses
        now[0] += 10
    assert throttle.begin("OLGA", "10.0.0.1") == 70  # that name from that address waits
    assert throttle.begin("olga", "10.0.0.2") == 0  # the real user elsewhere is not locked out
    throttle.succeeded("olga", "10.0.0.2")
    assert throttle.begin("oscar", "10.0.0.1") == 0
    throttle.succeeded("oscar", "10.0.0.1")  # a success does not clear the address's count
    assert throttle.begin("x", "10.0.0.1") == 0  # the address's 4th and 5th failures
    assert throttle.begin("y", "10.0.0.1") == 0
    assert throttle.begin("new", "10.0.0.1") == 70  # the address, for any name
    now[0] += 71
    assert throttle.begin("olga", "10.0.0.1") == 0  # the oldest failures aged out


def test_login_form_needs_its_csrf_token(client: TestClient) -> None:
    client.get("/login")
    reply = client.post("/login", data={"username": "olga", "password": PASSWORD})
    assert reply.status_code == 403
    assert auth.SESSION_COOKIE not in client.cookies


def test_session_cookie_flags(client: TestClient) -> None:
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    reply = client.post(
        "/login",
        data={"username": "olga", "password": PASSWORD, "csrf_token": token},
        follow_redirects=False,
    )
    cookie = next(v for k, v in reply.headers.multi_items()
                  if k == "set-cookie" and v.startswith(auth.SESSION_COOKIE))  # fmt: skip
    assert "HttpOnly" in cookie and "Secure" in cookie and "SameSite=lax" in cookie
    assert reply.headers["location"] == "/review"


def test_open_redirect_is_refused(client: TestClient) -> None:
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    reply = client.post(
        "/login",
        data={"username": "oscar", "password": PASSWORD, "csrf_token": token,
              "next": "//evil.example/"},
        follow_redirects=False,
    )  # fmt: skip
    assert reply.headers["location"] == "/dashboard"


@pytest.mark.parametrize(
    ("user", "path", "status"),
    [
        ("oscar", "/review", 403),
        ("oscar", "/review/rows", 403),
        ("oscar", "/passages/x/images/y", 403),
        ("oscar", "/dashboard", 200),
        ("oscar", "/api/dashboard/stats", 200),
        ("olga", "/review", 200),
        ("olga", "/dashboard", 200),
        ("olga", "/api/declarations", 200),
        ("ada", "/review", 200),
        ("ada", "/dashboard", 200),
    ],
)
def test_roles(client: TestClient, user: str, path: str, status: int) -> None:
    login(client, user)
    assert client.get(path).status_code == status


@pytest.mark.parametrize(("user", "status"), [("olga", 403), ("oscar", 403), ("ada", 404)])
def test_only_admin_deletes_declarations(client: TestClient, user: str, status: int) -> None:
    csrf = login(client, user)
    reply = client.delete("/api/declarations/NOPE-1", headers={auth.CSRF_HEADER: csrf})
    assert reply.status_code == status


def test_operator_cannot_decide(client: TestClient) -> None:
    csrf = login(client, "oscar")
    reply = client.post("/passages/abc/decision", data={"action": "approve", "csrf_token": csrf})
    assert reply.status_code == 403


def test_state_change_without_csrf_is_403(client: TestClient) -> None:
    login(client, "olga")
    reply = client.post("/passages/abc/decision", data={"action": "approve"})
    assert reply.status_code == 403
    assert "CSRF" in reply.json()["detail"]
    reply = client.post("/api/passages/abc/decision", json={"verdict": "approve"})
    assert reply.status_code == 403


def test_state_change_with_csrf_reaches_the_route(client: TestClient) -> None:
    csrf = login(client, "olga")
    reply = client.post("/passages/abc/decision", data={"action": "approve", "csrf_token": csrf})
    assert reply.status_code == 404  # authorised; the passage does not exist
    reply = client.post(
        "/api/passages/abc/decision", json={"verdict": "approve"},
        headers={auth.CSRF_HEADER: csrf},
    )  # fmt: skip
    assert reply.status_code == 404


def test_logout_ends_the_session(client: TestClient) -> None:
    csrf = login(client, "olga")
    assert (
        client.post("/logout", data={"csrf_token": csrf}, follow_redirects=False).status_code == 303
    )
    assert client.get("/api/passages").status_code == 401


def test_expired_session_is_refused(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, session_hours=0.5)  # expired below by moving it back 1 h
    add_users(settings, ("olga", "officer"))
    with TestClient(create_app(settings, start_ingest=False), base_url="https://testserver") as c:
        login(c, "olga")
        assert c.get("/api/passages").status_code == 200
        with c.app.state.sessions() as session, session.begin():
            for row in session.scalars(auth_store.select(auth_store.WebSession)):
                row.expires_at -= timedelta(hours=1)
        assert c.get("/api/passages").status_code == 401


def test_api_token_needs_no_csrf_and_keeps_its_role(client: TestClient) -> None:
    config = client.app.state.auth
    with client.app.state.sessions() as session, session.begin():
        user = auth_store.get_user(session, "oscar")
        auth_store.add_api_token(session, user, "ci", config.digest("token", "tok-123"))
    bearer = {"Authorization": "Bearer tok-123"}
    assert client.get("/api/passages", headers=bearer).status_code == 200
    assert client.post("/passages/abc/decision", data={"action": "approve"},
                       headers=bearer).status_code == 403  # fmt: skip
    assert client.get("/api/passages", headers={"Authorization": "Bearer nope"}).status_code == 401


def test_pages_send_a_content_security_policy(client: TestClient) -> None:
    page = client.get("/login")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "<script>" not in page.text  # no inline scripts: everything comes from /static


def test_language_switch(client: TestClient) -> None:
    assert "Đăng nhập" in client.get("/login").text
    assert "Sign in" in client.get("/login?lang=en").text
    assert "Sign in" in client.get("/login").text  # remembered in a cookie


@pytest.mark.parametrize(
    ("extra", "users", "message"),
    [
        ({"secret_key": None}, [], "secret_key"),
        ({"secret_key": "short"}, [], "secret_key"),
        ({}, [("admin", "admin")], "default password"),
        ({}, [("root", "root")], "default password"),
        ({}, [("demo", "demo")], "demo account"),
    ],
)
def test_refuses_to_start_insecure(tmp_path: Path, extra, users, message) -> None:
    settings = settings_for(tmp_path, **extra)
    engine = make_engine(settings.database_url)
    upgrade_database(engine)
    with session_factory(engine)() as session, session.begin():
        for name, _ in users:
            session.add(auth_store.User(
                username=name, password_hash=auth_store.PASSWORDS.hash(name), role="admin",
                active=True, is_demo=name == "demo",
            ))  # fmt: skip
    engine.dispose()
    app = create_app(settings, start_ingest=False)
    with pytest.raises(auth.InsecureConfigError, match=message), TestClient(app):
        pass


def test_demo_mode_allows_demo_account_and_no_key(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, secret_key=None, demo_mode=True)
    with TestClient(create_app(settings, start_ingest=False), base_url="https://testserver") as c:
        username, password = auth_store.ensure_demo_user(c.app.state.sessions)
        login(c, username, password)
        assert c.get("/review").status_code == 200
        again = auth_store.ensure_demo_user(c.app.state.sessions)
        assert again[1] != password  # a fresh password each run


def test_weak_passwords_are_refused() -> None:
    with pytest.raises(auth_store.UserError, match="at least"):
        auth_store.check_password_strength("bob", "short")
    with pytest.raises(auth_store.UserError, match="differ"):
        auth_store.check_password_strength("administrator", "Administrator")


def test_unknown_role_in_require_role() -> None:
    with pytest.raises(ValueError, match="unknown roles"):
        auth.require_role("janitor")
