"""`smartgate users token add` says which secret the token is keyed with."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from central import auth_store
from central.db import make_engine, session_factory, upgrade_database
from smartgate.cli import main
from tests.central.test_auth import fast_hashing  # noqa: F401  (autouse: cheap argon2)

SECRET = "cli-test-secret-0123456789-abcdefghijklm"


def test_token_names_the_secret_it_is_keyed_with(tmp_path: Path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'c.db'}"
    engine = make_engine(url)
    upgrade_database(engine)
    with session_factory(engine)() as session, session.begin():
        auth_store.add_user(session, "robot", "robot-password-123", "operator")
    engine.dispose()
    monkeypatch.setenv("SMARTGATE_CENTRAL_SECRET_KEY", SECRET)
    assert main(["users", "--database-url", url, "token", "add", "robot"]) == 0
    out, err = capsys.readouterr()
    assert len(out.strip()) > 30  # the token itself, alone on stdout
    fingerprint = hashlib.sha256(SECRET.encode()).hexdigest()[:12]
    assert "SMARTGATE_CENTRAL_SECRET_KEY" in err and fingerprint in err
    assert SECRET not in err + out


@pytest.mark.parametrize("flag", ["--mqtt-client-id", "--site"])
def test_central_commands_document_mqtt_identity(flag: str, capsys) -> None:  # type: ignore[no-untyped-def]
    for command in (["central", "run", "--help"], ["central", "ingest", "--help"]):
        with pytest.raises(SystemExit):
            main(command)
        assert flag in capsys.readouterr().out
