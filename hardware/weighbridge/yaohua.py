"""Chinese indicator outputs (Yaohua XK3190 family, Keli D2008 / XK3118T1): parsers and encoders.

Three frame shapes, each from the manuals cited in docs/hardware.md:

* **tF=0 continuous** ("continuous communication format 0"), 12 bytes, no CR/LF:
  STX, sign (`+`/`-`), six weight digits high first, decimal places counted from the right
  (`0`-`4`), the XOR of bytes 2-9 as two ASCII hex characters, ETX. Yaohua XK3190-A9/A9+,
  A23P, A26, A27, D2+ and Keli D2008 / XK3118T1 send it. `+00006001D` is 60 kg.
* **`=` continuous**: `=` then seven characters of the displayed value (decimal point included)
  and a sign character (`0` or `-`; the A22 sends `0` or `1`). Format 1 sends the value lowest
  digit first, sign last (`=000.3000` is 3.000, `=00.1000-` is -1.00); format 2 sends it
  forward, sign first (`=0003.000`, `=-0001.00`). Some firmware omits the sign: a
  seven-character body is read too, which is also Keli XK3118T1's `=` output (`=5123.45(kg)`
  CR LF; the unit suffix is dropped).
* **A12/A12E weight frames**, 15 bytes: `W`, `G` (gross) or `N` (net), seven characters of
  weight (decimal point included, blank in place of a missing one, `-` first when negative),
  the unit (`kg`), the XOR of bytes 1-11 as two ASCII hex characters, CR LF. An overload is nine
  blanks, `OL`, its check `23`; below -20d the indicator sends nine blanks, `LO`, `23`.

None of these formats carries a motion flag, so every reading counts as stable and the capture
relies on `stable_tolerance_kg`. The tF=0 and `=` frames carry no unit: `unit` (the indicator's
display unit, from config) applies.
"""

from __future__ import annotations

import re

from hardware.weighbridge.framing import encode_check, verify_check
from hardware.weighbridge.reading import (
    ParseError,
    WeighbridgeReading,
    number,
    out_of_range,
    unit_factor,
)

STX = 0x02
ETX = 0x03
TF0_LENGTH = 12
A12_LENGTH = 13  # without CR LF
EQ_MAX_BODY = 8  # seven characters of value and one sign

_DIGITS = re.compile(rb"^ *[0-9]+$")
_EQ_VALUE = re.compile(r"^(\d+\.?\d*|\.\d+)$")


def _stable(value_kg: float, timestamp: float, *, net: bool = False) -> WeighbridgeReading:
    value = round(value_kg, 6)
    return WeighbridgeReading(
        gross_kg=None if net else value,
        tare_kg=None,
        net_kg=value if net else None,
        stable=True,
        overload=False,
        timestamp=timestamp,
    )


# --------------------------------------------------------------------------------------------
# tF=0: STX sign 6 digits decimals XOR-hi XOR-lo ETX
# --------------------------------------------------------------------------------------------


def parse_tf0(frame: bytes, timestamp: float, unit: str = "kg") -> WeighbridgeReading:
    """Parse one tF=0 frame (STX … ETX, 12 bytes) as a gross reading in `unit`."""
    if len(frame) != TF0_LENGTH:
        raise ParseError(frame, f"length {len(frame)}, expected {TF0_LENGTH}")
    if frame[0] != STX or frame[-1] != ETX:
        raise ParseError(frame, "missing STX or ETX")
    verify_check(frame, frame[1:9], frame[9:11], "xor", "hex")
    sign = frame[1:2]
    if sign not in (b"+", b"-", b" "):
        raise ParseError(frame, f"sign {sign!r} is not + or -")
    digits = frame[2:8]
    if not _DIGITS.match(digits):
        raise ParseError(frame, f"weight {digits!r} is not six digits")
    places = frame[8] - 0x30
    if not 0 <= places <= 5:
        raise ParseError(frame, f"decimal places {frame[8:9]!r} is not 0-5")
    value = int(digits) / 10**places * unit_factor(frame, unit)
    return _stable(-value if sign == b"-" else value, timestamp)


def encode_tf0(weight_kg: float, *, places: int = 0, unit: str = "kg") -> bytes:
    """One tF=0 frame showing `weight_kg` in `unit` with `places` decimals (simulator, tests)."""
    shown = round(abs(weight_kg) / unit_factor(b"", unit) * 10**places)
    body = ("-" if weight_kg < 0 else "+") + f"{min(shown, 999_999):06d}{places}"
    raw = body.encode()
    return bytes([STX]) + raw + encode_check(raw, "xor", "hex") + bytes([ETX])


# --------------------------------------------------------------------------------------------
# `=` continuous: reversed (format 1) and forward (format 2)
# --------------------------------------------------------------------------------------------


def parse_eq(
    frame: bytes, timestamp: float, *, reverse: bool = True, unit: str = "kg"
) -> WeighbridgeReading:
    """Parse one `=` frame (as `LeaderFramer` returns it): reversed or forward, sign optional."""
    if frame[:1] != b"=":
        raise ParseError(frame, "does not start with '='")
    try:
        body = frame[1:].decode("ascii")
    except UnicodeDecodeError as exc:
        raise ParseError(frame, "not ASCII") from exc
    if not EQ_MAX_BODY - 1 <= len(body) <= EQ_MAX_BODY:  # shorter: bytes lost on the line
        raise ParseError(frame, f"{len(body)} characters after '=', expected 7 or 8")
    if len(body) == EQ_MAX_BODY:
        sign, value = (body[-1], body[:-1]) if reverse else (body[0], body[1:])
    else:
        sign, value = "0", body
    if sign not in "0+-1":
        raise ParseError(frame, f"sign {sign!r} is not 0, +, - or 1")
    text = value[::-1] if reverse else value
    if not _EQ_VALUE.match(text):
        raise ParseError(frame, f"value {text!r} is not a number")
    weight = float(text) * unit_factor(frame, unit)
    return _stable(-weight if sign in "-1" else weight, timestamp)


def encode_eq(
    weight_kg: float, *, reverse: bool = True, places: int = 0, unit: str = "kg"
) -> bytes:
    """One `=` frame: seven characters of value (point included) and the sign character."""
    shown = abs(weight_kg) / unit_factor(b"", unit)
    text = f"{min(shown, 10 ** (7 - places - (1 if places else 0)) - 1):07.{places}f}"
    sign = "-" if weight_kg < 0 else "0"
    body = text[::-1] + sign if reverse else sign + text
    return ("=" + body).encode()


# --------------------------------------------------------------------------------------------
# A12 / A12E: W G|N weight(7) unit(2) XOR-hi XOR-lo CR LF
# --------------------------------------------------------------------------------------------


_A12_REPLY = re.compile(rb"^w(?P<kind>[wnt])(?P<weight>-?[0-9.]+)(?P<unit>kg|lb|t)$")


def _parse_a12_reply(frame: bytes, timestamp: float) -> WeighbridgeReading:
    match = _A12_REPLY.match(frame.strip())
    if match is None:
        raise ParseError(frame, "not an A12 reply `ww|wn|wt weight unit`")
    value = round(
        number(frame, match["weight"].decode()) * unit_factor(frame, match["unit"].decode()), 6
    )
    kind = match["kind"]
    return WeighbridgeReading(
        gross_kg=value if kind == b"w" else None,
        tare_kg=value if kind == b"t" else None,
        net_kg=value if kind == b"n" else None,
        stable=True,
        overload=False,
        timestamp=timestamp,
    )


def parse_a12(frame: bytes, timestamp: float) -> WeighbridgeReading:
    """Parse one A12/A12E frame without its CR LF: a weight, or the OL / LO frame.

    The lower-case replies of the A12's command mode (`ww000.000lb`, `wn-0000.1kg`,
    `wt000.000kg`: weight, net, tare; no check) are read as well.
    """
    if frame[:1] == b"w":
        return _parse_a12_reply(frame, timestamp)
    if len(frame) != A12_LENGTH:
        raise ParseError(frame, f"length {len(frame)}, expected {A12_LENGTH} before CR LF")
    verify_check(frame, frame[:11], frame[11:13], "xor", "hex")
    if frame[:9] == b" " * 9 and frame[9:11] in (b"OL", b"LO"):
        return out_of_range(timestamp, under=frame[9:11] == b"LO")
    if frame[:1] != b"W" or frame[1:2] not in (b"G", b"N"):
        raise ParseError(frame, "does not start with WG or WN")
    try:
        text = frame[2:9].decode("ascii")
        unit = frame[9:11].decode("ascii")
    except UnicodeDecodeError as exc:
        raise ParseError(frame, "not ASCII") from exc
    value = number(frame, text) * unit_factor(frame, unit)
    return _stable(value, timestamp, net=frame[1:2] == b"N")


def encode_a12(
    weight_kg: float,
    *,
    net: bool = False,
    places: int = 0,
    overload: bool = False,
    underload: bool = False,
) -> bytes:
    """One A12 frame in kg with CR LF (an OL / LO frame when over or under range)."""
    if overload or underload:
        body = b" " * 9 + (b"OL" if overload else b"LO")
    else:
        limit = 10 ** (6 - places) - 1 if places else 999_999  # seven characters in all
        shown = max(-(limit // 10), min(limit, weight_kg))
        text = f"{shown:07.{places}f}" if places else f"{round(shown):06d} "
        body = ("WN" if net else "WG").encode() + text.encode() + b"kg"
    return body + encode_check(body, "xor", "hex") + b"\r\n"
