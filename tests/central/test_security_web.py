"""Issue 16, web and API: what an anonymous or signed-in attacker can do to central over HTTP.

Central runs as `smartgate central run` (uvicorn, the settings central runs with) in a
subprocess; the tests speak raw HTTP to it. They check outcomes (status codes, streams that
end, bytes that were never read, memory that did not grow), never durations.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import pytest
from fastapi.testclient import TestClient

from central import auth, auth_store, store
from central.api import create_app
from central.config import CentralSettings
from central.db import make_engine, session_factory, upgrade_database
from central.domain.declarations import Declaration, write_csv
from smartgate.cli import main as smartgate
from smartgate.contract import PassageEvent
from tools.broker import free_port
from tools.synth.declarations import generate_declarations

SECRET = "a9Fq2LmX7pR4tW8zB1nC6vK3sD0hJ5gY"
METRICS_TOKEN = "scrape-8f3a1c9e7b2d4f60"
PASSWORD = "correct horse battery"
MiB = 1024 * 1024


# --------------------------------------------------------------------------------------------
# central under uvicorn, and a small HTTP client with cookies and a chosen source address
# --------------------------------------------------------------------------------------------


def _add_users(url: str, *names_roles: tuple[str, str]) -> None:
    engine = make_engine(url)
    upgrade_database(engine)
    with session_factory(engine)() as session, session.begin():
        for name, role in names_roles:
            auth_store.add_user(session, name, PASSWORD, role)
    engine.dispose()


@dataclass
class Central:
    """A running `smartgate central run`."""

    proc: subprocess.Popen
    port: int
    database_url: str
    db_path: Path

    def rss_mib(self) -> float:
        """The server process's resident memory now."""
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) / 1024

    def sessions(self):  # type: ignore[no-untyped-def]
        """A session factory on the server's database (this process's own engine)."""
        return session_factory(make_engine(self.database_url))


@pytest.fixture(scope="module")
def central(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Central]:
    tmp = tmp_path_factory.mktemp("central")
    db_path = tmp / "central.db"
    url = f"sqlite:///{db_path}"
    _add_users(url, ("olga", "officer"), ("uma", "officer"), ("tara", "officer"),
               ("ada", "admin"))  # fmt: skip
    port = free_port()
    env = {
        **os.environ,
        "SMARTGATE_CENTRAL_DATABASE_URL": url,
        "SMARTGATE_CENTRAL_SECRET_KEY": SECRET,
        "SMARTGATE_CENTRAL_COOKIE_SECURE": "false",
        "SMARTGATE_CENTRAL_MQTT_PORT": str(free_port()),  # no broker: ingest keeps retrying
        "SMARTGATE_CENTRAL_DATA_DIR": str(tmp),
        "SMARTGATE_CENTRAL_METRICS_TOKEN": METRICS_TOKEN,
    }
    env.pop("SMARTGATE_CENTRAL_FORWARDED_ALLOW_IPS", None)
    log = (tmp / "central.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "smartgate.cli", "central", "run", "--host", "127.0.0.1",
         "--port", str(port)],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if Client(port).request("GET", "/api/health")[0] == 200:
                break
        except OSError:
            time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("central did not start:\n" + (tmp / "central.log").read_text()[-3000:])
    yield Central(proc, port, url, db_path)
    proc.terminate()
    proc.wait(30)
    log.close()


class Client:
    """HTTP/1.1 over http.client: one connection per request, cookies kept, a chosen source
    address (any 127.0.0.0/8 address reaches a server on 127.0.0.1)."""

    def __init__(self, port: int, source: str = "127.0.0.1") -> None:
        self.port = port
        self.source = source
        self.cookies: dict[str, str] = {}

    def connect(self, timeout: float = 30) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout,
                                          source_address=(self.source, 0))  # fmt: skip

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        cookie = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        return {**({"Cookie": cookie} if cookie else {}), **(extra or {})}

    def keep_cookies(self, reply: http.client.HTTPResponse) -> None:
        for header in reply.headers.get_all("set-cookie") or []:
            name, _, rest = header.partition("=")
            value = rest.split(";", 1)[0]
            if value in ("", '""') or "Max-Age=0" in header:
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value

    def request(
        self, method: str, path: str, body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, http.client.HTTPMessage, bytes]:  # fmt: skip
        conn = self.connect()
        try:
            conn.request(method, path, body=body, headers=self.headers(headers))
            reply = conn.getresponse()
            data = reply.read()
            self.keep_cookies(reply)
            return reply.status, reply.headers, data
        finally:
            conn.close()

    def login_form(self) -> str:
        page = self.request("GET", "/login")[2].decode()
        return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)

    def post_login(self, username: str, password: str, token: str,
                   headers: dict[str, str] | None = None) -> int:  # fmt: skip
        body = urlencode({"username": username, "password": password, "csrf_token": token})
        form = {"Content-Type": "application/x-www-form-urlencoded", **(headers or {})}
        return self.request("POST", "/login", body.encode(), form)[0]

    def login(self, username: str, password: str = PASSWORD) -> str:
        """Sign in; returns the session's CSRF token."""
        assert self.post_login(username, password, self.login_form()) == 303
        page = self.request("GET", "/passages")[2].decode()
        return re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)


def raw_exchange(
    port: int, head: bytes, chunks: Iterable[bytes] = ()
) -> tuple[int | None, int]:
    """Send a request head, then body chunks until the server answers or drops the connection.

    Returns (the status the server answered, or None when it only closed; body bytes sent).
    """
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sent = 0
    reply = b""
    try:
        sock.sendall(head)
        for chunk in chunks:
            sock.settimeout(0)
            try:
                reply += sock.recv(65536)
                break  # the server answered before the body was done
            except BlockingIOError:
                pass
            finally:
                sock.settimeout(30)
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
        try:
            while b"\r\n\r\n" not in reply:
                data = sock.recv(65536)
                if not data:
                    break
                reply += data
        except ConnectionResetError:
            pass
    finally:
        sock.close()
    match = re.match(rb"HTTP/1\.1 (\d{3})", reply)
    return (int(match.group(1)) if match else None), sent


def _chunked(total: int, first: bytes = b"", size: int = 64 * 1024) -> Iterator[bytes]:
    """`total` bytes in HTTP chunks: `first`, then filler."""
    piece = b"x" * size
    if first:
        yield b"%x\r\n%s\r\n" % (len(first), first)
    for _ in range(total // size):
        yield b"%x\r\n%s\r\n" % (size, piece)


FILE_PART = (b'--b\r\nContent-Disposition: form-data; name="f"; filename="a.bin"\r\n'
             b"Content-Type: application/octet-stream\r\n\r\n")  # a file: no part-size cap


# --------------------------------------------------------------------------------------------
# 3. request bodies: capped per route, and nobody's body read before they are authenticated
# --------------------------------------------------------------------------------------------


def test_oversized_declared_bodies_are_refused_before_a_byte_is_read(central: Central) -> None:
    def head(method: str, path: str, length: int, kind: str) -> bytes:
        return (f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {kind}\r\n"
                f"Content-Length: {length}\r\n\r\n").encode()  # fmt: skip

    form = "multipart/form-data; boundary=b"
    # the head alone: an answer proves the server did not wait for the body
    assert raw_exchange(central.port, head("POST", "/login", 300 * MiB, form)) == (413, 0)
    assert raw_exchange(central.port, head("POST", "/api/declarations", 150 * MiB,
                                           "application/json")) == (413, 0)  # fmt: skip
    # under the import cap but anonymous: refused for who it is, its body never read
    assert raw_exchange(central.port, head("POST", "/api/declarations", 8 * MiB,
                                           "application/json")) == (401, 0)  # fmt: skip
    assert raw_exchange(central.port, head("POST", "/api/declarations/import", 500 * MiB,
                                           form)) == (401, 0)  # fmt: skip
    assert raw_exchange(central.port, head("POST", "/passages/x/decision", 64 * MiB,
                                           form)) == (413, 0)  # fmt: skip


def test_a_streamed_body_is_cut_off_at_the_cap(central: Central) -> None:
    before = central.rss_mib()
    head = (b"POST /login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
            b"Content-Type: multipart/form-data; boundary=b\r\n\r\n")  # fmt: skip
    status, sent = raw_exchange(central.port, head, _chunked(300 * MiB, FILE_PART))
    assert status in (413, None)  # 413, or the connection dropped before we could read it
    assert sent < 32 * MiB, f"the server kept reading: {sent / MiB:.0f} MiB went in"
    assert central.rss_mib() - before < 64, "central's memory grew with the refused body"
    assert Client(central.port).request("GET", "/login")[0] == 200  # and it is still serving


def test_anonymous_json_body_is_not_parsed(central: Central) -> None:
    """The 150 MiB JSON of the issue, sent in full: refused, and central did not grow."""
    before = central.rss_mib()
    head = (b"POST /api/declarations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n")  # fmt: skip
    status, sent = raw_exchange(central.port, head, _chunked(150 * MiB))
    assert status == 401 and sent < 32 * MiB
    assert central.rss_mib() - before < 64


# --------------------------------------------------------------------------------------------
# 8. sign-in throttling
# --------------------------------------------------------------------------------------------


def test_parallel_guesses_with_forged_addresses_get_five_tries(central: Central) -> None:
    clients = [Client(central.port) for _ in range(40)]
    tokens = [c.login_form() for c in clients]
    start = threading.Barrier(len(clients))
    statuses: list[int] = []

    def guess(i: int) -> None:
        start.wait()
        forged = {"X-Forwarded-For": f"10.66.{i}.7", "X-Real-IP": f"10.66.{i}.7"}
        statuses.append(clients[i].post_login("tara", f"guess-{i:04d}-x", tokens[i], forged))

    threads = [threading.Thread(target=guess, args=(i,)) for i in range(len(clients))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sorted(statuses) == [401] * auth.MAX_FAILED_LOGINS + [429] * (
        len(clients) - auth.MAX_FAILED_LOGINS
    ), statuses
    # the attacker's address stays refused, even with the right password ...
    attacker = Client(central.port)
    assert attacker.post_login("tara", PASSWORD, attacker.login_form()) == 429
    # ... but the real user, elsewhere, is not locked out
    Client(central.port, source="127.0.0.2").login("tara")


# --------------------------------------------------------------------------------------------
# 9. the live stream ends with its session
# --------------------------------------------------------------------------------------------


def _end_session(central: Central, how: str, user: Client, csrf: str, name: str) -> None:
    if how == "logout":
        body = urlencode({"csrf_token": csrf}).encode()
        status = user.request("POST", "/logout", body,
                              {"Content-Type": "application/x-www-form-urlencoded"})[0]
        assert status == 303
        return
    with central.sessions()() as session, session.begin():
        row = auth_store.get_user(session, name)
        if how == "removal":
            session.delete(row)
        else:  # expiry
            for web in session.scalars(auth_store.select(auth_store.WebSession)
                                       .where(auth_store.WebSession.user_id == row.id)):
                web.expires_at = datetime.now(UTC) - timedelta(seconds=1)


@pytest.mark.parametrize(("how", "name"), [("logout", "olga"), ("expiry", "olga"),
                                           ("removal", "uma")])  # fmt: skip
def test_live_stream_ends_soon_after_its_session(central: Central, how: str, name: str) -> None:
    user = Client(central.port)
    csrf = user.login(name)
    conn = user.connect(timeout=30)
    conn.request("GET", "/events", headers=user.headers({"Accept": "text/event-stream"}))
    stream = conn.getresponse()
    assert stream.status == 200
    assert stream.readline().startswith(b"retry:")
    _end_session(central, how, user, csrf, name)
    # the old stream re-checked only after 10 s without events; now it ends within ~2 s
    conn.sock.settimeout(6)
    try:
        while stream.readline():
            pass
    except TimeoutError:
        pytest.fail(f"the live stream outlived the session ({how}) by 6 s")
    finally:
        conn.close()
    assert user.request("GET", "/events", headers={"Accept": "text/event-stream"})[0] == 401


# --------------------------------------------------------------------------------------------
# 13. large declaration imports: streamed, in committed batches, ingest gets through
# --------------------------------------------------------------------------------------------


def _passage(event_id: str) -> PassageEvent:
    now = datetime.now(UTC)
    return PassageEvent(event_id=event_id, site="huunghi", lane="L1", node_id="edge1",
                        direction="entry", started_at=now - timedelta(seconds=20),
                        ended_at=now)  # fmt: skip


def _peak_rss_mib(proc: subprocess.Popen) -> float:
    try:
        status = Path(f"/proc/{proc.pid}/status").read_text()
    except OSError:
        return 0.0
    found = re.search(r"VmHWM:\s+(\d+) kB", status)
    return int(found.group(1)) / 1024 if found else 0.0


def _import(csv_path: Path, url: str, during=None) -> tuple[int, float, list]:  # type: ignore[no-untyped-def]
    """Run `smartgate declarations import` as a process; `during(proc)` runs while it does.
    Returns (exit status, its peak memory in MiB, what `during` returned)."""
    env = {**os.environ, "SMARTGATE_CENTRAL_DATABASE_URL": url}
    proc = subprocess.Popen([sys.executable, "-m", "smartgate.cli", "declarations", "import",
                             str(csv_path)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)  # fmt: skip
    result = during(proc) if during else []
    peak = 0.0
    while proc.poll() is None:
        peak = max(peak, _peak_rss_mib(proc))
        time.sleep(0.05)
    out, err = proc.communicate()
    assert b"Traceback" not in err, err.decode()[-2000:]
    return proc.returncode, peak, result


def test_a_large_import_lets_passages_in_and_keeps_memory_flat(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'central.db'}"
    upgrade_database(make_engine(url))
    small, big = tmp_path / "small.csv", tmp_path / "big.csv"
    with small.open("w") as out:
        write_csv(generate_declarations(200, seed=1), out)
    with big.open("w") as out:
        rows = write_csv(generate_declarations(50_000, seed=2), out)
    sessions = session_factory(make_engine(url))

    def count() -> int:
        with sessions() as session:
            return store.count_declarations(session)

    def insert_passages(proc: subprocess.Popen) -> list[tuple[int, bool]]:
        """Store passages the way ingest does while the import runs: (declarations in the
        database when each committed, whether the import was still running)."""
        while count() <= 200 and proc.poll() is None:  # until its first batch is in
            time.sleep(0.05)
        seen = []
        for i in range(3):
            with sessions() as session, session.begin():
                store.add_passage(session, _passage(f"evt-during-{i:04d}"))
            seen.append((count(), proc.poll() is None))
            time.sleep(0.3)
        return seen

    status, small_peak, _ = _import(small, url)
    assert status == 0
    status, big_peak, seen = _import(big, url, insert_passages)
    assert status == 0 and count() == 200 + rows
    assert any(running and 200 < n < 200 + rows for n, running in seen), (
        f"no passage got in while the import was running: {seen}"
    )
    print(f"import peak memory: 200 rows {small_peak:.0f} MiB, {rows} rows {big_peak:.0f} MiB; "
          f"passages stored during it (declarations in, import running): {seen}")
    assert big_peak - small_peak < 60, (small_peak, big_peak)  # 50k rows held: +100 MiB or more


def test_csv_upload_streams_and_reports_bad_rows(central: Central, tmp_path: Path) -> None:
    admin = Client(central.port)
    csrf = admin.login("ada")
    decls = list(generate_declarations(3000, seed=3))
    path = tmp_path / "upload.csv"
    with path.open("w") as out:
        write_csv(decls, out)
        row = decls[0].model_copy(update={"number": "NUL0000001", "company": "A\x00B"})
        out.write(",".join(f'"{v}"' for v in _row(row)) + "\n")
        out.write('"' + "z" * 200_000 + '",import\n')  # over the csv module's 128 KiB limit
    boundary = "sgboundary7f3e"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"upload.csv\"\r\nContent-Type: text/csv\r\n\r\n").encode()  # fmt: skip
    body += path.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    status, _, reply = admin.request("POST", "/api/declarations/import", body, {
        "Content-Type": f"multipart/form-data; boundary={boundary}", auth.CSRF_HEADER: csrf,
    })  # fmt: skip
    assert status == 200, reply
    report = json.loads(reply)
    assert report["created"] == 3000 and report["bad_rows"] == 2
    reasons = " / ".join(e["reason"] for e in report["errors"])
    assert "control character" in reasons and "field limit" in reasons


def _row(decl: Declaration) -> list[str]:
    from central.domain.declarations import to_csv_row

    return list(to_csv_row(decl).values())


def test_cli_import_reports_a_huge_cell_as_a_bad_row(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "d.csv"
    with path.open("w") as out:
        write_csv(generate_declarations(3, seed=4), out)
        out.write('"' + "q" * 200_000 + '",import\n')
    url = f"sqlite:///{tmp_path / 'c.db'}"
    assert smartgate(["declarations", "import", str(path), "--database-url", url]) == 1
    captured = capsys.readouterr()
    assert "field larger than field limit" in captured.err and "Traceback" not in captured.err
    assert "3 created" in captured.out and "1 bad rows" in captured.out


# --------------------------------------------------------------------------------------------
# 10. API tokens: scopes, expiry, revocation (CLI and API)
# --------------------------------------------------------------------------------------------


@pytest.fixture
def token_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("SMARTGATE_CENTRAL_SECRET_KEY", SECRET)
    settings = CentralSettings(database_url=f"sqlite:///{tmp_path / 'c.db'}", secret_key=SECRET,
                               data_dir=tmp_path)  # fmt: skip
    _add_users(settings.database_url, ("ada", "admin"), ("oscar", "operator"))
    with TestClient(create_app(settings, start_ingest=False), base_url="https://t") as client:
        yield client


def _cli_token(url: str, capsys, *args: str) -> str:  # type: ignore[no-untyped-def]
    assert smartgate(["users", "--database-url", url, "token", "add", *args]) == 0
    return capsys.readouterr().out.strip()


def test_cli_tokens_scope_list_revoke_and_expire(token_app: TestClient, capsys) -> None:  # type: ignore[no-untyped-def]
    url = token_app.app.state.settings.database_url
    read = _cli_token(url, capsys, "ada", "--name", "exporter", "--scope", "read", "--days", "30")
    bearer = {"Authorization": f"Bearer {read}"}
    assert token_app.get("/api/passages", headers=bearer).status_code == 200
    assert token_app.post("/api/declarations", json=[], headers=bearer).status_code == 403
    assert smartgate(["users", "--database-url", url, "token", "list"]) == 0
    listing = capsys.readouterr().out
    assert re.search(r"^1\tada\texporter\tread\t\S+\t\S+\tactive$", listing, re.M), listing
    assert read not in listing  # only digests are stored
    with token_app.app.state.sessions() as session:
        (stored, _), = auth_store.list_tokens(session)
        assert stored.token_digest != read and read not in stored.token_digest
    assert smartgate(["users", "--database-url", url, "token", "revoke", "1"]) == 0
    capsys.readouterr()
    assert token_app.get("/api/passages", headers=bearer).status_code == 401

    full = _cli_token(url, capsys, "oscar", "--expires", "2999-01-01")
    assert token_app.get("/api/passages", headers={"Authorization": f"Bearer {full}"}).status_code == 200
    with token_app.app.state.sessions() as session, session.begin():
        for token, _ in auth_store.list_tokens(session, "oscar"):
            token.expires_at = datetime.now(UTC) - timedelta(minutes=1)
    assert token_app.get("/api/passages", headers={"Authorization": f"Bearer {full}"}).status_code == 401
    assert smartgate(["users", "--database-url", url, "token", "list", "--user", "oscar"]) == 0
    assert capsys.readouterr().out.rstrip().endswith("expired")
    assert smartgate(["users", "--database-url", url, "token", "add", "ada",
                      "--expires", "2001-01-01"]) == 1  # fmt: skip
    assert "in the past" in capsys.readouterr().err


def test_api_tokens_for_admins(token_app: TestClient) -> None:
    bootstrap = token_app.app.state.auth.digest("token", "admin-full-token")
    with token_app.app.state.sessions() as session, session.begin():
        auth_store.add_api_token(session, auth_store.get_user(session, "ada"), "boot", bootstrap)
    admin = {"Authorization": "Bearer admin-full-token"}
    made = token_app.post("/api/tokens", headers=admin, json={
        "username": "oscar", "name": "edge-01", "scope": "edge-ingest", "days": 90,
    })  # fmt: skip
    assert made.status_code == 201, made.text
    edge = {"Authorization": f"Bearer {made.json()['token']}"}
    assert made.json()["scope"] == "edge-ingest" and made.json()["active"]
    assert token_app.get("/api/passages", headers=edge).status_code == 403  # reads nothing
    assert token_app.get("/api/tokens", headers=edge).status_code == 403
    listed = token_app.get("/api/tokens", headers=admin).json()
    assert [t["name"] for t in listed] == ["boot", "edge-01"]
    assert all("token" not in t for t in listed)
    token_id = made.json()["id"]
    assert token_app.post(f"/api/tokens/{token_id}/revoke", headers=admin).json()["revoked"]
    assert token_app.get("/api/passages", headers=edge).status_code == 401
    # a read-only token of the admin cannot mint itself a full one
    read = token_app.post("/api/tokens", headers=admin,
                          json={"username": "ada", "scope": "read"}).json()["token"]  # fmt: skip
    escalate = token_app.post("/api/tokens", headers={"Authorization": f"Bearer {read}"},
                              json={"username": "ada"})  # fmt: skip
    assert escalate.status_code == 403
    assert auth.scope_allows("edge-ingest", "PUT", edge_ingest=True)
    assert not auth.scope_allows("read", "PUT", edge_ingest=True)


# --------------------------------------------------------------------------------------------
# low: caching, docs, metrics, the database file, secret keys, declaration text
# --------------------------------------------------------------------------------------------


def test_no_store_on_pages_and_api_but_not_on_static(central: Central) -> None:
    user = Client(central.port)
    user.login("ada")
    for path in ("/review", "/passages", "/api/passages", "/api/declarations", "/login"):
        assert user.request("GET", path)[1]["cache-control"] == "no-store", path
    assert user.request("GET", "/static/app.css")[1].get("cache-control") != "no-store"


def test_api_docs_are_served_locally(central: Central) -> None:
    client = Client(central.port)
    status, _, page = client.request("GET", "/docs")
    assert status == 200 and b"https://" not in page and b"http://" not in page
    for asset in re.findall(rb'(?:src|href)="(/[^"]+)"', page):
        assert client.request("GET", asset.decode())[0] == 200, asset
    assert client.request("GET", "/openapi.json")[0] == 200


def test_metrics_and_health_details_need_a_credential(central: Central) -> None:
    anonymous = Client(central.port)
    assert anonymous.request("GET", "/metrics")[0] == 401
    status, _, body = anonymous.request("GET", "/api/health")
    assert status == 200 and set(json.loads(body)) == {"status"}
    scraper = {"Authorization": f"Bearer {METRICS_TOKEN}"}
    status, _, body = anonymous.request("GET", "/metrics", headers=scraper)
    assert status == 200 and b"smartgate_central" in body
    assert "ingest" in json.loads(anonymous.request("GET", "/api/health", headers=scraper)[2])
    wrong = {"Authorization": "Bearer scrape-0000000000000000"}
    assert anonymous.request("GET", "/metrics", headers=wrong)[0] == 401


def test_database_file_is_private(central: Central) -> None:
    assert central.db_path.stat().st_mode & 0o077 == 0
    wal = central.db_path.with_name(central.db_path.name + "-wal")
    assert not wal.exists() or wal.stat().st_mode & 0o077 == 0


@pytest.mark.parametrize("key", [
    "short-key",
    "09d25e094faa6ca2556c818166b7a9563b93f7099f6f0f4caa6cf63b88e8d3e7",  # FastAPI's tutorial
    "CHANGE_ME_TO_A_COMPLEX_RANDOM_SECRET",  # Superset's default
    "please-changeme-to-something-long-and-random",
    "a" * 40,
])  # fmt: skip
def test_weak_secret_keys_refuse_to_start(tmp_path: Path, key: str) -> None:
    assert auth.weak_secret(key) is not None
    settings = CentralSettings(database_url=f"sqlite:///{tmp_path / 'c.db'}", secret_key=key)
    with pytest.raises(auth.InsecureConfigError, match="secret_key"), \
            TestClient(create_app(settings, start_ingest=False)):
        pass
    assert auth.weak_secret(SECRET) is None


def test_declaration_text_refuses_control_characters() -> None:
    good = next(iter(generate_declarations(1, seed=5))).model_dump()
    for field, value in (("company", "ACME\x00 Ltd"), ("lane_group", "car\x1bgo"),
                         ("seals", ["S\x071234"])):  # fmt: skip
        with pytest.raises(ValueError, match="control character"):
            Declaration.model_validate({**good, field: value})
    Declaration.model_validate({**good, "company": "Công ty TNHH\nhai dòng"})


def test_passages_with_unusable_ids_times_or_weights_are_refused() -> None:
    from smartgate import contract

    now = datetime.now(UTC)
    good = json.loads(_passage("evt-00000042").to_json())
    assert contract.parse_passage(json.dumps(good).encode()).event_id == "evt-00000042"
    for bad_id in ("evt/../0001", "evt 00000001", "evt-0001\x00x", "é" * 8):
        with pytest.raises(contract.ContractError, match="event_id"):
            contract.parse_passage(json.dumps({**good, "event_id": bad_id}).encode())
        assert contract.event_id_of(json.dumps({**good, "event_id": bad_id}).encode()) is None
    far = {**good, "started_at": "9999-01-01T00:00:00Z", "ended_at": "9999-01-01T00:00:20Z"}
    with pytest.raises(contract.ContractError, match="future"):
        contract.parse_passage(json.dumps(far).encode())
    weight = {"gross_kg": 20_000, "axle_groups_kg": [7000, float("nan")],
              "captured_at": now.isoformat()}  # fmt: skip
    with pytest.raises(contract.ContractError, match="weight"):
        contract.parse_passage(json.dumps({**good, "weight": weight}).encode())  # NaN literal
    inf = {**weight, "axle_groups_kg": [], "gross_kg": float("inf")}
    with pytest.raises(contract.ContractError, match="weight"):
        contract.parse_passage(json.dumps({**good, "weight": inf}).encode())


def test_forwarded_headers_are_believed_only_from_configured_proxies(tmp_path: Path) -> None:
    from central.api import uvicorn_config

    plain = CentralSettings(database_url=f"sqlite:///{tmp_path / 'c.db'}", secret_key=SECRET)
    app = create_app(plain, start_ingest=False)
    config = uvicorn_config(app, plain)
    assert not config.proxy_headers and config.forwarded_allow_ips == []
    proxied = plain.model_copy(update={"forwarded_allow_ips": "127.0.0.1, 10.0.0.5"})
    config = uvicorn_config(app, proxied)
    assert config.proxy_headers and config.forwarded_allow_ips == ["127.0.0.1", "10.0.0.5"]


def test_tokens_and_batched_import_on_postgres(pg_database: str, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    """Migration 0004, token expiry/revocation and the committed-batch import on PostgreSQL."""
    monkeypatch.setenv("SMARTGATE_CENTRAL_SECRET_KEY", SECRET)
    _add_users(pg_database, ("ada", "admin"))
    settings = CentralSettings(database_url=pg_database, secret_key=SECRET)
    with TestClient(create_app(settings, start_ingest=False), base_url="https://t") as client:
        token = _cli_token(pg_database, capsys, "ada", "--scope", "read", "--days", "1")
        bearer = {"Authorization": f"Bearer {token}"}
        assert client.get("/api/declarations", headers=bearer).status_code == 200
        with client.app.state.sessions() as session, session.begin():
            (row, _), = auth_store.list_tokens(session)
            row.expires_at = datetime.now(UTC) - timedelta(seconds=1)
        assert client.get("/api/declarations", headers=bearer).status_code == 401
        with client.app.state.sessions() as session:
            counts = store.import_declarations(
                session, generate_declarations(5000, seed=6), commit_batches=True
            )
        assert counts.created == 5000
        with client.app.state.sessions() as session:
            assert store.count_declarations(session) == 5000
