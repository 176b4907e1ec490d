"""The decision service: passage → candidate declarations → decision → stored → lane command.

`DecisionService.decide_passage` runs inside the ingest transaction (the `on_passage` hook), so
a passage, its decision, its fee and its command commit together; the ingest publishes the
command only after that commit. Officers' decisions go through `officer_decision`.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from datetime import timedelta

from sqlalchemy.orm import Session, sessionmaker

from central import store
from central.db import make_engine, session_factory, upgrade_database, utcnow
from central.declarations import Declaration, Direction
from central.fees import DEFAULT_FEE_TABLE, FeeError, FeeTable, assess_fee
from central.ingest import PassageDecided
from central.matching import Outcome, command_for, decide, passage_keys
from central.rules import DEFAULT_RULES, RuleSet
from smartgate.contract import CommandAction, LaneCommand, PassageEvent

log = logging.getLogger(__name__)

OFFICER_COMMANDS: dict[store.Verdict, tuple[CommandAction, str]] = {
    store.Verdict.APPROVE: (CommandAction.OPEN_BARRIER, "Cleared by officer"),
    store.Verdict.REJECT: (CommandAction.CLOSE_BARRIER, "Rejected: see officer"),
    store.Verdict.HOLD: (CommandAction.SHOW_MESSAGE, "Hold: wait for officer"),
}


class DecisionService:
    """Decides passages with one site's rules and fee table, and issues their lane commands."""

    def __init__(self, rules: RuleSet = DEFAULT_RULES, fee_table: FeeTable = DEFAULT_FEE_TABLE):
        self.rules = rules
        self.fee_table = fee_table

    def decide_passage(self, session: Session, event: PassageEvent) -> PassageDecided:
        """Decide a just-stored passage in the caller's transaction (the ingest's hook)."""
        keys = passage_keys(event, self.rules.candidate_min_confidence)
        candidates, used = store.candidate_declarations(session, keys)
        decision = decide(event, candidates, self.rules, used, utcnow())
        store.add_rules_decision(session, event.event_id, decision, first=True)
        number = decision.declaration_number
        if decision.outcome is Outcome.CLEARED and number is not None:
            store.mark_declaration_used(session, number, event.event_id)
        if number is not None:
            decl = next(c for c in candidates if c.number == number)
            self._assess_fee(session, event, decl)
        command = command_for(decision, event)
        store.add_command(session, command)
        return PassageDecided(decision.outcome.value, command)

    def _assess_fee(self, session: Session, event: PassageEvent, decl: Declaration) -> None:
        try:
            fee = assess_fee(event, decl, self.fee_table)
        except FeeError as exc:
            log.info("no fee assessed: %s", exc)
            return
        store.add_fee(session, event.event_id, fee, decl.number)

    def officer_decision(
        self, session: Session, event_id: str, verdict: store.Verdict, actor: str, note: str
    ) -> tuple[store.DecisionRow, LaneCommand]:
        """Record an officer's verdict (audited) and the lane command carrying it out.

        The caller commits, then sends the command. Raises store.PassageNotFound.
        """
        passage = store.get_passage(session, event_id)
        if passage is None:
            raise store.PassageNotFound(event_id)
        action, message = OFFICER_COMMANDS[verdict]
        row = store.record_officer_decision(session, event_id, verdict, actor, note, action.value)
        command = LaneCommand(
            site=passage.site,
            lane=passage.lane,
            action=action,
            passage_event_id=event_id,
            message=message,
            issued_by=actor[:64],
        )
        store.add_command(session, command)
        return row, command


def seed_demo_declarations(
    target: sessionmaker | str,
    plates: Sequence[str],
    *,
    flagged: Collection[str] = (),
    gate: str = "huunghi",
    per_plate: int = 50,
) -> store.ImportCounts:
    """Declarations for the demo's trucks: `per_plate` valid ones per plate, so a looping demo
    keeps clearing; the plates in `flagged` get a declared weight of 5 t, which sends a truck
    weighed on the bridge to inspection (`weight_out_of_tolerance`).

    `target` is a session factory or a database URL (migrated first). Windows run from an hour
    ago to a week ahead; import direction (entry lanes), no containers. Safe to call again.
    """
    if isinstance(target, str):
        engine = make_engine(target)
        upgrade_database(engine)
        target = session_factory(engine)
    start = utcnow() - timedelta(hours=1)
    decls = [
        Declaration(
            number=f"DEMO-{i}-{k:03d}",
            direction=Direction.IMPORT,
            tractor_plate=plate,
            gross_weight_kg=5_000 if plate in flagged else None,
            window_start=start,
            window_end=start + timedelta(days=7),
            gate=gate,
            company="Demo Logistics",
        )
        for i, plate in enumerate(plates)
        for k in range(per_plate)
    ]
    with target() as session, session.begin():
        return store.import_declarations(session, decls)
