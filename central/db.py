"""Database: SQLAlchemy 2 models, engine creation (SQLite WAL or PostgreSQL) and migrations."""

from __future__ import annotations

import contextlib
import logging
import os
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    create_engine,
    event,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def utcnow() -> datetime:
    """Timezone-aware now, in UTC."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """Declarative base of every central table."""


class Passage(Base):
    """A stored passage event; `event_id` makes redelivery idempotent."""

    __tablename__ = "passages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    site: Mapped[str] = mapped_column(String(64), index=True)
    lane: Mapped[str] = mapped_column(String(64), index=True)
    node_id: Mapped[str] = mapped_column(String(64))
    direction: Mapped[str] = mapped_column(String(16), default="unknown")
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    plate_text: Mapped[str | None] = mapped_column(String(16), index=True)
    plate_confidence: Mapped[float | None] = mapped_column(Float)
    trailer_text: Mapped[str | None] = mapped_column(String(16))
    container_codes: Mapped[str] = mapped_column(String(128), default="")
    gross_kg: Mapped[float | None] = mapped_column(Float)
    payload: Mapped[dict] = mapped_column(JSON)


class RejectedMessage(Base):
    """A message that failed validation, kept with its reason so nothing is silently lost."""

    __tablename__ = "rejected_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    topic: Mapped[str] = mapped_column(String(256))
    reason: Mapped[str] = mapped_column(Text)
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class EdgeNode(Base):
    """Last known availability and health of an edge node."""

    __tablename__ = "edge_nodes"

    node_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    site: Mapped[str] = mapped_column(String(64), primary_key=True)
    online: Mapped[bool] = mapped_column(Boolean, default=False)
    last_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    status: Mapped[dict | None] = mapped_column(JSON, nullable=True)


class DeclarationRow(Base):
    """A customs declaration; `used_by_event_id` is the passage that consumed it, if any."""

    __tablename__ = "declarations"

    number: Mapped[str] = mapped_column(String(32), primary_key=True)
    direction: Mapped[str] = mapped_column(String(8))
    tractor_plate: Mapped[str] = mapped_column(String(16), index=True)
    trailer_plate: Mapped[str | None] = mapped_column(String(16))
    containers: Mapped[str] = mapped_column(String(64), default="")
    seals: Mapped[str] = mapped_column(String(280), default="")
    gross_weight_kg: Mapped[float | None] = mapped_column(Float)
    window_start: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    window_end: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    gate: Mapped[str] = mapped_column(String(64))
    lane_group: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    company: Mapped[str] = mapped_column(String(200), default="")
    goods_category: Mapped[str] = mapped_column(String(32), default="general")
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    used_by_event_id: Mapped[str | None] = mapped_column(String(64))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class DeclarationKey(Base):
    """One lookup key of a declaration (`central.domain.matching.declaration_keys`)."""

    __tablename__ = "declaration_keys"
    __table_args__ = {"sqlite_with_rowid": False}

    key: Mapped[str] = mapped_column(String(48), primary_key=True)
    declaration_number: Mapped[str] = mapped_column(String(32), primary_key=True)


class PlateKey(Base):
    """One lookup key of a declared tractor plate (`central.domain.matching.plate_lookup_keys`).

    The same `p:` keys as `declaration_keys`, but pointing at the distinct plate, so a batch's
    read-ahead finds the look-alike plates under its keys without reading their declarations
    and reads only the declarations of the plates the candidate filter keeps. Written when a
    plate is first declared; a plate left without declarations keeps its keys (it finds none).
    """

    __tablename__ = "plate_keys"
    __table_args__ = {"sqlite_with_rowid": False}

    key: Mapped[str] = mapped_column(String(48), primary_key=True)
    plate: Mapped[str] = mapped_column(String(16), primary_key=True)


class DecisionRow(Base):
    """A decision on a passage, by the rules or an officer; `current` marks the one in force."""

    __tablename__ = "decisions"
    __table_args__ = (Index("ix_decisions_current_outcome", "current", "outcome"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    passage_event_id: Mapped[str] = mapped_column(String(64), index=True)
    current: Mapped[bool] = mapped_column(Boolean, default=True)
    outcome: Mapped[str] = mapped_column(String(16))
    action: Mapped[str | None] = mapped_column(String(32))
    reasons: Mapped[list] = mapped_column(JSON, default=list)
    declaration_number: Mapped[str | None] = mapped_column(String(32), index=True)
    plate_score: Mapped[float | None] = mapped_column(Float)
    matched_containers: Mapped[list | None] = mapped_column(JSON, default=list)
    rules_version: Mapped[str] = mapped_column(String(48))
    decided_by: Mapped[str] = mapped_column(String(64))
    decided_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    note: Mapped[str] = mapped_column(Text, default="")


class FeeRow(Base):
    """The infrastructure-use fee assessed for a passage."""

    __tablename__ = "fee_assessments"

    passage_event_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    declaration_number: Mapped[str | None] = mapped_column(String(32))
    amount_vnd: Mapped[int] = mapped_column(Integer)
    basis: Mapped[str] = mapped_column(String(16))
    multiplier: Mapped[float] = mapped_column(Float)
    items: Mapped[list] = mapped_column(JSON)
    table_version: Mapped[str] = mapped_column(String(48))
    assessed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class CommandRow(Base):
    """A lane command central issued, and the edge's acknowledgement once it arrives."""

    __tablename__ = "commands"

    command_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    site: Mapped[str] = mapped_column(String(64))
    lane: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))
    passage_event_id: Mapped[str | None] = mapped_column(String(64), index=True)
    message: Mapped[str | None] = mapped_column(String(120))
    inspection_lane: Mapped[str | None] = mapped_column(String(32))
    issued_by: Mapped[str] = mapped_column(String(64))
    issued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    ack_ok: Mapped[bool | None] = mapped_column(Boolean)
    ack_detail: Mapped[str | None] = mapped_column(String(200))
    ack_node_id: Mapped[str | None] = mapped_column(String(64))
    acked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class LaneStatusRow(Base):
    """The last reported live state of a lane."""

    __tablename__ = "lane_status"

    site: Mapped[str] = mapped_column(String(64), primary_key=True)
    lane: Mapped[str] = mapped_column(String(64), primary_key=True)
    node_id: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(32))
    queue_length: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class AuditEntry(Base):
    """Who did what to which record, and when."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_target", "target_type", "target_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    target_type: Mapped[str] = mapped_column(String(32))
    target_id: Mapped[str] = mapped_column(String(64))
    detail: Mapped[dict] = mapped_column(JSON, default=dict)


class EvidenceImage(Base):
    """One evidence JPEG of a passage kept in the evidence store (`central.evidence`), by its
    SHA-256; `purged_at` is set when retention deleted the file (the hash stays, as proof of
    what was kept)."""

    __tablename__ = "evidence_images"
    __table_args__ = (Index("ix_evidence_images_sha256", "sha256"),)

    passage_event_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    image_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    uploaded_by: Mapped[str] = mapped_column(String(64))
    stored_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow,
                                                index=True)
    purged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class LegalHold(Base):
    """A passage an admin put on legal hold: retention never purges it while the row exists."""

    __tablename__ = "legal_holds"

    passage_event_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    set_by: Mapped[str] = mapped_column(String(64))
    set_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    reason: Mapped[str] = mapped_column(Text, default="")


class PurgedPassage(Base):
    """A passage whose retention ran out: images deleted, personal data masked, the decision
    record kept."""

    __tablename__ = "purged_passages"

    passage_event_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    retention_class: Mapped[str] = mapped_column(String(16))
    purged_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    images_deleted: Mapped[int] = mapped_column(Integer, default=0)


class JourneyRow(Base):
    """One truck's journey through a site (central/journeys.py): where it is, its stages."""

    __tablename__ = "journeys"
    __table_args__ = (Index("ix_journeys_site_status", "site", "status"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    site: Mapped[str] = mapped_column(String(64))
    plate: Mapped[str] = mapped_column(String(16), default="")
    plates: Mapped[list] = mapped_column(JSON, default=list)
    alternatives: Mapped[list] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(16), default="open")
    zone: Mapped[str | None] = mapped_column(String(64))
    zone_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    first_role: Mapped[str] = mapped_column(String(32))
    marks: Mapped[list] = mapped_column(JSON, default=list)
    last_role: Mapped[str] = mapped_column(String(32))
    last_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    ambiguous: Mapped[bool] = mapped_column(Boolean, default=False)
    rivals: Mapped[list] = mapped_column(JSON, default=list)
    priority: Mapped[bool] = mapped_column(Boolean, default=False)
    declared_plate: Mapped[str | None] = mapped_column(String(16))
    company: Mapped[str | None] = mapped_column(String(200))
    goods_category: Mapped[str | None] = mapped_column(String(32))
    yard_wait_s: Mapped[float | None] = mapped_column(Float)
    inspection_s: Mapped[float | None] = mapped_column(Float)
    total_s: Mapped[float | None] = mapped_column(Float)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class JourneyPassage(Base):
    """A passage linked into a journey, with the checkpoint role it had."""

    __tablename__ = "journey_passages"

    passage_event_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    journey_id: Mapped[int] = mapped_column(Integer, index=True)
    site: Mapped[str] = mapped_column(String(64))
    lane: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    score: Mapped[float | None] = mapped_column(Float)


class DispatchCall(Base):
    """A truck called from the queue to a lane; re-queued when it does not arrive in time."""

    __tablename__ = "dispatch_calls"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    site: Mapped[str] = mapped_column(String(64))
    journey_id: Mapped[int] = mapped_column(Integer, index=True)
    lane: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="called")
    called_by: Mapped[str] = mapped_column(String(64))
    called_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    deadline: Mapped[datetime] = mapped_column(DateTime(timezone=True))


def _create_private(path: Path) -> None:
    """Create an empty file readable by its owner only, unless it exists. An existing database
    file is never opened here: closing any descriptor of it would drop the POSIX locks this
    process's SQLite connections hold on it (and corrupt it)."""
    if path.exists():
        return
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))


def make_engine(url: str) -> Engine:
    """Engine for `url`; SQLite gets WAL, a busy timeout and its parent folder created, and a
    new database file is created readable by its owner only (0600; SQLite gives its -wal and
    -shm files the same mode)."""
    if url.startswith("sqlite"):
        db_path = url.split("///", 1)[-1].split("?", 1)[0] if "///" in url else ""
        if db_path and db_path != ":memory:":
            Path(db_path).parent.mkdir(parents=True, exist_ok=True)
            _create_private(Path(db_path))
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA cache_size=-65536")  # 64 MiB: bulk loads keep indexes in memory
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


def upgrade_database(engine: Engine) -> None:
    """Bring the schema to the latest Alembic revision (logged when it changes)."""
    # before the import: alembic logs its plugin set-up (INFO) as it is imported
    logging.getLogger("alembic").setLevel(max(logging.WARNING, logging.root.level))
    from alembic import command
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as conn:
        before = MigrationContext.configure(conn).get_current_revision()
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
        after = MigrationContext.configure(conn).get_current_revision()
    if after != before:
        log.info("database migrated from revision %s to %s", before, after)


def session_factory(engine: Engine) -> sessionmaker:
    """A session factory whose objects stay usable after commit."""
    return sessionmaker(engine, expire_on_commit=False)
