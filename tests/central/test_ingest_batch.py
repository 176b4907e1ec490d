"""A batch of passages read ahead (DecisionService.prefetch) decides exactly as one by one."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import event, select

from central import store
from central.db import DecisionRow, make_engine, session_factory, upgrade_database
from central.decisions import DecisionService
from central.domain.declarations import Declaration
from central.domain.rules import RuleSet
from central.ingest import handle_message, parse_passages
from smartgate import contract
from smartgate.contract import PlateRead
from tests.test_contract import T0, make_event

RULES = RuleSet(version="site-7")


def _sessions(path: Path):  # type: ignore[no-untyped-def]
    engine = make_engine(f"sqlite:///{path}")
    upgrade_database(engine)
    sessions = session_factory(engine)
    with sessions() as s, s.begin():
        store.import_declarations(s, [
            Declaration(number=f"D-{plate}", direction="import", tractor_plate=plate,
                        window_start=T0 - timedelta(hours=1), window_end=T0 + timedelta(hours=9),
                        gate="huunghi")
            for plate in ("29C45638", "29C45688", "51D67890")
        ])  # fmt: skip
    return sessions


def _decide(sessions, payloads: list[bytes], prefetch: bool) -> list[tuple[str, ...]]:  # type: ignore[no-untyped-def]
    service = DecisionService(RULES)
    topic = contract.passage_topic("huunghi", "L1")
    selects: list[str] = []
    engine = sessions.kw["bind"]

    def count(_conn, _cursor, statement: str, *_args) -> None:  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("SELECT"):
            selects.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    with sessions() as s, s.begin():
        if prefetch:
            service.prefetch(s, [contract.parse_passage(p) for p in payloads])
        kinds = [handle_message(s, topic, p, service.decide_passage).kind for p in payloads]
    event.remove(engine, "before_cursor_execute", count)
    with sessions() as s:
        rows = {r.passage_event_id: r for r in s.scalars(select(DecisionRow))}
    decided = [contract.parse_passage(p).event_id for p in payloads]
    return [tuple(kinds), (str(len(selects)),)] + [
        (rows[e].outcome, str(rows[e].declaration_number),
         *sorted(r["reason"] for r in rows[e].reasons))
        for e in dict.fromkeys(decided)
    ]  # fmt: skip


def test_prefetched_batch_decides_like_one_by_one(tmp_path: Path) -> None:
    none = {"containers": [], "weight": None}
    own = make_event(plate_front=PlateRead(text="29C45638", confidence=0.95), **none)
    again = make_event(plate_front=PlateRead(text="29C45638", confidence=0.95), **none)
    other = make_event(plate_front=PlateRead(text="51D67890", confidence=0.95), **none)
    unknown = make_event(plate_front=PlateRead(text="88H88888", confidence=0.95), **none)
    # a redelivery inside the batch, and the same declaration used twice in it
    payloads = [e.to_json() for e in (own, own, again, other, unknown)]
    batched = _decide(_sessions(tmp_path / "batched.db"), payloads, prefetch=True)
    single = _decide(_sessions(tmp_path / "single.db"), payloads, prefetch=False)
    assert batched[0] == single[0] and batched[2:] == single[2:]
    # read ahead: stored ids, keys, rows; then only the redelivery's pending command
    assert int(batched[1][0]) == 4 < int(single[1][0]) == 9
    assert batched[0] == ("stored", "duplicate", "stored", "stored", "stored")
    assert batched[2] == ("cleared", "D-29C45638")
    assert batched[3] == ("flagged", "D-29C45638", "declaration_already_used")
    assert batched[5] == ("no_declaration", "None", "plate_not_declared")


def test_parse_passages_keeps_only_valid_passages() -> None:
    """The batch is parsed once; what fails is left to handle_message, which rejects it."""
    good = make_event()
    topic = contract.passage_topic(good.site, good.lane)
    messages = [(topic, b"{not json"), (topic, good.to_json()),
                (contract.lane_status_topic(good.site, good.lane), good.to_json())]
    assert parse_passages(messages) == {1: good}
