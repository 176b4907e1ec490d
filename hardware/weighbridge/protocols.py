"""Weighbridge indicator output formats: framers, pure parsers and the matching encoders.

Mettler Toledo continuous output (STX, status words A/B/C, 6-digit weight and tare, CR,
optional checksum), the common ASCII line format (`ST,GS,+0012345kg`, `US,NT,...`, `OL`), the
Yaohua / Keli formats of `hardware.weighbridge.yaohua`, and a configurable regex for other
brands, over CR/LF lines or frames with start/end bytes, a length and a checksum. Bytes arrive
in arbitrary chunks, so a framer splits the stream into frames and resynchronises after garbage;
`parse` turns one frame into a `WeighbridgeReading` or raises a `ParseError` naming the frame.
`indicator_format(config)` picks both for a configured indicator; `read_stream` runs a recorded
stream through them. The encoders are what the simulator sends, so tests exercise the same bytes
a real indicator would.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace

from hardware.config import FrameConfig, ProtocolName, RegexFormatConfig, WeighbridgeConfig
from hardware.weighbridge.framing import (
    DelimitedFramer,
    LeaderFramer,
    LineFramer,
    encode_check,
    verify_check,
)
from hardware.weighbridge.reading import (
    UNIT_TO_KG,
    ChecksumError,
    Framer,
    ParseError,
    WeighbridgeReading,
    number,
    out_of_range,
    unit_factor,
)
from hardware.weighbridge.yaohua import (
    EQ_MAX_BODY,
    TF0_LENGTH,
    encode_a12,
    encode_eq,
    encode_tf0,
    parse_a12,
    parse_eq,
    parse_tf0,
)

__all__ = [
    "UNIT_TO_KG", "ChecksumError", "DelimitedFramer", "Framer", "IndicatorFormat",
    "LeaderFramer", "LineFramer", "ParseError", "StreamResult", "ToledoFramer",
    "WeighbridgeReading", "encode_a12", "encode_ascii", "encode_eq", "encode_framed",
    "encode_tf0", "encode_toledo", "indicator_format", "parse_a12", "parse_ascii", "parse_eq",
    "parse_framed", "parse_regex", "parse_tf0", "parse_toledo", "read_stream",
]  # fmt: skip

STX = 0x02
CR = 0x0D


# --------------------------------------------------------------------------------------------
# Toledo continuous output
# --------------------------------------------------------------------------------------------

TOLEDO_BODY = 17  # STX + 3 status words + 6 weight + 6 tare + CR = 17 bytes
_TOLEDO_DECIMALS = {0b000: 100.0, 0b001: 10.0, 0b010: 1.0, 0b011: 0.1, 0b100: 0.01,
                    0b101: 0.001, 0b110: 0.0001, 0b111: 0.00001}  # fmt: skip
# Status word C bits 0-2 (with status B bit 4 for lb/kg).
_TOLEDO_UNITS_C = {0b000: None, 0b001: "g", 0b010: "t"}


def toledo_checksum(body: bytes) -> int:
    """Two's complement of the 7-bit sum of every byte from STX to CR inclusive."""
    return (-sum(body)) & 0x7F


class ToledoFramer:
    """Frames of STX + 16 bytes + CR (+ a checksum byte when `checksum`), resyncing on STX."""

    def __init__(self, checksum: bool = False, max_buffer: int = 4096) -> None:
        self.checksum = checksum
        self.frame_len = TOLEDO_BODY + (1 if checksum else 0)
        self.max_buffer = max_buffer
        self.discarded = 0
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        """Append bytes and return every complete frame; garbage is dropped and counted."""
        self._buf += data
        frames: list[bytes] = []
        while True:
            start = self._buf.find(STX)
            if start < 0:
                self.discarded += len(self._buf)
                self._buf.clear()
                break
            if start:
                self.discarded += start
                del self._buf[:start]
            if len(self._buf) < self.frame_len:
                break
            if self._buf[TOLEDO_BODY - 1] != CR:
                # Not a frame start after all: skip this STX and look for the next one.
                self.discarded += 1
                del self._buf[:1]
                continue
            frames.append(bytes(self._buf[: self.frame_len]))
            del self._buf[: self.frame_len]
        if len(self._buf) > self.max_buffer:
            self.discarded += len(self._buf)
            self._buf.clear()
        return frames


def _toledo_digits(frame: bytes, field: bytes, name: str) -> int:
    """Six digits whose leading zeros may be blanks; an all-blank field (a zero tare) is 0."""
    if not re.fullmatch(rb" *[0-9]*", field):
        raise ParseError(frame, f"{name} field {field!r} is not 6 digits")
    return int(field) if field.strip() else 0


def parse_toledo(frame: bytes, timestamp: float, checksum: bool = False) -> WeighbridgeReading:
    """Parse one Toledo continuous frame (as returned by `ToledoFramer`)."""
    expected = TOLEDO_BODY + (1 if checksum else 0)
    if len(frame) != expected:
        raise ParseError(frame, f"length {len(frame)}, expected {expected}")
    if frame[0] != STX or frame[TOLEDO_BODY - 1] != CR:
        raise ParseError(frame, "missing STX or CR")
    if checksum and (frame[-1] & 0x7F) != toledo_checksum(frame[:TOLEDO_BODY]):
        raise ChecksumError(frame, f"checksum {frame[-1]:#04x} does not match")
    swa, swb, swc = (b & 0x7F for b in frame[1:4])  # bit 7 may carry parity
    if not (swa & 0x20 and swb & 0x20 and swc & 0x20):
        raise ParseError(frame, "status word without its always-one bit 5")
    factor = _TOLEDO_DECIMALS[swa & 0x07]
    unit_c = swc & 0x07
    if unit_c not in _TOLEDO_UNITS_C:
        raise ParseError(frame, f"unsupported unit code {unit_c} in status word C")
    unit = _TOLEDO_UNITS_C[unit_c] or ("kg" if swb & 0x10 else "lb")
    to_kg = factor * UNIT_TO_KG[unit]
    indicated = _toledo_digits(frame, frame[4:10], "weight") * to_kg
    tare = _toledo_digits(frame, frame[10:16], "tare") * to_kg
    if swb & 0x02:
        indicated = -indicated
    if swb & 0x01:  # net mode: the indicated weight is net
        net, gross = indicated, indicated + tare
    else:
        gross, net = indicated, indicated - tare
    return WeighbridgeReading(
        gross_kg=round(gross, 6),
        tare_kg=round(tare, 6),
        net_kg=round(net, 6),
        stable=not swb & 0x08,
        # bit 2 is "out of range": over range, or under zero when the weight is negative
        overload=bool(swb & 0x04) and not swb & 0x02,
        timestamp=timestamp,
        underload=bool(swb & 0x04) and bool(swb & 0x02),
    )


def encode_toledo(
    weight_kg: float,
    tare_kg: float = 0.0,
    *,
    motion: bool = False,
    overload: bool = False,
    net: bool = False,
    checksum: bool = False,
) -> bytes:
    """One Toledo continuous frame in kg with integer resolution (what the simulator sends)."""
    swa = 0x20 | 0b010 | (0b01 << 3)  # decimal point XXXXXX, increment x1
    swb = 0x20 | 0x10  # kg
    if net:
        swb |= 0x01
    if weight_kg < 0:
        swb |= 0x02
    if overload:
        swb |= 0x04
    if motion:
        swb |= 0x08
    swc = 0x20
    body = bytes([STX, swa, swb, swc])
    body += f"{min(round(abs(weight_kg)), 999_999):06d}".encode()
    body += f"{min(round(abs(tare_kg)), 999_999):06d}".encode()
    body += bytes([CR])
    return body + (bytes([toledo_checksum(body)]) if checksum else b"")


# --------------------------------------------------------------------------------------------
# ASCII lines
# --------------------------------------------------------------------------------------------


_ASCII = re.compile(r"^(?P<status>ST|US|OL),((?P<mode>GS|NT|TR),)?(?P<weight>[+-][0-9 .]+?)\s*(?P<unit>[A-Za-z]+)$")  # fmt: skip
# An overload line: `OL`, optionally the mode, then sign, blank or garbled data and unit.
_ASCII_OL = re.compile(r"^OL(,((GS|NT|TR),)?(?P<sign>[+-])?[^,]*)?$")


def parse_ascii(frame: bytes, timestamp: float) -> WeighbridgeReading:
    """Parse one ASCII line: `ST|US|OL , GS|NT|TR , signed weight unit`, or an `OL` line.

    Indicators blank the data of an overload line (`OL,GS,+` then spaces, no unit); its sign
    tells over range (`+`) from under range (`-`). Lines without the mode field
    (`ST,+00123.45  kg`, as A&D-style indicators send) are gross weights.
    """
    try:
        text = frame.decode("ascii").strip()
    except UnicodeDecodeError as exc:
        raise ParseError(frame, "not ASCII") from exc
    overload = _ASCII_OL.match(text)
    if overload is not None:
        return out_of_range(timestamp, under=overload["sign"] == "-")
    match = _ASCII.match(text)
    if match is None:
        raise ParseError(frame, "not `ST|US|OL,GS|NT|TR,+weight unit`")
    value = number(frame, match["weight"]) * unit_factor(frame, match["unit"])
    value = round(value, 6)
    mode = match["mode"] or "GS"
    return WeighbridgeReading(
        gross_kg=value if mode == "GS" else None,
        tare_kg=value if mode == "TR" else None,
        net_kg=value if mode == "NT" else None,
        stable=match["status"] == "ST",
        overload=False,
        timestamp=timestamp,
    )


def encode_ascii(
    weight_kg: float, *, motion: bool = False, overload: bool = False, underload: bool = False
) -> bytes:
    """One ASCII gross line in kg, e.g. `ST,GS,+0012345kg\\r\\n` (what the simulator sends).

    Over or under range gives the blanked line `OL,GS,+` / `OL,GS,-` and twelve spaces.
    """
    if overload or underload:
        return b"OL,GS," + (b"-" if underload else b"+") + b" " * 12 + b"\r\n"
    status = "US" if motion else "ST"
    sign = "-" if weight_kg < 0 else "+"
    return f"{status},GS,{sign}{min(round(abs(weight_kg)), 9_999_999):07d}kg\r\n".encode()


# --------------------------------------------------------------------------------------------
# Regex formats, over CR/LF lines or configured frames
# --------------------------------------------------------------------------------------------


def parse_regex(fmt: RegexFormatConfig, frame: bytes, timestamp: float) -> WeighbridgeReading:
    """Parse one line (or a framed payload) with a configured regex format."""
    text = frame.decode("latin-1").strip()
    match = re.fullmatch(fmt.pattern, text)
    if match is None:
        raise ParseError(frame, "does not match the configured pattern")
    groups = match.groupdict()
    status = (groups.get("status") or "").strip()
    stable = "status" not in groups or status in fmt.stable_tokens
    unit: str = groups.get("unit") or fmt.unit
    if status in fmt.overload_tokens or status in fmt.underload_tokens:
        return out_of_range(timestamp, under=status in fmt.underload_tokens)
    value = round(number(frame, groups["weight"] or "") * unit_factor(frame, unit), 6)
    net = (groups.get("mode") or "").strip() in fmt.net_tokens
    return WeighbridgeReading(
        gross_kg=None if net else value,
        tare_kg=None,
        net_kg=value if net else None,
        stable=stable,
        overload=False,
        timestamp=timestamp,
    )


def framed_payload(fc: FrameConfig, frame: bytes) -> bytes:
    """The payload of one frame (as `framed_framer` returns it), its check verified."""
    start, end = fc.start_bytes, fc.end_bytes
    if fc.length is not None and len(frame) != fc.length:
        raise ParseError(frame, f"length {len(frame)}, expected {fc.length}")
    if not frame.startswith(start) or not frame.endswith(end):
        raise ParseError(frame, "missing start or end bytes")
    inner = frame[len(start) : len(frame) - len(end)]
    check = fc.check_length
    if len(inner) <= check:
        raise ParseError(frame, "no payload")
    payload, sent = inner[: len(inner) - check], inner[len(inner) - check :]
    covered = (start if fc.checksum_covers_start else b"") + payload
    verify_check(frame, covered, sent, fc.checksum, fc.checksum_encoding)
    return payload


def parse_framed(fmt: RegexFormatConfig, frame: bytes, timestamp: float) -> WeighbridgeReading:
    """Parse one configured frame: delimiters and check verified, then the regex on the payload."""
    assert fmt.frame is not None
    payload = framed_payload(fmt.frame, frame)
    try:
        return parse_regex(fmt, payload, timestamp)
    except ParseError as exc:
        raise ParseError(frame, exc.reason) from exc


def encode_framed(fc: FrameConfig, payload: bytes) -> bytes:
    """One frame around `payload` as `fc` describes it (what the simulator sends)."""
    covered = (fc.start_bytes if fc.checksum_covers_start else b"") + payload
    frame = fc.start_bytes + payload + encode_check(covered, fc.checksum, fc.checksum_encoding)
    frame += fc.end_bytes
    if fc.length is not None and len(frame) != fc.length:
        raise ValueError(f"payload {payload!r} makes a {len(frame)}-byte frame, not {fc.length}")
    return frame


def framed_framer(fc: FrameConfig) -> DelimitedFramer:
    """The framer for frames `fc` describes."""
    return DelimitedFramer(
        fc.start_bytes, fc.end_bytes, fc.length, binary=fc.checksum_encoding == "binary"
    )


# --------------------------------------------------------------------------------------------
# Picking a format from config
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IndicatorFormat:
    """A framer factory and a parser for one configured indicator output."""

    name: ProtocolName
    new_framer: Callable[[], Framer]
    parse: Callable[[bytes, float], WeighbridgeReading]


def _protocol_format(config: WeighbridgeConfig) -> IndicatorFormat:
    name, unit = config.protocol, config.unit
    if name == "toledo":
        checksum = config.toledo_checksum
        return IndicatorFormat(
            name,
            lambda: ToledoFramer(checksum=checksum),
            lambda frame, ts: parse_toledo(frame, ts, checksum=checksum),
        )
    if name == "ascii":
        return IndicatorFormat(name, LineFramer, parse_ascii)
    if name in ("yaohua_tf0", "keli_tf0"):
        return IndicatorFormat(
            name,
            lambda: DelimitedFramer(bytes([STX]), b"\x03", TF0_LENGTH),
            lambda frame, ts: parse_tf0(frame, ts, unit),
        )
    if name in ("yaohua_eq_reversed", "yaohua_eq"):
        reverse = name == "yaohua_eq_reversed"
        return IndicatorFormat(
            name,
            lambda: LeaderFramer(b"=", EQ_MAX_BODY),
            lambda frame, ts: parse_eq(frame, ts, reverse=reverse, unit=unit),
        )
    if name == "yaohua_a12":
        return IndicatorFormat(name, LineFramer, parse_a12)
    fmt = config.regex
    assert fmt is not None  # guaranteed by WeighbridgeConfig validation
    if fmt.frame is not None:
        fc = fmt.frame
        return IndicatorFormat(
            name, lambda: framed_framer(fc), lambda frame, ts: parse_framed(fmt, frame, ts)
        )
    return IndicatorFormat(
        name,
        lambda: LineFramer(drop_first=True),
        lambda frame, ts: parse_regex(fmt, frame, ts),
    )


def indicator_format(config: WeighbridgeConfig) -> IndicatorFormat:
    """The framer and parser that `config.protocol` selects.

    With `capacity_kg` set, a reading whose load is above it is reported as an overload.
    """
    fmt = _protocol_format(config)
    capacity = config.capacity_kg
    if capacity is None:
        return fmt

    def parse(frame: bytes, ts: float) -> WeighbridgeReading:
        reading = fmt.parse(frame, ts)
        load = reading.load_kg
        if load is not None and load > capacity:
            return replace(reading, overload=True, stable=False)
        return reading

    return IndicatorFormat(fmt.name, fmt.new_framer, parse)


@dataclass(frozen=True)
class StreamResult:
    """What a byte stream held: readings, rejected frames, and bytes no frame used."""

    readings: list[WeighbridgeReading]
    errors: list[ParseError]
    discarded: int


def read_stream(
    fmt: IndicatorFormat, data: bytes, timestamp: float = 0.0, chunk: int | None = None
) -> StreamResult:
    """Frame and parse a recorded stream (in `chunk`-byte reads when given), as the reader does."""
    framer = fmt.new_framer()
    readings: list[WeighbridgeReading] = []
    errors: list[ParseError] = []
    step = chunk or max(1, len(data))
    for i in range(0, len(data), step):
        for frame in framer.feed(data[i : i + step]):
            try:
                readings.append(fmt.parse(frame, timestamp))
            except ParseError as exc:
                errors.append(exc)
    return StreamResult(readings, errors, framer.discarded)
