"""Border-gate infrastructure-use fee: a configurable table and a pure assessment per passage.

Lạng Sơn charges vehicles carrying goods through its border-gate areas a fee for the use of
infrastructure works, service works and public utilities ("phí sử dụng công trình kết cấu hạ
tầng, công trình dịch vụ, tiện ích công cộng trong khu vực cửa khẩu"), set by resolution of the
Provincial People's Council — Resolution 09/2025/NQ-HĐND, in force from 8 May 2025, replaced
Resolution 01/2019/NQ-HĐND. Amounts depend on the vehicle's weight class or container size, the
kind of goods and the journey. `DEFAULT_FEE_TABLE` follows that shape, but its AMOUNTS ARE
ILLUSTRATIVE: a site must load a table (`load_fee_table`) set from the resolution in force.
Journey adjustments (e.g. a percentage for goods only transferred at the border wharf) are not
modelled; apply them in the table's category multipliers if a site needs them.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml  # type: ignore[import-untyped]
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from central.domain.declarations import Declaration
from smartgate import iso6346
from smartgate.contract import PassageEvent


class FeeError(ValueError):
    """A passage whose fee cannot be assessed; carries the passage's event id."""

    def __init__(self, event_id: str, message: str) -> None:
        super().__init__(f"passage {event_id}: {message}")
        self.event_id = event_id


class FeeTableError(ValueError):
    """A fee table file that cannot be loaded; names the file and the offending key."""


class Band(BaseModel):
    """One row of a banded tariff: applies up to `up_to` (inclusive); None means no upper bound."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    up_to: float | None = Field(default=None, gt=0, description="upper bound, inclusive")
    amount_vnd: int = Field(ge=0, description="fee in Vietnamese đồng")
    label: str = Field(min_length=1, max_length=80, description="shown on the receipt")


def _check_bands(bands: list[Band], name: str) -> None:
    if not bands:
        raise ValueError(f"{name} is empty")
    bounds = [b.up_to for b in bands]
    if bounds[-1] is not None:
        raise ValueError(f"{name}: the last band must have no `up_to` (open-ended)")
    if None in bounds[:-1]:
        raise ValueError(f"{name}: only the last band may omit `up_to`")
    limits = [b for b in bounds[:-1] if b is not None]
    if limits != sorted(set(limits)):
        raise ValueError(f"{name}: `up_to` values {limits} must strictly increase")


def _band_for(bands: list[Band], value: float) -> Band:
    return next(b for b in bands if b.up_to is None or value <= b.up_to)


class FeeTable(BaseModel):
    """Fee amounts per weight class (vehicles without containers) and per container length."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str = Field(min_length=1, max_length=48, description="stamped on every assessment")
    source: str = Field(min_length=1, description="the legal instrument the amounts come from")
    currency: Literal["VND"] = "VND"
    weight_bands: list[Band] = Field(description="by gross weight in kg, ascending")
    container_bands: list[Band] = Field(description="per container, by length in feet, ascending")
    unknown_container_length_ft: float = Field(
        default=40, gt=0, description="length assumed when a container's size-type is unknown"
    )
    category_multipliers: dict[str, float] = Field(
        default_factory=dict, description="goods category -> factor; unlisted categories use 1.0"
    )

    @model_validator(mode="after")
    def _bands_ordered(self) -> FeeTable:
        _check_bands(self.weight_bands, "weight_bands")
        _check_bands(self.container_bands, "container_bands")
        for category, factor in self.category_multipliers.items():
            if factor < 0:
                raise ValueError(f"category_multipliers.{category}: {factor} is negative")
        return self


DEFAULT_FEE_TABLE = FeeTable(
    version="illustrative-2025",
    source=(
        "Shape of Lạng Sơn Resolution 09/2025/NQ-HĐND (border-gate infrastructure-use fee); "
        "amounts illustrative, set them from the resolution in force"
    ),
    weight_bands=[
        Band(up_to=2_000, amount_vnd=100_000, label="up to 2 t"),
        Band(up_to=5_000, amount_vnd=300_000, label="2-5 t"),
        Band(up_to=10_000, amount_vnd=600_000, label="5-10 t"),
        Band(up_to=18_000, amount_vnd=1_000_000, label="10-18 t"),
        Band(up_to=30_000, amount_vnd=1_500_000, label="18-30 t"),
        Band(amount_vnd=2_000_000, label="over 30 t"),
    ],
    container_bands=[
        Band(up_to=20, amount_vnd=2_000_000, label="20 ft container"),
        Band(amount_vnd=4_000_000, label="40/45 ft container"),
    ],
    category_multipliers={"general": 1.0, "agricultural": 1.0, "ore": 5.0},
)


@dataclass(frozen=True)
class FeeItem:
    """One line of an assessment: what was charged and how much (before the multiplier)."""

    label: str
    amount_vnd: int


@dataclass(frozen=True)
class FeeAssessment:
    """The fee for one passage, with its basis and the table version that priced it."""

    amount_vnd: int
    items: tuple[FeeItem, ...]
    basis: Literal["containers", "measured_weight", "declared_weight"]
    multiplier: float
    table_version: str


def _container_lengths(
    passage: PassageEvent, declaration: Declaration | None, table: FeeTable
) -> list[float]:
    lengths = []
    for read in passage.containers:
        try:
            size = iso6346.parse_size_type(read.size_type) if read.size_type else None
        except iso6346.ContainerCodeError:
            size = None
        lengths.append(size.length_ft if size else table.unknown_container_length_ft)
    if not lengths and declaration is not None:
        lengths = [table.unknown_container_length_ft for _ in declaration.containers]
    return lengths


def assess_fee(
    passage: PassageEvent, declaration: Declaration | None, table: FeeTable
) -> FeeAssessment:
    """Fee for a passage: per container if any were read or declared, else by weight class.

    Container length comes from the read size-type code (22G1 -> 20 ft). Weight is the
    weighbridge gross if present, else the declared weight. The declaration's goods category
    picks the multiplier. Raises FeeError when there is neither a container nor a weight.
    """
    lengths = _container_lengths(passage, declaration, table)
    basis: Literal["containers", "measured_weight", "declared_weight"]
    if lengths:
        bands = [_band_for(table.container_bands, length) for length in lengths]
        items = tuple(FeeItem(b.label, b.amount_vnd) for b in bands)
        basis = "containers"
    else:
        if passage.weight is not None:
            kg, basis = passage.weight.gross_kg, "measured_weight"
        elif declaration is not None and declaration.gross_weight_kg is not None:
            kg, basis = declaration.gross_weight_kg, "declared_weight"
        else:
            raise FeeError(passage.event_id, "no container and no weight to assess a fee from")
        band = _band_for(table.weight_bands, kg)
        items = (FeeItem(f"{band.label} ({kg:.0f} kg)", band.amount_vnd),)
    category = declaration.goods_category if declaration is not None else "general"
    multiplier = table.category_multipliers.get(category, 1.0)
    amount = round(sum(i.amount_vnd for i in items) * multiplier)
    return FeeAssessment(amount, items, basis, multiplier, table.version)


def parse_fee_table(
    text: str, fmt: Literal["yaml", "toml"] = "yaml", source: str = "<fees>"
) -> FeeTable:
    """Validate a FeeTable from YAML or TOML text; raises FeeTableError naming the bad key."""
    try:
        data = tomllib.loads(text) if fmt == "toml" else yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise FeeTableError(f"{source}: syntax: {exc}") from exc
    if not isinstance(data, dict):
        raise FeeTableError(f"{source}: expected a mapping with version, source and bands")
    try:
        return FeeTable.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "document"
        raise FeeTableError(f"{source}: {where}: {first['msg']}") from exc


def load_fee_table(path: str | Path) -> FeeTable:
    """Load and validate a FeeTable from a .yaml/.yml or .toml file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise FeeTableError(f"{path}: {exc}") from exc
    return parse_fee_table(text, fmt="toml" if path.suffix == ".toml" else "yaml", source=str(path))
