"""Shared fixtures: real MQTT brokers (Debian's mosquitto, embedded amqtt) on free ports."""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import settings
from sqlalchemy import create_engine, text

from tools.broker import EmbeddedBroker, Mosquitto, free_port, mosquitto_binary
from tools.postgres import postgres_bin

REPO = Path(__file__).resolve().parents[1]
POSTGRES_BIN = postgres_bin()  # highest installed version (or SMARTGATE_POSTGRES_BIN)
SHARED_DATA = REPO.parent / "shared" / "data"

# Property tests assert outcomes, never durations: no per-example deadline (a shared 2-core
# machine makes any example slow now and then). Each test's own @settings keep their counts.
settings.register_profile("smartgate", deadline=None)
settings.load_profile("smartgate")


def wait_until(condition: Callable[[], bool], timeout_s: float = 15.0) -> bool:
    """Poll `condition` every 50 ms until it holds (True) or `timeout_s` passes (False)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A fresh persistent mosquitto broker on a free loopback port (skips when not installed)."""
    if mosquitto_binary() is None:
        pytest.skip("mosquitto is not installed (scripts/test installs it)")
    broker = Mosquitto(tmp_path / "mosquitto").start()
    yield broker
    broker.stop()


@pytest.fixture
def amqtt_broker() -> Iterator[EmbeddedBroker]:
    """The embedded amqtt broker on a free loopback port."""
    broker = EmbeddedBroker().start()
    yield broker
    broker.stop()


@pytest.fixture
def shared_data() -> Path:
    """../shared/data, or skip when the evaluation photos are absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"evaluation data not found at {SHARED_DATA}")
    return SHARED_DATA


def _as_postgres_user() -> list[str]:
    """Command prefix that runs the PostgreSQL server unprivileged (it refuses to run as root)."""
    if os.geteuid() != 0:
        return []
    runuser = shutil.which("runuser")
    if runuser is None:
        pytest.skip("running as root without runuser: cannot start PostgreSQL unprivileged")
    return [runuser, "-u", "postgres", "--"]


def _wait_postgres(port: int, timeout_s: float = 30.0) -> None:
    import psycopg

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres",
                            connect_timeout=2).close()
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A throwaway PostgreSQL cluster (the highest installed version) for the session; yields
    the URL of its `postgres` DB.

    Tests that need a clean database create their own in it. Skips when the binaries are absent.
    """
    if POSTGRES_BIN is None or not (POSTGRES_BIN / "initdb").exists():
        pytest.skip(f"PostgreSQL binaries not found (/usr/lib/postgresql/*/bin: {POSTGRES_BIN})")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("psycopg is not installed (pip install 'smartgate[postgres]')")
    prefix = _as_postgres_user()
    folder = Path(tempfile.mkdtemp(prefix="smartgate-pg-"))
    if prefix:
        shutil.chown(folder, "postgres", "postgres")
    data = folder / "data"
    port = free_port()
    subprocess.run(
        [*prefix, str(POSTGRES_BIN / "initdb"), "-D", str(data), "-U", "postgres",
         "--auth=trust", "-E", "UTF8", "--no-sync"],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    server = subprocess.Popen(
        [*prefix, str(POSTGRES_BIN / "postgres"), "-D", str(data), "-p", str(port),
         "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={folder}",
         "-c", "fsync=off", "-c", "full_page_writes=off"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        _wait_postgres(port)
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        server.terminate()
        server.wait(30)
        shutil.rmtree(folder, ignore_errors=True)


_names = itertools.count()


@pytest.fixture
def pg_database(postgres_url: str) -> Iterator[str]:
    """A fresh, empty database in the session's PostgreSQL cluster."""
    name = f"smartgate_test_{next(_names)}"
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    yield postgres_url.rsplit("/", 1)[0] + f"/{name}"
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE {name} WITH (FORCE)"))
    admin.dispose()
