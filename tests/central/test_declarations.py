"""Declarations: validation, CSV and JSON import with per-row errors, sample generator."""

from __future__ import annotations

import io
import json
import re
from datetime import timedelta, timezone

import pytest

from central.domain.declarations import (
    CSV_COLUMNS,
    Declaration,
    DeclarationFileError,
    RowError,
    parse_csv,
    parse_json,
    stored_declaration,
    write_csv,
)
from smartgate import iso6346
from tools.synth.declarations import generate_declarations

HEADER = ",".join(CSV_COLUMNS)
GOOD = (
    "300000000001,import,12C-345.67,12R-012.34,CSQU3054383;MSKU1234565,S1|S2,31000,"
    "2025-05-08T08:00+07:00,2025-05-08T20:00+07:00,huunghi,cargo,valid,Công ty A,general"
)


def test_good_row_normalized() -> None:
    decls, errors = parse_csv(f"{HEADER}\n{GOOD}\n")
    assert errors == []
    (d,) = decls
    assert d.tractor_plate == "12C34567" and d.trailer_plate == "12R01234"
    assert d.containers == ("CSQU3054383", "MSKU1234565") and d.seals == ("S1", "S2")
    assert d.gross_weight_kg == 31000 and d.window_start.utcoffset() == timedelta(hours=7)


BAD_ROWS = [
    ("300000000002,import,12C34567,,CSQU3054384,,,2025-05-08T08:00+07:00,2025-05-08T20:00+07:00,huunghi,,,,",
     "check digit"),
    ("300000000003,import,12C-34!567,,,,,2025-05-08T08:00+07:00,2025-05-08T20:00+07:00,huunghi,,,,",
     "tractor_plate"),
    ("300000000004,sideways,12C34567,,,,,2025-05-08T08:00+07:00,2025-05-08T20:00+07:00,huunghi,,,,",
     "direction"),
    ("300000000005,import,,,,,,2025-05-08T08:00+07:00,2025-05-08T20:00+07:00,huunghi,,,,",
     "tractor_plate"),
    ("300000000006,import,12C34567,,,,,2025-05-08T08:00,2025-05-08T20:00+07:00,huunghi,,,,",
     "UTC offset"),
    ("300000000007,import,12C34567,,,,,2025-05-09T08:00+07:00,2025-05-08T20:00+07:00,huunghi,,,,",
     "before window_start"),
    ("300000000008,import,12C34567,,,,heavy,2025-05-08T08:00+07:00,2025-05-08T20:00+07:00,huunghi,,,,",
     "gross_weight_kg"),
    ("300000000009,import,12C34567,,,,,yesterday,2025-05-08T20:00+07:00,huunghi,,,,",
     "ISO 8601"),
    ("300000000010,import,12C34567,,,,,2025-05-08T08:00+07:00,2025-05-08T20:00+07:00,huunghi,,,,,extra",
     "more cells"),
    ("300000000001,import,12C34567,,,,,2025-05-08T08:00+07:00,2025-05-08T20:00+07:00,huunghi,,,,",
     "duplicate number 300000000001 (first on line 2)"),
    ("300000000011,import,12C34567,,CSQU3054383;CSQU3054383,,,2025-05-08T08:00+07:00,2025-05-08T20:00+07:00,huunghi,,,,",
     "listed twice"),
]  # fmt: skip


def test_every_bad_row_reported_with_its_line_and_good_rows_kept() -> None:
    quoted = (
        "300000000099,export,12C11111,,,,,2025-05-08T08:00+07:00,2025-05-08T20:00+07:00,huunghi,,"
        'valid,"Công ty\nhai dòng",'
    )
    lines = (
        [HEADER, GOOD, quoted]
        + [row for row, _ in BAD_ROWS]
        + ["", GOOD.replace("300000000001", "300000000012")]
    )
    decls, errors = parse_csv("\n".join(lines) + "\n")
    assert [d.number for d in decls] == ["300000000001", "300000000099", "300000000012"]
    assert decls[1].company == "Công ty\nhai dòng"
    # header line 1, GOOD line 2, the quoted row spans lines 3-4, bad rows start at line 5
    assert [e.line for e in errors] == list(range(5, 5 + len(BAD_ROWS)))
    for error, (_, expected) in zip(errors, BAD_ROWS, strict=True):
        assert expected in error.reason, error


def test_assume_tz_for_naive_times() -> None:
    row = "300000000020,import,12C34567,,,,,2025-05-08T08:00,2025-05-08T20:00,huunghi,,,,"
    decls, errors = parse_csv([HEADER + "\n", row + "\n"], assume_tz=timezone(timedelta(hours=7)))
    assert errors == [] and decls[0].window_start.utcoffset() == timedelta(hours=7)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("number,direction\n", "missing required"),
        (HEADER + ",colour\n", "unknown columns ['colour']"),
    ],
)
def test_bad_header_is_a_file_error(text: str, message: str) -> None:
    with pytest.raises(DeclarationFileError, match=re.escape(message)):
        parse_csv(text)


def test_optional_columns_may_be_left_out() -> None:
    text = "number,direction,tractor_plate,window_start,window_end,gate\n"
    text += "300000000030,export,桂F·A1234,2025-05-08T08:00Z,2025-05-08T09:00Z,huunghi\n"
    (d,), errors = parse_csv(text)
    assert (
        errors == []
        and d.tractor_plate == "桂FA1234"
        and d.containers == ()
        and d.status == "valid"
    )


def test_csv_round_trip() -> None:
    decls = list(generate_declarations(200, seed=5))
    out = io.StringIO()
    assert write_csv(decls, out) == 200
    back, errors = parse_csv(out.getvalue())
    assert errors == [] and back == decls


def test_json_single_bulk_and_wrapped() -> None:
    decls = list(generate_declarations(3, seed=2))
    items = [d.model_dump(mode="json") for d in decls]
    assert parse_json(json.dumps(items[0])) == ([decls[0]], [])
    assert parse_json(json.dumps(items)) == (decls, [])
    assert parse_json(json.dumps({"declarations": items}).encode()) == (decls, [])


def test_json_bad_items_reported_by_position() -> None:
    items = [d.model_dump(mode="json") for d in generate_declarations(3, seed=2)]
    items[1]["containers"] = ["CSQU3054384"]
    bad_plate = dict(items[0], number="990000000001", tractor_plate="?")
    decls, errors = parse_json(json.dumps([items[0], items[1], items[2], bad_plate, items[0], 7]))
    assert [d.number for d in decls] == [items[0]["number"], items[2]["number"]]
    assert [e.line for e in errors] == [2, 4, 5, 6]
    assert "containers.0" in errors[0].reason and "check digit" in errors[0].reason
    assert "tractor_plate" in errors[1].reason
    assert "duplicate" in errors[2].reason
    assert isinstance(errors[3], RowError)


@pytest.mark.parametrize("text", ["not json", "42", '"a string"'])
def test_json_file_errors(text: str) -> None:
    with pytest.raises(DeclarationFileError):
        parse_json(text)


def test_declaration_rejects_unknown_fields() -> None:
    item = next(generate_declarations(1, seed=1)).model_dump(mode="json")
    with pytest.raises(ValueError, match="colour"):
        Declaration.model_validate({**item, "colour": "red"})


# --------------------------------------------------------------------------------------------
# Generator
# --------------------------------------------------------------------------------------------

VN_PLATE = re.compile(r"^\d{2}(C|D|H|E|LD|R)\d{5}$")
CN_PLATE = re.compile(r"^[桂粤湘云][A-Z][A-Z0-9]{5}$|^[桂粤湘云][A-Z]\d{4}挂$")


def test_generator_is_deterministic() -> None:
    a = list(generate_declarations(500, seed=42))
    assert a == list(generate_declarations(500, seed=42))
    assert a != list(generate_declarations(500, seed=43))


def test_generated_declarations_are_valid() -> None:
    decls = list(generate_declarations(3000, seed=9))
    assert len({d.number for d in decls}) == 3000
    for d in decls:
        assert Declaration.model_validate(d.model_dump()) == d
        assert all(iso6346.is_valid(c) for c in d.containers)
        for p in d.plates:
            assert VN_PLATE.match(p) or CN_PLATE.match(p), p
        assert d.window_start < d.window_end
    assert sum(d.status == "cancelled" for d in decls) > 0
    assert sum(bool(d.containers) for d in decls) > 1500
    assert len({d.tractor_plate for d in decls}) <= 750  # trucks come back


def test_stored_declaration_is_what_model_construct_builds() -> None:
    """The ingest's cheap construction of stored rows: equal to pydantic's, same fields set,
    hashable alike, frozen; a missing or unknown field is refused."""
    for decl in generate_declarations(50, seed=3):
        values = decl.model_dump()
        built, reference = stored_declaration(dict(values)), Declaration.model_construct(**values)
        assert built == reference == decl and hash(built) == hash(decl)
        assert built.model_fields_set == reference.model_fields_set
        assert built.model_dump() == values and built.plates == decl.plates
        with pytest.raises(ValueError):
            built.number = "X"  # type: ignore[misc]
    values = decl.model_dump()
    with pytest.raises(KeyError, match="company"):
        stored_declaration({k: v for k, v in values.items() if k != "company"})
    with pytest.raises(KeyError, match="colour"):
        stored_declaration({**values, "colour": "red"})
