"""Data access: every query and write central makes goes through these functions.

Times are stored in UTC (SQLite keeps no offset): `utc` normalizes everything written or used as
a filter, and rows read back from SQLite get their UTC zone again through `aware`.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict, namedtuple
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from functools import lru_cache
from itertools import islice
from typing import Any, Protocol, cast

from sqlalchemy import (
    ARRAY,
    ColumnElement,
    String,
    Table,
    any_,
    bindparam,
    delete,
    event,
    exists,
    func,
    insert,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import ORMExecuteState, Session
from sqlalchemy.sql import Select

from central.db import (
    AuditEntry,
    CommandRow,
    DecisionRow,
    DeclarationKey,
    DeclarationRow,
    DispatchCall,
    EdgeNode,
    FeeRow,
    JourneyPassage,
    JourneyRow,
    LaneStatusRow,
    Passage,
    PlateKey,
    PurgedPassage,
    RejectedMessage,
    utcnow,
)
from central.domain.declarations import (
    Declaration,
    DeclarationStatus,
    Direction,
    stored_declaration,
)
from central.domain.fees import FeeAssessment
from central.domain.matching import PLATE_KEY, Decision, declaration_keys, plate_lookup_keys
from central.domain.plate_similarity import normalize_plate
from smartgate.contract import CommandAck, CommandAction, LaneCommand, LaneStatus, PassageEvent

REVIEW_OUTCOMES = ("flagged", "no_declaration", "held")
_DECLARATIONS = cast(Table, DeclarationRow.__table__)
_DECLARATION_KEYS = cast(Table, DeclarationKey.__table__)
_PLATE_KEYS = cast(Table, PlateKey.__table__)
_PASSAGES = cast(Table, Passage.__table__)
_DECISIONS = cast(Table, DecisionRow.__table__)
_FEES = cast(Table, FeeRow.__table__)
_COMMANDS = cast(Table, CommandRow.__table__)


def utc(at: datetime) -> datetime:
    """`at` in UTC; a naive time is taken as UTC already."""
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def aware(at: datetime | None) -> datetime | None:
    """A time read from the database, with its UTC zone (SQLite returns naive times)."""
    return None if at is None else utc(at)


def passage_values(event: PassageEvent) -> dict[str, Any]:
    """The `passages` columns of a validated passage event."""
    plate = event.best_plate
    return {
        "event_id": event.event_id,
        "site": event.site,
        "lane": event.lane,
        "node_id": event.node_id,
        "direction": event.direction,
        "started_at": utc(event.started_at),
        "ended_at": utc(event.ended_at),
        "received_at": utcnow(),
        "plate_text": plate.text if plate else None,
        "plate_confidence": plate.confidence if plate else None,
        "trailer_text": event.trailer_plate.text if event.trailer_plate else None,
        "container_codes": " ".join(c.code for c in event.containers),
        "gross_kg": event.weight.gross_kg if event.weight else None,
        "payload": event.model_dump(mode="json", by_alias=True),
    }


# The ingest's per-passage statements are built once and run on the session's connection (Core):
# the ORM's per-statement work cost more than SQLite's (docs/central.md, throughput).
_PASSAGE_EXISTS = select(Passage.id).where(Passage.event_id == bindparam("event_id"))


# Rows the ingest writes (passages, decisions, fees, commands) are queued per transaction and
# written with one Core executemany per table (`write_queued`) instead of as ORM objects: the
# unit of work cost more per passage than deciding it. They are written before any statement the
# session executes and before the commit, so every query in the transaction sees them.
_QUEUED = "smartgate.store.queued"


@dataclass
class _Queued:
    transaction: object
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    passages: set[str] = field(default_factory=set)  # event ids queued, written or not


def _queued(session: Session, create: bool = False) -> _Queued | None:
    """This transaction's queue (one left by a rolled-back transaction is dropped)."""
    queue = session.info.get(_QUEUED)
    transaction = session.get_transaction()
    if queue is not None and queue.transaction is transaction:
        return queue
    if not create:
        session.info.pop(_QUEUED, None)
        return None
    queue = session.info[_QUEUED] = _Queued(transaction)
    return queue


def _queue_row(session: Session, statement: str, values: dict[str, Any]) -> None:
    """Queue `values` for one of `_QUEUED_STATEMENTS`."""
    cast(_Queued, _queued(session, create=True)).rows.setdefault(statement, []).append(values)


def write_queued(session: Session) -> None:
    """Write the rows queued in this transaction (one executemany per statement, in order)."""
    queue = _queued(session)
    if queue is None or not queue.rows:
        return
    rows, queue.rows = queue.rows, {}
    conn = session.connection()
    for name, statement in _QUEUED_STATEMENTS.items():
        if name in rows:
            conn.execute(statement, rows[name])


@event.listens_for(Session, "do_orm_execute")
def _write_before_statement(state: ORMExecuteState) -> None:
    write_queued(state.session)


@event.listens_for(Session, "before_flush")
def _write_before_flush(session: Session, _context: object, _instances: object) -> None:
    write_queued(session)


@event.listens_for(Session, "before_commit")
def _write_before_commit(session: Session) -> None:
    write_queued(session)


def passage_exists(session: Session, event_id: str) -> bool:
    """Whether a passage with this event id is already stored (or added in this transaction)."""
    queue = _queued(session)
    if queue is not None and event_id in queue.passages:
        return True
    ahead = _prefetched(session)
    if ahead is not None and event_id in ahead.event_ids:
        return event_id in ahead.existing
    found = session.connection().execute(_PASSAGE_EXISTS, {"event_id": event_id}).first()
    return found is not None


def add_passage(session: Session, event: PassageEvent) -> bool:
    """Add the passage in the caller's transaction; False when the event id is already stored.

    The row is queued and written with the rest of the transaction (one executemany per table
    for a whole ingest batch). A concurrent insert of the same event id raises IntegrityError at
    the commit; the ingest shell then stores the batch's messages one by one, where this one is
    seen as a duplicate.
    """
    if passage_exists(session, event.event_id):
        return False
    _queue_row(session, "passages", passage_values(event))
    cast(_Queued, _queued(session)).passages.add(event.event_id)
    return True


def count_decided(session: Session, event_ids: Sequence[str], chunk: int = 5000) -> int:
    """How many of these passages have at least one decision."""
    decided = 0
    for k in range(0, len(event_ids), chunk):
        decided += int(session.scalar(
            select(func.count(func.distinct(DecisionRow.passage_event_id))).where(
                DecisionRow.passage_event_id.in_(event_ids[k:k + chunk]))
        ) or 0)  # fmt: skip
    return decided


def passages_of_nodes(session: Session, node_ids: Sequence[str]) -> tuple[list[str], dict[str, int]]:
    """Event ids stored from these nodes, and the rules decisions made per event id."""
    ids = list(session.scalars(select(Passage.event_id).where(Passage.node_id.in_(node_ids))))
    rows = session.execute(
        select(DecisionRow.passage_event_id, func.count())
        .join(Passage, Passage.event_id == DecisionRow.passage_event_id)
        .where(Passage.node_id.in_(node_ids), DecisionRow.decided_by.like("rules:%"))
        .group_by(DecisionRow.passage_event_id)
    ).all()
    return ids, {str(r[0]): int(r[1]) for r in rows}


REJECTION_TOPIC_CHARS = 256  # the column size of rejected_messages.topic
REJECTION_DETAIL_CHARS = 1000
REJECTION_PAYLOAD_BYTES = 256 * 1024  # contract.MAX_PAYLOAD_BYTES: a longer one is cut


def _storable(text: str, limit: int) -> str:
    """Sender-chosen text made storable in any database: no NUL (PostgreSQL refuses it),
    at most `limit` characters."""
    text = text.replace("\x00", "\\x00")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def add_rejection(session: Session, topic: str, reason: str, detail: str, payload: bytes) -> None:
    """Keep a rejected message: `reason` is a `RejectReason` value, `detail` the rest; topic
    and detail are clipped to their columns and the payload to the contract's maximum, so the
    record of a rejection never fails on its own size."""
    cut = len(payload) > REJECTION_PAYLOAD_BYTES
    if cut:
        detail = f"{detail} (payload of {len(payload)} bytes, first {REJECTION_PAYLOAD_BYTES} kept)"
    session.add(RejectedMessage(
        topic=_storable(topic, REJECTION_TOPIC_CHARS),
        reason=_storable(f"{reason}: {detail}" if detail else reason, REJECTION_DETAIL_CHARS),
        payload=payload[:REJECTION_PAYLOAD_BYTES],
    ))  # fmt: skip


def list_rejections(
    session: Session, limit: int = 100, before_id: int | None = None
) -> Sequence[RejectedMessage]:
    """Rejected messages, newest first; `before_id` pages on (ids below it)."""
    query = select(RejectedMessage).order_by(RejectedMessage.id.desc()).limit(limit)
    if before_id is not None:
        query = query.where(RejectedMessage.id < before_id)
    return session.scalars(query).all()


def set_node_state(
    session: Session, site: str, node_id: str, online: bool | None = None,
    status: dict | None = None,
) -> None:
    """Record an edge node's availability and/or health report."""
    node = session.get(EdgeNode, (node_id, site))
    if node is None:
        node = EdgeNode(node_id=node_id, site=site, online=bool(online))
        session.add(node)
    if online is not None:
        node.online = online
    if status is not None:
        node.status = status
    node.last_seen = utcnow()


def _plate_matches(plate: str, *columns: Any) -> ColumnElement[bool]:
    """Any of the plate columns contains `plate` (normalized, so `51d-678` finds 51D678..)."""
    text = normalize_plate(plate)
    return or_(*(c.contains(text) for c in columns))


@dataclass(frozen=True)
class PassageFilter:
    """Filters for passage listings; `outcome` is the current decision's outcome."""

    lane: str | None = None
    site: str | None = None
    plate: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    outcome: str | None = None
    limit: int = 100
    offset: int = 0


def list_passages(session: Session, f: PassageFilter) -> Sequence[Passage]:
    """Passages matching the filter, newest first; `plate` matches tractor or trailer plate."""
    q = select(Passage).order_by(Passage.ended_at.desc(), Passage.id.desc())
    if f.lane:
        q = q.where(Passage.lane == f.lane)
    if f.site:
        q = q.where(Passage.site == f.site)
    if f.plate:
        q = q.where(_plate_matches(f.plate, Passage.plate_text, Passage.trailer_text))
    if f.since:
        q = q.where(Passage.ended_at >= utc(f.since))
    if f.until:
        q = q.where(Passage.ended_at < utc(f.until))
    if f.outcome:
        q = q.join(
            DecisionRow,
            (DecisionRow.passage_event_id == Passage.event_id) & DecisionRow.current,
        ).where(DecisionRow.outcome == f.outcome)
    return session.scalars(q.limit(f.limit).offset(f.offset)).all()


def list_nodes(session: Session) -> Sequence[EdgeNode]:
    """Every known edge node."""
    return session.scalars(select(EdgeNode).order_by(EdgeNode.site, EdgeNode.node_id)).all()


def get_passage(session: Session, event_id: str) -> Passage | None:
    """The passage with this event id."""
    return session.scalar(select(Passage).where(Passage.event_id == event_id))


# --------------------------------------------------------------------------------------------
# Declarations
# --------------------------------------------------------------------------------------------


def declaration_values(decl: Declaration) -> dict[str, Any]:
    """The `declarations` columns of a declaration (times in UTC, lists joined)."""
    return {
        "number": decl.number,
        "direction": decl.direction.value,
        "tractor_plate": decl.tractor_plate,
        "trailer_plate": decl.trailer_plate,
        "containers": " ".join(decl.containers),
        "seals": ";".join(decl.seals),
        "gross_weight_kg": decl.gross_weight_kg,
        "window_start": utc(decl.window_start),
        "window_end": utc(decl.window_end),
        "gate": decl.gate,
        "lane_group": decl.lane_group,
        "status": decl.status.value,
        "company": decl.company,
        "goods_category": decl.goods_category,
    }


_DIRECTIONS = {d.value: d for d in Direction}
_STATUSES = {s.value: s for s in DeclarationStatus}


def declaration_from_row(row: Any) -> Declaration:
    """The Declaration stored in a row (ORM object or result row); values were validated."""
    return stored_declaration(dict(
        number=row.number,
        direction=_DIRECTIONS[row.direction],
        tractor_plate=row.tractor_plate,
        trailer_plate=row.trailer_plate,
        containers=tuple(row.containers.split()),
        seals=tuple(filter(None, row.seals.split(";"))) if row.seals else (),
        gross_weight_kg=row.gross_weight_kg,
        window_start=utc(row.window_start),
        window_end=utc(row.window_end),
        gate=row.gate,
        lane_group=row.lane_group,
        status=_STATUSES[row.status],
        company=row.company,
        goods_category=row.goods_category,
    ))


@dataclass
class ImportCounts:
    """What an import did: new declarations, amended ones, and identical re-imports."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0

    def add(self, other: ImportCounts) -> None:
        """Accumulate another batch's counts."""
        self.created += other.created
        self.updated += other.updated
        self.unchanged += other.unchanged


def _batches(items: Iterable[Declaration], size: int) -> Iterator[list[Declaration]]:
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


def _key_rows(number: str, keys: Iterable[str]) -> list[dict[str, str]]:
    return [{"key": k, "declaration_number": number} for k in keys]


def _import_batch(session: Session, chunk: list[Declaration], now: datetime) -> ImportCounts:
    counts = ImportCounts()
    existing = {
        r.number: r
        for r in session.scalars(
            select(DeclarationRow).where(DeclarationRow.number.in_([d.number for d in chunk]))
        )
    }
    new_rows: list[dict[str, Any]] = []
    new_keys: list[dict[str, str]] = []
    plates: set[str] = set()  # of new and amended declarations: their plate keys
    for decl in chunk:
        values = declaration_values(decl)
        old = existing.get(decl.number)
        if old is None:
            new_rows.append({**values, "updated_at": now, "used_by_event_id": None, "used_at": None})
            new_keys += _key_rows(decl.number, declaration_keys(decl))
            plates.add(decl.tractor_plate)
            counts.created += 1
            continue
        previous = declaration_from_row(old)
        if declaration_values(previous) == values:
            counts.unchanged += 1
            continue
        old_keys, keys = set(declaration_keys(previous)), set(declaration_keys(decl))
        if old_keys - keys:
            session.execute(
                delete(DeclarationKey).where(
                    DeclarationKey.declaration_number == decl.number,
                    DeclarationKey.key.in_(old_keys - keys),
                )
            )
        new_keys += _key_rows(decl.number, keys - old_keys)
        plates.add(decl.tractor_plate)
        for name, value in values.items():
            setattr(old, name, value)
        old.updated_at = now
        counts.updated += 1
    session.flush()
    if new_rows:
        session.execute(insert(_DECLARATIONS), new_rows)
    if new_keys:
        session.execute(insert(_DECLARATION_KEYS), new_keys)
    if plates:
        add_plate_keys(session, plates)
    return counts


def add_plate_keys(session: Session, plates: Iterable[str]) -> None:
    """Store the lookup keys of these declared plates (`plate_keys`), those not there yet."""
    rows = [{"key": k, "plate": p} for p in sorted(set(plates)) for k in plate_lookup_keys(p)]
    if not rows:
        return
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as upsert
    else:
        from sqlalchemy.dialects.sqlite import insert as upsert
    session.execute(upsert(_PLATE_KEYS).on_conflict_do_nothing(), rows)


IMPORT_BATCH = 2000  # declarations per batch (and per transaction when batches commit)


def import_declarations(
    session: Session,
    decls: Iterable[Declaration],
    batch_size: int = IMPORT_BATCH,
    progress: Callable[[int], None] | None = None,
    commit_batches: bool = False,
) -> ImportCounts:
    """Insert or amend declarations by number, with their lookup keys, in batches.

    Idempotent: re-importing the same declaration counts as `unchanged` and writes nothing.
    New rows go in with one executemany per batch, so a million load in about a minute.
    `decls` is consumed one batch at a time (a generator keeps memory flat). `progress(n)` is
    called after each batch with its size. Without `commit_batches` the caller commits; with
    it each batch is committed on its own, so a long import holds the write lock (SQLite has
    one for the whole file) only a batch at a time and ingest writes get in between; an import
    cut short keeps the batches before (re-running it is harmless).
    """
    session.info.pop(_PREFETCH, None)  # declarations change: read-ahead is stale
    total = ImportCounts()
    now = utcnow()
    for chunk in _batches(decls, batch_size):
        total.add(_import_batch(session, chunk, now))
        if commit_batches:
            session.commit()
            session.expunge_all()
        if progress is not None:
            progress(len(chunk))
    return total


def get_declaration(session: Session, number: str) -> DeclarationRow | None:
    """The stored declaration with this number."""
    return session.get(DeclarationRow, number)


@dataclass(frozen=True)
class DeclarationFilter:
    """Filters for declaration listings; `valid_at` keeps those whose window contains it."""

    plate: str | None = None
    container: str | None = None
    gate: str | None = None
    status: str | None = None
    used: bool | None = None
    valid_at: datetime | None = None
    limit: int = 100
    offset: int = 0


def list_declarations(session: Session, f: DeclarationFilter) -> Sequence[DeclarationRow]:
    """Declarations matching the filter, by window start, newest first."""
    q = select(DeclarationRow).order_by(
        DeclarationRow.window_start.desc(), DeclarationRow.number
    )
    if f.plate:
        q = q.where(
            _plate_matches(f.plate, DeclarationRow.tractor_plate, DeclarationRow.trailer_plate)
        )
    if f.container:
        q = q.where(DeclarationRow.containers.contains(f.container.strip().upper()))
    if f.gate:
        q = q.where(DeclarationRow.gate == f.gate)
    if f.status:
        q = q.where(DeclarationRow.status == f.status)
    if f.used is not None:
        used = DeclarationRow.used_by_event_id.is_not(None)
        q = q.where(used if f.used else ~used)
    if f.valid_at:
        at = utc(f.valid_at)
        q = q.where(DeclarationRow.window_start <= at, DeclarationRow.window_end >= at)
    return session.scalars(q.limit(f.limit).offset(f.offset)).all()


def count_declarations(session: Session) -> int:
    """How many declarations are stored."""
    return int(session.scalar(select(func.count()).select_from(DeclarationRow)) or 0)


class DeclarationInUse(ValueError):
    """A declaration that a passage already used cannot be deleted (cancel it instead)."""


def delete_declaration(session: Session, number: str, actor: str) -> bool:
    """Delete an unused declaration and its keys; False when there is none with this number."""
    session.info.pop(_PREFETCH, None)  # declarations change: read-ahead is stale
    row = session.get(DeclarationRow, number)
    if row is None:
        return False
    if row.used_by_event_id is not None:
        raise DeclarationInUse(f"declaration {number} was used by passage {row.used_by_event_id}")
    session.execute(delete(DeclarationKey).where(DeclarationKey.declaration_number == number))
    session.delete(row)
    add_audit(session, actor, "declaration.delete", "declaration", number, {})
    return True


def cancel_declaration(session: Session, number: str, actor: str) -> DeclarationRow | None:
    """Mark a declaration cancelled (a later passage on it is flagged); None when unknown."""
    session.info.pop(_PREFETCH, None)  # declarations change: read-ahead is stale
    row = session.get(DeclarationRow, number)
    if row is None:
        return None
    if row.status != DeclarationStatus.CANCELLED.value:
        row.status = DeclarationStatus.CANCELLED.value
        row.updated_at = utcnow()
        add_audit(session, actor, "declaration.cancel", "declaration", number, {})
    return row


_CANDIDATE_COLUMNS = tuple(_DECLARATIONS.c)
_CandidateRow = namedtuple("_CandidateRow", [c.name for c in _CANDIDATE_COLUMNS])  # type: ignore[misc]
_USED_AT = _CandidateRow._fields.index("used_by_event_id")  # then used_at: the last two
_PLATE_AT = _CandidateRow._fields.index("tractor_plate")
_CONTAINERS_AT = _CandidateRow._fields.index("containers")
_CANDIDATES = select(*_CANDIDATE_COLUMNS).where(
    _DECLARATIONS.c.number.in_(
        select(_DECLARATION_KEYS.c.declaration_number).where(
            _DECLARATION_KEYS.c.key.in_(bindparam("keys", expanding=True))
        )
    )
)
_MARK_USED = (
    _DECLARATIONS.update()
    .where(_DECLARATIONS.c.number == bindparam("n"), _DECLARATIONS.c.used_by_event_id.is_(None))
    .values(used_by_event_id=bindparam("event_id"), used_at=bindparam("at"))
)
_QUEUED_STATEMENTS = {  # what `write_queued` runs, in this order
    "passages": insert(_PASSAGES),
    "decisions": insert(_DECISIONS),
    "fees": insert(_FEES),
    "commands": insert(_COMMANDS),
}


def candidate_declarations(
    session: Session,
    keys: Collection[str],
    keep: CandidateKeep | None = None,
) -> tuple[list[Declaration], set[str]]:
    """Declarations stored under any of `keys` (`passage_keys`), and which of them are used.

    The database counterpart of `DeclarationIndex.candidates`: one indexed `key IN (...)`.
    `keep` (`matching.CandidateFilter`) skips, before they are built, rows the decision would
    drop anyway. Inside a read-ahead (`prefetch_passages`) it answers from what was read,
    reading the declarations of a plate the read-ahead skipped if `keep` may want them.
    """
    if not keys:
        return [], set()
    ahead = _prefetched(session)
    if ahead is not None and ahead.keys.issuperset(keys):
        ordered = sorted(keys)
        plates = dict.fromkeys(p for k in ordered for p in ahead.plates_by_key.get(k, ()))
        missing = [p for p in plates if p not in ahead.numbers_by_plate
                   and (keep is None or keep.may_keep_plate(p))]
        if missing:
            ahead.read(session.connection(), missing, ())
        numbers = dict.fromkeys(n for p in plates for n in ahead.numbers_by_plate.get(p, ()))
        numbers.update(dict.fromkeys(n for k in ordered for n in ahead.numbers_by_key.get(k, ())))
        rows = [ahead.rows[n] for n in numbers]
        used_by = ahead.used
    else:
        rows = [tuple(r) for r in session.connection().execute(_CANDIDATES, {"keys": sorted(keys)})]
        used_by = {r[0]: r[_USED_AT] for r in rows}
    if keep is not None:
        rows = [r for r in rows if keep(r[_PLATE_AT], tuple(r[_CONTAINERS_AT].split()))]
    used = {r[0] for r in rows if used_by[r[0]] is not None}
    return [_cached_declaration(r[:_USED_AT]) for r in rows], used


class CandidateKeep(Protocol):
    """The candidate filter `candidate_declarations` and the read-ahead take
    (`matching.CandidateFilter`)."""

    def __call__(self, tractor_plate: str, containers: Sequence[str]) -> bool:
        """Whether a declaration with this plate and these containers is a candidate."""
        ...

    def may_keep_plate(self, tractor_plate: str) -> bool:
        """False when no declaration with this plate is kept but through a container key."""
        ...


@dataclass
class _Prefetch:
    """What `prefetch_passages` read ahead for one transaction's batch of passages."""

    transaction: object
    event_ids: set[str]
    existing: set[str]
    keys: set[str]
    plates_by_key: dict[str, list[str]]  # plate keys: the declared plates under each
    numbers_by_key: dict[str, list[str]]  # the other (container) keys: declaration numbers
    numbers_by_plate: dict[str, list[str]] = field(default_factory=dict)  # plates read
    rows: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    used: dict[str, str | None] = field(default_factory=dict)  # kept current by
    # mark_declaration_used / release_declarations

    def read(self, conn: Any, plates: Collection[str], numbers: Collection[str]) -> None:
        """Read the declarations of these plates (not read yet) and with these numbers."""
        wanted = set(plates)
        queries = _ROWS_OF_PLATES_OR_NUMBERS if wanted and numbers else (
            _ROWS_OF_PLATES if wanted else _ROWS)
        params = {"plates": _list_param(conn, wanted)} if wanted else {}
        if numbers:
            params["numbers"] = _list_param(conn, numbers)
        for plate in wanted:
            self.numbers_by_plate[plate] = []
        for r in conn.execute(queries[conn.dialect.name], params):
            row = tuple(r)
            number, plate = row[0], row[_PLATE_AT]
            if plate in wanted:
                self.numbers_by_plate[plate].append(number)
            if number not in self.rows:  # one read earlier stays: its use is kept current
                self.rows[number] = row
                self.used[number] = row[_USED_AT]


_PREFETCH = "smartgate.store.prefetch"
def _in_list(column: Any, name: str) -> dict[str, ColumnElement[bool]]:
    """`column IN` a list bound as one parameter `name` (`_list_param`), per dialect: SQLite's
    `json_each` of a JSON array, PostgreSQL's `= ANY(array)`. One statement whatever the
    length, so SQLAlchemy neither renders nor binds hundreds of parameters (an expanding
    `IN` did that for every read-ahead)."""
    each = select(literal_column("value")).select_from(func.json_each(bindparam(name)))
    return {
        "sqlite": column.in_(each),
        "postgresql": column == any_(bindparam(name, type_=ARRAY(String))),
    }


def _list_param(conn: Any, values: Collection[str]) -> Any:
    """A list as `_in_list` binds it on this connection's dialect."""
    items = sorted(values)
    return json.dumps(items) if conn.dialect.name == "sqlite" else items


def _per_dialect(columns: Sequence[Any], where: Callable[[str], ColumnElement[bool]]
                 ) -> dict[str, Select[Any]]:
    return {d: select(*columns).where(where(d)) for d in ("sqlite", "postgresql")}


_EXISTING = _per_dialect([Passage.event_id], lambda d: _in_list(Passage.event_id, "ids")[d])
_KEY_NUMBERS = _per_dialect(
    [_DECLARATION_KEYS.c.key, _DECLARATION_KEYS.c.declaration_number],
    lambda d: _in_list(_DECLARATION_KEYS.c.key, "keys")[d])
_KEY_PLATES = _per_dialect([_PLATE_KEYS.c.key, _PLATE_KEYS.c.plate],
                           lambda d: _in_list(_PLATE_KEYS.c.key, "keys")[d])
_ROWS = _per_dialect(_CANDIDATE_COLUMNS,
                     lambda d: _in_list(_DECLARATIONS.c.number, "numbers")[d])
_ROWS_OF_PLATES = _per_dialect(_CANDIDATE_COLUMNS,
                               lambda d: _in_list(_DECLARATIONS.c.tractor_plate, "plates")[d])
_ROWS_OF_PLATES_OR_NUMBERS = _per_dialect(
    _CANDIDATE_COLUMNS,
    lambda d: or_(_in_list(_DECLARATIONS.c.tractor_plate, "plates")[d],
                  _in_list(_DECLARATIONS.c.number, "numbers")[d]))


def prefetch_passages(
    session: Session,
    event_ids: Collection[str],
    wanted: Sequence[tuple[Collection[str], CandidateKeep | None]],
) -> None:
    """Read ahead, in a few queries, what storing and deciding a batch of passages asks per
    passage: which event ids are stored already and the candidate declarations of all their
    keys. `wanted` holds each passage's keys (`passage_keys`) and its candidate filter: the
    look-alike plates under its plate keys are found in `plate_keys`, and only the
    declarations of plates some filter may keep are read (with those under container keys).
    `passage_exists` and `candidate_declarations` then answer from it for the rest of this
    transaction (declaration use recorded meanwhile is kept in step)."""
    conn = session.connection()
    dialect = conn.dialect.name
    existing = set(conn.execute(_EXISTING[dialect], {"ids": _list_param(conn, event_ids)})
                   .scalars())
    keys = {k for passage_keys, _ in wanted for k in passage_keys}
    plate_keys = sorted(k for k in keys if k.startswith(PLATE_KEY))
    other_keys = sorted(k for k in keys if not k.startswith(PLATE_KEY))
    plates_by_key: dict[str, list[str]] = defaultdict(list)
    numbers_by_key: dict[str, list[str]] = defaultdict(list)
    if plate_keys:
        for key, plate in conn.execute(_KEY_PLATES[dialect],
                                       {"keys": _list_param(conn, plate_keys)}):
            plates_by_key[key].append(plate)
    if other_keys:
        for key, number in conn.execute(_KEY_NUMBERS[dialect],
                                        {"keys": _list_param(conn, other_keys)}):
            numbers_by_key[key].append(number)
    ahead = _Prefetch(
        transaction=session.get_transaction(), event_ids=set(event_ids), existing=existing,
        keys=keys, plates_by_key=dict(plates_by_key), numbers_by_key=dict(numbers_by_key),
    )  # fmt: skip
    plates = {
        p for passage_keys, keep in wanted for k in passage_keys
        for p in ahead.plates_by_key.get(k, ()) if keep is None or keep.may_keep_plate(p)
    }  # fmt: skip
    numbers = {n for ns in ahead.numbers_by_key.values() for n in ns}
    if plates or numbers:
        ahead.read(conn, plates, numbers)
    session.info[_PREFETCH] = ahead


def _prefetched(session: Session) -> _Prefetch | None:
    """This transaction's read-ahead, if any (one left by an earlier transaction is dropped)."""
    ahead = session.info.get(_PREFETCH)
    if ahead is None or ahead.transaction is session.get_transaction():
        return ahead
    del session.info[_PREFETCH]
    return None


@lru_cache(maxsize=1 << 16)
def _cached_declaration(row: tuple[Any, ...]) -> Declaration:
    """`declaration_from_row` of a candidate row up to `updated_at` (its use is not part of a
    Declaration), remembered: a truck's declarations are candidates of every one of its
    passages, and an amended row (new `updated_at`) is a different key."""
    return declaration_from_row(_CandidateRow(*row, None, None))


_DRIVER_PLACEHOLDERS = {"qmark": "?", "format": "%s", "pyformat": "%s"}


@lru_cache(maxsize=8)
def _driver_mark_used(dialect: Dialect) -> tuple[str, Callable[[Any], Any]] | None:
    """`_MARK_USED` as the driver's own SQL (event id, time, number) with the bind processor of
    its time column, for a driver whose parameter style is known."""
    mark = _DRIVER_PLACEHOLDERS.get(dialect.paramstyle)
    if mark is None:
        return None
    table = _DECLARATIONS.name
    sql = (f"UPDATE {table} SET used_by_event_id = {mark}, used_at = {mark} "
           f"WHERE number = {mark} AND used_by_event_id IS NULL")
    time_type = _DECLARATIONS.c.used_at.type.dialect_impl(dialect)
    return sql, time_type.bind_processor(dialect) or (lambda value: value)


def mark_declaration_used(session: Session, number: str, event_id: str) -> bool:
    """Record that a passage consumed this declaration; False when another passage had used it
    already (first use wins: a concurrent worker's committed use included, as the UPDATE waits
    for it on PostgreSQL).

    Once per cleared passage: run on the driver's cursor in the session's transaction, which
    costs a tenth of a SQLAlchemy Core execution (~8 against ~80 µs on SQLite)."""
    conn = session.connection()
    driver = _driver_mark_used(conn.dialect)
    if driver is None:
        done = conn.execute(
            _MARK_USED, {"n": number, "event_id": event_id, "at": utcnow()}).rowcount == 1
    else:
        sql, bind_time = driver
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(sql, (event_id, bind_time(utcnow()), number))
            done = cursor.rowcount == 1
        finally:
            cursor.close()
    ahead = _prefetched(session)
    if ahead is not None and number in ahead.used and ahead.used[number] is None:
        ahead.used[number] = event_id if done else "(another passage)"
    return done


def release_declarations(session: Session, event_id: str) -> None:
    """Undo a passage's use of declarations (before it is decided again on corrected reads)."""
    session.info.pop(_PREFETCH, None)
    session.execute(
        update(DeclarationRow)
        .where(DeclarationRow.used_by_event_id == event_id)
        .values(used_by_event_id=None, used_at=None)
    )


# --------------------------------------------------------------------------------------------
# Decisions, fees, commands, lane status, audit
# --------------------------------------------------------------------------------------------


def _supersede(session: Session, event_id: str) -> None:
    session.execute(
        update(DecisionRow)
        .where(DecisionRow.passage_event_id == event_id, DecisionRow.current)
        .values(current=False)
    )


class DecisionValues(namedtuple("DecisionValues", [
    "passage_event_id", "current", "outcome", "action", "reasons", "declaration_number",
    "plate_score", "matched_containers", "rules_version", "decided_by", "decided_at", "note",
])):
    """A rules decision as written to `decisions` (the columns `decision_message` reads)."""


def add_rules_decision(
    session: Session,
    event_id: str,
    decision: Decision,
    first: bool = False,
    decided_by: str | None = None,
    note: str = "",
) -> DecisionValues:
    """Store the rules' decision on a passage as its current decision; `first` (a passage
    just stored, as in the ingest) skips retiring earlier decisions, since there are none.

    `decided_by` names the officer whose corrected reads the rules decided (default: the rules).
    The row is queued (written with the transaction's other queued rows).
    """
    if not first:
        _supersede(session, event_id)
    data = decision.to_dict()
    values = DecisionValues(
        passage_event_id=event_id,
        current=True,
        outcome=decision.outcome.value,
        action=decision.action.value,
        reasons=data["reasons"],
        declaration_number=decision.declaration_number,
        plate_score=data["plate_score"],
        matched_containers=list(decision.matched_containers),
        rules_version=decision.rules_version,
        decided_by=(decided_by or f"rules:{decision.rules_version}")[:64],
        decided_at=utc(decision.decided_at),
        note=note,
    )
    _queue_row(session, "decisions", values._asdict())
    return values


def current_decision(session: Session, event_id: str) -> DecisionRow | None:
    """The decision in force for a passage."""
    return session.scalar(
        select(DecisionRow).where(DecisionRow.passage_event_id == event_id, DecisionRow.current)
    )


def current_decisions(session: Session, event_ids: Collection[str]) -> dict[str, DecisionRow]:
    """The decision in force for each of these passages (missing when undecided)."""
    if not event_ids:
        return {}
    rows = session.scalars(
        select(DecisionRow).where(
            DecisionRow.passage_event_id.in_(list(event_ids)), DecisionRow.current
        )
    )
    return {r.passage_event_id: r for r in rows}


def decision_history(session: Session, event_id: str) -> Sequence[DecisionRow]:
    """Every decision on a passage, oldest first."""
    return session.scalars(
        select(DecisionRow)
        .where(DecisionRow.passage_event_id == event_id)
        .order_by(DecisionRow.decided_at, DecisionRow.id)
    ).all()


class Verdict(StrEnum):
    """What an officer decides on a reviewed passage."""

    APPROVE = "approve"
    REJECT = "reject"
    HOLD = "hold"
    INSPECT = "inspect"


OFFICER_OUTCOMES = {
    Verdict.APPROVE: "approved",
    Verdict.REJECT: "rejected",
    Verdict.HOLD: "held",
    Verdict.INSPECT: "inspection",
}


class PassageNotFound(LookupError):
    """No passage with the given event id."""


def record_officer_decision(
    session: Session, event_id: str, verdict: Verdict, actor: str, note: str, action: str | None
) -> DecisionRow:
    """An officer's decision, made current, with an audit entry naming who and when.

    Keeps the rules' reasons and matched declaration; approving marks the declaration used.
    Raises PassageNotFound for an unknown event id.
    """
    if not passage_exists(session, event_id):
        raise PassageNotFound(event_id)
    previous = current_decision(session, event_id)
    _supersede(session, event_id)
    row = DecisionRow(
        passage_event_id=event_id,
        current=True,
        outcome=OFFICER_OUTCOMES[verdict],
        action=action,
        reasons=previous.reasons if previous else [],
        declaration_number=previous.declaration_number if previous else None,
        plate_score=previous.plate_score if previous else None,
        matched_containers=list(previous.matched_containers or []) if previous else [],
        rules_version=previous.rules_version if previous else "",
        decided_by=actor,
        decided_at=utcnow(),
        note=note,
    )
    session.add(row)
    if verdict is Verdict.APPROVE and row.declaration_number:
        mark_declaration_used(session, row.declaration_number, event_id)
    add_audit(
        session, actor, f"decision.{verdict.value}", "passage", event_id,
        {"note": note, "previous": previous.outcome if previous else None, "action": action},
    )
    session.flush()
    return row


def set_fee(
    session: Session,
    event_id: str,
    fee: FeeAssessment | None,
    declaration_number: str | None,
    first: bool = False,
) -> None:
    """Store (or replace, or with None remove) the fee assessed for a passage; `first` (a
    passage just stored) skips looking for an earlier assessment, since there is none."""
    if first:
        if fee is not None:
            _queue_row(session, "fees", {"passage_event_id": event_id,
                                         **_fee_values(fee, declaration_number)})
        return
    row = session.get(FeeRow, event_id)
    if fee is None:
        if row is not None:
            session.delete(row)
        return
    if row is None:
        row = FeeRow(passage_event_id=event_id)
        session.add(row)
    for name, value in _fee_values(fee, declaration_number).items():
        setattr(row, name, value)


def _fee_values(fee: FeeAssessment, declaration_number: str | None) -> dict[str, Any]:
    return {
        "declaration_number": declaration_number,
        "amount_vnd": fee.amount_vnd,
        "basis": fee.basis,
        "multiplier": fee.multiplier,
        "items": [{"label": i.label, "amount_vnd": i.amount_vnd} for i in fee.items],
        "table_version": fee.table_version,
        "assessed_at": utcnow(),
    }


def add_command(session: Session, command: LaneCommand) -> None:
    """Store a lane command central issues (before it is published); queued with the
    transaction's other rows."""
    _queue_row(session, "commands", {
        "command_id": command.command_id,
        "site": command.site,
        "lane": command.lane,
        "action": command.action.value,
        "passage_event_id": command.passage_event_id,
        "message": command.message,
        "inspection_lane": command.inspection_lane,
        "issued_by": command.issued_by,
        "issued_at": utc(command.issued_at),
        "ack_ok": None,
        "ack_detail": None,
        "ack_node_id": None,
        "acked_at": None,
    })


def get_command(session: Session, command_id: str) -> CommandRow | None:
    """The command with this id."""
    return session.get(CommandRow, command_id)


def record_ack(session: Session, ack: CommandAck) -> CommandRow | None:
    """Attach an edge's acknowledgement to its command; None when the command is unknown."""
    row = session.get(CommandRow, ack.command_id)
    if row is None:
        return None
    row.ack_ok = ack.ok
    row.ack_detail = ack.detail
    row.ack_node_id = ack.node_id
    row.acked_at = utc(ack.acked_at)
    return row


def commands_for_passage(session: Session, event_id: str) -> Sequence[CommandRow]:
    """Commands issued for a passage, oldest first."""
    return session.scalars(
        select(CommandRow)
        .where(CommandRow.passage_event_id == event_id)
        .order_by(CommandRow.issued_at)
    ).all()


def pending_command(session: Session, event_id: str) -> LaneCommand | None:
    """The latest command for a passage when the edge has not acknowledged it yet.

    A redelivered passage means central may have crashed between its commit and publishing
    the command; re-sending the same command (same id) is harmless to the edge.
    """
    rows = commands_for_passage(session, event_id)
    if not rows or rows[-1].acked_at is not None:
        return None
    row = rows[-1]
    return LaneCommand(
        command_id=row.command_id, site=row.site, lane=row.lane,
        action=CommandAction(row.action), passage_event_id=row.passage_event_id,
        message=row.message, inspection_lane=row.inspection_lane, issued_by=row.issued_by,
        issued_at=utc(row.issued_at),
    )


def set_lane_status(session: Session, status: LaneStatus) -> None:
    """Keep the latest reported state of a lane."""
    row = session.get(LaneStatusRow, (status.site, status.lane))
    if row is None:
        row = LaneStatusRow(site=status.site, lane=status.lane)
        session.add(row)
    row.node_id = status.node_id
    row.state = status.state
    row.queue_length = status.queue_length
    row.updated_at = utc(status.at)


def list_lane_status(session: Session) -> Sequence[LaneStatusRow]:
    """The latest state of every lane that reported one."""
    return session.scalars(
        select(LaneStatusRow).order_by(LaneStatusRow.site, LaneStatusRow.lane)
    ).all()


def add_audit(
    session: Session, actor: str, action: str, target_type: str, target_id: str, detail: dict
) -> None:
    """Append an audit entry (who, what, on which record) in the caller's transaction."""
    session.add(
        AuditEntry(
            at=utcnow(), actor=actor, action=action, target_type=target_type,
            target_id=target_id, detail=detail,
        )
    )


def list_audit(
    session: Session, target_type: str | None = None, target_id: str | None = None,
    limit: int = 100,
) -> Sequence[AuditEntry]:
    """Audit entries, newest first, optionally for one record."""
    q = select(AuditEntry).order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
    if target_type:
        q = q.where(AuditEntry.target_type == target_type)
    if target_id:
        q = q.where(AuditEntry.target_id == target_id)
    return session.scalars(q.limit(limit)).all()


CORRECTION = "decision.correct"


def read_corrections(session: Session, event_id: str) -> list[dict]:
    """The details of an officer's read corrections of a passage (audited), oldest first."""
    return list(
        session.scalars(
            select(AuditEntry.detail)
            .where(
                AuditEntry.target_type == "passage",
                AuditEntry.target_id == event_id,
                AuditEntry.action == CORRECTION,
            )
            .order_by(AuditEntry.at, AuditEntry.id)
        )
    )


# An officer's verdict that says the passage's reads were looked at (hold only postpones).
CONFIRMING_VERDICTS = tuple(
    f"decision.{v.value}" for v in (Verdict.APPROVE, Verdict.REJECT, Verdict.INSPECT)
)


@dataclass(frozen=True)
class OfficerReview:
    """A passage an officer decided or corrected (what `smartgate central export-training`
    labels): whether an officer gave a verdict, and the last plate an officer corrected it to."""

    passage: Passage
    confirmed: bool
    corrected_plate: str | None


def officer_reviews(
    session: Session, since: datetime | None = None, chunk: int = 500
) -> Iterator[OfficerReview]:
    """Passages an officer approved, rejected or sent to inspection, or whose reads an officer
    corrected, at or after `since`; purged ones (retention) left out; by passage id. Each
    passage's verdicts and corrections are taken from its whole history, so the label of a
    passage corrected before `since` and approved after it is still the corrected plate."""
    actions = (*CONFIRMING_VERDICTS, CORRECTION)
    reviewed = select(AuditEntry.target_id).where(
        AuditEntry.target_type == "passage", AuditEntry.action.in_(actions)
    )
    if since is not None:
        reviewed = reviewed.where(AuditEntry.at >= utc(since))
    not_purged = ~exists().where(PurgedPassage.passage_event_id == Passage.event_id)
    last_id = 0
    while True:
        rows = session.scalars(
            select(Passage)
            .where(Passage.event_id.in_(reviewed), not_purged, Passage.id > last_id)
            .order_by(Passage.id)
            .limit(chunk)
        ).all()
        if not rows:
            return
        last_id = rows[-1].id
        confirmed: set[str] = set()
        corrected: dict[str, str] = {}
        for event_id, action, detail in session.execute(
            select(AuditEntry.target_id, AuditEntry.action, AuditEntry.detail)
            .where(
                AuditEntry.target_type == "passage",
                AuditEntry.target_id.in_([p.event_id for p in rows]),
                AuditEntry.action.in_(actions),
            )
            .order_by(AuditEntry.at, AuditEntry.id)
        ):
            if action != CORRECTION:
                confirmed.add(event_id)
            elif isinstance(detail, dict) and detail.get("plate"):
                corrected[event_id] = str(detail["plate"])
        for p in rows:
            yield OfficerReview(p, p.event_id in confirmed, corrected.get(p.event_id))


# --------------------------------------------------------------------------------------------
# Pages: review queue, passage detail, lane statistics
# --------------------------------------------------------------------------------------------


def _has_reason(session: Session, reason: str) -> ColumnElement[bool]:
    """The current decision's findings (a JSON list) include one with this `reason`."""
    if session.get_bind().dialect.name == "postgresql":
        item = func.json_array_elements(DecisionRow.reasons).table_valued("value").alias("r")
        return exists().select_from(item).where(item.c.value.op("->>")("reason") == reason)
    item = func.json_each(DecisionRow.reasons).table_valued("value").alias("r")
    return exists().select_from(item).where(func.json_extract(item.c.value, "$.reason") == reason)


def _review_entries(lane: str | None) -> Select[Passage, DecisionRow]:
    q = (
        select(Passage, DecisionRow)
        .join(DecisionRow, DecisionRow.passage_event_id == Passage.event_id)
        .where(DecisionRow.current, DecisionRow.outcome.in_(REVIEW_OUTCOMES))
    )
    return q.where(Passage.lane == lane) if lane else q


def list_review_queue(
    session: Session,
    limit: int = 100,
    offset: int = 0,
    lane: str | None = None,
    reason: str | None = None,
    newest_first: bool = False,
) -> Sequence[tuple[Passage, DecisionRow]]:
    """Passages waiting for an officer (current outcome flagged, no_declaration or held),
    oldest first (or newest first), each with its current decision; `reason` keeps those
    whose decision has that finding."""
    q = _review_entries(lane)
    if reason:
        q = q.where(_has_reason(session, reason))
    if newest_first:
        q = q.order_by(Passage.ended_at.desc(), Passage.id.desc())
    else:
        q = q.order_by(Passage.ended_at, Passage.id)
    return [(p, d) for p, d in session.execute(q.limit(limit).offset(offset))]


def review_lanes(session: Session) -> list[str]:
    """Lanes that reported a state or have passages in the review queue, sorted."""
    waiting = _review_entries(None).with_only_columns(Passage.lane).distinct()
    reporting = select(LaneStatusRow.lane).distinct()
    return sorted(set(session.scalars(waiting)) | set(session.scalars(reporting)))


@dataclass(frozen=True)
class PassageDetail:
    """Everything the passage page shows."""

    passage: Passage
    decision: DecisionRow | None
    declaration: DeclarationRow | None
    history: Sequence[DecisionRow]
    commands: Sequence[CommandRow]
    fee: FeeRow | None
    audit: Sequence[AuditEntry]


def passage_detail(session: Session, event_id: str) -> PassageDetail | None:
    """A passage with its current decision, matched declaration, decision history, commands,
    fee and audit entries; None when unknown."""
    passage = get_passage(session, event_id)
    if passage is None:
        return None
    history = decision_history(session, event_id)
    decision = next((d for d in history if d.current), None)
    number = decision.declaration_number if decision else None
    return PassageDetail(
        passage=passage,
        decision=decision,
        declaration=session.get(DeclarationRow, number) if number else None,
        history=history,
        commands=commands_for_passage(session, event_id),
        fee=session.get(FeeRow, event_id),
        audit=list_audit(session, "passage", event_id),
    )


@dataclass
class LaneStats:
    """Numbers for one lane over a time range."""

    site: str
    lane: str
    passages: int = 0
    per_hour: dict[str, int] = field(default_factory=dict)
    read_rate: float = 0.0
    flagged_rate: float = 0.0
    mean_decision_s: float | None = None
    outcomes: dict[str, int] = field(default_factory=dict)


def lane_statistics(
    session: Session, since: datetime | None = None, until: datetime | None = None,
    site: str | None = None,
) -> list[LaneStats]:
    """Per lane: passages per hour, plate read rate, share the rules did not clear, and mean
    seconds from the vehicle's arrival (passage start) to the rules' decision."""
    q = select(
        Passage.site, Passage.lane, Passage.ended_at, Passage.started_at, Passage.plate_text,
        DecisionRow.outcome, DecisionRow.decided_at,
    ).outerjoin(
        DecisionRow,
        (DecisionRow.passage_event_id == Passage.event_id)
        & DecisionRow.decided_by.startswith("rules:"),
    )
    if since:
        q = q.where(Passage.ended_at >= utc(since))
    if until:
        q = q.where(Passage.ended_at < utc(until))
    if site:
        q = q.where(Passage.site == site)
    rows: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for r in session.execute(q):
        rows[(r.site, r.lane)].append(r)
    out = []
    for (site_id, lane), items in sorted(rows.items()):
        decided = [r for r in items if r.outcome is not None]
        waits = [(utc(r.decided_at) - utc(r.started_at)).total_seconds() for r in decided]
        hours = Counter(utc(r.ended_at).strftime("%Y-%m-%dT%H:00Z") for r in items)
        outcomes = Counter(r.outcome for r in decided)
        out.append(
            LaneStats(
                site=site_id,
                lane=lane,
                passages=len(items),
                per_hour=dict(sorted(hours.items())),
                read_rate=round(sum(r.plate_text is not None for r in items) / len(items), 4),
                flagged_rate=round(
                    (len(decided) - outcomes["cleared"]) / len(decided), 4
                ) if decided else 0.0,
                mean_decision_s=round(sum(waits) / len(waits), 3) if waits else None,
                outcomes=dict(outcomes),
            )
        )
    return out


# --------------------------------------------------------------------------------------------
# Journeys (central/journeys.py): linked passages, zones, dispatch calls
# --------------------------------------------------------------------------------------------


def open_journeys(session: Session, site: str) -> Sequence[JourneyRow]:
    """The site's journeys still open (the truck has not left), oldest first."""
    return session.scalars(
        select(JourneyRow).where(JourneyRow.site == site, JourneyRow.status == "open")
        .order_by(JourneyRow.started_at, JourneyRow.id)
    ).all()  # fmt: skip


def zone_counts(session: Session, site: str) -> Counter[str]:
    """Open journeys per zone of the site."""
    rows = session.execute(
        select(JourneyRow.zone, func.count()).where(
            JourneyRow.site == site, JourneyRow.status == "open", JourneyRow.zone.is_not(None))
        .group_by(JourneyRow.zone)
    ).all()  # fmt: skip
    return Counter({str(zone): int(n) for zone, n in rows})


_LINK_COLUMNS = (JourneyRow.id, JourneyRow.plate, JourneyRow.plates, JourneyRow.alternatives,
                 JourneyRow.last_role, JourneyRow.last_at, JourneyRow.marks,
                 JourneyRow.declared_plate)


def linkable_journeys(
    session: Session, site: str, seen_since: datetime, ended_since: datetime
) -> Sequence[Any]:
    """Journeys of the site a passage could continue: open and seen since `seen_since`, or
    completed at or after `ended_since`; the columns linking needs."""
    return session.execute(
        select(*_LINK_COLUMNS).where(
            JourneyRow.site == site,
            or_((JourneyRow.status == "open") & (JourneyRow.last_at >= utc(seen_since)),
                JourneyRow.ended_at >= utc(ended_since)))
    ).all()  # fmt: skip


def orphan_journeys(
    session: Session, site: str, start_roles: Collection[str], since: datetime, until: datetime
) -> Sequence[Any]:
    """Journeys of the site that began in [since, until] without a start checkpoint (their
    yard entry may still come, sent late); the columns linking needs."""
    return session.execute(
        select(*_LINK_COLUMNS).where(
            JourneyRow.site == site, JourneyRow.first_role.not_in(list(start_roles)),
            JourneyRow.started_at >= utc(since), JourneyRow.started_at <= utc(until))
    ).all()  # fmt: skip


def priority_arrivals(session: Session, site: str, since: datetime, until: datetime) -> int:
    """Journeys of priority trucks that started in [since, until]."""
    return int(session.scalar(
        select(func.count()).select_from(JourneyRow).where(
            JourneyRow.site == site, JourneyRow.priority.is_(True),
            JourneyRow.started_at >= utc(since), JourneyRow.started_at <= utc(until))
    ) or 0)  # fmt: skip


def move_journey_passages(session: Session, source: int, target: int) -> int:
    """Relink every passage of journey `source` into `target`; how many."""
    result = session.execute(
        update(JourneyPassage).where(JourneyPassage.journey_id == source)
        .values(journey_id=target)
    )  # fmt: skip
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def sites_with_open_journeys(session: Session) -> list[str]:
    """Sites that have open journeys."""
    return [str(s) for s in session.scalars(
        select(JourneyRow.site).where(JourneyRow.status == "open").distinct())]


def add_journey(session: Session, row: JourneyRow) -> JourneyRow:
    """Add a new journey (flushed, so it has its id)."""
    session.add(row)
    session.flush()
    return row


def journey_passage_exists(session: Session, event_id: str) -> bool:
    """Whether this passage is already linked into a journey."""
    return session.get(JourneyPassage, event_id) is not None


def add_journey_passage(session: Session, row: JourneyPassage) -> None:
    """Link a passage into its journey."""
    session.add(row)


def journey_checkpoints(session: Session, journey_id: int) -> Sequence[JourneyPassage]:
    """A journey's linked passages in time order."""
    return session.scalars(
        select(JourneyPassage).where(JourneyPassage.journey_id == journey_id)
        .order_by(JourneyPassage.at, JourneyPassage.passage_event_id)
    ).all()  # fmt: skip


def get_journey(session: Session, journey_id: int) -> JourneyRow | None:
    """The journey with this id."""
    return session.get(JourneyRow, journey_id)


def journey_of_passage(session: Session, event_id: str) -> JourneyRow | None:
    """The journey a passage is linked into."""
    return session.scalar(
        select(JourneyRow).join(JourneyPassage, JourneyPassage.journey_id == JourneyRow.id)
        .where(JourneyPassage.passage_event_id == event_id)
    )  # fmt: skip


@dataclass(frozen=True)
class JourneyFilter:
    """Filters for journey listings."""

    site: str | None = None
    status: str | None = None
    plate: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    ambiguous: bool | None = None
    limit: int = 100
    offset: int = 0


def list_journeys(session: Session, f: JourneyFilter) -> Sequence[JourneyRow]:
    """Journeys matching the filter, newest first (`since`/`until` on the start)."""
    q = select(JourneyRow).order_by(JourneyRow.started_at.desc(), JourneyRow.id.desc())
    if f.site:
        q = q.where(JourneyRow.site == f.site)
    if f.status:
        q = q.where(JourneyRow.status == f.status)
    if f.plate:
        q = q.where(JourneyRow.plate.contains(normalize_plate(f.plate)))
    if f.since:
        q = q.where(JourneyRow.started_at >= utc(f.since))
    if f.until:
        q = q.where(JourneyRow.started_at < utc(f.until))
    if f.ambiguous is not None:
        q = q.where(JourneyRow.ambiguous == f.ambiguous)
    return session.scalars(q.limit(f.limit).offset(f.offset)).all()


def journeys_between(session: Session, site: str, since: datetime, until: datetime
                     ) -> Sequence[JourneyRow]:
    """Journeys of a site that started or ended in [since, until)."""
    since, until = utc(since), utc(until)
    return session.scalars(
        select(JourneyRow).where(
            JourneyRow.site == site,
            or_((JourneyRow.started_at >= since) & (JourneyRow.started_at < until),
                (JourneyRow.ended_at >= since) & (JourneyRow.ended_at < until)),
        ).order_by(JourneyRow.started_at)
    ).all()  # fmt: skip


def journey_event_ids(session: Session, journey_ids: Collection[int]) -> dict[int, list[str]]:
    """The passages (event ids) of each journey."""
    out: dict[int, list[str]] = defaultdict(list)
    ids = list(journey_ids)
    for k in range(0, len(ids), 5000):
        rows = session.execute(
            select(JourneyPassage.journey_id, JourneyPassage.passage_event_id)
            .where(JourneyPassage.journey_id.in_(ids[k:k + 5000]))
            .order_by(JourneyPassage.at)
        ).all()  # fmt: skip
        for jid, eid in rows:
            out[int(jid)].append(str(eid))
    return dict(out)


def lane_times_by_role(
    session: Session, site: str, roles: Collection[str], since: datetime
) -> dict[str, list[datetime]]:
    """When each lane of these roles cleared its passages since `since` (passage end times)."""
    rows = session.execute(
        select(JourneyPassage.lane, JourneyPassage.ended_at).where(
            JourneyPassage.site == site, JourneyPassage.role.in_(list(roles)),
            JourneyPassage.ended_at >= utc(since),
        )
    ).all()  # fmt: skip
    out: dict[str, list[datetime]] = defaultdict(list)
    for lane, at in rows:
        out[str(lane)].append(utc(at))
    return dict(out)


def latest_journey_time(session: Session, site: str) -> datetime | None:
    """The newest checkpoint time of the site (the journeys' clock)."""
    return aware(session.scalar(
        select(func.max(JourneyPassage.ended_at)).where(JourneyPassage.site == site)))


def declaration_of_passage(session: Session, event_id: str) -> DeclarationRow | None:
    """The declaration the passage's current decision matched."""
    decision = current_decision(session, event_id)
    if decision is None or decision.declaration_number is None:
        return None
    return session.get(DeclarationRow, decision.declaration_number)


def active_calls(session: Session, site: str) -> Sequence[DispatchCall]:
    """Calls of the site whose truck has not arrived yet, oldest first."""
    return session.scalars(
        select(DispatchCall).where(DispatchCall.site == site, DispatchCall.status == "called")
        .order_by(DispatchCall.called_at)
    ).all()  # fmt: skip


def add_call(session: Session, call: DispatchCall) -> DispatchCall:
    """Record a call (flushed, so it has its id)."""
    session.add(call)
    session.flush()
    return call


def close_calls(session: Session, journey_id: int, status: str) -> int:
    """Set the journey's open calls to `status` (arrived or requeued); how many."""
    result = session.execute(
        update(DispatchCall)
        .where(DispatchCall.journey_id == journey_id, DispatchCall.status == "called")
        .values(status=status)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]

