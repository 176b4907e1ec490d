"""Weighbridge indicator formats: hand-written frame vectors, framing of chunked streams, config."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from hardware.config import RegexFormatConfig, WeighbridgeConfig
from hardware.weighbridge.protocols import (
    ChecksumError,
    LineFramer,
    ParseError,
    ToledoFramer,
    encode_ascii,
    encode_toledo,
    indicator_format,
    parse_ascii,
    parse_regex,
    parse_toledo,
)

# Toledo continuous: STX, status A ('*' = bit5 | decimal code 010 (x1) | increment x1),
# status B (bit5 | bit4 kg | bit3 motion | bit2 out of range | bit1 negative | bit0 net),
# status C (' ' = bit5, unit per status B), 6 digits weight, 6 digits tare, CR.
TOLEDO_VECTORS = [
    # frame, gross, tare, net, stable, overload
    (b"\x02*0 012340000000\r", 12340.0, 0.0, 12340.0, True, False),
    (b"\x02*8 012340000000\r", 12340.0, 0.0, 12340.0, False, False),  # motion
    (b"\x02*1 020000012000\r", 32000.0, 12000.0, 20000.0, True, False),  # net mode
    (b"\x02*2 000120000000\r", -120.0, 0.0, -120.0, True, False),  # negative (under zero)
    (b"\x02*4 999999000000\r", 999999.0, 0.0, 999999.0, True, True),  # out of range
    (b"\x02*0   5000     0\r", 5000.0, 0.0, 5000.0, True, False),  # blanked leading zeros
    (b"\x02+0 123456000000\r", 12345.6, 0.0, 12345.6, True, False),  # XXXXX.X
    (b"\x02)0 003215000000\r", 32150.0, 0.0, 32150.0, True, False),  # XXXXX0 (x10)
    (b'\x02,0"003215000000\r', 32150.0, 0.0, 32150.0, True, False),  # 32.15 t
    (b"\x02*  010000000000\r", 4535.9237, 0.0, 4535.9237, True, False),  # 10000 lb
]


@pytest.mark.parametrize(("frame", "gross", "tare", "net", "stable", "overload"), TOLEDO_VECTORS)
def test_toledo_vectors(
    frame: bytes, gross: float, tare: float, net: float, stable: bool, overload: bool
) -> None:
    r = parse_toledo(frame, 7.5)
    assert r.gross_kg == pytest.approx(gross)
    assert r.tare_kg == pytest.approx(tare)
    assert r.net_kg == pytest.approx(net)
    assert (r.stable, r.overload, r.timestamp) == (stable, overload, 7.5)


def test_toledo_overload_has_no_load() -> None:
    assert parse_toledo(b"\x02*4 999999000000\r", 0).load_kg is None


def test_toledo_checksum_valid_and_corrupt() -> None:
    # 7-bit sum of STX..CR is 723 -> 723 % 128 = 83 -> two's complement 45 = '-'.
    good = b"\x02*0 012340000000\r-"
    assert parse_toledo(good, 0, checksum=True).gross_kg == 12340.0
    with pytest.raises(ChecksumError) as err:
        parse_toledo(b"\x02*0 012350000000\r-", 0, checksum=True)  # one digit changed
    assert err.value.frame == b"\x02*0 012350000000\r-"
    assert encode_toledo(12340, checksum=True) == good


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (b"\x02*0 0123A0000000\r", "weight field"),
        (b"\x02*0 012340000-00\r", "tare field"),
        (b"\x02*0 01234000000\r", "length"),
        (b"\x02\x0a0 012340000000\r", "bit 5"),
        (b"\x02*0'012340000000\r", "unit code"),  # status C unit 111 (custom)
        (b"\x03*0 012340000000\r", "STX"),
    ],
)
def test_toledo_corrupt(frame: bytes, reason: str) -> None:
    with pytest.raises(ParseError, match=reason) as err:
        parse_toledo(frame, 0)
    assert err.value.frame == frame


ASCII_VECTORS = [
    (b"ST,GS,+0012345kg", 12345.0, None, True, False),
    (b"US,GS,+0012345kg", 12345.0, None, False, False),
    (b"ST,NT,-0000120kg", None, -120.0, True, False),
    (b"ST,GS,+  32.150 t", 32150.0, None, True, False),
    (b"ST,GS,+ 1234.5kg", 1234.5, None, True, False),
]


@pytest.mark.parametrize(("frame", "gross", "net", "stable", "overload"), ASCII_VECTORS)
def test_ascii_vectors(
    frame: bytes, gross: float | None, net: float | None, stable: bool, overload: bool
) -> None:
    r = parse_ascii(frame, 1.0)
    assert (r.gross_kg, r.net_kg, r.stable, r.overload) == (gross, net, stable, overload)


def test_ascii_overload_and_net_load() -> None:
    ol = parse_ascii(b"OL", 0)
    assert ol.overload and not ol.stable and ol.load_kg is None
    assert parse_ascii(b"OL,GS,+9999999kg", 0).overload
    assert parse_ascii(b"ST,NT,+0002000kg", 0).load_kg == 2000.0


@pytest.mark.parametrize(
    "frame",
    [b"ST,GS,+00123x5kg", b"XX,GS,+0012345kg", b"ST,GS,0012345kg", b"ST,GS,+0012345oz", b"\xff"],
)
def test_ascii_corrupt(frame: bytes) -> None:
    with pytest.raises(ParseError):
        parse_ascii(frame, 0)


def test_ascii_encoder_round_trip() -> None:
    assert encode_ascii(12345) == b"ST,GS,+0012345kg\r\n"
    assert parse_ascii(encode_ascii(-40, motion=True).strip(), 0).gross_kg == -40.0
    assert encode_ascii(0, overload=True) == b"OL,GS,+            \r\n"
    assert parse_ascii(encode_ascii(0, underload=True).strip(), 0).underload


def test_regex_format() -> None:
    # e.g. an indicator sending "=  12.340t M" with M for motion and S for stable.
    fmt = RegexFormatConfig(
        pattern=r"=\s*(?P<weight>[-0-9.]+)\s*(?P<unit>t|kg)\s+(?P<status>[MSO])",
        stable_tokens=["S"],
        overload_tokens=["O"],
    )
    r = parse_regex(fmt, b"=  12.340t S", 3.0)
    assert (r.gross_kg, r.stable, r.overload) == (12340.0, True, False)
    assert not parse_regex(fmt, b"=  12.340t M", 3.0).stable
    assert parse_regex(fmt, b"=  99.999t O", 3.0).overload
    with pytest.raises(ParseError, match="pattern"):
        parse_regex(fmt, b"garbage", 0)


def test_regex_without_status_is_stable_and_uses_default_unit() -> None:
    fmt = RegexFormatConfig(pattern=r"W(?P<weight>\d+)", unit="t")
    assert parse_regex(fmt, b"W12", 0).gross_kg == 12000.0


@pytest.mark.parametrize(
    ("pattern", "error"), [(r"(?P<w>\d+)", "no named group `weight`"), (r"(\d+", "compile")]
)
def test_regex_config_rejected(pattern: str, error: str) -> None:
    with pytest.raises(ValidationError, match=error):
        RegexFormatConfig(pattern=pattern)


def test_toledo_framer_resyncs_after_garbage() -> None:
    f1, f2 = encode_toledo(1000), encode_toledo(2000)
    framer = ToledoFramer()
    # Noise, a truncated frame (STX + 5 bytes), then two good frames.
    frames = framer.feed(b"noise\x02*0 01" + f1 + b"\x00\xff" + f2)
    assert frames == [f1, f2]
    assert framer.discarded == 5 + 6 + 2


def test_toledo_framer_with_checksum_keeps_checksum_byte() -> None:
    frame = encode_toledo(4321, checksum=True)
    framer = ToledoFramer(checksum=True)
    assert framer.feed(frame[:10]) == []
    assert framer.feed(frame[10:] + frame) == [frame, frame]


def test_line_framer_drops_overlong_lines() -> None:
    framer = LineFramer(max_line=20)
    assert framer.feed(b"x" * 50) == []
    assert framer.feed(b"yy\r\nST,GS,+0000010kg\r\n") == [b"ST,GS,+0000010kg"]
    assert framer.discarded == 50 + 3


STREAMS = {
    "toledo": b"".join(encode_toledo(w, motion=w % 3 == 0) for w in range(0, 30_000, 1500)),
    "ascii": b"".join(encode_ascii(w, motion=w % 3 == 0) for w in range(0, 30_000, 1500)),
}


@given(cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=30))
def test_framers_are_chunking_invariant(cuts: list[int]) -> None:
    for protocol, stream in STREAMS.items():
        config = WeighbridgeConfig(protocol=protocol, transport="tcp", host="h", tcp_port=1)
        fmt = indicator_format(config)
        whole = fmt.new_framer().feed(stream)
        framer = fmt.new_framer()
        pieces: list[bytes] = []
        last = 0
        for cut in sorted({min(c, len(stream)) for c in cuts}) + [len(stream)]:
            pieces += framer.feed(stream[last:cut])
            last = cut
        assert pieces == whole
        assert [fmt.parse(p, 0).gross_kg for p in pieces] == list(range(0, 30_000, 1500))


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"protocol": "toledo", "transport": "serial"}, "serial_port is required"),
        ({"protocol": "toledo", "transport": "tcp", "host": "h"}, "tcp_port are required"),
        (
            {"protocol": "regex", "transport": "serial", "serial_port": "/dev/x"},
            "regex is required",
        ),
        (
            {"protocol": "toledo", "transport": "serial", "serial_port": "/d", "baud": 9600},
            "baud",
        ),
        (
            {"protocol": "ascii", "transport": "serial", "serial_port": "/d", "empty_kg": 600},
            "empty_kg",
        ),
    ],
)
def test_weighbridge_config_rejected(fields: dict, error: str) -> None:
    with pytest.raises(ValidationError, match=error):
        WeighbridgeConfig(**fields)
