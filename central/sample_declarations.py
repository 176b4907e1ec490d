"""Synthetic but realistic declarations for the demo and benchmarks (deterministic per seed).

Vehicles come from a fixed pool, as at a real gate where the same trucks cross again and again:
Vietnamese trucks (12C34567, 12 = Lạng Sơn) with semi-trailers (12R01234), Chinese trucks from
Guangxi (桂FA1234) with trailers (桂F1234挂). Containers carry real-looking owner codes and valid
ISO 6346 check digits. `generate_declarations` streams, so a million rows need no list.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

from central.declarations import Declaration, DeclarationStatus, Direction
from smartgate import iso6346

VN_PROVINCES = ("12", "12", "12", "12", "98", "29", "14", "20", "51", "15", "99", "34")
VN_SERIES = ("C", "C", "C", "D", "H", "E", "LD")
CN_PREFIXES = ("桂F", "桂F", "桂F", "桂A", "桂B", "粤B", "粤A", "湘A", "云A")
CN_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"  # no I or O on Chinese plates
OWNERS = ("CSQU", "MSKU", "TGHU", "OOLU", "CMAU", "TCNU", "SEGU", "CBHU", "TEMU", "FCIU", "BMOU",
          "DRYU", "HLXU", "EGHU", "TRHU", "GESU", "CAIU", "BEAU", "YMLU", "SITU")  # fmt: skip
COMPANIES = (
    "Công ty TNHH Thương mại Xuất nhập khẩu Đồng Đăng",
    "Công ty CP Logistics Hữu Nghị",
    "Công ty TNHH Nông sản Lạng Sơn",
    "Công ty CP Vận tải Biên giới Tân Thanh",
    "广西凭祥进出口贸易有限公司",
    "崇左东盟物流有限公司",
    "Viet-Trung Fruit Export JSC",
    "Công ty TNHH Điện tử Bắc Giang",
)
VN_TZ = timezone(timedelta(hours=7))
GOODS = ("general", "general", "general", "general", "agricultural", "agricultural", "ore")


def _vn_plate(rng: random.Random, trailer: bool) -> str:
    province = rng.choice(VN_PROVINCES)
    series = "R" if trailer else rng.choice(VN_SERIES)
    return f"{province}{series}{rng.randrange(100000):05d}"


def _cn_plate(rng: random.Random, trailer: bool) -> str:
    prefix = rng.choice(CN_PREFIXES)
    if trailer:
        return f"{prefix}{rng.randrange(10000):04d}挂"
    tail = "".join(rng.choice(CN_LETTERS) if i == 0 or rng.random() < 0.15 else str(rng.randrange(10))
                   for i in range(5))  # fmt: skip
    return prefix + tail


def container_number(rng: random.Random) -> str:
    """A random container number with a correct ISO 6346 check digit."""
    return iso6346.complete_code(f"{rng.choice(OWNERS)}{rng.randrange(1_000_000):06d}")


def _vehicle(rng: random.Random) -> tuple[str, str | None]:
    chinese = rng.random() < 0.45
    make = _cn_plate if chinese else _vn_plate
    trailer = make(rng, True) if rng.random() < 0.8 else None
    return make(rng, False), trailer


def generate_declarations(
    n: int,
    seed: int = 0,
    *,
    start: datetime | None = None,
    span: timedelta = timedelta(days=30),
    gate: str = "huunghi",
    vehicles: int | None = None,
    cancelled_rate: float = 0.02,
) -> Iterator[Declaration]:
    """Yield `n` valid declarations, the same ones for the same arguments.

    Windows start spread over `span` from `start` (default 2025-05-08 00:00 +07:00) and last
    6-72 hours; `vehicles` is the size of the truck pool (default n // 4, at least 20).
    Values are valid by construction, so validation is skipped (`model_construct`) to keep a
    million rows well under a minute; the tests validate generated rows in full.
    Numbers are 12 digits like Vietnamese customs declarations: seed (mod 100) then index.
    """
    rng = random.Random(seed)
    base = start or datetime(2025, 5, 8, tzinfo=VN_TZ)
    size = vehicles if vehicles is not None else max(min(n, 20), n // 4)
    pool = [_vehicle(rng) for _ in range(max(1, size))]
    step = span / max(1, n)
    for i in range(n):
        tractor, trailer = pool[rng.randrange(len(pool))]
        containers = tuple(container_number(rng) for _ in range(rng.choice((0, 1, 1, 1, 2))))
        if containers:
            weight = rng.uniform(8_000, 30_000) * len(containers) ** 0.5 + 7_000
        else:
            weight = rng.uniform(3_000, 40_000)
        window_start = base + step * i + timedelta(minutes=rng.randrange(-120, 120))
        yield Declaration.model_construct(
            number=f"{seed % 100:02d}{i:010d}",
            direction=Direction.IMPORT if rng.random() < 0.65 else Direction.EXPORT,
            tractor_plate=tractor,
            trailer_plate=trailer,
            containers=containers,
            seals=tuple(f"{rng.choice('CNVH')}{rng.randrange(10_000_000):07d}" for _ in containers),
            gross_weight_kg=round(weight, 0),
            window_start=window_start,
            window_end=window_start + timedelta(hours=rng.randrange(6, 73)),
            gate=gate,
            lane_group="cargo",
            status=DeclarationStatus.CANCELLED
            if rng.random() < cancelled_rate
            else DeclarationStatus.VALID,
            company=rng.choice(COMPANIES),
            goods_category=rng.choice(GOODS),
        )
