"""Request and response models of the JSON API (`/api/...`), built from the stored rows."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from central import store
from central.db import CommandRow, DecisionRow, DeclarationRow, FeeRow, Passage
from central.domain.declarations import RowError
from central.evidence.records import EvidenceStatus


class DecisionOut(BaseModel):
    """A decision on a passage, by the rules (`decided_by` rules:<version>) or an officer."""

    outcome: str
    action: str | None
    reasons: list[dict[str, Any]]
    declaration_number: str | None
    plate_score: float | None
    matched_containers: list[str] = Field(
        default_factory=list, description="container codes that matched the declaration")
    rules_version: str
    decided_by: str
    decided_at: datetime
    note: str
    current: bool

    @classmethod
    def of(cls, row: DecisionRow) -> DecisionOut:
        """From a stored decision."""
        return cls(
            outcome=row.outcome, action=row.action, reasons=row.reasons,
            declaration_number=row.declaration_number, plate_score=row.plate_score,
            matched_containers=list(row.matched_containers or []),
            rules_version=row.rules_version, decided_by=row.decided_by,
            decided_at=store.utc(row.decided_at), note=row.note, current=row.current,
        )


class EvidenceOut(BaseModel):
    """What central holds of a passage's evidence images: a passage is complete only when
    every image it names is stored (or retention purged them)."""

    expected: int = Field(description="images the passage names")
    stored: int = Field(description="of those, stored at central")
    missing: list[str] = Field(description="image ids not (yet) uploaded by the edge")
    complete: bool
    purged: bool = Field(description="retention deleted the images and masked the plates")
    legal_hold: bool

    @classmethod
    def of(cls, s: EvidenceStatus) -> EvidenceOut:
        """From the evidence records' status."""
        return cls(expected=s.expected, stored=s.stored, missing=s.missing,
                   complete=s.complete, purged=s.purged, legal_hold=s.legal_hold)


class PassageOut(BaseModel):
    """A passage as the API lists it, with its current decision."""

    event_id: str
    site: str
    lane: str
    node_id: str
    direction: str
    started_at: datetime
    ended_at: datetime
    received_at: datetime
    plate_text: str | None
    plate_confidence: float | None
    trailer_text: str | None
    container_codes: list[str]
    gross_kg: float | None
    decision: DecisionOut | None
    payload: dict
    evidence: EvidenceOut | None = None

    @classmethod
    def of(cls, row: Passage, decision: DecisionRow | None,
           evidence: EvidenceStatus | None = None) -> PassageOut:
        """From a stored passage, its current decision and its evidence status."""
        return cls(
            event_id=row.event_id, site=row.site, lane=row.lane, node_id=row.node_id,
            direction=row.direction, started_at=store.utc(row.started_at),
            ended_at=store.utc(row.ended_at), received_at=store.utc(row.received_at),
            plate_text=row.plate_text, plate_confidence=row.plate_confidence,
            trailer_text=row.trailer_text, container_codes=row.container_codes.split(),
            gross_kg=row.gross_kg, decision=DecisionOut.of(decision) if decision else None,
            payload=row.payload, evidence=EvidenceOut.of(evidence) if evidence else None,
        )


class DeclarationOut(BaseModel):
    """A stored declaration with its usage."""

    number: str
    direction: str
    tractor_plate: str
    trailer_plate: str | None
    containers: list[str]
    seals: list[str]
    gross_weight_kg: float | None
    window_start: datetime
    window_end: datetime
    gate: str
    lane_group: str | None
    status: str
    company: str
    goods_category: str
    updated_at: datetime
    used_by_event_id: str | None
    used_at: datetime | None

    @classmethod
    def of(cls, row: DeclarationRow) -> DeclarationOut:
        """From a stored declaration."""
        decl = store.declaration_from_row(row)
        return cls(
            **decl.model_dump(mode="python", exclude={"containers", "seals"}),
            containers=list(decl.containers), seals=list(decl.seals),
            updated_at=store.utc(row.updated_at), used_by_event_id=row.used_by_event_id,
            used_at=store.aware(row.used_at),
        )


class RowErrorOut(BaseModel):
    """One rejected row: CSV line number (JSON: item position) and why."""

    line: int
    reason: str

    @classmethod
    def of(cls, err: RowError) -> RowErrorOut:
        """From a parser's row error."""
        return cls(line=err.line, reason=err.reason)


class ImportReport(BaseModel):
    """What an import did; bad rows are listed and the good ones kept."""

    created: int
    updated: int
    unchanged: int
    errors: list[RowErrorOut] = Field(description="the bad rows, the first 1000 of them")
    bad_rows: int = Field(default=0, description="how many rows were bad in all")


class CommandOut(BaseModel):
    """A lane command and its acknowledgement."""

    command_id: str
    site: str
    lane: str
    action: str
    message: str | None
    issued_by: str
    issued_at: datetime
    ack_ok: bool | None
    ack_detail: str | None
    acked_at: datetime | None

    @classmethod
    def of(cls, row: CommandRow) -> CommandOut:
        """From a stored command."""
        return cls(
            command_id=row.command_id, site=row.site, lane=row.lane, action=row.action,
            message=row.message, issued_by=row.issued_by, issued_at=store.utc(row.issued_at),
            ack_ok=row.ack_ok, ack_detail=row.ack_detail, acked_at=store.aware(row.acked_at),
        )


class FeeOut(BaseModel):
    """The fee assessed for a passage."""

    amount_vnd: int
    basis: str
    multiplier: float
    items: list[dict[str, Any]]
    table_version: str
    declaration_number: str | None

    @classmethod
    def of(cls, row: FeeRow) -> FeeOut:
        """From a stored fee assessment."""
        return cls(
            amount_vnd=row.amount_vnd, basis=row.basis, multiplier=row.multiplier,
            items=row.items, table_version=row.table_version,
            declaration_number=row.declaration_number,
        )


class AuditOut(BaseModel):
    """One audit entry."""

    at: datetime
    actor: str
    action: str
    target_type: str
    target_id: str
    detail: dict[str, Any]


class PassageDetailOut(BaseModel):
    """A passage with everything decided and done about it."""

    passage: PassageOut
    declaration: DeclarationOut | None
    history: list[DecisionOut]
    commands: list[CommandOut]
    fee: FeeOut | None
    audit: list[AuditOut]

    @classmethod
    def of(cls, d: store.PassageDetail, evidence: EvidenceStatus | None = None
           ) -> PassageDetailOut:
        """From the store's passage detail (and the passage's evidence status)."""
        return cls(
            passage=PassageOut.of(d.passage, d.decision, evidence),
            declaration=DeclarationOut.of(d.declaration) if d.declaration else None,
            history=[DecisionOut.of(h) for h in d.history],
            commands=[CommandOut.of(c) for c in d.commands],
            fee=FeeOut.of(d.fee) if d.fee else None,
            audit=[
                AuditOut(at=store.utc(a.at), actor=a.actor, action=a.action,
                         target_type=a.target_type, target_id=a.target_id, detail=a.detail)
                for a in d.audit
            ],
        )


class OfficerDecisionIn(BaseModel):
    """An officer's verdict on a passage; the note is kept in the audit log."""

    verdict: store.Verdict
    note: str = Field(default="", max_length=2000)


class LaneStatsOut(BaseModel):
    """Per-lane numbers over the requested range."""

    site: str
    lane: str
    passages: int
    per_hour: dict[str, int] = Field(description="passages per UTC hour, e.g. 2025-05-08T09:00Z")
    read_rate: float = Field(description="share of passages with a plate read")
    flagged_rate: float = Field(description="share of rules decisions that did not clear")
    mean_decision_s: float | None = Field(description="mean seconds from arrival to decision")
    outcomes: dict[str, int]
