"""ISO 6346: check digits, size-type codes and check-digit-guided OCR correction."""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from smartgate.iso6346 import (
    CODE_ALPHABET,
    CONFIDENT,
    DIGITS,
    LETTERS,
    ContainerCodeError,
    check_digit,
    complete_code,
    correct_code,
    is_valid,
    normalize,
    parse_code,
    parse_size_type,
    position_kind,
    position_options,
)


@pytest.mark.parametrize("code", ["CSQU3054383", "MSCU1234566", "TRHU1700369", "SEGU6047895"])
def test_known_valid_codes(code: str) -> None:
    assert is_valid(code)
    assert check_digit(code[:10]) == int(code[10])


@pytest.mark.parametrize("code", ["CSQU3054384", "MSCU1234567", "WEGU6047895"])
def test_known_invalid_codes(code: str) -> None:
    assert not is_valid(code)


def test_check_digit_ten_maps_to_zero() -> None:
    # a first10 whose weighted sum is 10 mod 11 has check digit 0
    zeros = [f for f in (f"AAAU{n:06d}" for n in range(2000)) if check_digit(f) == 0]
    assert zeros and all(is_valid(f + "0") for f in zeros)


def test_parse_code_rejects_bad_shapes() -> None:
    for bad in ["CSQ3054383", "CSQX3054383", "CSQU305438A", ""]:
        with pytest.raises(ContainerCodeError):
            parse_code(bad)
    assert parse_code("csqu 305438-3").text == "CSQU3054383"


@pytest.mark.parametrize(
    ("code", "length", "height", "group"),
    [
        ("22G1", "20ft", "8ft6in", "general purpose"),
        ("45G1", "40ft", "9ft6in", "general purpose"),
        ("L5G1", "45ft", "9ft6in", "general purpose"),
        ("45R1", "40ft", "9ft6in", "thermal refrigerated"),
        ("22U1", "20ft", "8ft6in", "open top"),
    ],
)
def test_size_types(code: str, length: str, height: str, group: str) -> None:
    st_ = parse_size_type(code)
    assert (st_.length, st_.height, st_.type_group, st_.type_code) == (
        length,
        height,
        group,
        code[2:],
    )


def test_size_type_fields() -> None:
    assert parse_size_type("45G1").high_cube and parse_size_type("45G1").length_ft == 40
    assert not parse_size_type("22G1").high_cube
    for bad in ["2G1", "Z2G1", "22GX", "22!1"]:
        with pytest.raises(ContainerCodeError):
            parse_size_type(bad)


def test_correct_code_fixes_positional_confusions() -> None:
    for read in ["C5QU3054383", "CSQU3O54383", "csqu 3054383"]:
        r = correct_code(normalize(read))
        assert r is not None and r.code == "CSQU3054383" and r.check_ok
        assert r.confidence >= CONFIDENT
    double = correct_code("C5QU3O54383")  # two confusions: right code, less sure
    assert double is not None and double.code == "CSQU3054383" and double.check_ok


def test_correct_code_uses_recognizer_alternatives() -> None:
    read = "CSQU3054384"  # last digit misread: the recognizer's runner-up is right
    alts = [((c, 0.95),) for c in read]
    alts[10] = (("4", 0.55), ("3", 0.4))
    r = correct_code(read, alts, [a[0][1] for a in alts])
    assert r is not None and r.code == "CSQU3054383" and r.check_ok and r.confidence >= CONFIDENT
    without = correct_code(read)
    assert without is not None and without.confidence < CONFIDENT


def test_correct_code_drops_extra_characters_and_infers_missing_check() -> None:
    r = correct_code("CSQU30543831")
    assert r is not None and r.code == "CSQU3054383"
    missing = correct_code("CSQU305438")
    assert missing is not None and missing.code == "CSQU3054383"
    assert missing.confidence < CONFIDENT  # the check digit was never seen
    assert correct_code("CSQU30") is None


codes = st.builds(
    lambda owner, cat, serial: complete_code(f"{owner}{cat}{serial}"),
    st.text(LETTERS, min_size=3, max_size=3),
    st.sampled_from("UJZ"),
    st.text(DIGITS, min_size=6, max_size=6),
)


@given(codes, st.lists(st.sampled_from([" ", "-", ".", "/"]), max_size=3), st.booleans())
def test_valid_code_survives_normalization(code: str, seps: list[str], lower: bool) -> None:
    text = code[:4] + "".join(seps) + code[4:10] + " " + code[10]
    text = text.lower() if lower else text
    assert parse_code(text).text == code
    r = correct_code(normalize(text))
    assert r is not None and r.code == code and r.check_ok and r.confidence >= CONFIDENT


def _forced(text: str) -> str:
    """Each character replaced by its likeliest reading for its position (2 -> Z in the owner)."""
    out = []
    for i, c in enumerate(text):
        options = position_options(c, position_kind(i))
        out.append(max(options, key=options.__getitem__))
    return "".join(out)


@settings(max_examples=300)
@given(codes, st.integers(0, 10), st.sampled_from(CODE_ALPHABET))
def test_single_corruption_is_caught_or_corrected(code: str, pos: int, ch: str) -> None:
    bad = code[:pos] + ch + code[pos + 1 :]
    assume(bad != code)
    assume(not is_valid(bad) and not is_valid(_forced(bad)))  # invisible to the check digit
    r = correct_code(bad)
    assert r is not None
    assert r.code == code or r.confidence < CONFIDENT


@settings(max_examples=300)
@given(st.text(CODE_ALPHABET, min_size=10, max_size=13))
def test_wrong_check_digit_never_confident(text: str) -> None:
    r = correct_code(text)
    assert r is not None
    assert r.check_ok == is_valid(r.code)
    if not r.check_ok:
        assert r.confidence < CONFIDENT
    assert [c for c, _ in r.candidates][0] == r.code
