"""PostgreSQL binaries are found wherever Debian installed them: the highest major version."""

from __future__ import annotations

from pathlib import Path

from tools.postgres import postgres_bin


def test_highest_installed_version_wins(tmp_path: Path) -> None:
    assert postgres_bin(tmp_path, env={}) is None
    for version in ("9.6", "10", "15", "17"):
        (tmp_path / version / "bin").mkdir(parents=True)
        (tmp_path / version / "bin" / "initdb").touch()
    (tmp_path / "18" / "bin").mkdir(parents=True)  # client only: no initdb
    assert postgres_bin(tmp_path, env={}) == tmp_path / "17" / "bin"
    (tmp_path / "17" / "bin" / "initdb").unlink()
    assert postgres_bin(tmp_path, env={}) == tmp_path / "15" / "bin"  # 15 > 10 > 9.6, numerically


def test_environment_names_the_folder(tmp_path: Path) -> None:
    assert postgres_bin(tmp_path, env={"SMARTGATE_POSTGRES_BIN": "/opt/pg/bin"}) == Path(
        "/opt/pg/bin"
    )
