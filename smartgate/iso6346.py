"""ISO 6346 container codes: parsing and check digits (pure, shared by edge and central)."""

from __future__ import annotations

import re
from dataclasses import dataclass

CODE_RE = re.compile(r"^([A-Z]{3})([UJZ])(\d{6})(\d)$")


class ContainerCodeError(ValueError):
    """A string that is not a well-formed ISO 6346 container code."""


def _letter_values() -> dict[str, int]:
    values: dict[str, int] = {}
    v = 10
    for ch in "ABCDEFGHIJKLMNOPQRSTUVWXYZ":
        if v % 11 == 0:
            v += 1
        values[ch] = v
        v += 1
    return values


LETTER_VALUES = _letter_values()


def check_digit(first10: str) -> int:
    """Check digit of the first 10 characters (owner, category, serial); 10 maps to 0."""
    if len(first10) != 10:
        raise ContainerCodeError(f"need 10 characters to compute a check digit, got {first10!r}")
    total = 0
    for i, ch in enumerate(first10.upper()):
        if ch.isdigit():
            value = int(ch)
        elif ch in LETTER_VALUES:
            value = LETTER_VALUES[ch]
        else:
            raise ContainerCodeError(f"character {ch!r} not allowed in container code {first10!r}")
        total += value * (1 << i)
    return total % 11 % 10


@dataclass(frozen=True)
class ContainerCode:
    """A parsed container code."""

    owner: str
    category: str
    serial: str
    check: int

    @property
    def text(self) -> str:
        """The 11-character code, e.g. CSQU3054383."""
        return f"{self.owner}{self.category}{self.serial}{self.check}"

    @property
    def check_ok(self) -> bool:
        """Whether the printed check digit matches the computed one."""
        return check_digit(self.text[:10]) == self.check


def normalize(text: str) -> str:
    """Uppercase and drop spaces, dashes, dots and slashes."""
    return re.sub(r"[\s\-./]", "", text.upper())


def parse_code(text: str) -> ContainerCode:
    """Parse an 11-character code (separators allowed); raises ContainerCodeError."""
    norm = normalize(text)
    m = CODE_RE.match(norm)
    if not m:
        raise ContainerCodeError(f"{text!r} is not owner(3 letters)+U/J/Z+6 digits+check digit")
    return ContainerCode(m.group(1), m.group(2), m.group(3), int(m.group(4)))


def is_valid(text: str) -> bool:
    """True when `text` is a well-formed code whose check digit is correct."""
    try:
        return parse_code(text).check_ok
    except ContainerCodeError:
        return False
