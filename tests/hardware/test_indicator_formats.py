"""Every indicator format against its manual's example frames, and against real-stream trouble.

The manual frames are copied byte for byte from the sources docs/hardware.md cites. The stream
tests run each protocol's simulator bytes through the public interface (`indicator_format`,
`read_stream`) the way the reader does: starting mid-frame, after line noise, with a corrupt
check, split across reads at every byte.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from hardware.config import FrameConfig, RegexFormatConfig, WeighbridgeConfig
from hardware.weighbridge.framing import DelimitedFramer, LeaderFramer, hex_check
from hardware.weighbridge.protocols import (
    ChecksumError,
    IndicatorFormat,
    ParseError,
    encode_a12,
    encode_eq,
    encode_framed,
    encode_tf0,
    indicator_format,
    parse_a12,
    parse_ascii,
    parse_eq,
    parse_framed,
    parse_tf0,
    parse_toledo,
    read_stream,
)
from hardware.weighbridge.simulator import PROTOCOLS, encode_frame, reader_settings
from smartgate.cli import main


def fmt_for(protocol: str, **settings: object) -> IndicatorFormat:
    """The configured format reading what the simulator sends for `protocol`."""
    config = WeighbridgeConfig(
        **{**reader_settings(protocol), **settings},  # type: ignore[arg-type]
        transport="tcp",
        host="h",
        tcp_port=1,
    )
    return indicator_format(config)


def loads(protocol: str, data: bytes, chunk: int | None = None, **settings: object) -> list:
    return [r.load_kg for r in read_stream(fmt_for(protocol, **settings), data, 0, chunk).readings]


# --------------------------------------------------------------------------------------------
# Manual example frames, byte for byte
# --------------------------------------------------------------------------------------------

# Yaohua tF=0 (XK3190-A26 manual, "continuous communication format 0"; the field table with the
# worked example "+20.00" from a Yaohua integration note): STX + 0 0 2 0 0 0, 2 places, XOR 1B.
YAOHUA_TF0_2000 = bytes.fromhex("022B3030323030303231 42 03".replace(" ", ""))
# Keli D2008 / XK3118T1 tF=0: "+00006001D" between STX and ETX is +60 kg (XOR 1D).
KELI_TF0_60 = b"\x02+00006001D\x03"
# An XK3190-A9 serial log: "+003290013" between STX and ETX (3290 kg, 0 places, XOR 13).
A9_TF0_3290 = b"\x02+003290013\x03"


def test_tf0_manual_frames() -> None:
    assert YAOHUA_TF0_2000 == b"\x02+00200021B\x03"
    assert parse_tf0(YAOHUA_TF0_2000, 0).gross_kg == 20.0
    assert parse_tf0(YAOHUA_TF0_2000, 0, unit="t").gross_kg == 20_000.0
    assert encode_tf0(20.0, places=2) == YAOHUA_TF0_2000
    assert parse_tf0(KELI_TF0_60, 0).gross_kg == 60.0
    assert encode_tf0(60) == KELI_TF0_60
    assert parse_tf0(A9_TF0_3290, 0).gross_kg == 3290.0
    reading = parse_tf0(b"\x02-00012011F\x03", 0)  # -12.0: 000120, 1 place, XOR 1F
    assert (reading.gross_kg, reading.stable, reading.overload) == (-12.0, True, False)


# XK3190-A26 manual, continuous formats 1 (reversed, sign last) and 2 (forward, sign first).
A26_FORMAT1 = b"=000.3000=000.3000=000.3000=000.3000"
A26_FORMAT1_NEG = b"=00.1000-=00.1000-=00.1000-=00.1000-"
A26_FORMAT2 = b"=0003.000=0003.000=0003.000=0003.000"
A26_FORMAT2_NEG = b"=-0001.00=-0001.00=-0001.00=-0001.00"


def test_eq_manual_frames() -> None:
    assert loads("yaohua_eq_reversed", A26_FORMAT1) == [3.0] * 4
    assert loads("yaohua_eq_reversed", A26_FORMAT1_NEG) == [-1.0] * 4
    assert loads("yaohua_eq", A26_FORMAT2) == [3.0] * 4
    assert loads("yaohua_eq", A26_FORMAT2_NEG) == [-1.0] * 4
    assert encode_eq(3.0, places=3) == b"=000.3000"
    assert encode_eq(-1.0, places=2) == b"=00.1000-"
    assert encode_eq(3.0, places=3, reverse=False) == b"=0003.000"
    assert encode_eq(-1.0, places=2, reverse=False) == b"=-0001.00"
    # The 1500 kg of the issue, digits lowest first, and firmware that sends no sign character.
    assert parse_eq(b"=.0051000", 0).gross_kg == 1500.0
    assert loads("yaohua_eq_reversed", b"=0.01000=0.01000=") == [10.0, 10.0]
    assert loads("yaohua_eq_reversed", b"=00.1000-", unit="t") == [-1000.0]
    # Keli XK3118T1 `=` output: seven characters forward, then a unit suffix and CR LF.
    assert loads("yaohua_eq", b"=5123.45(kg)\r\n=0000.00(kg)\r\n") == [5123.45, 0.0]
    # A frame that lost bytes on the line is rejected, not read short.
    result = read_stream(fmt_for("yaohua_eq_reversed"), b"=000.3000=000.3=000.3000")
    assert [r.load_kg for r in result.readings] == [3.0, 3.0]
    assert [e.reason for e in result.errors] == ["5 characters after '=', expected 7 or 8"]
    # XK3190-A22 manual: sign character 0 positive, 1 negative.
    assert loads("yaohua_eq_reversed", b"=00.10001=00.10000=") == [-1.0, 1.0]
    with pytest.raises(ParseError, match="sign"):
        parse_eq(b"=00.1000x", 0)


# XK3190-A12(E) manual: "W G 0 0 4 . 1 3 9 k g 3 D" = 57 47 30 30 34 2E 31 33 39 6B 67 33 44 0D 0A;
# overload "         OL23", below -20d "         LO23".
A12_4139 = bytes.fromhex("57 47 30 30 34 2E 31 33 39 6B 67 33 44 0D 0A".replace(" ", ""))
A12_OL = b" " * 9 + b"OL23\r\n"
A12_LO = b" " * 9 + b"LO23\r\n"


def test_a12_manual_frames() -> None:
    assert loads("yaohua_a12", A12_4139) == [4.139]
    assert encode_a12(4.139, places=3) == A12_4139
    over, under = read_stream(fmt_for("yaohua_a12"), A12_OL + A12_LO).readings
    assert over.overload and not over.underload and over.load_kg is None
    assert under.underload and not under.overload and under.load_kg is None
    assert encode_a12(0, overload=True) == A12_OL
    assert encode_a12(0, underload=True) == A12_LO
    net = parse_a12(b"WN-01.500kg" + hex_check(0x57 ^ 0x4E ^ 0x2D ^ 0x30 ^ 0x31 ^ 0x2E ^ 0x35
                                                ^ 0x30 ^ 0x30 ^ 0x6B ^ 0x67), 0)  # fmt: skip
    assert (net.gross_kg, net.net_kg) == (None, -1.5)
    # Command-mode replies, as an A12 reader documents them: ww (weight), wn (net), wt (tare).
    replies = read_stream(fmt_for("yaohua_a12"), b"ww000.000lb\r\nwn-0000.1kg\r\nwt012.500kg\r\n")
    assert [(r.gross_kg, r.net_kg, r.tare_kg) for r in replies.readings] == [
        (0.0, None, None), (None, -0.1, None), (None, None, 12.5),
    ]  # fmt: skip
    lb = b"WG001000 lb"
    assert parse_a12(lb + hex_check(_xor(lb)), 0).gross_kg == pytest.approx(453.59237)


def _xor(data: bytes) -> int:
    value = 0
    for b in data:
        value ^= b
    return value


def test_toledo_blank_fields_bug() -> None:
    """A zero tare goes out as six blanks and leading zeros as blanks (8530D note): not rejected."""
    r = parse_toledo(b"\x02*0  12340      \r", 0)
    assert (r.gross_kg, r.tare_kg, r.net_kg) == (12340.0, 0.0, 12340.0)
    r = parse_toledo(b"\x02*0       000500\r", 0)  # weight blank (zero), tare 500
    assert (r.gross_kg, r.tare_kg) == (0.0, 500.0)
    with pytest.raises(ParseError, match="tare field"):
        parse_toledo(b"\x02*0 012340  1 2 \r", 0)  # blanks between digits are not a number


def test_toledo_out_of_range_over_and_under() -> None:
    over = parse_toledo(b"\x02*4 999999000000\r", 0)
    under = parse_toledo(b"\x02*6 000100000000\r", 0)  # out of range + negative
    assert over.overload and not over.underload and over.load_kg is None
    assert under.underload and not under.overload and under.load_kg is None


# ASCII: the overload lines of the KERN / bison manuals (data blanked, no unit), and a unit table.
@pytest.mark.parametrize(
    ("line", "under"),
    [
        (b"OL,GS,+            ", False),
        (b"OL,GS,-            ", True),
        (b"OL,GS,+", False),
        (b"OL,NT,+9999999kg", False),
        (b"OL,GS,+     kg", False),
        (b"OL", False),
        (b"OL,+9999999E+19", False),  # A&D style: no mode field
        (b"OL,-9999999E+19", True),
    ],
)
def test_ascii_overload_lines_bug(line: bytes, under: bool) -> None:
    r = parse_ascii(line, 0)
    assert (r.overload, r.underload, r.load_kg) == (not under, under, None)


@pytest.mark.parametrize(
    ("line", "gross", "net", "tare", "stable"),
    [
        (b"ST,GS,+011.120kg", 11.12, None, None, True),  # General Measure M02 manual
        (b"US,GS,+0123.456  lb", 0.45359237 * 123.456, None, None, False),  # bison / KERN
        (b"ST,TR,+012.3456  kg", None, None, 12.3456, True),
        (b"ST,GS,+ 123.456   g", 0.123456, None, None, True),
        (b"ST,NT,-0000120kg", None, -120.0, None, True),
        (b"ST,GS,+  32.150 t", 32150.0, None, None, True),
        (b"ST,+00123.45  kg", 123.45, None, None, True),  # A&D style: no mode field
        (b"US,-0000012.5 kg", -12.5, None, None, False),
    ],
)
def test_ascii_manual_lines(
    line: bytes, gross: float | None, net: float | None, tare: float | None, stable: bool
) -> None:
    r = parse_ascii(line, 0)
    for got, want in ((r.gross_kg, gross), (r.net_kg, net), (r.tare_kg, tare)):
        assert got == (None if want is None else pytest.approx(want))
    assert r.stable is stable


# --------------------------------------------------------------------------------------------
# The generic framed regex format
# --------------------------------------------------------------------------------------------


def test_framed_regex_reads_a_yaohua_tf0_frame_without_code() -> None:
    """The tF=0 frame described only in config: start 02, end 03, 12 bytes, XOR as hex."""
    fmt = RegexFormatConfig(
        pattern=r"(?P<weight>[+-]\d{6})(?P<places>\d)",
        frame=FrameConfig(start="02", end="03", length=12, checksum="xor"),
    )
    assert parse_framed(fmt, KELI_TF0_60, 0).gross_kg == 60.0
    with pytest.raises(ChecksumError):
        parse_framed(fmt, b"\x02+00006001E\x03", 0)


@pytest.mark.parametrize("checksum", ["none", "xor", "sum"])
@pytest.mark.parametrize("encoding", ["hex", "binary"])
def test_framed_checksums_round_trip_and_reject(checksum: str, encoding: str) -> None:
    payload = b"ST+0012345kg"
    check = 0 if checksum == "none" else 2 if encoding == "hex" else 1
    frame_config = FrameConfig(
        start="02",
        end="0d0a",
        length=1 + len(payload) + check + 2,
        checksum=checksum,
        checksum_encoding=encoding,
    )
    fmt = RegexFormatConfig(
        pattern=r"(?P<status>ST|US)(?P<weight>[+-]\d{7})(?P<unit>kg)", frame=frame_config
    )
    frame = encode_framed(frame_config, payload)
    assert parse_framed(fmt, frame, 0).gross_kg == 12345.0
    framer = DelimitedFramer(b"\x02", b"\r\n", len(frame), binary=encoding == "binary")
    assert framer.feed(b"\r\n" + frame[5:] + frame + frame) == [frame, frame]
    if checksum != "none":
        corrupt = bytearray(frame)
        corrupt[5] = ord("9")  # one digit changed, check left as it was
        with pytest.raises(ChecksumError):
            parse_framed(fmt, bytes(corrupt), 0)


def test_framed_sum_covers_start_when_asked() -> None:
    fc = FrameConfig(start="02", end="03", checksum="sum", checksum_covers_start=True)
    frame = encode_framed(fc, b"+001200")
    assert frame[-3:-1] == hex_check((2 + sum(b"+001200")) & 0xFF)
    fmt = RegexFormatConfig(pattern=r"(?P<weight>[+-]\d+)", frame=fc)
    assert parse_framed(fmt, frame, 0).gross_kg == 1200.0


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"start": "02"}, "end bytes, a length or both"),
        ({"end": "zz"}, "not hexadecimal"),
        ({"end": "03", "checksum": "xor", "checksum_encoding": "binary"}, "fixed length"),
        ({"start": "02", "end": "03", "length": 4, "checksum": "xor"}, "leaves no payload"),
        ({"end": "0102030405"}, "1 to 4 bytes"),
    ],
)
def test_frame_config_rejected(fields: dict, error: str) -> None:
    with pytest.raises(ValidationError, match=error):
        FrameConfig(**fields)


def test_end_only_frames_drop_the_partial_first_frame() -> None:
    framer = DelimitedFramer(end=b"\r\n")
    assert framer.feed(b"345kg\r\nST+0012345kg\r\n") == [b"ST+0012345kg\r\n"]
    assert framer.discarded == len(b"345kg\r\n")
    fixed = DelimitedFramer(end=b"\x03", length=6)
    assert fixed.feed(b"xx\x03zz12345\x03") == [b"12345\x03"]


def test_regex_lines_drop_the_partial_first_line() -> None:
    """A loose pattern would read the tail `345kg` of a line as 345 kg: the first line goes."""
    fmt = indicator_format(
        WeighbridgeConfig(
            protocol="regex",
            regex=RegexFormatConfig(pattern=r"\s*(?P<weight>\d+)kg"),
            transport="tcp",
            host="h",
            tcp_port=1,
        )
    )
    assert [r.gross_kg for r in read_stream(fmt, b"345kg\r\n12345kg\r\n").readings] == [12345.0]


# --------------------------------------------------------------------------------------------
# Real streams, every protocol
# --------------------------------------------------------------------------------------------

WEIGHTS = [0.0, 20.0, 1_500.0, 18_040.0, 32_500.0, 49_990.0, -40.0, 12_000.0]


def stream_of(protocol: str, weights: list[float] = WEIGHTS) -> list[bytes]:
    return [encode_frame(protocol, w, False, increment_kg=10.0) for w in weights]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_reads_every_frame_whole_and_one_byte_at_a_time(protocol: str) -> None:
    data = b"".join(stream_of(protocol))
    assert loads(protocol, data) == WEIGHTS
    assert loads(protocol, data, chunk=1) == WEIGHTS


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_split_at_every_byte(protocol: str) -> None:
    data = b"".join(stream_of(protocol))
    fmt = fmt_for(protocol)
    for cut in range(len(data) + 1):
        framer = fmt.new_framer()
        frames = framer.feed(data[:cut]) + framer.feed(data[cut:])
        assert [fmt.parse(f, 0).load_kg for f in frames] == WEIGHTS, cut


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_stream_starting_mid_frame_never_misreads(protocol: str) -> None:
    frames = stream_of(protocol)
    data = b"".join(frames)
    for skip in range(1, len(frames[0]) + len(frames[1])):
        result = read_stream(fmt_for(protocol), data[skip:], 0)
        got = [r.load_kg for r in result.readings]
        # Whatever was cut is dropped or rejected; every reading is a weight that was sent,
        # and the frames from the first whole one on are all there, in order.
        assert got == WEIGHTS[len(WEIGHTS) - len(got) :], (skip, got)
        assert len(got) >= len(WEIGHTS) - 2, (skip, got)


NOISE = st.binary(min_size=1, max_size=60).map(
    lambda b: bytes(0x80 | x for x in b)  # UART framing errors and a wrong baud rate: high bytes
)


@settings(max_examples=30, deadline=None)
@given(noise=NOISE, cuts=st.lists(st.integers(min_value=0, max_value=600), max_size=12))
def test_leading_and_inline_noise_any_chunking(noise: bytes, cuts: list[int]) -> None:
    for protocol in PROTOCOLS:
        frames = stream_of(protocol)
        data = noise + b"".join(frames[:4]) + noise + b"".join(frames[4:])
        fmt = fmt_for(protocol)
        framer = fmt.new_framer()
        got: list[float | None] = []
        errors = 0
        last = 0
        for cut in sorted({min(c, len(data)) for c in cuts}) + [len(data)]:
            for frame in framer.feed(data[last:cut]):
                try:
                    got.append(fmt.parse(frame, 0).load_kg)
                except ParseError:
                    errors += 1
            last = cut
        # Noise glued to a frame may cost that frame (rejected, counted), never a wrong weight.
        assert all(w in WEIGHTS for w in got), (protocol, got)
        assert len(got) >= len(WEIGHTS) - 2, (protocol, got)
        assert got[-3:] == WEIGHTS[-3:], protocol


CHECKED = ["toledo", "regex", "yaohua_tf0", "keli_tf0", "yaohua_a12"]


def _corrupt_check(protocol: str, frame: bytes) -> bytes:
    body = bytearray(frame)
    if protocol == "toledo":
        body[-1] ^= 0x01  # the checksum character after CR
    elif protocol == "yaohua_a12":
        body[12] = ord("0") if body[12] != ord("0") else ord("1")
    else:  # STX … check(2) ETX
        body[-2] = ord("0") if body[-2] != ord("0") else ord("1")
    return bytes(body)


@pytest.mark.parametrize("protocol", CHECKED)
def test_wrong_check_is_rejected_counted_and_the_next_frame_read(protocol: str) -> None:
    settings = {"toledo_checksum": True} if protocol == "toledo" else {}
    frames = [
        encode_frame(protocol, w, False, increment_kg=10.0, checksum=protocol == "toledo")
        for w in WEIGHTS
    ]
    frames[3] = _corrupt_check(protocol, frames[3])
    result = read_stream(fmt_for(protocol, **settings), b"".join(frames), 0, chunk=3)
    assert [r.load_kg for r in result.readings] == WEIGHTS[:3] + WEIGHTS[4:]
    assert [type(e) for e in result.errors] == [ChecksumError]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_negative_weights(protocol: str) -> None:
    data = b"".join(encode_frame(protocol, w, False) for w in (-20.0, -1_230.0))
    assert loads(protocol, data) == [-20.0, -1_230.0]


@pytest.mark.parametrize(
    ("protocol", "frame", "unit", "kg"),
    [
        ("yaohua_tf0", YAOHUA_TF0_2000, "t", 20_000.0),
        ("keli_tf0", KELI_TF0_60, "lb", 60 * 0.45359237),
        ("yaohua_eq_reversed", b"=000.3000=", "t", 3_000.0),
        ("yaohua_eq", b"=0003.000=", "lb", 3 * 0.45359237),
    ],
)
def test_display_unit_of_formats_without_one(
    protocol: str, frame: bytes, unit: str, kg: float
) -> None:
    assert loads(protocol, frame, unit=unit) == [pytest.approx(kg)]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_capacity_turns_an_over_range_load_into_an_overload(protocol: str) -> None:
    data = b"".join(encode_frame(protocol, w, False) for w in (50_000.0, 60_010.0))
    readings = read_stream(fmt_for(protocol, capacity_kg=60_000), data).readings
    assert [(r.load_kg, r.overload) for r in readings] == [(50_000.0, False), (None, True)]


def test_leader_framer_counts_what_it_drops() -> None:
    framer = LeaderFramer(b"=", 8)
    assert framer.feed(b"3000=000.3000=0") == [b"=000.3000"]
    assert framer.discarded == 4
    assert framer.feed(b"00.3000\r\n==00\r") == [b"=000.3000", b"=00"]
    assert framer.discarded == 4 + 2 + 1  # CR and LF with no frame open, the empty '=' frame


def test_tf0_rejects_bad_fields() -> None:
    def frame(body: bytes) -> bytes:
        return b"\x02" + body + hex_check(_xor(body)) + b"\x03"

    with pytest.raises(ParseError, match="sign"):
        parse_tf0(frame(b"*0001200"), 0)
    with pytest.raises(ParseError, match="six digits"):
        parse_tf0(frame(b"+00A1200"), 0)
    with pytest.raises(ParseError, match="decimal places"):
        parse_tf0(frame(b"+0001209"), 0)
    with pytest.raises(ParseError, match="not hexadecimal"):
        parse_tf0(b"\x02+0001200ZZ\x03", 0)
    # Nibbles sent as 30h + n (':'..'?') by some Yaohua firmware are read too.
    assert parse_tf0(b"\x02+00006001=\x03", 0).gross_kg == 60.0


def test_cli_decodes_a_captured_stream(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    """`smartgate weighbridge decode`: a capture (hex text here) through the configured format."""
    capture = tmp_path / "a9.hex"
    capture.write_text("02 2B 30 30 32 30 30 30 32 31 42 03\n02 2B 30 30 32 30 30 30 32 31 43 03\n")
    assert main(["weighbridge", "decode", str(capture), "--hex", "--protocol", "yaohua_tf0",
                 "--unit", "t"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "gross_kg=20000.0" in out
    assert "REJECTED xor check 0x1c, computed 0x1b" in out
    assert "1 readings, 1 rejected frames, 0 bytes discarded" in out
    (tmp_path / "noise.bin").write_bytes(b"\xff" * 40)
    assert main(["weighbridge", "decode", str(tmp_path / "noise.bin"), "--protocol", "ascii"]) == 1
