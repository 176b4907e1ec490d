"""Per-site matching rules: thresholds, which reasons flag or only warn, and the inspection lane.

A `RuleSet` is loaded from YAML or TOML and validated (unknown keys are errors); its `version`
is stamped on every decision it makes, so an audit can tell which rules cleared a vehicle.
"""

from __future__ import annotations

import tomllib
from enum import StrEnum
from pathlib import Path
from typing import Literal

import yaml  # type: ignore[import-untyped]
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator


class Reason(StrEnum):
    """Why a passage was flagged or warned about; stored with the decision."""

    PLATE_NOT_DECLARED = "plate_not_declared"
    TRAILER_MISMATCH = "trailer_mismatch"
    CONTAINER_MISSING = "container_missing"
    CONTAINER_UNDECLARED = "container_undeclared"
    CONTAINER_CHECK_DIGIT_INVALID = "container_check_digit_invalid"
    WEIGHT_OUT_OF_TOLERANCE = "weight_out_of_tolerance"
    WEIGHT_MISSING = "weight_missing"
    OUTSIDE_TIME_WINDOW = "outside_time_window"
    DECLARATION_ALREADY_USED = "declaration_already_used"
    DECLARATION_CANCELLED = "declaration_cancelled"
    LOW_READ_CONFIDENCE = "low_read_confidence"
    DIRECTION_MISMATCH = "direction_mismatch"
    WRONG_GATE = "wrong_gate"
    PLATES_DISAGREE = "plates_disagree"


class Severity(StrEnum):
    """What a reason does to the outcome: `flag` sends to inspection, `warn` only records."""

    FLAG = "flag"
    WARN = "warn"
    IGNORE = "ignore"


DEFAULT_SEVERITY: dict[Reason, Severity] = {
    Reason.PLATE_NOT_DECLARED: Severity.FLAG,
    Reason.TRAILER_MISMATCH: Severity.FLAG,
    Reason.CONTAINER_MISSING: Severity.FLAG,
    Reason.CONTAINER_UNDECLARED: Severity.FLAG,
    Reason.CONTAINER_CHECK_DIGIT_INVALID: Severity.FLAG,
    Reason.WEIGHT_OUT_OF_TOLERANCE: Severity.FLAG,
    Reason.WEIGHT_MISSING: Severity.FLAG,
    Reason.OUTSIDE_TIME_WINDOW: Severity.FLAG,
    Reason.DECLARATION_ALREADY_USED: Severity.FLAG,
    Reason.DECLARATION_CANCELLED: Severity.FLAG,
    Reason.LOW_READ_CONFIDENCE: Severity.FLAG,
    Reason.DIRECTION_MISMATCH: Severity.FLAG,
    Reason.WRONG_GATE: Severity.WARN,
    Reason.PLATES_DISAGREE: Severity.FLAG,
}


class RuleSetError(ValueError):
    """A rules file that cannot be loaded; names the file and the offending key."""

    def __init__(self, path: str, where: str, message: str) -> None:
        super().__init__(f"{path}: {where}: {message}")
        self.path = path
        self.where = where


class RuleSet(BaseModel):
    """Thresholds and policy for matching passages to declarations at one site."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str = Field(min_length=1, max_length=48, description="stamped on every decision")
    plate_min_score: float = Field(
        default=0.74, ge=0, le=1, description="below this a declared plate is not this vehicle"
    )
    plate_clear_score: float = Field(
        default=0.9, ge=0, le=1, description="below this a plate match is `low_read_confidence`"
    )
    ambiguity_margin: float = Field(
        default=0.05, ge=0, le=1, description="two different plates this close are ambiguous"
    )
    min_plate_confidence: float = Field(
        default=0.5, ge=0, le=1, description="OCR confidence below which a plate read is weak"
    )
    min_container_confidence: float = Field(
        default=0.5, ge=0, le=1, description="OCR confidence below which a container read is weak"
    )
    candidate_min_confidence: float = Field(
        default=0.05, ge=0, le=1, description="top-N alternatives below this are not tried"
    )
    weight_tolerance_kg: float = Field(default=200, ge=0, description="absolute weight tolerance")
    weight_tolerance_pct: float = Field(
        default=3.0, ge=0, le=100, description="relative tolerance; the larger of the two applies"
    )
    weight_basis: Literal["gross", "net"] = Field(
        default="gross",
        description="compare the declared weight with the weighbridge gross, or gross - tare",
    )
    window_grace_minutes: float = Field(
        default=30, ge=0, description="slack either side of the declared crossing window"
    )
    severity: dict[Reason, Severity] = Field(
        default_factory=lambda: dict(DEFAULT_SEVERITY),
        description="per reason: flag, warn or ignore; unlisted reasons keep their default",
    )
    inspection_lane: str = Field(
        default="inspection", min_length=1, max_length=32, description="where flagged trucks go"
    )
    no_declaration_action: Literal["send_to_inspection", "close_barrier"] = Field(
        default="send_to_inspection", description="lane command when no declaration matches"
    )
    lane_groups: dict[str, list[str]] = Field(
        default_factory=dict, description="lane group name -> lanes, for the `wrong_gate` check"
    )

    @field_validator("severity")
    @classmethod
    def _merge_defaults(cls, v: dict[Reason, Severity]) -> dict[Reason, Severity]:
        return {**DEFAULT_SEVERITY, **v}

    @model_validator(mode="after")
    def _scores_ordered(self) -> RuleSet:
        if self.plate_clear_score < self.plate_min_score:
            raise ValueError(
                f"plate_clear_score {self.plate_clear_score} is below "
                f"plate_min_score {self.plate_min_score}"
            )
        return self

    def weight_tolerance(self, declared_kg: float) -> float:
        """Allowed |measured - declared| in kg: max(absolute, percent of declared)."""
        return max(self.weight_tolerance_kg, declared_kg * self.weight_tolerance_pct / 100.0)


DEFAULT_RULES = RuleSet(version="default-1")


def load_rules(path: str | Path) -> RuleSet:
    """Load and validate a RuleSet from a .yaml/.yml or .toml file; raises RuleSetError."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RuleSetError(str(path), "file", str(exc)) from exc
    return parse_rules(text, fmt="toml" if path.suffix == ".toml" else "yaml", source=str(path))


def parse_rules(
    text: str, fmt: Literal["yaml", "toml"] = "yaml", source: str = "<rules>"
) -> RuleSet:
    """Validate a RuleSet from YAML or TOML text; raises RuleSetError naming the bad key."""
    try:
        data = tomllib.loads(text) if fmt == "toml" else yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise RuleSetError(source, "syntax", str(exc)) from exc
    if not isinstance(data, dict):
        raise RuleSetError(source, "document", "expected a mapping of rule settings")
    try:
        return RuleSet.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "document"
        raise RuleSetError(source, where, first["msg"]) from exc
