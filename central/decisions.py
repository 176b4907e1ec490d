"""The decision service: passage → candidate declarations → decision → stored → lane command.

`DecisionService.decide_passage` runs inside the ingest transaction (the `on_passage` hook), so
a passage, its decision, its fee and its command commit together; the ingest publishes the
command only after that commit. Officers' decisions go through `officer_decision`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from central import store
from central.db import utcnow
from central.domain.declarations import Declaration
from central.domain.fees import DEFAULT_FEE_TABLE, FeeAssessment, FeeError, FeeTable, assess_fee
from central.domain.matching import (
    CandidateFilter,
    Decision,
    Outcome,
    command_for,
    decide,
    passage_keys,
)
from central.domain.plate_similarity import normalize_plate
from central.domain.rules import DEFAULT_RULES, RuleSet
from smartgate import iso6346
from smartgate.contract import (
    CommandAction,
    ContainerRead,
    LaneCommand,
    PassageDecision,
    PassageEvent,
    PlateRead,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PassageDecided:
    """What the `on_passage` hook decided: the outcome, the lane command to send and the
    decision to push on the decision topic."""

    outcome: str
    command: LaneCommand | None
    decision: PassageDecision | None = None


def decision_message(
    row: store.DecisionRow | store.DecisionValues, site: str, lane: str
) -> PassageDecision:
    """The stored decision as the contract's `PassageDecision` (pushed after the commit)."""
    return PassageDecision(
        event_id=row.passage_event_id, site=site, lane=lane, outcome=row.outcome,
        action=CommandAction(row.action) if row.action else None,
        declaration_number=row.declaration_number,
        matched_containers=list(row.matched_containers or []),
        reasons=[r["reason"] for r in row.reasons if isinstance(r, dict) and "reason" in r],
        plate_score=row.plate_score, rules_version=row.rules_version,
        decided_by=row.decided_by, decided_at=store.utc(row.decided_at),
    )

OFFICER_COMMANDS: dict[store.Verdict, tuple[CommandAction, str]] = {
    store.Verdict.APPROVE: (CommandAction.OPEN_BARRIER, "Cleared by officer"),
    store.Verdict.REJECT: (CommandAction.CLOSE_BARRIER, "Rejected: see officer"),
    store.Verdict.HOLD: (CommandAction.SHOW_MESSAGE, "Hold: wait for officer"),
    store.Verdict.INSPECT: (CommandAction.SEND_TO_INSPECTION, "Inspection: sent by officer"),
}
MAX_CONTAINERS = 4


class InvalidCorrection(ValueError):
    """An officer's correction that cannot be applied (nothing given, malformed codes)."""


def corrected_event(event: PassageEvent, plate: str, containers: Sequence[str]) -> PassageEvent:
    """The passage as the officer says it was: a certain plate and/or container codes."""
    changes: dict[str, Any] = {}
    if plate:
        camera = event.best_plate.camera if event.best_plate else ""
        changes["plate_front"] = PlateRead(
            text=normalize_plate(plate), display_text=plate, confidence=1.0, camera=camera
        )
        changes["plate_rear"] = None
    if containers:
        changes["containers"] = [
            ContainerRead(code=c, check_digit_ok=iso6346.is_valid(c), confidence=1.0)
            for c in containers
        ]
    return event.model_copy(update=changes)


def check_containers(containers: Sequence[str]) -> list[str]:
    """Container codes as typed, upper-cased; InvalidCorrection unless 11 letters/digits each
    and at most four."""
    codes = [c.strip().upper() for c in containers if c.strip()]
    bad = [c for c in codes if not (len(c) == 11 and c.isalnum())]
    if bad or len(codes) > MAX_CONTAINERS:
        raise InvalidCorrection(
            f"container codes must be 11 letters/digits, at most {MAX_CONTAINERS}: {bad or codes}"
        )
    return codes


class DecisionService:
    """Decides passages with one site's rules and fee table, and issues their lane commands."""

    def __init__(self, rules: RuleSet = DEFAULT_RULES, fee_table: FeeTable = DEFAULT_FEE_TABLE):
        self.rules = rules
        self.fee_table = fee_table
        # the last read-ahead's passages (by identity) with their keys and candidate filters,
        # so deciding them does not work those out again
        self._read_ahead: dict[int, tuple[PassageEvent, set[str], CandidateFilter]] = {}

    def prefetch(self, session: Session, events: Sequence[PassageEvent]) -> None:
        """Read ahead for a batch of ingest passages (the ingest's `on_batch` hook): a few
        queries for all of them instead of a few per passage (store.prefetch_passages): only
        the declarations of plates some passage's candidate filter may keep are read."""
        ahead = {id(e): (e, passage_keys(e, self.rules.candidate_min_confidence),
                         CandidateFilter(e, self.rules)) for e in events}
        self._read_ahead = ahead
        store.prefetch_passages(session, [e.event_id for e in events],
                                [(keys, keep) for _e, keys, keep in ahead.values()])

    def _lookup(self, event: PassageEvent) -> tuple[set[str], CandidateFilter]:
        """The passage's lookup keys and candidate filter (from the read-ahead if it had it)."""
        known = self._read_ahead.get(id(event))
        if known is not None and known[0] is event:
            return known[1], known[2]
        return passage_keys(event, self.rules.candidate_min_confidence), CandidateFilter(
            event, self.rules)

    def decide_passage(self, session: Session, event: PassageEvent) -> PassageDecided:
        """Decide a just-stored passage in the caller's transaction (the ingest's hook)."""
        decision, row, command = self._decide(session, event, first=True)
        return PassageDecided(decision.outcome.value, command,
                              decision_message(row, event.site, event.lane))

    def _decide(
        self,
        session: Session,
        event: PassageEvent,
        first: bool,
        actor: str | None = None,
        note: str = "",
    ) -> tuple[Decision, store.DecisionValues, LaneCommand]:
        """Match, store the decision (current), the declaration's use, the fee and the command.

        `actor` names the officer whose corrected reads are decided (default: the rules).
        """
        keys, keep = self._lookup(event)
        candidates, used = store.candidate_declarations(session, keys, keep)
        decision = decide(event, candidates, self.rules, used, utcnow())
        while (decision.outcome is Outcome.CLEARED and decision.declaration_number is not None
               and not store.mark_declaration_used(session, decision.declaration_number,
                                                   event.event_id)):
            # another worker's passage used it after this batch read it: decide knowing that
            used = used | {decision.declaration_number}
            decision = decide(event, candidates, self.rules, used, utcnow())
        row = store.add_rules_decision(session, event.event_id, decision, first, actor, note)
        number = decision.declaration_number
        decl = next((c for c in candidates if c.number == number), None)
        store.set_fee(session, event.event_id, self._assess_fee(event, decl), number, first)
        command = command_for(decision, event)
        if actor is not None:
            command = command.model_copy(update={"issued_by": actor[:64]})
        store.add_command(session, command)
        return decision, row, command

    def _assess_fee(self, event: PassageEvent, decl: Declaration | None) -> FeeAssessment | None:
        if decl is None:
            return None
        try:
            return assess_fee(event, decl, self.fee_table)
        except FeeError as exc:
            log.info("no fee assessed: %s", exc)
            return None

    def officer_decision(
        self, session: Session, event_id: str, verdict: store.Verdict, actor: str, note: str
    ) -> tuple[store.DecisionRow, LaneCommand]:
        """Record an officer's verdict (audited) and the lane command carrying it out: approve
        opens the barrier, reject closes it, hold shows a message, inspect sends the truck to
        the rules' inspection lane.

        The caller commits, then sends the command. Raises store.PassageNotFound.
        """
        passage = store.get_passage(session, event_id)
        if passage is None:
            raise store.PassageNotFound(event_id)
        action, message = OFFICER_COMMANDS[verdict]
        row = store.record_officer_decision(session, event_id, verdict, actor, note, action.value)
        inspect = action is CommandAction.SEND_TO_INSPECTION
        command = LaneCommand(
            site=passage.site,
            lane=passage.lane,
            action=action,
            passage_event_id=event_id,
            message=f"{message} ({self.rules.inspection_lane})" if inspect else message,
            inspection_lane=self.rules.inspection_lane if inspect else None,
            issued_by=actor[:64],
        )
        store.add_command(session, command)
        return row, command

    def correct_reads(
        self,
        session: Session,
        event_id: str,
        *,
        plate: str = "",
        containers: Sequence[str] = (),
        actor: str,
        note: str = "",
    ) -> tuple[store.DecisionRow, LaneCommand]:
        """Decide a passage again on reads an officer corrected (plate and/or containers).

        Earlier corrections of the other field still apply; the stored reads stay as the edge
        sent them. The passage's declaration use is released and the rules decide afresh
        (decided by `actor`); the fee is re-assessed in place; the correction is audited. The
        caller commits, then sends the command. Raises store.PassageNotFound or
        InvalidCorrection.
        """
        passage = store.get_passage(session, event_id)
        if passage is None:
            raise store.PassageNotFound(event_id)
        plate, codes = plate.strip(), check_containers(containers)
        if not plate and not codes:
            raise InvalidCorrection("give a corrected plate or container codes")
        event = PassageEvent.model_validate(passage.payload)
        for earlier in store.read_corrections(session, event_id):
            earlier_codes = earlier.get("containers") or ()
            event = corrected_event(event, earlier.get("plate") or "", earlier_codes)
        event = corrected_event(event, plate, codes)
        store.release_declarations(session, event_id)
        decision, _values, command = self._decide(session, event, False, actor, note)
        store.add_audit(
            session, actor, store.CORRECTION, "passage", event_id,
            {"note": note, "plate": normalize_plate(plate) if plate else None,
             "containers": codes, "outcome": decision.outcome.value},
        )  # fmt: skip
        log.info("%s corrected passage %s -> %s", actor, event_id, decision.outcome.value)
        row = store.current_decision(session, event_id)
        assert row is not None  # just written
        return row, command
