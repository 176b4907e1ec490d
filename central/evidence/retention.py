"""Retention policy for evidence and personal data (pure: no database, no clock of its own).

A passage belongs to one retention class:

- `cleared`: the rules cleared it and nobody reviewed it — kept `cleared_days` from its end;
- `reviewed`: it was flagged, or an officer decided it — kept `reviewed_days` from when it was
  closed (the current decision, once that is not one waiting for an officer);
- `open`: its current decision still waits for an officer (or it has none) — kept.

A legal hold keeps any passage. Past retention the purge deletes the images and masks the
personal data in the passage record (plate texts and their candidates), keeping the decision,
fee, declaration link and audit trail. docs/deploy.md relates the defaults to Decree
13/2023/ND-CP.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

RetentionClass = Literal["cleared", "reviewed", "open"]
MASK_KEEP = 3  # plate characters kept after the purge: the province / region prefix


class RetentionPolicy(BaseModel):
    """How long each class keeps its evidence and personal data, in days."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cleared_days: int = Field(default=90, ge=1, description="cleared by the rules: from the end")
    reviewed_days: int = Field(default=5 * 365, ge=1,
                               description="flagged or reviewed: from when it was closed")


@dataclass(frozen=True)
class DecisionFact:
    """What retention needs of one decision on a passage."""

    outcome: str
    by_officer: bool
    decided_at: datetime
    current: bool


def classify(history: Sequence[DecisionFact], open_outcomes: Collection[str]) -> RetentionClass:
    """The retention class of a passage from its decision history."""
    current = next((d for d in history if d.current), None)
    if current is None or current.outcome in open_outcomes:
        return "open"
    if all(d.outcome == "cleared" and not d.by_officer for d in history):
        return "cleared"
    return "reviewed"


def expires_at(
    history: Sequence[DecisionFact], ended_at: datetime, policy: RetentionPolicy,
    open_outcomes: Collection[str], legal_hold: bool = False,
) -> tuple[RetentionClass, datetime | None]:
    """The class and the moment retention ends (None: kept, open or on legal hold)."""
    kind = classify(history, open_outcomes)
    if legal_hold or kind == "open":
        return kind, None
    if kind == "cleared":
        return kind, ended_at + timedelta(days=policy.cleared_days)
    closed = next(d for d in history if d.current).decided_at
    return kind, closed + timedelta(days=policy.reviewed_days)


def mask_plate(text: str | None) -> str | None:
    """A plate text with all but its first `MASK_KEEP` characters replaced by `*`."""
    if not text:
        return text
    return text[:MASK_KEEP] + "*" * max(0, len(text) - MASK_KEEP)


def masked_payload(payload: dict[str, Any]) -> dict[str, Any]:
    """A passage payload with its plate texts masked and their candidates dropped."""
    out = dict(payload)
    for key in ("plate_front", "plate_rear", "trailer_plate"):
        read = out.get(key)
        if isinstance(read, dict):
            out[key] = {**read, "text": mask_plate(read.get("text")) or "",
                        "display_text": mask_plate(read.get("display_text")) or "",
                        "candidates": []}
    return out
