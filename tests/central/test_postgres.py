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
