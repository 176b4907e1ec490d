"""Central storage: DB-backed candidate lookup equals the in-memory index, idempotent imports,
migrations, and the `smartgate declarations` commands."""

from __future__ import annotations

import random
from datetime import timedelta
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

import central.auth_store  # noqa: F401  (registers the auth tables on Base.metadata)
from central import store
from central.db import Base, make_engine, session_factory, upgrade_database
from central.decisions import DecisionService
from central.domain.declarations import DeclarationStatus
from central.domain.matching import CandidateFilter, DeclarationIndex, passage_keys
from central.domain.rules import RuleSet
from smartgate.cli import main
from tests.central.test_ingest import declaration
from tests.test_contract import T0, make_event
from tools.synth.declarations import generate_declarations, passage_for

RULES = RuleSet(version="test")


def sessions_for(url: str):  # type: ignore[no-untyped-def]
    engine = make_engine(url)
    upgrade_database(engine)
    return session_factory(engine)


@pytest.fixture
def sessions(tmp_path: Path):  # type: ignore[no-untyped-def]
    return sessions_for(f"sqlite:///{tmp_path / 'central.db'}")


def check_lookup_matches_memory(sessions) -> None:  # type: ignore[no-untyped-def]
    decls = list(generate_declarations(3000, seed=5, vehicles=400))
    with sessions() as s, s.begin():
        assert store.import_declarations(s, decls, batch_size=700).created == 3000
    index = DeclarationIndex(decls)
    rng = random.Random(9)
    probes = [passage_for(rng.choice(decls), rng, plate_errors=rng.choice((0, 1, 2, 3)))
              for _ in range(150)]
    probes.append(make_event(plate_front=None, containers=[]))  # nothing read: no keys
    found = 0
    with sessions() as s:
        for passage in probes:
            from_db, _used = store.candidate_declarations(
                s, passage_keys(passage, RULES.candidate_min_confidence)
            )
            in_memory = index.candidates(passage, RULES)
            assert sorted(d.number for d in from_db) == sorted(d.number for d in in_memory)
            assert {d.number: d for d in from_db} == {d.number: d for d in in_memory}
            found += bool(from_db)
    assert found >= 150
    check_read_ahead_matches_lookup(sessions, probes)


def misread_container(passage, other_plate: bool = False):  # type: ignore[no-untyped-def]
    """The passage with its first container's check digit wrong (paired by a near match only);
    with `other_plate`, the last three digits of the plate read changed too, so the declaration
    is found under a plate key but kept by its container alone."""
    if not passage.containers:
        return passage
    read = passage.containers[0]
    wrong = read.code[:-1] + str((int(read.code[-1]) + 1) % 10)
    update = {"containers": [read.model_copy(update={"code": wrong, "check_digit_ok": False}),
                             *passage.containers[1:]]}  # fmt: skip
    plate = passage.plate_front.text if passage.plate_front else ""
    if other_plate and plate[-3:].isdigit():
        text = plate[:-3] + "".join(str((int(c) + 3) % 10) for c in plate[-3:])
        update["plate_front"] = passage.plate_front.model_copy(update={"text": text})
    return passage.model_copy(update=update)


def check_read_ahead_matches_lookup(sessions, probes) -> None:  # type: ignore[no-untyped-def]
    """Inside a batch's read-ahead (plates through `plate_keys`, only the declarations of plates
    a filter may keep) every passage gets the candidates the plain look-up gives, filtered or
    not, also for a filter the read-ahead did not see."""
    probes = probes + [misread_container(p, other_plate=n % 2 == 0)
                       for n, p in enumerate(probes[::3])]
    keys = [passage_keys(p, RULES.candidate_min_confidence) for p in probes]
    filters = [CandidateFilter(p, RULES) for p in probes]

    def lookup(s, k, f=None):  # type: ignore[no-untyped-def]  # candidates in number order
        hits, used = store.candidate_declarations(s, k, f)
        return sorted(hits, key=lambda d: d.number), used

    with sessions() as s:
        plain = [lookup(s, k, f) for k, f in zip(keys, filters, strict=True)]
        unfiltered = [lookup(s, k) for k in keys]
    assert sum(len(p[0]) for p in plain) < sum(len(u[0]) for u in unfiltered)
    for start in range(0, len(probes), 40):
        batch = range(start, min(start + 40, len(probes)))
        with sessions() as s, s.begin():
            store.prefetch_passages(s, [probes[i].event_id for i in batch],
                                    [(keys[i], filters[i]) for i in batch])
            for i in batch:
                assert lookup(s, keys[i], filters[i]) == plain[i]
                assert lookup(s, keys[i], CandidateFilter(probes[i], RULES)) == plain[i]
            for i in batch:  # without a filter: the plates the read-ahead skipped are read now
                assert lookup(s, keys[i]) == unfiltered[i]


def test_db_candidates_equal_in_memory_index(sessions) -> None:  # type: ignore[no-untyped-def]
    check_lookup_matches_memory(sessions)


def test_import_is_idempotent_and_amendments_rekey(sessions) -> None:  # type: ignore[no-untyped-def]
    decls = list(generate_declarations(50, seed=1))
    with sessions() as s, s.begin():
        assert store.import_declarations(s, decls).created == 50
    with sessions() as s, s.begin():
        again = store.import_declarations(s, decls)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 50)
    old = decls[0]
    amended = old.model_copy(update={"tractor_plate": "99C99999", "containers": ()})
    with sessions() as s, s.begin():
        assert store.import_declarations(s, [amended]).updated == 1
    old_probe = passage_for(old, random.Random(1))
    new_probe = passage_for(amended, random.Random(1))
    with sessions() as s:
        assert store.count_declarations(s) == 50
        old_hits, _ = store.candidate_declarations(s, passage_keys(old_probe))
        new_hits, _ = store.candidate_declarations(s, passage_keys(new_probe))
        row = store.get_declaration(s, old.number)
    assert old.number not in {d.number for d in old_hits}
    assert [d for d in new_hits if d.number == old.number] == [amended]
    with sessions() as s, s.begin():  # the read-ahead finds the new plate through its keys
        keys = passage_keys(new_probe)
        store.prefetch_passages(s, [new_probe.event_id], [(keys, None)])
        ahead_hits, _ = store.candidate_declarations(s, keys)
    assert [d for d in ahead_hits if d.number == old.number] == [amended]
    assert row is not None and store.declaration_from_row(row) == amended


def test_offsets_are_kept_as_instants(sessions) -> None:  # type: ignore[no-untyped-def]
    decl = next(generate_declarations(1, seed=2))  # windows in +07:00
    with sessions() as s, s.begin():
        store.import_declarations(s, [decl])
    with sessions() as s:
        inside = decl.window_start + timedelta(minutes=1)
        rows = store.list_declarations(s, store.DeclarationFilter(valid_at=inside))
        before = store.list_declarations(
            s, store.DeclarationFilter(valid_at=decl.window_start - timedelta(minutes=1))
        )
    assert [r.number for r in rows] == [decl.number] and before == []
    assert store.declaration_from_row(rows[0]).window_start == decl.window_start


def test_used_declaration_cannot_be_deleted_only_cancelled(sessions) -> None:  # type: ignore[no-untyped-def]
    a, b = generate_declarations(2, seed=3)
    with sessions() as s, s.begin():
        store.import_declarations(s, [a, b])
        store.mark_declaration_used(s, a.number, "event-0001")
    with sessions() as s, s.begin():
        with pytest.raises(store.DeclarationInUse):
            store.delete_declaration(s, a.number, "admin")
        assert store.delete_declaration(s, b.number, "admin")
        assert store.cancel_declaration(s, a.number, "admin") is not None
    with sessions() as s:
        row = store.get_declaration(s, a.number)
        assert row is not None and row.status == DeclarationStatus.CANCELLED
        assert store.get_declaration(s, b.number) is None
        assert {e.action for e in store.list_audit(s)} == {
            "declaration.delete", "declaration.cancel"
        }
        hits, used = store.candidate_declarations(s, passage_keys(passage_for(a, random.Random())))
    assert a.number in used and b.number not in {d.number for d in hits}


def check_review_queue_filters(sessions) -> None:  # type: ignore[no-untyped-def]
    """The review queue's reason filter (JSON findings, in SQL), lane filter and both orders."""
    service = DecisionService(RULES)
    heavy = make_event(weight={"gross_kg": 45_000, "captured_at": T0})
    unknown = make_event(lane="L2", ended_at=T0 + timedelta(seconds=30),
                         plate_front={"text": "51D67890", "confidence": 0.9}, containers=[])
    with sessions() as s, s.begin():
        store.import_declarations(s, [declaration("D-0001", "29C12345")])
        for event in (heavy, unknown):
            store.add_passage(s, event)
            service.decide_passage(s, event)
    with sessions() as s:
        def ids(**kw) -> list[str]:  # type: ignore[no-untyped-def]
            return [p.event_id for p, _ in store.list_review_queue(s, **kw)]

        assert ids() == [heavy.event_id, unknown.event_id]
        assert ids(newest_first=True) == [unknown.event_id, heavy.event_id]
        assert ids(reason="weight_out_of_tolerance") == [heavy.event_id]
        assert ids(reason="weight") == [] and ids(reason="container_missing") == []
        assert ids(lane="L2", newest_first=True) == [unknown.event_id]
        assert store.review_lanes(s) == ["L1", "L2"]


def test_review_queue_filters(sessions) -> None:  # type: ignore[no-untyped-def]
    check_review_queue_filters(sessions)


def check_migrations(url: str) -> None:
    engine = make_engine(url)
    upgrade_database(engine)
    upgrade_database(engine)  # a second run is a no-op
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
        tables = set(inspect(conn).get_table_names())
    assert {"declarations", "declaration_keys", "decisions", "audit_log", "fee_assessments",
            "commands", "lane_status", "passages"} <= tables
    engine.dispose()


def test_migrations_on_sqlite_match_models(tmp_path: Path) -> None:
    check_migrations(f"sqlite:///{tmp_path / 'm.db'}")


def _csv_with_bad_rows(tmp_path: Path) -> Path:
    good = tmp_path / "good.csv"
    with good.open("w", encoding="utf-8") as out:
        main_rows = list(generate_declarations(5, seed=4))
        from central.domain.declarations import write_csv

        write_csv(main_rows, out)
    lines = good.read_text(encoding="utf-8").splitlines()
    bad = lines[:3] + [
        "BAD-1,import,12C12345,,CSQU3054384,,,2025-05-08T08:00+07:00,2025-05-08T20:00+07:00,"
        "huunghi,,valid,,general",
        "BAD-2,sideways,12C12345,,,,,2025-05-08T08:00+07:00,2025-05-08T20:00+07:00,huunghi,,,,",
    ] + lines[3:]
    path = tmp_path / "decls.csv"
    path.write_text("\n".join(bad) + "\n", encoding="utf-8")
    return path


def test_cli_import_reports_bad_rows_and_keeps_good(tmp_path: Path, capsys) -> None:
    path = _csv_with_bad_rows(tmp_path)
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    assert main(["declarations", "import", str(path), "--database-url", url]) == 1
    out, err = capsys.readouterr()
    assert "5 created, 0 updated, 0 unchanged, 2 bad rows" in out
    assert f"{path}:4: containers.0" in err and "check digit" in err
    assert f"{path}:5: direction" in err
    assert main(["declarations", "import", str(path), "--database-url", url]) == 1
    assert "0 created, 0 updated, 5 unchanged, 2 bad rows" in capsys.readouterr().out
    with sessions_for(url)() as s:
        assert store.count_declarations(s) == 5
