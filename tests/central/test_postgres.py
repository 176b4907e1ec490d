"""The same storage guarantees on PostgreSQL: migrations, DB-backed lookup, idempotent ingest."""

from __future__ import annotations

from sqlalchemy import func, select

from central.db import CommandRow, DecisionRow, Passage, make_engine, session_factory
from tests.central.test_ingest import check_ingest_decides_once
from tests.central.test_storage import (
    check_lookup_matches_memory,
    check_migrations,
    check_review_queue_filters,
    sessions_for,
)


def test_migrations_on_postgres_match_models(pg_database: str) -> None:
    import central.auth_store  # noqa: F401  (registers the auth tables on Base.metadata)

    check_migrations(pg_database)


def test_db_candidates_equal_in_memory_index_on_postgres(pg_database: str) -> None:
    check_lookup_matches_memory(sessions_for(pg_database))


def test_ingest_is_idempotent_on_postgres(pg_database: str) -> None:
    sessions = sessions_for(pg_database)
    check_ingest_decides_once(sessions)
    engine = make_engine(pg_database)
    with session_factory(engine)() as s:
        assert s.scalar(select(func.count()).select_from(Passage)) == 1
        assert s.scalar(select(func.count()).select_from(DecisionRow)) == 1
        assert s.scalar(select(func.count()).select_from(CommandRow)) == 1
    engine.dispose()


def test_review_queue_filters_on_postgres(pg_database: str) -> None:
    check_review_queue_filters(sessions_for(pg_database))


def test_two_workers_never_clear_one_declaration_twice(pg_database: str) -> None:
    """Worker B read the declaration ahead as unused; worker A's passage uses it and commits
    before B decides: B's passage must not clear on it too (already used)."""
    from datetime import timedelta

    from central import store
    from central.decisions import DecisionService
    from central.domain.declarations import Declaration
    from central.domain.rules import RuleSet
    from central.ingest import handle_message
    from smartgate import contract
    from smartgate.contract import PlateRead
    from tests.test_contract import T0, make_event

    sessions = sessions_for(pg_database)
    with sessions() as s, s.begin():
        store.import_declarations(s, [Declaration(
            number="D-RACE-1", direction="import", tractor_plate="29C45638", gate="huunghi",
            window_start=T0 - timedelta(hours=1), window_end=T0 + timedelta(hours=9))])
    service = DecisionService(RuleSet(version="race"))
    first, second = (make_event(plate_front=PlateRead(text="29C45638", confidence=0.95),
                                containers=[], weight=None) for _ in range(2))
    topic = contract.passage_topic("huunghi", "L1")
    with sessions() as b, b.begin():
        service.prefetch(b, [second])  # B reads ahead: D-RACE-1 unused
        with sessions() as a, a.begin():
            assert handle_message(a, topic, first.to_json(), service.decide_passage).kind == "stored"
        outcome = handle_message(b, topic, second.to_json(), service.decide_passage)
    assert outcome.decision is not None and outcome.decision.outcome == "flagged"
    assert "declaration_already_used" in outcome.decision.reasons
    with sessions() as s:
        assert store.get_declaration(s, "D-RACE-1").used_by_event_id == first.event_id
