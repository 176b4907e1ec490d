"""Synthetic but realistic declarations for the demo and benchmarks (deterministic per seed).

Vehicles come from a fixed pool, as at a real gate where the same trucks cross again and again:
Vietnamese trucks (12C34567, 12 = Lạng Sơn) with semi-trailers (12R01234), Chinese trucks from
Guangxi (桂FA1234) with trailers (桂F1234挂). Containers carry real-looking owner codes and valid
ISO 6346 check digits. `generate_declarations` streams, so a million rows need no list.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from central.domain.declarations import Declaration, DeclarationStatus, Direction
from central.domain.matching import DeclarationIndex, decide
from central.domain.rules import RuleSet
from smartgate import iso6346
from smartgate.contract import ContainerRead, PassageEvent, PlateRead, Weight

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
_LOOKALIKE = {"0": "O", "1": "I", "8": "B", "5": "S", "2": "Z", "6": "G", "D": "0", "O": "0"}
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


def passage_for(
    decl: Declaration,
    rng: random.Random,
    *,
    site: str | None = None,
    lane: str = "in1",
    plate_errors: int = 0,
) -> PassageEvent:
    """A passage that clears `decl`, with `plate_errors` look-alike swaps in the plate read.

    For the demo (a simulated truck for a known declaration) and for benchmarks.
    """
    text = list(decl.tractor_plate)
    spots = [i for i, ch in enumerate(text) if ch in _LOOKALIKE]
    for i in rng.sample(spots, min(plate_errors, len(spots))):
        text[i] = _LOOKALIKE[text[i]]
    at = decl.window_start + (decl.window_end - decl.window_start) / 2
    containers = [
        ContainerRead(
            code=c, check_digit_ok=True, size_type=rng.choice(("22G1", "45G1")), confidence=0.9
        )
        for c in decl.containers
    ]
    return PassageEvent(
        event_id=f"sim-{decl.number}-{rng.randrange(1 << 30):08x}",
        site=site or decl.gate,
        node_id="sim",
        lane=lane,
        direction="entry" if decl.direction is Direction.IMPORT else "exit",
        started_at=at,
        ended_at=at + timedelta(seconds=20),
        plate_front=PlateRead(text="".join(text), confidence=0.9),
        trailer_plate=None
        if decl.trailer_plate is None
        else PlateRead(text=decl.trailer_plate, confidence=0.9),
        containers=containers,
        weight=None
        if decl.gross_weight_kg is None
        else Weight(gross_kg=decl.gross_weight_kg + rng.uniform(-150, 150), captured_at=at),
    )


@dataclass(frozen=True)
class MatchingBench:
    """Numbers printed by the matching benchmark."""

    declarations: int
    generate_and_index_s: float
    passages: int
    per_passage_ms: float
    median_candidates: int
    max_candidates: int
    right_declaration: float


def bench_matching(
    n: int, seed: int = 0, passages: int = 1000, plate_errors: int = 2
) -> MatchingBench:
    """Generate `n` declarations, index them, then look up and decide `passages` simulated trucks."""
    rng = random.Random(seed + 1)
    t0 = time.perf_counter()
    index = DeclarationIndex(generate_declarations(n, seed, vehicles=max(1, n // 5)))
    built = time.perf_counter() - t0
    rules = RuleSet(version="bench")
    numbers = [f"{seed % 100:02d}{i:010d}" for i in rng.sample(range(n), min(passages, n))]
    sims = []
    for number in numbers:
        decl = index.get(number)
        if decl is None:
            raise LookupError(f"generated declaration {number} is not in the index")
        sims.append(passage_for(decl, rng, plate_errors=plate_errors))
    sizes = []
    right = 0
    t0 = time.perf_counter()
    for number, passage in zip(numbers, sims, strict=True):
        candidates = index.candidates(passage, rules)
        sizes.append(len(candidates))
        right += (
            decide(passage, candidates, rules, (), passage.ended_at).declaration_number == number
        )
    elapsed = time.perf_counter() - t0
    sizes.sort()
    return MatchingBench(
        declarations=len(index),
        generate_and_index_s=round(built, 2),
        passages=len(sims),
        per_passage_ms=round(elapsed / max(1, len(sims)) * 1000, 3),
        median_candidates=sizes[len(sizes) // 2] if sizes else 0,
        max_candidates=sizes[-1] if sizes else 0,
        right_declaration=round(right / max(1, len(sims)), 4),
    )
