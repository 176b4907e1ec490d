"""Weighbridge indicator output formats: framers, pure parsers and the matching encoders.

Three formats: Mettler Toledo continuous output (STX, status words A/B/C, 6-digit weight and
tare, CR, optional checksum), the common ASCII line format (`ST,GS,+0012345kg`, `US,NT,...`,
`OL`) and a configurable regex for other brands. Bytes arrive in arbitrary chunks, so a framer
splits the stream into frames and resynchronises after garbage; `parse` turns one frame into a
`WeighbridgeReading` or raises a `ParseError` naming the frame. The encoders are what the
simulator sends, so tests exercise the same bytes a real indicator would.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from hardware.config import RegexFormatConfig, WeighbridgeConfig

STX = 0x02
CR = 0x0D
LF = 0x0A

_UNIT_TO_KG: dict[str, float] = {"kg": 1.0, "t": 1000.0, "lb": 0.45359237, "g": 0.001}


@dataclass(frozen=True)
class WeighbridgeReading:
    """One indicator reading, in kilograms; a weight is None where the indicator did not send it.

    `timestamp` is seconds (time.time() in the live reader) at which the frame was complete.
    """

    gross_kg: float | None
    tare_kg: float | None
    net_kg: float | None
    stable: bool
    overload: bool
    timestamp: float

    @property
    def load_kg(self) -> float | None:
        """The load on the platform: gross when known, otherwise net; None on overload."""
        if self.overload:
            return None
        return self.gross_kg if self.gross_kg is not None else self.net_kg


class ParseError(ValueError):
    """A frame that is not a valid reading; `frame` holds the offending bytes."""

    def __init__(self, frame: bytes, reason: str) -> None:
        super().__init__(f"{reason}: {frame!r}")
        self.frame = frame
        self.reason = reason


class ChecksumError(ParseError):
    """A Toledo frame whose checksum character does not match its content."""


class Framer(Protocol):
    """Splits a byte stream, fed in arbitrary chunks, into complete frames."""

    discarded: int

    def feed(self, data: bytes) -> list[bytes]: ...


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
    if not re.fullmatch(rb" *[0-9]+", field):
        raise ParseError(frame, f"{name} field {field!r} is not 6 digits")
    return int(field)


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
    to_kg = factor * _UNIT_TO_KG[unit]
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
        overload=bool(swb & 0x04),
        timestamp=timestamp,
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
# Line formats: ASCII and regex
# --------------------------------------------------------------------------------------------


class LineFramer:
    """Frames terminated by CR, LF or CRLF; an over-long line is dropped up to its terminator."""

    def __init__(self, max_line: int = 128) -> None:
        self.max_line = max_line
        self.discarded = 0
        self._buf = bytearray()
        self._skipping = False  # inside the tail of a line already dropped as too long

    def feed(self, data: bytes) -> list[bytes]:
        """Append bytes and return every complete non-empty line, without terminator."""
        self._buf += data
        lines: list[bytes] = []
        while True:
            ends = [i for i in (self._buf.find(CR), self._buf.find(LF)) if i >= 0]
            if not ends:
                break
            end = min(ends)
            line = bytes(self._buf[:end])
            del self._buf[: end + 1]
            if self._skipping or len(line) > self.max_line:
                self.discarded += len(line) + 1
                self._skipping = False
            elif line.strip():
                lines.append(line)
        if len(self._buf) > self.max_line:
            self.discarded += len(self._buf)
            self._buf.clear()
            self._skipping = True
        return lines


_NUMBER = re.compile(r"^[+-]?\s*(\d+(\.\d*)?|\.\d+)$")


def _number(frame: bytes, text: str) -> float:
    compact = text.strip()
    if not _NUMBER.match(compact):
        raise ParseError(frame, f"weight {text!r} is not a number")
    return float(compact.replace(" ", ""))


def _unit_factor(frame: bytes, unit: str) -> float:
    factor = _UNIT_TO_KG.get(unit.strip().lower())
    if factor is None:
        raise ParseError(frame, f"unknown unit {unit!r}")
    return factor


_ASCII = re.compile(r"^(?P<status>ST|US|OL),(?P<mode>GS|NT|TR),(?P<weight>[+-][0-9 .]+?)\s*(?P<unit>[A-Za-z]+)$")  # fmt: skip


def parse_ascii(frame: bytes, timestamp: float) -> WeighbridgeReading:
    """Parse one ASCII line: `ST|US|OL , GS|NT|TR , signed weight unit`, or a bare `OL`."""
    try:
        text = frame.decode("ascii").strip()
    except UnicodeDecodeError as exc:
        raise ParseError(frame, "not ASCII") from exc
    if text == "OL":
        return WeighbridgeReading(None, None, None, False, True, timestamp)
    match = _ASCII.match(text)
    if match is None:
        raise ParseError(frame, "not `ST|US|OL,GS|NT|TR,+weight unit`")
    overload = match["status"] == "OL"
    value = _number(frame, match["weight"]) * _unit_factor(frame, match["unit"])
    value = round(value, 6)
    mode = match["mode"]
    return WeighbridgeReading(
        gross_kg=value if mode == "GS" else None,
        tare_kg=value if mode == "TR" else None,
        net_kg=value if mode == "NT" else None,
        stable=match["status"] == "ST",
        overload=overload,
        timestamp=timestamp,
    )


def encode_ascii(weight_kg: float, *, motion: bool = False, overload: bool = False) -> bytes:
    """One ASCII gross line in kg, e.g. `ST,GS,+0012345kg\\r\\n` (what the simulator sends)."""
    if overload:
        return b"OL\r\n"
    status = "US" if motion else "ST"
    sign = "-" if weight_kg < 0 else "+"
    return f"{status},GS,{sign}{min(round(abs(weight_kg)), 9_999_999):07d}kg\r\n".encode()


def parse_regex(fmt: RegexFormatConfig, frame: bytes, timestamp: float) -> WeighbridgeReading:
    """Parse one line with a configured regex format (see `RegexFormatConfig`)."""
    text = frame.decode("latin-1").strip()
    match = re.fullmatch(fmt.pattern, text)
    if match is None:
        raise ParseError(frame, "does not match the configured pattern")
    groups = match.groupdict()
    status = (groups.get("status") or "").strip()
    overload = status in fmt.overload_tokens
    stable = "status" not in groups or status in fmt.stable_tokens
    unit: str = groups.get("unit") or fmt.unit
    if overload:
        return WeighbridgeReading(None, None, None, False, True, timestamp)
    value = round(_number(frame, groups["weight"] or "") * _unit_factor(frame, unit), 6)
    net = (groups.get("mode") or "").strip() in fmt.net_tokens
    return WeighbridgeReading(
        gross_kg=None if net else value,
        tare_kg=None,
        net_kg=value if net else None,
        stable=stable,
        overload=False,
        timestamp=timestamp,
    )


# --------------------------------------------------------------------------------------------
# Picking a format from config
# --------------------------------------------------------------------------------------------

ProtocolName = Literal["toledo", "ascii", "regex"]


@dataclass(frozen=True)
class IndicatorFormat:
    """A framer factory and a parser for one configured indicator output."""

    name: ProtocolName
    new_framer: Callable[[], Framer]
    parse: Callable[[bytes, float], WeighbridgeReading]


def indicator_format(config: WeighbridgeConfig) -> IndicatorFormat:
    """The framer and parser that `config.protocol` selects."""
    if config.protocol == "toledo":
        checksum = config.toledo_checksum
        return IndicatorFormat(
            "toledo",
            lambda: ToledoFramer(checksum=checksum),
            lambda frame, ts: parse_toledo(frame, ts, checksum=checksum),
        )
    if config.protocol == "ascii":
        return IndicatorFormat("ascii", LineFramer, parse_ascii)
    fmt = config.regex
    assert fmt is not None  # guaranteed by WeighbridgeConfig validation
    return IndicatorFormat("regex", LineFramer, lambda frame, ts: parse_regex(fmt, frame, ts))
