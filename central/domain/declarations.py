"""Customs declarations as the gate sees them, and their import from CSV and JSON (pure).

A `Declaration` is what a passage is matched against: which vehicle (tractor and trailer plates),
which containers and seals, how heavy, when, through which gate. Parsing never stops at the first
bad row: `parse_csv` and `parse_json` return the good declarations and one `RowError` per bad row;
`iter_csv` yields them one by one as it reads, for imports too large to hold. Text fields refuse
control characters (NUL included); a cell over the csv module's field limit (128 KiB) is a bad
row, not a crash. See docs/matching.md for the CSV columns.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, tzinfo
from enum import StrEnum
from typing import Annotated, Any, BinaryIO, TextIO

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from central.domain.plate_similarity import normalize_plate
from smartgate import iso6346

_PLATE_RE = re.compile(r"^[A-Z0-9\u3400-\u9fff]{4,12}$")
MULTI_VALUE_SEPARATORS = re.compile(r"[;|]")
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")  # not tab, CR, LF


class DeclarationFileError(ValueError):
    """A file that cannot be read as declarations at all (bad header, not JSON, ...)."""


class Direction(StrEnum):
    """Import enters Vietnam at the gate (lane direction `entry`), export leaves it (`exit`)."""

    IMPORT = "import"
    EXPORT = "export"


class DeclarationStatus(StrEnum):
    """Whether a declaration may still be used for a crossing."""

    VALID = "valid"
    CANCELLED = "cancelled"


def _plate(value: str) -> str:
    norm = normalize_plate(value)
    if not _PLATE_RE.match(norm):
        raise ValueError(f"plate {value!r} is not 4-12 letters, digits or CJK characters")
    return norm


def _container(value: str) -> str:
    try:
        code = iso6346.parse_code(value)
    except iso6346.ContainerCodeError as exc:
        raise ValueError(str(exc)) from exc
    if not code.check_ok:
        expected = iso6346.check_digit(code.text[:10])
        raise ValueError(f"container {value!r} fails its check digit (expected {expected})")
    return code.text


def _printable(value: str) -> str:
    bad = _CONTROL_RE.search(value)
    if bad:
        raise ValueError(f"control character {bad.group()!r} at position {bad.start()}")
    return value


Plate = Annotated[str, AfterValidator(_plate)]
ContainerNumber = Annotated[str, AfterValidator(_container)]
Text = Annotated[str, AfterValidator(_printable)]


class Declaration(BaseModel):
    """One customs declaration as needed to match a vehicle at the gate."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    number: str = Field(pattern=r"^[A-Za-z0-9/_-]{4,32}$", description="declaration number")
    direction: Direction = Field(description="import (entry into Vietnam) or export (exit)")
    tractor_plate: Plate = Field(description="tractor/truck plate, normalized: 12C34567, 桂FA1234")
    trailer_plate: Plate | None = Field(default=None, description="semi-trailer plate, if any")
    containers: tuple[ContainerNumber, ...] = Field(
        default=(), max_length=4, description="ISO 6346 container numbers with valid check digits"
    )
    seals: tuple[Text, ...] = Field(default=(), max_length=8, description="seal numbers")
    gross_weight_kg: float | None = Field(
        default=None, gt=0, le=200_000, description="declared weight the weighbridge should show"
    )
    window_start: datetime = Field(description="earliest expected crossing, with UTC offset")
    window_end: datetime = Field(description="latest expected crossing, with UTC offset")
    gate: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="site id of the border gate")
    lane_group: Text | None = Field(default=None, max_length=32, description="e.g. `cargo`")
    status: DeclarationStatus = DeclarationStatus.VALID
    company: Text = Field(default="", max_length=200, description="declarant company")
    goods_category: str = Field(
        default="general", pattern=r"^[a-z0-9_]{1,32}$", description="fee category, e.g. `ore`"
    )

    @field_validator("seals")
    @classmethod
    def _seals(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        seals = tuple(s.strip().upper() for s in v if s.strip())
        for s in seals:
            if len(s) > 32:
                raise ValueError(f"seal {s!r} is longer than 32 characters")
        return seals

    @field_validator("containers")
    @classmethod
    def _unique_containers(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(v)) != len(v):
            raise ValueError(f"container listed twice in {list(v)}")
        return v

    @field_validator("window_start", "window_end")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        if v.tzinfo is None or v.utcoffset() is None:
            raise ValueError(
                f"{v.isoformat()} has no UTC offset; write e.g. 2025-05-08T08:00+07:00"
            )
        return v

    @model_validator(mode="after")
    def _window_order(self) -> Declaration:
        if self.window_end < self.window_start:
            raise ValueError(
                f"window_end {self.window_end.isoformat()} is before "
                f"window_start {self.window_start.isoformat()}"
            )
        return self

    @property
    def plates(self) -> tuple[str, ...]:
        """Tractor plate and, if declared, trailer plate."""
        return (
            (self.tractor_plate,)
            if self.trailer_plate is None
            else (
                self.tractor_plate,
                self.trailer_plate,
            )
        )


_FIELDS = frozenset(Declaration.model_fields)
_new_object = object.__new__
_set = object.__setattr__


def stored_declaration(values: dict[str, Any]) -> Declaration:
    """The `Declaration` of values validated when they were stored (a database row): what
    `Declaration.model_construct(**values)` builds with every field given, equal to it and with
    the same fields set, without its per-field bookkeeping (~3 against ~22 µs; the ingest
    builds ~10 candidates a passage). `values` must name every field (KeyError otherwise) and
    becomes the model's own dict."""
    if values.keys() != _FIELDS:
        missing, extra = _FIELDS - values.keys(), values.keys() - _FIELDS
        raise KeyError(f"stored_declaration needs every field: missing {sorted(missing)}, "
                       f"unknown {sorted(extra)}")
    decl = _new_object(Declaration)
    _set(decl, "__dict__", values)
    _set(decl, "__pydantic_fields_set__", set(_FIELDS))
    _set(decl, "__pydantic_extra__", None)
    _set(decl, "__pydantic_private__", None)
    return decl


@dataclass(frozen=True)
class RowError:
    """One rejected row: CSV physical line number (JSON: 1-based item position) and why."""

    line: int
    reason: str


def describe_validation_error(exc: ValidationError) -> str:
    """One line naming every failing field, e.g. `containers.0: Value error, ...`."""
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "row"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


# --------------------------------------------------------------------------------------------
# CSV
# --------------------------------------------------------------------------------------------

CSV_COLUMNS: tuple[str, ...] = (
    "number",
    "direction",
    "tractor_plate",
    "trailer_plate",
    "containers",
    "seals",
    "gross_weight_kg",
    "window_start",
    "window_end",
    "gate",
    "lane_group",
    "status",
    "company",
    "goods_category",
)
REQUIRED_COLUMNS = frozenset(
    {"number", "direction", "tractor_plate", "window_start", "window_end", "gate"}
)
_MULTI = frozenset({"containers", "seals"})


def _csv_fields(row: dict[str, str], assume_tz: tzinfo | None) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for key, raw in row.items():
        value = (raw or "").strip()
        if key in _MULTI:
            fields[key] = [v.strip() for v in MULTI_VALUE_SEPARATORS.split(value) if v.strip()]
        elif value == "":
            continue
        elif key in ("window_start", "window_end"):
            try:
                when = datetime.fromisoformat(value)
            except ValueError as exc:
                raise ValueError(f"{key}: {value!r} is not an ISO 8601 date-time") from exc
            if when.tzinfo is None and assume_tz is not None:
                when = when.replace(tzinfo=assume_tz)
            fields[key] = when
        else:
            fields[key] = value
    return fields


def iter_csv(
    text: str | Iterable[str], assume_tz: tzinfo | None = None
) -> Iterator[Declaration | RowError]:
    """Declarations (and a RowError per bad row) from CSV text or lines with a header row
    naming `CSV_COLUMNS`, one at a time as the lines are read.

    Multi-valued cells (containers, seals) are separated by `;` or `|`. Naive date-times get
    `assume_tz` if given, else the row is rejected. A duplicated declaration number rejects the
    later row. A cell over the csv module's field limit is a bad row. Raises
    DeclarationFileError (when iterated) only when the header is unusable.
    """
    lines = io.StringIO(text) if isinstance(text, str) else text
    reader = csv.DictReader(lines, restkey="__extra__")
    try:
        fieldnames = reader.fieldnames
    except csv.Error as exc:
        raise DeclarationFileError(f"bad CSV header: {exc}") from exc
    header = [h.strip() for h in (fieldnames or [])]
    if not header:
        raise DeclarationFileError("CSV is empty: expected a header row")
    unknown = sorted(set(header) - set(CSV_COLUMNS))
    missing = sorted(REQUIRED_COLUMNS - set(header))
    if unknown or missing:
        raise DeclarationFileError(
            f"bad CSV header: unknown columns {unknown}, missing required columns {missing}"
        )
    reader.fieldnames = header
    first_line: dict[str, int] = {}
    rows = iter(reader)
    while True:
        try:
            row = next(rows)
        except StopIteration:
            return
        except csv.Error as exc:  # e.g. a cell over the field size limit: this row only
            yield RowError(reader.reader.line_num, f"unreadable row: {exc}")
            continue
        line = reader.reader.line_num
        if "__extra__" in row:
            yield RowError(line, f"{len(row['__extra__'])} more cells than header columns")
            continue
        if all(not (v or "").strip() for v in row.values()):
            continue
        try:
            decl = Declaration.model_validate(_csv_fields(row, assume_tz))
        except ValidationError as exc:
            yield RowError(line, describe_validation_error(exc))
            continue
        except ValueError as exc:
            yield RowError(line, str(exc))
            continue
        if decl.number in first_line:
            yield RowError(
                line, f"duplicate number {decl.number} (first on line {first_line[decl.number]})"
            )
            continue
        first_line[decl.number] = line
        yield decl


MAX_LINE_BYTES = 4 * 1024 * 1024  # 14 cells at the csv module's 128 KiB limit fit easily


def utf8_lines(raw: BinaryIO, max_line: int = MAX_LINE_BYTES) -> Iterator[str]:
    """The text lines of a binary file, decoded as UTF-8 (a BOM dropped) one at a time;
    DeclarationFileError naming the line for bytes that are not UTF-8 or a line over
    `max_line` bytes (so no single line can fill memory)."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    number = 0
    while line := raw.readline(max_line + 1):
        number += 1
        if len(line) > max_line:
            raise DeclarationFileError(f"line {number} is longer than {max_line} bytes")
        try:
            yield decoder.decode(line)
        except UnicodeDecodeError as exc:
            raise DeclarationFileError(f"line {number} is not UTF-8: {exc.reason}") from None


def parse_csv(
    text: str | Iterable[str], assume_tz: tzinfo | None = None
) -> tuple[list[Declaration], list[RowError]]:
    """All of `iter_csv` at once: the good declarations and the bad rows."""
    good: list[Declaration] = []
    errors: list[RowError] = []
    for item in iter_csv(text, assume_tz):
        (errors if isinstance(item, RowError) else good).append(item)  # type: ignore[arg-type]
    return good, errors


class BadRows:
    """The bad rows of a streamed import: every one counted, the first `keep` kept, each
    handed to `on_error` (if given) as it comes."""

    def __init__(self, keep: int = 1000, on_error: Callable[[RowError], None] | None = None):
        self.keep = keep
        self.count = 0
        self.first: list[RowError] = []
        self._on_error = on_error

    def good(self, items: Iterable[Declaration | RowError]) -> Iterator[Declaration]:
        """The declarations of `items`; the row errors are taken aside."""
        for item in items:
            if isinstance(item, Declaration):
                yield item
                continue
            self.count += 1
            if len(self.first) < self.keep:
                self.first.append(item)
            if self._on_error is not None:
                self._on_error(item)


def to_csv_row(decl: Declaration) -> dict[str, str]:
    """The CSV cells of one declaration (multi-valued cells joined with `;`)."""
    data = decl.model_dump(mode="json")
    return {
        col: ";".join(data[col]) if col in _MULTI else ("" if data[col] is None else str(data[col]))
        for col in CSV_COLUMNS
    }


def write_csv(decls: Iterable[Declaration], out: TextIO) -> int:
    """Write declarations as CSV with a header; returns the number of rows written."""
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    count = 0
    for decl in decls:
        writer.writerow(to_csv_row(decl))
        count += 1
    return count


# --------------------------------------------------------------------------------------------
# JSON
# --------------------------------------------------------------------------------------------


def _json_items(data: Any) -> Iterator[Any]:
    if isinstance(data, dict) and "declarations" in data:
        data = data["declarations"]
    if isinstance(data, list):
        yield from data
    elif isinstance(data, dict):
        yield data
    else:
        raise DeclarationFileError(
            f"JSON must be a declaration object, a list of them or {{'declarations': [...]}}; "
            f"got {type(data).__name__}"
        )


def parse_json(text: str | bytes) -> tuple[list[Declaration], list[RowError]]:
    """Parse one declaration object, a list, or `{"declarations": [...]}` from JSON.

    Bad items are reported as RowError with their 1-based position; good ones are kept.
    """
    try:
        data = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DeclarationFileError(f"not JSON: {exc}") from exc
    good: list[Declaration] = []
    errors: list[RowError] = []
    seen: dict[str, int] = {}
    for pos, item in enumerate(_json_items(data), start=1):
        try:
            decl = Declaration.model_validate(item)
        except ValidationError as exc:
            errors.append(RowError(pos, describe_validation_error(exc)))
            continue
        if decl.number in seen:
            errors.append(
                RowError(pos, f"duplicate number {decl.number} (first at item {seen[decl.number]})")
            )
            continue
        seen[decl.number] = pos
        good.append(decl)
    return good, errors
