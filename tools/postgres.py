"""Where the PostgreSQL server binaries are: tests and the faults benchmark start throwaway
clusters with them (never at a gate)."""

from __future__ import annotations

import os
import re
from pathlib import Path

DEBIAN_ROOT = Path("/usr/lib/postgresql")


def _version(path: Path) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", path.parent.name)) or (0,)


def postgres_bin(root: Path = DEBIAN_ROOT, env: dict[str, str] | None = None) -> Path | None:
    """The folder holding `initdb`, `postgres` and `pg_ctl`: `SMARTGATE_POSTGRES_BIN` if set,
    else the highest version under `root/*/bin` (Debian installs any major version there),
    else None."""
    env = os.environ if env is None else env
    if override := env.get("SMARTGATE_POSTGRES_BIN"):
        return Path(override)
    found = [p.parent for p in root.glob("*/bin/initdb")]
    return max(found, key=_version) if found else None
