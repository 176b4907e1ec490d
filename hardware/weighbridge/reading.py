"""What every indicator format produces: a `WeighbridgeReading`, or a `ParseError` naming the frame.

The shared vocabulary of the protocol modules: the reading, the two errors, the `Framer`
interface and the unit table. Pure; no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

UNIT_TO_KG: dict[str, float] = {"kg": 1.0, "t": 1000.0, "lb": 0.45359237, "g": 0.001}


@dataclass(frozen=True)
class WeighbridgeReading:
    """One indicator reading, in kilograms; a weight is None where the indicator did not send it.

    `timestamp` is seconds (time.time() in the live reader) at which the frame was complete.
    `overload` is a load above the indicator's range, `underload` one below its lower limit
    (e.g. Yaohua's "less than -20d"); neither carries a usable weight.
    """

    gross_kg: float | None
    tare_kg: float | None
    net_kg: float | None
    stable: bool
    overload: bool
    timestamp: float
    underload: bool = False

    @property
    def load_kg(self) -> float | None:
        """The load on the platform: gross when known, otherwise net; None out of range."""
        if self.overload or self.underload:
            return None
        return self.gross_kg if self.gross_kg is not None else self.net_kg


def out_of_range(timestamp: float, *, under: bool = False) -> WeighbridgeReading:
    """A reading that says only: over range (or, with `under`, below range); no weight."""
    return WeighbridgeReading(None, None, None, False, not under, timestamp, underload=under)


class ParseError(ValueError):
    """A frame that is not a valid reading; `frame` holds the offending bytes."""

    def __init__(self, frame: bytes, reason: str) -> None:
        super().__init__(f"{reason}: {frame!r}")
        self.frame = frame
        self.reason = reason


class ChecksumError(ParseError):
    """A frame whose checksum does not match its content."""


class Framer(Protocol):
    """Splits a byte stream, fed in arbitrary chunks, into complete frames."""

    discarded: int

    def feed(self, data: bytes) -> list[bytes]: ...


_NUMBER = re.compile(r"^[+-]?\s*(\d+(\.\d*)?|\.\d+)$")


def number(frame: bytes, text: str) -> float:
    """A signed decimal number (spaces allowed after the sign) or a ParseError."""
    compact = text.strip()
    if not _NUMBER.match(compact):
        raise ParseError(frame, f"weight {text!r} is not a number")
    return float(compact.replace(" ", ""))


def unit_factor(frame: bytes, unit: str) -> float:
    """Kilograms per `unit` (kg, t, lb, g; case and blanks ignored) or a ParseError."""
    factor = UNIT_TO_KG.get(unit.strip().lower())
    if factor is None:
        raise ParseError(frame, f"unknown unit {unit!r}")
    return factor
