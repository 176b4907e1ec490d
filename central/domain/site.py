"""A site's layout for journeys: checkpoints (lane roles), zones with capacities, alerts, dispatch.

Loaded from YAML (`central.config.CentralSettings.site_file`); a bad key fails at start naming
it. Without a file, `DEFAULT_SITE` describes the usual border-gate flow:

    yard_entry ─► [yard] ─► inspection ─► [inspection area] ─► border_exit
                     └────► yard_exit (a truck that turns back)

A passage's role comes from the edge (`PassageEvent.role`) or, for edges that send none, from
`lanes` here. `role_rank` orders the roles of one journey: a passage links only to a journey
whose last checkpoint ranks lower.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from smartgate.contract import CheckpointRole


class SiteConfigError(ValueError):
    """A site file that cannot be read or does not validate; the message names the key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Zone(_Strict):
    """An area trucks wait or work in, entered and left through checkpoints of given roles."""

    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="zone id, e.g. yard")
    capacity: int = Field(ge=1, le=100_000, description="trucks the zone holds")
    enter: list[CheckpointRole] = Field(min_length=1, description="roles whose passage enters")
    leave: list[CheckpointRole] = Field(min_length=1, description="roles whose passage leaves")
    queue_for: list[str] = Field(
        default_factory=list,
        description="lanes that serve this zone's queue (the trucks in it wait for them), "
        "e.g. the inspection lanes; used by the forecast and 'call next'",
    )


class Alerts(_Strict):
    """When the live picture raises alerts."""

    capacity_levels: list[float] = Field(
        default=[0.8, 0.95, 1.0], description="occupancy/capacity levels that raise an alert"
    )
    overstay_s: float = Field(default=4 * 3600, gt=0, description="dwell in a zone that is long")
    never_seen_s: float = Field(
        default=24 * 3600, gt=0,
        description="an open journey not seen for this long is 'entered, never seen again'",
    )

    @model_validator(mode="after")
    def _levels(self) -> Alerts:
        if any(not 0 < v <= 2 for v in self.capacity_levels):
            raise ValueError(f"capacity_levels must lie in (0, 2]: {self.capacity_levels}")
        return self


class Dispatch(_Strict):
    """The queue order and 'call next'."""

    priority_goods: list[str] = Field(
        default=["perishable", "fresh_fruit", "fruit", "vegetables", "seafood"],
        description="declared goods categories that go ahead of the queue (fresh goods)",
    )
    call_timeout_s: float = Field(
        default=600, gt=0, description="a called truck that has not arrived by then is re-queued"
    )
    display_lane: str | None = Field(
        default=None, description="lane whose display board shows the calls (the yard board)"
    )


class Linking(_Strict):
    """How passages are linked into journeys (central/domain/journeys.py)."""

    min_similarity: float = Field(
        default=0.8, gt=0, le=1,
        description="best plate similarity needed to link (0.8: about one arbitrary substitution "
        "plus a look-alike in an 8-character plate; two arbitrary ones are another truck)",
    )
    margin: float = Field(
        default=0.6, ge=0, le=5,
        description="the best journey's plate must be closer than the next's by this edit cost "
        "(1: one arbitrary substitution, 0.3: a look-alike), else the link is ambiguous",
    )
    candidate_penalty: float = Field(
        default=0.05, ge=0, le=0.5, description="subtracted when a link uses an alternative read"
    )
    max_gap_s: float = Field(
        default=3 * 86400, gt=0, description="longest time between two checkpoints of a journey"
    )
    clock_skew_s: float = Field(
        default=120, ge=0, description="a passage may precede the journey's last one by this much"
    )


class SiteConfig(_Strict):
    """One site's checkpoints, zones, alerts and dispatch settings."""

    site: str = Field(default="huunghi", pattern=r"^[A-Za-z0-9_-]{1,64}$", description="site id")
    lanes: dict[str, CheckpointRole] = Field(
        default_factory=dict, description="role of each lane whose edge sends none"
    )
    role_rank: dict[CheckpointRole, int] = Field(
        default={"yard_entry": 0, "queue": 1, "yard_exit": 2, "weighbridge": 2, "inspection": 2,
                 "checkpoint": 3, "border_exit": 4, "border_entry": 0},
        description="order of the roles within one journey",
    )  # fmt: skip
    start_roles: list[CheckpointRole] = Field(
        default=["yard_entry", "border_entry"],
        description="roles that begin a journey (or join one that began without them: their "
        "passage came late)",
    )
    decide_roles: list[CheckpointRole] = Field(
        default=["inspection", "weighbridge", "checkpoint"],
        description="roles whose passages are matched against declarations and decided; the "
        "others (yard entry and exit, border exit) are only linked into journeys, so the "
        "declaration is not used up before the inspection lane. A lane with no role is decided",
    )
    final_roles: list[CheckpointRole] = Field(
        default=["border_exit", "yard_exit"], description="roles that end a journey"
    )
    zones: list[Zone] = Field(
        default_factory=lambda: [
            Zone(name="yard", capacity=150, enter=["yard_entry"], leave=["inspection", "yard_exit"]),
            Zone(name="inspection_area", capacity=12, enter=["inspection"], leave=["border_exit"]),
        ]
    )
    alerts: Alerts = Field(default_factory=Alerts)
    dispatch: Dispatch = Field(default_factory=Dispatch)
    linking: Linking = Field(default_factory=Linking)

    @model_validator(mode="after")
    def _check(self) -> SiteConfig:
        names = [z.name for z in self.zones]
        if len(names) != len(set(names)):
            raise ValueError(f"zone names must be unique: {names}")
        entered = [r for z in self.zones for r in z.enter]
        if len(entered) != len(set(entered)):
            raise ValueError(f"a role enters at most one zone: {entered}")
        used = set(entered) | {r for z in self.zones for r in z.leave} | set(self.start_roles)
        missing = sorted(used - set(self.role_rank))
        if missing:
            raise ValueError(f"role_rank has no rank for {missing}")
        return self

    def zone(self, name: str) -> Zone | None:
        """The zone called `name`."""
        return next((z for z in self.zones if z.name == name), None)

    def zone_entered_by(self, role: str) -> Zone | None:
        """The zone a passage of `role` enters, if any."""
        return next((z for z in self.zones if role in z.enter), None)

    def rank(self, role: str) -> int:
        """The rank of a role (unknown roles rank as a plain checkpoint)."""
        return self.role_rank.get(role, self.role_rank.get("checkpoint", 3))  # type: ignore[call-overload]

    def queue_zone_of(self, lane: str) -> Zone | None:
        """The zone whose queue `lane` serves."""
        return next((z for z in self.zones if lane in z.queue_for), None)


DEFAULT_SITE = SiteConfig()


def load_site_config(path: Path) -> SiteConfig:
    """Read and validate a site file; SiteConfigError names the file and the bad key."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise SiteConfigError(f"{path}: {exc}") from exc
    try:
        return SiteConfig.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "file"
        raise SiteConfigError(f"{path}: {where}: {first['msg']}") from exc
