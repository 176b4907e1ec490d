"""The MQTT contract between edge nodes and central: topic tree and versioned message schemas.

Both sides import this module and nothing heavier than pydantic lives here. Every message carries
a schema name, a schema version and a unique id, so a QoS 1 redelivery is recognised and harmless.
See docs/mqtt.md for the human-readable version.
"""

from __future__ import annotations

import json
import re
import unicodedata
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Final, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

SCHEMA_VERSION: Final = 1
TOPIC_ROOT = f"smartgate/v{SCHEMA_VERSION}"
CENTRAL_SHARE_GROUP = "central"

M = TypeVar("M", bound="BaseModel")

_SEGMENT = r"^[A-Za-z0-9_-]{1,64}$"
_SEGMENT_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
Segment = Annotated[str, Field(pattern=_SEGMENT, description="topic segment: letters, digits, _ -")]


class RejectReason(StrEnum):
    """Why a message was rejected: a fixed set, so counters, metrics labels and receipts never
    carry sender-chosen text (the detail goes to the log and the rejection record)."""

    BAD_TOPIC = "bad_topic"  # not a contract topic, or a site/lane/node id outside the charset
    UNEXPECTED_TOPIC = "unexpected_topic"  # a contract topic central does not consume
    TOO_LARGE = "too_large"  # payload above MAX_PAYLOAD_BYTES
    NOT_JSON = "not_json"  # not a UTF-8 JSON object
    WRONG_SCHEMA = "wrong_schema"  # `schema` is not the topic's message kind
    UNSUPPORTED_VERSION = "unsupported_version"  # `version` this build does not speak
    INVALID = "invalid"  # a field fails validation
    TOPIC_MISMATCH = "topic_mismatch"  # site/lane/node in the payload differ from the topic
    NODE_MISMATCH = "node_mismatch"  # the node named is not the one that serves the lane
    STORAGE = "storage_error"  # central could not store it (kept as a rejection, logged)


class ContractError(ValueError):
    """A payload or topic that does not satisfy the contract; the message names the detail and
    `reason` the `RejectReason`."""

    def __init__(self, message: str, reason: RejectReason = RejectReason.INVALID) -> None:
        super().__init__(message)
        self.reason = reason


def clip(text: str, limit: int = 80) -> str:
    """`text` cut to `limit` characters (with an ellipsis): sender-chosen text in a message."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --------------------------------------------------------------------------------------------
# Topics
# --------------------------------------------------------------------------------------------


def _check_segment(name: str, value: str) -> str:
    if not _SEGMENT_RE.fullmatch(value):
        raise ContractError(
            f"invalid {name} {clip(value)!r}: use 1-64 letters, digits, '_' or '-'",
            RejectReason.BAD_TOPIC,
        )
    return value


def passage_topic(site: str, lane: str) -> str:
    """Topic on which an edge publishes the passage events of one lane (QoS 1)."""
    return f"{TOPIC_ROOT}/{_check_segment('site', site)}/{_check_segment('lane', lane)}/passage"


def lane_status_topic(site: str, lane: str) -> str:
    """Topic for a lane's live state (idle, vehicle on scale, ...), retained."""
    return f"{TOPIC_ROOT}/{_check_segment('site', site)}/{_check_segment('lane', lane)}/status"


def command_topic(site: str, lane: str) -> str:
    """Topic on which central sends commands to a lane (QoS 1)."""
    return f"{TOPIC_ROOT}/{_check_segment('site', site)}/{_check_segment('lane', lane)}/command"


def command_ack_topic(site: str, lane: str) -> str:
    """Topic on which the edge acknowledges each command it executed or refused."""
    return command_topic(site, lane) + "/ack"


def receipt_topic(site: str, lane: str) -> str:
    """Topic on which central confirms each passage of a lane it stored (QoS 1)."""
    return f"{TOPIC_ROOT}/{_check_segment('site', site)}/{_check_segment('lane', lane)}/receipt"


def decision_topic(site: str, lane: str) -> str:
    """Topic on which central pushes each decision on a lane's passages (QoS 1)."""
    return f"{TOPIC_ROOT}/{_check_segment('site', site)}/{_check_segment('lane', lane)}/decision"


def yard_event_topic(site: str) -> str:
    """Topic on which central pushes yard events of a site: capacity alerts, overstays, calls,
    journeys completed (QoS 1, `YardEvent`)."""
    return f"{TOPIC_ROOT}/{_check_segment('site', site)}/yard/event"


def trigger_topic(site: str, lane: str) -> str:
    """Topic for an external vehicle-presence trigger (e.g. an induction loop controller)."""
    return f"{TOPIC_ROOT}/{_check_segment('site', site)}/{_check_segment('lane', lane)}/trigger"


def node_availability_topic(site: str, node_id: str) -> str:
    """Retained `online`/`offline` for an edge node; `offline` is the node's Last Will."""
    return f"{TOPIC_ROOT}/{_check_segment('site', site)}/node/{_check_segment('node', node_id)}/available"


def node_status_topic(site: str, node_id: str) -> str:
    """Retained node health report (cameras, scale, spool depth), refreshed periodically."""
    return f"{TOPIC_ROOT}/{_check_segment('site', site)}/node/{_check_segment('node', node_id)}/status"


def central_subscriptions(site: str = "+", shared: bool = False) -> list[str]:
    """Topic filters central subscribes to; `shared` uses an MQTT 5 shared subscription."""
    filters = [
        f"{TOPIC_ROOT}/{site}/+/passage",
        f"{TOPIC_ROOT}/{site}/+/status",
        f"{TOPIC_ROOT}/{site}/+/command/ack",
        f"{TOPIC_ROOT}/{site}/node/+/available",
        f"{TOPIC_ROOT}/{site}/node/+/status",
    ]
    if shared:
        return [f"$share/{CENTRAL_SHARE_GROUP}/{f}" for f in filters]
    return filters


LANE_TOPIC_KINDS: Final = frozenset(
    {"passage", "status", "command", "command_ack", "receipt", "decision", "trigger"}
)
NODE_TOPIC_KINDS: Final = frozenset({"node_available", "node_status"})


def parse_topic(topic: str) -> tuple[str, str, str]:
    """Split a contract topic into (site, lane-or-node, kind); ContractError (`bad_topic`)
    for anything else, including a site, lane or node id outside the segment charset.

    kind is `passage`, `status`, `command`, `command_ack`, `receipt`, `decision`, `trigger`,
    `node_available` or `node_status`.
    """
    parts = topic.split("/")
    if len(parts) < 4 or "/".join(parts[:2]) != TOPIC_ROOT:
        raise ContractError(f"topic {clip(topic)!r} is not under {TOPIC_ROOT}/",
                            RejectReason.BAD_TOPIC)
    if parts[3] == "node" and len(parts) == 6:
        site, name, kind = parts[2], parts[4], f"node_{parts[5]}"
    elif len(parts) == 5:
        site, name, kind = parts[2], parts[3], parts[4]
    elif len(parts) == 6 and parts[4] == "command" and parts[5] == "ack":
        site, name, kind = parts[2], parts[3], "command_ack"
    else:
        kind = ""
    if kind not in LANE_TOPIC_KINDS | NODE_TOPIC_KINDS:
        raise ContractError(f"topic {clip(topic)!r} is not a known SmartGate topic",
                            RejectReason.BAD_TOPIC)
    _check_segment("site", site)
    _check_segment("node" if kind in NODE_TOPIC_KINDS else "lane", name)
    return site, name, kind


# --------------------------------------------------------------------------------------------
# Schemas
# --------------------------------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    """A fresh globally unique id for an event or command."""
    return str(uuid.uuid4())


EVENT_ID_PATTERN: Final = r"^[A-Za-z0-9_.:-]{8,64}$"
_EVENT_ID_RE = re.compile(EVENT_ID_PATTERN)
EventId = Annotated[str, Field(
    pattern=EVENT_ID_PATTERN,
    description="8-64 letters, digits, '_', '.', ':' or '-' (no '/' or spaces: it names the "
    "passage in URLs and topics)",
)]  # fmt: skip
MAX_FUTURE_S: Final = 24 * 3600  # a passage time further ahead than this is a wrong clock


class _Message(BaseModel):
    # allow_inf_nan=False: NaN and infinities (which JSON parsers accept) are refused, never
    # stored as a null weight or confidence
    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False
    )

    def to_json(self) -> bytes:
        """Serialize to the UTF-8 JSON payload sent over MQTT (aliases such as `schema`)."""
        return self.model_dump_json(by_alias=True).encode()


class Box(_Message):
    """Axis-aligned pixel box in the frame it refers to."""

    x1: int
    y1: int
    x2: int
    y2: int

    @field_validator("x2")
    @classmethod
    def _x_order(cls, v: int, info) -> int:  # type: ignore[no-untyped-def]
        if "x1" in info.data and v < info.data["x1"]:
            raise ValueError("x2 must be >= x1")
        return v

    @field_validator("y2")
    @classmethod
    def _y_order(cls, v: int, info) -> int:  # type: ignore[no-untyped-def]
        if "y1" in info.data and v < info.data["y1"]:
            raise ValueError("y2 must be >= y1")
        return v


class Candidate(_Message):
    """One alternative reading with its confidence (0..1)."""

    text: str = Field(max_length=32)
    confidence: float = Field(ge=0.0, le=1.0)


_PLATE_SEPARATORS = re.compile(r"[\s\-._·•/|:,]+")


def normalize_plate_text(text: str) -> str:
    """The one normalization of plate text: NFKC (full-width to ASCII), uppercase, separators
    (spaces, `-`, `.`, `_`, `·`, `•`, `/`, `|`, `:`, `,`) removed: `29c-123.45` → `29C12345`."""
    return _PLATE_SEPARATORS.sub("", unicodedata.normalize("NFKC", text).upper())


class PlateRead(_Message):
    """A plate read for one vehicle position (front, rear or trailer), voted over frames.

    `text` is normalized on validation (`normalize_plate_text`), so a receiver never sees
    `29c-123.45`; what was printed belongs in `display_text`.
    """

    text: str = Field(max_length=16, description="normalized: uppercase, no separators")
    display_text: str = Field(default="", max_length=24, description="as printed, e.g. 12C-345.67")
    region: Literal["vn", "cn", "us", "eu", "br", "other", "unknown"] = "unknown"
    rows: Literal[1, 2] = 1
    colour: Literal["white", "yellow", "blue", "green", "black", "red", "unknown"] = "unknown"
    confidence: float = Field(ge=0.0, le=1.0)
    candidates: list[Candidate] = Field(default_factory=list, max_length=10)
    camera: str = Field(default="", max_length=64)
    box: Box | None = None
    image_id: str | None = Field(default=None, max_length=64)

    @field_validator("text", mode="before")
    @classmethod
    def _normalized(cls, v: object) -> object:
        return normalize_plate_text(v) if isinstance(v, str) else v


class ContainerRead(_Message):
    """An ISO 6346 container code read, with its check-digit verdict and position on the truck."""

    code: str = Field(max_length=11, description="owner+category+serial+check digit, e.g. CSQU3054383")
    check_digit_ok: bool
    size_type: str | None = Field(default=None, max_length=4, description="e.g. 22G1, 45G1")
    position: Literal["front", "rear", "single", "unknown"] = "unknown"
    confidence: float = Field(ge=0.0, le=1.0)
    candidates: list[Candidate] = Field(default_factory=list, max_length=10)
    camera: str = Field(default="", max_length=64)
    box: Box | None = None
    image_id: str | None = Field(default=None, max_length=64)


class Weight(_Message):
    """The weight captured on the weighbridge for this passage, in kilograms."""

    gross_kg: float = Field(ge=0, le=200_000)
    tare_kg: float | None = Field(default=None, ge=0, le=200_000)
    net_kg: float | None = Field(default=None, ge=-200_000, le=200_000)
    stable: bool = True
    axle_groups_kg: list[float] = Field(default_factory=list, max_length=16)
    captured_at: datetime


class ImageRef(_Message):
    """An evidence JPEG of the passage, by id: the edge uploads it to central
    (docs/evidence.md)."""

    image_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    camera: str = Field(max_length=64)
    kind: Literal["frame", "plate", "container"] = "frame"
    url: str | None = Field(
        default=None, max_length=512,
        description="ignored: central never fetches images (kept so older edges validate)",
    )
    boxes: list[Box] = Field(default_factory=list, max_length=32)


CheckpointRole = Literal[
    "yard_entry", "yard_exit", "queue", "inspection", "weighbridge", "border_entry",
    "border_exit", "checkpoint",
]


class PassageEvent(_Message):
    """One vehicle's passage through one lane: everything the edge read, in one event."""

    schema_name: Literal["smartgate.passage"] = Field(default="smartgate.passage", alias="schema")
    version: Literal[1] = SCHEMA_VERSION
    event_id: EventId = Field(description="unique; redelivery-safe key")
    site: Segment
    node_id: Segment
    lane: Segment
    direction: Literal["entry", "exit", "unknown"] = "unknown"
    role: CheckpointRole | None = Field(
        default=None,
        description="the lane's checkpoint role (yard_entry, inspection, border_exit, ...); "
        "absent from older edges: central then takes it from its site config",
    )
    started_at: datetime
    ended_at: datetime
    plate_front: PlateRead | None = Field(
        default=None, description="front camera (`front_plate` role): the tractor's plate"
    )
    plate_rear: PlateRead | None = Field(
        default=None,
        description="rear camera (`rear_plate` role) when it sees the tractor's own plate "
        "(rigid truck, or a tractor without trailer); a trailer plate goes in trailer_plate",
    )
    trailer_plate: PlateRead | None = Field(
        default=None,
        description="the trailer's plate: a `trailer_plate` camera, or the rear camera's read "
        "when it is a trailer plate (is_trailer_plate: on a semi-trailer the rear camera sees it)",
    )
    containers: list[ContainerRead] = Field(default_factory=list, max_length=4)
    weight: Weight | None = None
    weight_error: str | None = Field(
        default=None,
        max_length=200,
        description="why the lane's weighbridge weight is missing from this passage (e.g. a "
        "capture over the indicator's range, refused); absent when weighed or not weighed at all",
    )
    weighbridge_expected: bool = Field(
        default=False,
        description="the lane has a weighbridge, so the passage should carry a weight (central "
        "flags `weight_missing` when it does not); false from older edges and lanes without one",
    )
    images: list[ImageRef] = Field(default_factory=list, max_length=32)
    frames_processed: int = Field(default=0, ge=0)

    @field_validator("ended_at")
    @classmethod
    def _ended_after_start(cls, v: datetime, info) -> datetime:  # type: ignore[no-untyped-def]
        start = info.data.get("started_at")
        if start is not None and v < start:
            raise ValueError("ended_at is before started_at")
        ahead = (v if v.tzinfo else v.replace(tzinfo=UTC)) - datetime.now(UTC)
        if ahead.total_seconds() > MAX_FUTURE_S:
            raise ValueError(
                f"ended_at {v.isoformat()} is more than {MAX_FUTURE_S // 3600} h in the future"
            )
        return v

    @property
    def best_plate(self) -> PlateRead | None:
        """The more confident of the front and rear reads."""
        reads = [p for p in (self.plate_front, self.plate_rear) if p is not None]
        return max(reads, key=lambda p: p.confidence) if reads else None

    def evidence_ids(self) -> list[str]:
        """Every image id the passage names (its frames, then the images its plate and
        container reads point at), each once: the evidence the edge uploads and central keeps."""
        ids = [ref.image_id for ref in self.images]
        reads = (self.plate_front, self.plate_rear, self.trailer_plate, *self.containers)
        ids += [r.image_id for r in reads if r is not None and r.image_id]
        return list(dict.fromkeys(ids))


# Vietnamese trailers and semi-trailers carry the series letter R (29R-012.34); Chinese trailer
# plates end in 挂 (桂F·1234挂).
_TRAILER_PLATE = re.compile(r"^\d{2}R[A-Z]?\d{4,5}$|^.{2,8}挂$")


def is_trailer_plate(text: str) -> bool:
    """Whether a normalized plate text is a trailer's: Vietnamese `..R..` series or Chinese `挂`.

    Edges put such a rear-camera read in `PassageEvent.trailer_plate` (contract v1, since the
    trailer mapping was added; central applies the same test to `plate_rear` of older edges).
    """
    return bool(_TRAILER_PLATE.match(text))


class CommandAction(StrEnum):
    """What central asks a lane to do."""

    OPEN_BARRIER = "open_barrier"
    CLOSE_BARRIER = "close_barrier"
    SEND_TO_INSPECTION = "send_to_inspection"
    SHOW_MESSAGE = "show_message"


class LaneCommand(_Message):
    """A command from central to one lane; the barrier opens only for an explicit command."""

    schema_name: Literal["smartgate.command"] = Field(default="smartgate.command", alias="schema")
    version: Literal[1] = SCHEMA_VERSION
    command_id: str = Field(default_factory=new_id, min_length=8, max_length=64)
    site: Segment
    lane: Segment
    action: CommandAction
    passage_event_id: str | None = Field(default=None, max_length=64)
    message: str | None = Field(default=None, max_length=120)
    inspection_lane: str | None = Field(default=None, max_length=32)
    issued_by: str = Field(max_length=64, description="user or rule set that issued it")
    issued_at: datetime = Field(default_factory=_now)


class CommandAck(_Message):
    """The edge's answer to a command: executed or refused, with a reason."""

    schema_name: Literal["smartgate.command_ack"] = Field(
        default="smartgate.command_ack", alias="schema"
    )
    version: Literal[1] = SCHEMA_VERSION
    command_id: str = Field(min_length=8, max_length=64)
    site: Segment
    lane: Segment
    node_id: Segment
    ok: bool
    detail: str = Field(default="", max_length=200)
    acked_at: datetime = Field(default_factory=_now)


LaneState = Literal["idle", "vehicle_present", "on_scale", "waiting_decision", "barrier_open", "fault"]


class LaneStatus(_Message):
    """Live state of one lane, published retained on the lane status topic."""

    schema_name: Literal["smartgate.lane_status"] = Field(
        default="smartgate.lane_status", alias="schema"
    )
    version: Literal[1] = SCHEMA_VERSION
    site: Segment
    lane: Segment
    node_id: Segment
    state: LaneState
    queue_length: int = Field(default=0, ge=0)
    at: datetime = Field(default_factory=_now)


class NodeStatus(_Message):
    """Health report of an edge node, published retained on the node status topic."""

    schema_name: Literal["smartgate.node_status"] = Field(
        default="smartgate.node_status", alias="schema"
    )
    version: Literal[1] = SCHEMA_VERSION
    site: Segment
    node_id: Segment
    lanes: list[Segment] = Field(default_factory=list, max_length=64)
    cameras_ok: dict[str, bool] = Field(default_factory=dict, max_length=64)
    scale_connected: bool | None = None
    spool_depth: int = Field(default=0, ge=0)
    spool_rejected: int = Field(
        default=0, ge=0, description="passages central rejected, kept in the spool (not re-sent)"
    )
    software: str = Field(default="", max_length=64)
    at: datetime = Field(default_factory=_now)


class PassageReceipt(_Message):
    """Central's answer to every passage it can attribute: `stored` or `duplicate` (it is in
    the database: the edge unspools it) or `rejected` with a `reason` (the edge stops
    re-sending it and keeps it in its spool as rejected)."""

    schema_name: Literal["smartgate.passage_receipt"] = Field(
        default="smartgate.passage_receipt", alias="schema"
    )
    version: Literal[1] = SCHEMA_VERSION
    event_id: str = Field(min_length=8, max_length=64)
    site: Segment
    lane: Segment
    status: Literal["stored", "duplicate", "rejected"] = Field(
        description="stored now, already stored by an earlier copy, or rejected"
    )
    reason: RejectReason | None = Field(default=None, description="why, when rejected")
    detail: str = Field(default="", max_length=200, description="human-readable detail")
    at: datetime = Field(default_factory=_now)

    @model_validator(mode="after")
    def _reason_iff_rejected(self) -> PassageReceipt:
        if (self.status == "rejected") != (self.reason is not None):
            raise ValueError("a reason goes with status rejected, and only with it")
        return self


class PassageDecision(_Message):
    """A decision on a passage, pushed on the lane's decision topic after it is stored: the
    rules' first decision and every later one (an officer's verdict or correction)."""

    schema_name: Literal["smartgate.decision"] = Field(default="smartgate.decision", alias="schema")
    version: Literal[1] = SCHEMA_VERSION
    event_id: str = Field(min_length=8, max_length=64)
    site: Segment
    lane: Segment
    outcome: str = Field(max_length=32, description="cleared, flagged, no_declaration, or an "
                         "officer's approved, rejected, held, inspection")
    action: CommandAction | None = None
    declaration_number: str | None = Field(default=None, max_length=32)
    matched_containers: list[str] = Field(
        default_factory=list, max_length=4,
        description="container codes of the passage that matched the declaration")
    reasons: list[str] = Field(default_factory=list, max_length=32, description="reason codes")
    plate_score: float | None = None
    rules_version: str = Field(default="", max_length=48)
    decided_by: str = Field(max_length=64, description="rules:<version> or the officer")
    decided_at: datetime = Field(default_factory=_now)


class YardEvent(_Message):
    """A yard event of one site, pushed on `yard_event_topic` (and to the site's webhook)."""

    schema_name: Literal["smartgate.yard_event"] = Field(
        default="smartgate.yard_event", alias="schema"
    )
    version: Literal[1] = SCHEMA_VERSION
    event_id: str = Field(default_factory=new_id, min_length=8, max_length=64)
    site: Segment
    kind: Literal["capacity", "overstay", "called", "requeued", "journey_completed"]
    zone: str | None = Field(default=None, max_length=64)
    level: float | None = Field(default=None, description="capacity: the level crossed (0..1+)")
    occupancy: int | None = Field(default=None, ge=0)
    capacity: int | None = Field(default=None, ge=0)
    journey_id: int | None = None
    plate: str | None = Field(default=None, max_length=16)
    lane: str | None = Field(default=None, max_length=64)
    detail: str = Field(default="", max_length=200)
    at: datetime = Field(default_factory=_now)


AVAILABLE_ONLINE = b"online"
AVAILABLE_OFFLINE = b"offline"

MAX_PAYLOAD_BYTES = 256 * 1024


def _decode(payload: bytes, schema: str) -> dict:
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ContractError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD_BYTES}",
                            RejectReason.TOO_LARGE)
    try:
        data = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ContractError(f"payload is not JSON: {clip(str(exc))}", RejectReason.NOT_JSON) from exc
    if not isinstance(data, dict):
        raise ContractError("payload is not a JSON object", RejectReason.NOT_JSON)
    got = data.get("schema")
    if got != schema:
        raise ContractError(f"schema is {clip(repr(got))}, expected {schema!r}",
                            RejectReason.WRONG_SCHEMA)
    if data.get("version") != SCHEMA_VERSION:
        raise ContractError(
            f"unsupported {schema} version {clip(repr(data.get('version')))}; "
            f"this build speaks {SCHEMA_VERSION}", RejectReason.UNSUPPORTED_VERSION,
        )
    return data


def event_id_of(payload: bytes) -> str | None:
    """The `event_id` of a passage payload that may fail validation, when it is usable as one
    (8-64 characters), so even a rejected passage can be answered; None otherwise."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        return None
    try:
        data = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return None
    event_id = data.get("event_id") if isinstance(data, dict) else None
    if isinstance(event_id, str) and _EVENT_ID_RE.match(event_id):
        return event_id
    return None


def _validate(model: type[M], payload: bytes, schema: str) -> M:
    data = _decode(payload, schema)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "payload"
        raise ContractError(f"invalid {schema}: {clip(where)}: {clip(first['msg'], 160)}") from exc


def parse_passage(payload: bytes) -> PassageEvent:
    """Validate a passage payload; raises ContractError naming the first bad field."""
    return _validate(PassageEvent, payload, "smartgate.passage")


def parse_command(payload: bytes) -> LaneCommand:
    """Validate a lane command payload."""
    return _validate(LaneCommand, payload, "smartgate.command")


def parse_command_ack(payload: bytes) -> CommandAck:
    """Validate a command acknowledgement payload."""
    return _validate(CommandAck, payload, "smartgate.command_ack")


def parse_lane_status(payload: bytes) -> LaneStatus:
    """Validate a lane status payload."""
    return _validate(LaneStatus, payload, "smartgate.lane_status")


def parse_node_status(payload: bytes) -> NodeStatus:
    """Validate a node status payload."""
    return _validate(NodeStatus, payload, "smartgate.node_status")


def parse_receipt(payload: bytes) -> PassageReceipt:
    """Validate a passage receipt payload."""
    return _validate(PassageReceipt, payload, "smartgate.passage_receipt")


def parse_decision(payload: bytes) -> PassageDecision:
    """Validate a passage decision payload."""
    return _validate(PassageDecision, payload, "smartgate.decision")


def parse_yard_event(payload: bytes) -> YardEvent:
    """Validate a yard event payload."""
    return _validate(YardEvent, payload, "smartgate.yard_event")


def json_schemas() -> dict[str, dict]:
    """JSON Schemas of every message, for docs and for non-Python peers."""
    return {
        m.__name__: m.model_json_schema(by_alias=True)
        for m in (PassageEvent, PassageReceipt, PassageDecision, LaneCommand, CommandAck,
                  LaneStatus, NodeStatus, YardEvent)
    }
