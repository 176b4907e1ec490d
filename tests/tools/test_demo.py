"""`smartgate demo`: the first screen is the URL and the demo account, not start-up logs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tools.broker import free_port

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_demo_first_screen_is_url_and_account(tmp_path: Path) -> None:
    port = free_port()
    run = subprocess.run(
        [sys.executable, "-m", "smartgate.cli", "demo", "--seconds", "2", "--port", str(port),
         "--data-dir", str(tmp_path / "demo")],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout
    # the terminal's view: logs (stderr) and prints (stdout, flushed) in the order written
    first = run.stdout.splitlines()[:2]
    assert first[0].startswith(f"SmartGate demo running: open http://127.0.0.1:{port}/"), first
    assert first[1].startswith("sign in as "), first
    # start-up warnings are not lost: they follow the first screen (INFO is left out)
    assert "demo account 'demo' created" in "\n".join(run.stdout.splitlines()[2:])
    assert "alembic" not in run.stdout and "database migrated" not in run.stdout
