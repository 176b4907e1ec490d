"""`smartgate synth declarations`: generated declarations that central imports."""

from __future__ import annotations

from central.domain.declarations import Declaration, parse_csv
from smartgate.cli import main


def test_cli_sample_writes_importable_csv(capsys) -> None:
    assert main(["synth", "declarations", "--count", "25", "--seed", "3"]) == 0
    decls, errors = parse_csv(capsys.readouterr().out)
    assert len(decls) == 25 and errors == []
    assert all(isinstance(d, Declaration) for d in decls)
