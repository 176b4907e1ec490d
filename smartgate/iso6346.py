"""ISO 6346 container codes: parsing, check digits, size-type codes and OCR correction (pure).

Shared by edge and central. `correct_code` turns a raw OCR reading (with optional per-character
alternatives from the recognizer) into ranked candidates that the check digit accepts; a reading
that no plausible correction validates is returned with `check_ok=False` and a confidence below
`CONFIDENT`.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

CODE_RE = re.compile(r"^([A-Z]{3})([UJZ])(\d{6})(\d)$")
SIZE_TYPE_RE = re.compile(r"^([1-4ABCDEFGHKLMNP])([0-9C-FL-P])([A-Z])([0-9])$")
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
DIGITS = "0123456789"
CATEGORIES = "UJZ"
CODE_ALPHABET = LETTERS + DIGITS
CONFIDENT = 0.5  # confidences at or above this are "confident"; a failed check digit stays below


class ContainerCodeError(ValueError):
    """A string that is not a well-formed ISO 6346 container code."""


def _letter_values() -> dict[str, int]:
    values: dict[str, int] = {}
    v = 10
    for ch in LETTERS:
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


def complete_code(first10: str) -> str:
    """The full 11-character code for owner+category+serial (appends the check digit)."""
    return f"{first10}{check_digit(first10)}"


# --- size-type codes -----------------------------------------------------------------------

LENGTHS = {
    "1": "10ft", "2": "20ft", "3": "30ft", "4": "40ft", "A": "40ft", "B": "24ft", "C": "24ft6in",
    "D": "29ft4in", "E": "35ft", "F": "40ft", "G": "41ft", "H": "43ft", "K": "44ft", "L": "45ft",
    "M": "48ft", "N": "49ft", "P": "53ft",
}  # fmt: skip
HEIGHTS = {
    "0": "8ft", "1": "8ft", "2": "8ft6in", "3": "8ft6in", "4": "9ft", "5": "9ft6in",
    "6": ">9ft6in", "7": ">9ft6in", "8": "4ft3in", "9": "<=4ft", "C": "8ft6in", "D": "9ft",
    "E": "9ft6in", "F": ">9ft6in", "L": "8ft6in", "M": "9ft", "N": "9ft6in", "P": ">9ft6in",
}  # fmt: skip
TYPE_GROUPS = {
    "G": "general purpose", "V": "ventilated", "B": "dry bulk", "S": "named cargo",
    "R": "thermal refrigerated", "H": "thermal insulated", "U": "open top", "P": "platform",
    "T": "tank", "A": "air/surface", "K": "tank (gas)", "N": "non-pressurized bulk",
}  # fmt: skip


@dataclass(frozen=True)
class SizeType:
    """An ISO 6346 size-type code such as 22G1 or L5G1 split into plain fields."""

    code: str
    length: str  # e.g. "20ft", "40ft", "45ft"
    height: str  # e.g. "8ft6in", "9ft6in"
    type_group: str  # e.g. "general purpose"
    type_code: str  # the last two characters, e.g. "G1"

    @property
    def length_ft(self) -> float:
        """Nominal length in feet (24ft6in -> 24.5)."""
        m = re.match(r"(\d+)ft(?:(\d+)in)?", self.length)
        if not m:
            raise ContainerCodeError(f"unparseable length {self.length!r}")
        return int(m.group(1)) + int(m.group(2) or 0) / 12

    @property
    def high_cube(self) -> bool:
        """True for 9ft6in and taller containers."""
        return "9ft6in" in self.height


def parse_size_type(text: str) -> SizeType:
    """Parse a 4-character size-type code; raises ContainerCodeError."""
    norm = normalize(text)
    m = SIZE_TYPE_RE.match(norm)
    if not m or m.group(1) not in LENGTHS or m.group(2) not in HEIGHTS:
        raise ContainerCodeError(f"{text!r} is not an ISO 6346 size-type code like 22G1")
    group = TYPE_GROUPS.get(m.group(3))
    if group is None:
        raise ContainerCodeError(f"{text!r}: unknown type group {m.group(3)!r}")
    return SizeType(norm, LENGTHS[m.group(1)], HEIGHTS[m.group(2)], group, norm[2:])


def is_size_type(text: str) -> bool:
    """True when `text` parses as a size-type code."""
    try:
        parse_size_type(text)
    except ContainerCodeError:
        return False
    return True


# --- OCR correction --------------------------------------------------------------------------

LETTER_TO_DIGIT = {
    "O": "0", "D": "0", "Q": "0", "U": "0", "C": "0", "I": "1", "L": "1", "J": "1", "T": "7",
    "Z": "2", "S": "5", "B": "8", "G": "6", "A": "4", "E": "8", "Y": "4", "H": "4",
}  # fmt: skip
DIGIT_TO_LETTER = {
    "0": "O", "1": "I", "2": "Z", "3": "B", "4": "A", "5": "S", "6": "G", "7": "T", "8": "B",
}  # fmt: skip
SIMILAR = {
    "0": "8689DOQ", "1": "7I4L", "2": "7Z", "3": "8952", "4": "1A9", "5": "6S39", "6": "5G80",
    "7": "12T", "8": "0369B", "9": "8304", "O": "QDCU0", "Q": "OD0", "D": "O0B", "C": "GO",
    "G": "C6O", "I": "1LTJ", "L": "I1", "J": "IU", "T": "I7Y", "U": "VJO", "V": "UY", "M": "NW",
    "N": "MH", "W": "MV", "H": "NM", "B": "8ERS", "E": "FB", "F": "EP", "P": "RF", "R": "PBK",
    "K": "XR", "X": "KY", "Y": "VTX", "Z": "2", "S": "5B", "A": "4",
}  # fmt: skip
UNSEEN = 0.02  # probability given to a visually similar character the recognizer did not offer
DROP_END, DROP_INNER = 0.5, 0.1  # likelihood factors for dropping an extra character


def position_kind(i: int) -> str:
    """Allowed characters at position `i` of an 11-character code."""
    return LETTERS if i < 3 else CATEGORIES if i == 3 else DIGITS


def _coerce(ch: str, kind: str) -> list[tuple[str, float]]:
    """Characters of `kind` that `ch` may stand for, with a factor for the substitution."""
    if ch in kind:
        return [(ch, 1.0)]
    out = []
    mapped = (LETTER_TO_DIGIT if kind == DIGITS else DIGIT_TO_LETTER).get(ch)
    if mapped and mapped in kind:
        out.append((mapped, 0.5))
    out += [(s, UNSEEN) for s in SIMILAR.get(ch, "") if s in kind and s != mapped]
    return out


def position_options(
    ch: str, kind: str, alternatives: Sequence[tuple[str, float]] = (), prob: float = 0.9
) -> dict[str, float]:
    """Likelihood, relative to the read character `ch` (prob `prob`), of each `kind` character.

    Recognizer alternatives count with their probability ratio; a letter/digit look-alike forced
    by the position costs little; a visually similar character nobody offered costs `UNSEEN`.
    """
    scores: dict[str, float] = {}
    offered = list(alternatives) or [(ch, prob)]
    if ch not in {c for c, _ in offered}:
        offered.insert(0, (ch, prob))
    norm = max(prob, 1e-6)
    for alt, p in offered:
        for c, factor in _coerce(alt, kind):
            scores[c] = max(scores.get(c, 0.0), min(1.0, p / norm) * factor)
    for c, factor in _coerce(ch, kind):
        for s in SIMILAR.get(c, ""):
            if s in kind:
                scores.setdefault(s, UNSEEN * factor)
    return scores or dict.fromkeys(kind, UNSEEN**2)


@dataclass(frozen=True)
class CodeReading:
    """The best container code for an OCR reading, with ranked candidates."""

    code: str
    check_ok: bool
    confidence: float
    corrections: int  # characters changed or dropped relative to the reading
    candidates: tuple[tuple[str, float], ...]


def _best_valid(options: list[dict[str, float]], max_changes: int) -> list[tuple[str, float, int]]:
    """Valid codes reachable by changing at most `max_changes` positions from the argmax."""
    ranked = [sorted(o.items(), key=lambda kv: -kv[1]) for o in options]
    base = [r[0] for r in ranked]
    base_score = math.prod(p for _, p in base[:10])
    found: dict[str, tuple[float, int]] = {}
    for n in range(max_changes + 1):
        for positions in itertools.combinations(range(10), n):
            alts = [ranked[i][1:5] for i in positions]
            for choice in itertools.product(*alts):
                chars = [c for c, _ in base]
                score = base_score
                for i, (c, p) in zip(positions, choice, strict=True):
                    chars[i] = c
                    score *= p / base[i][1]
                first10 = "".join(chars[:10])
                check = str(check_digit(first10))
                p_check = options[10].get(check, 0.0)
                if p_check == 0.0:
                    continue
                total = score * p_check
                changes = n + (check != base[10][0])
                code = first10 + check
                if code not in found or found[code][0] < total:
                    found[code] = (total, changes)
    return sorted(((c, s, k) for c, (s, k) in found.items()), key=lambda t: -t[1])


def correct_code(
    text: str,
    alternatives: Sequence[Sequence[tuple[str, float]]] | None = None,
    char_probs: Sequence[float] | None = None,
    max_changes: int = 2,
) -> CodeReading | None:
    """Best ISO 6346 code for an OCR reading, correcting confusions by position.

    `alternatives[i]` lists (char, prob) recognizer choices for the i-th character of `text`
    (spaces and separators must already be removed from both). Letters are forced in the owner
    code and category, digits in the serial and check digit; among codes the check digit accepts
    the likeliest wins. Returns None when the reading has fewer than 10 usable characters.
    """
    chars = [c for c in text.upper() if c in CODE_ALPHABET]
    if alternatives is not None and len(alternatives) == len(text):
        alts = [
            list(a) for c, a in zip(text.upper(), alternatives, strict=True) if c in CODE_ALPHABET
        ]
    else:
        alts = [[] for _ in chars]
    if char_probs is not None and len(char_probs) == len(text):
        probs = [p for c, p in zip(text.upper(), char_probs, strict=True) if c in CODE_ALPHABET]
    else:
        probs = [max((p for _, p in a), default=0.9) for a in alts]
    if len(chars) < 10:
        return None
    ocr_conf = math.prod(probs) ** (1 / len(probs))
    results: list[tuple[str, float, str, float]] = []  # code, likelihood, characters used, conf
    variants = _variants(len(chars))
    for keep, factor in variants:
        sub = [chars[i] for i in keep]
        if len(sub) == 10:  # check digit missing: infer it, never confidently
            sub_opts = [
                position_options(c, position_kind(i), alts[k], probs[k])
                for i, (c, k) in enumerate(zip(sub, keep, strict=True))
            ]
            best = "".join(max(o, key=o.__getitem__) for o in sub_opts)
            score = factor * 0.5 * math.prod(max(o.values()) for o in sub_opts)
            results.append((complete_code(best), score, best, ocr_conf))
            continue
        opts = [
            position_options(c, position_kind(i), alts[k], probs[k])
            for i, (c, k) in enumerate(zip(sub, keep, strict=True))
        ]
        limit = max_changes if len(keep) == len(chars) else min(max_changes, 1)
        for code, score, _ in _best_valid(opts, limit)[:5]:
            results.append((code, score * factor, "".join(sub), ocr_conf))
        raw = "".join(max(o, key=o.__getitem__) for o in opts)
        results.append((raw, factor * UNSEEN**2, "".join(sub), ocr_conf))
    merged: dict[str, tuple[float, int, float]] = {}
    for code, score, used, conf in results:
        changes = len(chars) - len(used) + sum(a != b for a, b in zip(code, used, strict=False))
        if code not in merged or merged[code][0] < score:
            merged[code] = (score, changes, conf)
    ranked = sorted(merged.items(), key=lambda kv: -kv[1][0])
    total = sum(s for s, _, _ in merged.values()) or 1.0
    cands = tuple((code, round(s / total, 4)) for code, (s, _, _) in ranked[:10])
    code, (score, changes, conf) = ranked[0]
    ok = is_valid(code)
    share = score / total
    confidence = conf * min(1.0, score) ** 0.5 * share
    if not ok or len(chars) == 10:
        confidence = min(confidence, CONFIDENT * 0.6)
    return CodeReading(code, ok, round(float(confidence), 4), changes, cands)


def _variants(n: int) -> list[tuple[tuple[int, ...], float]]:
    """Index subsets of an n-character reading to try as 11 (or 10) characters, with a prior."""
    if n == 10:
        return [(tuple(range(10)), 1.0)]
    if n == 11:
        return [(tuple(range(11)), 1.0)]
    extra = n - 11
    if extra <= 2:
        return [
            (
                tuple(i for i in range(n) if i not in drop),
                math.prod(DROP_END if i in (0, n - 1) else DROP_INNER for i in drop),
            )
            for drop in itertools.combinations(range(n), extra)
        ]
    return [(tuple(range(s, s + 11)), DROP_INNER**2) for s in range(n - 10)]
