"""Border-gate infrastructure fee: weight classes, containers, categories, table validation."""

from __future__ import annotations

import pytest

from central.domain.fees import (
    DEFAULT_FEE_TABLE,
    FeeError,
    FeeTableError,
    assess_fee,
    load_fee_table,
    parse_fee_table,
)
from smartgate.contract import Weight
from tests.central.test_matching import C1, C2, T0, container, decl, passage


@pytest.mark.parametrize(
    ("kg", "amount"),
    [(1_500, 100_000), (2_000, 100_000), (2_000.5, 300_000), (9_999, 600_000), (18_000, 1_000_000),
     (25_000, 1_500_000), (42_000, 2_000_000)],
)  # fmt: skip
def test_weight_classes(kg: float, amount: int) -> None:
    p = passage(containers=[], weight=Weight(gross_kg=kg, captured_at=T0))
    fee = assess_fee(p, decl(containers=[]), DEFAULT_FEE_TABLE)
    assert (fee.amount_vnd, fee.basis, fee.table_version) == (
        amount,
        "measured_weight",
        "illustrative-2025",
    )


@pytest.mark.parametrize(
    ("size_types", "amount"),
    [(["22G1"], 2_000_000), (["45G1"], 4_000_000), (["L5G1"], 4_000_000), ([None], 4_000_000),
     (["ZZZZ"], 4_000_000), (["22G1", "22G1"], 4_000_000)],
)  # fmt: skip
def test_container_sizes(size_types: list[str | None], amount: int) -> None:
    reads = [container(code, size_type=s) for code, s in zip([C1, C2], size_types, strict=False)]
    fee = assess_fee(passage(containers=reads), decl(), DEFAULT_FEE_TABLE)
    assert fee.basis == "containers" and fee.amount_vnd == amount
    assert len(fee.items) == len(size_types)


def test_declared_containers_count_when_none_were_read() -> None:
    fee = assess_fee(passage(containers=[]), decl(containers=[C1, C2]), DEFAULT_FEE_TABLE)
    assert fee.basis == "containers" and fee.amount_vnd == 8_000_000


def test_declared_weight_when_no_weighbridge() -> None:
    p = passage(containers=[], weight=None)
    fee = assess_fee(p, decl(containers=[], gross_weight_kg=4_000), DEFAULT_FEE_TABLE)
    assert (fee.basis, fee.amount_vnd) == ("declared_weight", 300_000)


def test_category_multiplier() -> None:
    p = passage(containers=[], weight=Weight(gross_kg=25_000, captured_at=T0))
    fee = assess_fee(p, decl(containers=[], goods_category="ore"), DEFAULT_FEE_TABLE)
    assert (fee.multiplier, fee.amount_vnd) == (5.0, 7_500_000)
    unknown = assess_fee(p, decl(containers=[], goods_category="textiles"), DEFAULT_FEE_TABLE)
    assert unknown.multiplier == 1.0


def test_no_declaration_uses_passage_only() -> None:
    fee = assess_fee(passage(containers=[container(C1, size_type="22G1")]), None, DEFAULT_FEE_TABLE)
    assert fee.amount_vnd == 2_000_000


def test_nothing_to_assess_raises_with_event_id() -> None:
    p = passage(containers=[], weight=None)
    with pytest.raises(FeeError) as err:
        assess_fee(p, None, DEFAULT_FEE_TABLE)
    assert err.value.event_id == p.event_id


TABLE_YAML = """
version: lsn-09-2025
source: Resolution 09/2025/NQ-HDND Lang Son (amounts entered by the site)
weight_bands:
  - {up_to: 10000, amount_vnd: 500000, label: up to 10 t}
  - {amount_vnd: 900000, label: over 10 t}
container_bands:
  - {up_to: 20, amount_vnd: 1500000, label: 20 ft}
  - {amount_vnd: 3000000, label: 40 ft}
category_multipliers: {ore: 5}
"""


def test_table_from_yaml_and_toml(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "fees.yaml"
    path.write_text(TABLE_YAML, encoding="utf-8")
    table = load_fee_table(path)
    p = passage(containers=[], weight=Weight(gross_kg=12_000, captured_at=T0))
    assert assess_fee(p, None, table).amount_vnd == 900_000
    toml = parse_fee_table(
        'version = "t"\nsource = "s"\n'
        'weight_bands = [{amount_vnd = 1, label = "all"}]\n'
        'container_bands = [{amount_vnd = 2, label = "any"}]\n',
        fmt="toml",
    )
    assert assess_fee(p, None, toml).amount_vnd == 1


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            (
                "  - {amount_vnd: 900000, label: over 10 t}",
                "  - {up_to: 40000, amount_vnd: 900000, label: x}",
            ),
            "open-ended",
        ),
        (
            ("{up_to: 20,", "{up_to: 50, amount_vnd: 1, label: a}\n  - {up_to: 20,"),
            "strictly increase",
        ),
        (("category_multipliers: {ore: 5}", "category_multipliers: {ore: -1}"), "negative"),
        (("version: lsn-09-2025", "version: lsn\nvat: 10"), "vat"),
    ],
)
def test_bad_tables_rejected(edit: tuple[str, str], message: str) -> None:
    text = TABLE_YAML.replace(*edit)
    assert text != TABLE_YAML
    with pytest.raises(FeeTableError, match=message):
        parse_fee_table(text, source="fees.yaml")


def test_missing_file() -> None:
    with pytest.raises(FeeTableError, match="nope.yaml"):
        load_fee_table("/nonexistent/nope.yaml")
