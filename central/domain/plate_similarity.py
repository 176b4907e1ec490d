"""OCR-aware plate similarity and blocking keys (pure; no I/O).

A plate read by OCR differs from the declared plate in predictable ways: look-alike characters
(O/0, I/1, B/8, S/5, Z/2, G/6, D/0, ...), a dropped Chinese province character, separators and
two-row layouts. `plate_distance` is a weighted edit distance that charges those errors less than
an arbitrary substitution; `plate_similarity` turns it into a 0..1 score.

`plate_keys` / `probe_keys` are blocking keys: a declaration is stored under the keys of its plate
and a read looks up the keys of its text. Any declared plate within one arbitrary edit of the read
(plus any number of look-alike confusions and a missing province character) shares at least one
key with it, so the index only scores a handful of candidates instead of every declaration.
"""

from __future__ import annotations

import math
import re
import unicodedata
from functools import lru_cache

# Cost of substituting one character of a pair for the other (symmetric); anything else costs 1.
CONFUSABLE_COSTS: dict[frozenset[str], float] = {
    frozenset(p): c
    for p, c in (
        ("O0", 0.2), ("Q0", 0.3), ("D0", 0.3), ("OQ", 0.3), ("OD", 0.3), ("DQ", 0.4), ("U0", 0.6),
        ("I1", 0.2), ("L1", 0.4), ("T1", 0.5), ("IL", 0.5), ("IT", 0.5), ("J1", 0.6),
        ("B8", 0.3), ("B3", 0.6), ("38", 0.6), ("E8", 0.6), ("R8", 0.85),
        ("S5", 0.3), ("S8", 0.6), ("Z2", 0.3), ("Z7", 0.6), ("G6", 0.3), ("C6", 0.6), ("CG", 0.5),
        ("A4", 0.4), ("T7", 0.5), ("17", 0.6), ("Y7", 0.85), ("MN", 0.5), ("HN", 0.6), ("UV", 0.5),
        ("EF", 0.5), ("PR", 0.5), ("KX", 0.6), ("VY", 0.85), ("69", 0.85), ("56", 0.85), ("0C", 0.85),
    )
}  # fmt: skip

# Strong confusions folded to one canonical character for blocking (an equivalence relation).
FOLD = str.maketrans({"O": "0", "Q": "0", "D": "0", "I": "1", "B": "8", "S": "5", "Z": "2",
                      "G": "6", "A": "4"})  # fmt: skip

CJK_INDEL_COST = 0.3  # OCR models trained on Latin plates often drop the Chinese province char
# A province glyph read where another is declared (粤A23456 for 桂A23456) is another registration,
# not an OCR slip: it costs 2.5 edits, so a province swap alone scores below the default
# plate_min_score. A CJK character missing from the other plate stays cheap (CJK_INDEL_COST).
CJK_SUBSTITUTION_COST = 2.5
_SEPARATORS = re.compile(r"[\s\-._·•/|:,]+")
_CJK = re.compile(r"[\u3400-\u9fff]")


# The functions below are pure over short strings and matching calls them many times per passage
# with the same arguments (read-ahead keys, the candidate filter, the decision, every candidate's
# trailer): they remember their recent results.
_MEMO = 1 << 16


@lru_cache(maxsize=_MEMO)
def normalize_plate(text: str) -> str:
    """Uppercase, full-width to ASCII, and drop separators (spaces, dashes, dots, bullets, rows)."""
    return _SEPARATORS.sub("", unicodedata.normalize("NFKC", text).upper())


def is_cjk(ch: str) -> bool:
    """True for a CJK ideograph such as a Chinese province character (桂) or 挂 (trailer)."""
    return "\u3400" <= ch <= "\u9fff"


def fold(plate: str) -> str:
    """Blocking form of a normalized plate: CJK characters dropped, look-alikes canonicalized."""
    return _CJK.sub("", plate).translate(FOLD)


# Substitution cost from one character to each of its look-alikes (others cost 1).
_COST_FROM: dict[str, dict[str, float]] = {}
for _pair, _cost in CONFUSABLE_COSTS.items():
    for _x in _pair:
        for _y in _pair - {_x}:
            _COST_FROM.setdefault(_x, {})[_y] = _cost
_NO_LOOKALIKES: dict[str, float] = {}


def plate_distance(a: str, b: str, limit: float = math.inf) -> float:
    """Weighted edit distance between two normalized plates.

    Look-alike confusions are cheap (`CONFUSABLE_COSTS`), and so is a CJK character missing from
    one plate (a dropped province); when each plate has a CJK glyph the other lacks (another
    province), that costs `CJK_SUBSTITUTION_COST` however it is aligned. With a `limit`, it
    stops as soon as the distance must exceed it and returns a lower bound above the limit.

    Two plates of one length that substitutions alone turn into each other for less than the
    cheapest deletion plus the cheapest insertion need no table: an alignment with an insertion
    also has a deletion, so the substitutions are the distance (the same sum, in the same
    order, as the table's). For Latin plates that is any total below 2.
    """
    if a == b:
        return 0.0
    if len(a) == len(b):
        substituted = substitution_cost(a, b)
        if substituted < 2.0 and a.isascii() and b.isascii():
            return substituted
        if substituted < _cheapest_indel_pair(a, b):
            return substituted
    return _edit_distance(a, b, limit)


def _cheapest_indel_pair(a: str, b: str) -> float:
    """The cheapest deletion from `a` plus the cheapest insertion from `b` (`plate_distance`'s
    costs: 1, or the CJK cost for a CJK character)."""
    cjk_a, cjk_b = set(_CJK.findall(a)), set(_CJK.findall(b))
    swapped = bool(cjk_a - cjk_b) and bool(cjk_b - cjk_a)
    cjk_indel = CJK_SUBSTITUTION_COST / 2 if swapped else CJK_INDEL_COST
    delete = min(cjk_indel if ch in cjk_a else 1.0 for ch in a)
    insert = min(cjk_indel if ch in cjk_b else 1.0 for ch in b)
    return delete + insert


def _edit_distance(a: str, b: str, limit: float = math.inf) -> float:
    """`plate_distance` by the full table (the hot loop of matching: one row per character of
    `a`, comparisons instead of min())."""
    if a == b:
        return 0.0
    cjk_a, cjk_b = set(_CJK.findall(a)), set(_CJK.findall(b))
    swapped = bool(cjk_a - cjk_b) and bool(cjk_b - cjk_a)  # another province (province_conflict)
    cjk_indel = CJK_SUBSTITUTION_COST / 2 if swapped else CJK_INDEL_COST
    indel_b = [cjk_indel if ch in cjk_b else 1.0 for ch in b]
    prev = [0.0]
    for cost in indel_b:
        prev.append(prev[-1] + cost)
    columns = range(len(b))
    for ca in a:
        ca_cjk = ca in cjk_a
        del_a = cjk_indel if ca_cjk else 1.0
        costs = _COST_FROM.get(ca, _NO_LOOKALIKES)
        left = prev[0] + del_a
        cur = [left]
        for j in columns:
            cb = b[j]
            if ca == cb:
                best = prev[j]
            elif ca_cjk and cb in cjk_b:
                best = prev[j] + CJK_SUBSTITUTION_COST
            else:
                best = prev[j] + costs.get(cb, 1.0)
            up = prev[j + 1] + del_a
            if up < best:
                best = up
            left += indel_b[j]
            if left > best:
                left = best
            cur.append(left)
        prev = cur
        if limit != math.inf and min(cur) > limit:  # no cell of a later row can be lower
            return min(cur)
    return prev[-1]


@lru_cache(maxsize=_MEMO)
def _char_counts(plate: str) -> tuple[dict[str, int], frozenset[str]]:
    """How often each character occurs in a plate, and its CJK characters."""
    counts: dict[str, int] = {}
    for ch in plate:
        counts[ch] = counts.get(ch, 0) + 1
    if plate.isascii():
        return counts, _NO_CJK
    return counts, frozenset(ch for ch in counts if is_cjk(ch))


_NO_CJK: frozenset[str] = frozenset()


def _least_costs(own: dict[str, int], own_cjk: frozenset[str], other: dict[str, int],
                 other_cjk: frozenset[str], cjk_indel: float) -> float:
    """Sum over the characters `own` has more often than `other` of the cheapest edit that
    removes one: deleting it, or substituting a different character of `other` for it (the
    costs of `plate_distance`)."""
    total = 0.0
    for x, n in own.items():
        surplus = n - other.get(x, 0)
        if surplus <= 0:
            continue
        if x in own_cjk:
            least = cjk_indel
            if other_cjk - {x} and least > CJK_SUBSTITUTION_COST:
                least = CJK_SUBSTITUTION_COST
            if len(other) > len(other_cjk) and least > 1.0:  # a Latin character of `other`
                least = 1.0
        else:
            least = 1.0
            for cost, y in _CHEAPEST_FIRST.get(x, ()):
                if y in other:  # the cheapest look-alike `other` has
                    if cost < least:
                        least = cost
                    break
        total += least * surplus
    return total


# Each character's look-alikes, cheapest first (`_least_costs` stops at the first one present).
_CHEAPEST_FIRST: dict[str, tuple[tuple[float, str], ...]] = {
    x: tuple(sorted((cost, y) for y, cost in costs.items())) for x, costs in _COST_FROM.items()
}


def _bound_exceeds(a: str, b: str, limit: float) -> bool:
    """`plate_distance_lower_bound(a, b) > limit`, stopping after the first direction that
    exceeds it."""
    counts_a, cjk_a = _char_counts(a)
    counts_b, cjk_b = _char_counts(b)
    swapped = bool(cjk_a - cjk_b) and bool(cjk_b - cjk_a)
    cjk_indel = CJK_SUBSTITUTION_COST / 2 if swapped else CJK_INDEL_COST
    return (_least_costs(counts_a, cjk_a, counts_b, cjk_b, cjk_indel) > limit
            or _least_costs(counts_b, cjk_b, counts_a, cjk_a, cjk_indel) > limit)


def plate_distance_lower_bound(a: str, b: str) -> float:
    """A lower bound of `plate_distance(a, b)` from the characters alone (no alignment).

    A character that `a` holds more often than `b` is, in that surplus, never matched to an
    equal one: each such copy takes its own deletion or substitution by a different character
    of `b`, so the cheapest such edit of each adds up to at most the distance; the same holds
    the other way round. (Most look-alike trucks of the candidate filter are out on this.)
    """
    counts_a, cjk_a = _char_counts(a)
    counts_b, cjk_b = _char_counts(b)
    swapped = bool(cjk_a - cjk_b) and bool(cjk_b - cjk_a)
    cjk_indel = CJK_SUBSTITUTION_COST / 2 if swapped else CJK_INDEL_COST
    return max(_least_costs(counts_a, cjk_a, counts_b, cjk_b, cjk_indel),
               _least_costs(counts_b, cjk_b, counts_a, cjk_a, cjk_indel))


def substitution_cost(a: str, b: str) -> float:
    """The cost of turning `a` into `b` (same length) by substitutions alone: an upper bound of
    `plate_distance(a, b)`, the distance itself for most look-alike reads of a plate."""
    total = 0.0
    for x, y in zip(a, b, strict=True):
        if x != y:
            if is_cjk(x) and is_cjk(y):
                total += CJK_SUBSTITUTION_COST
            else:
                total += _COST_FROM.get(x, _NO_LOOKALIKES).get(y, 1.0)
    return total


@lru_cache(maxsize=_MEMO)
def province_conflict(a: str, b: str) -> bool:
    """Whether each plate has a CJK glyph the other lacks (`粤A23456` / `桂A23456`): another
    registration, however alike the rest. A glyph missing from one plate is no conflict."""
    cjk_a, cjk_b = set(_CJK.findall(a)), set(_CJK.findall(b))
    return bool(cjk_a - cjk_b) and bool(cjk_b - cjk_a)


@lru_cache(maxsize=_MEMO)
def plate_similarity(read: str, declared: str) -> float:
    """1 - distance / length, clamped to 0..1; 1.0 only for identical normalized plates."""
    longest = max(len(read), len(declared))
    if longest == 0:
        return 0.0
    return max(0.0, 1.0 - plate_distance(read, declared) / longest)


@lru_cache(maxsize=_MEMO)
def similar_at_least(read: str, declared: str, min_score: float) -> bool:
    """`plate_similarity(read, declared) >= min_score`, without the edit distance when a lower
    bound of it is too far already (most look-alike trucks of the candidate filter) or the
    substitutions alone are close enough (most reads of the plate itself), and else stopping
    it as soon as it is too far."""
    longest = max(len(read), len(declared))
    if min_score <= 0.0 or longest == 0:
        return min_score <= 0.0
    limit = (1.0 - min_score) * longest + 1e-9  # above: similarity certainly below min_score
    # both bounds with a margin against the rounding of float sums
    if _bound_exceeds(read, declared, limit + 1e-6):
        return False
    if len(read) == len(declared) and substitution_cost(read, declared) < limit - 1e-6:
        return True
    distance = plate_distance(read, declared, limit)
    return distance <= limit and max(0.0, 1.0 - distance / longest) >= min_score


def segment_keys(s: str, length: int) -> list[str]:
    """Keys of `s` assuming the stored string had `length` chars, each omitting one third of it."""
    n = len(s)
    a = length // 3
    b = (length - a) // 2
    c = length - a - b
    keys = []
    if n >= b + c:
        keys.append(f"{length}A{s[n - (b + c) :]}")
    if n >= a + c:
        keys.append(f"{length}B{s[:a]}|{s[n - c :]}")
    if n >= a + b:
        keys.append(f"{length}C{s[: a + b]}")
    return keys


def plate_keys(plate: str) -> list[str]:
    """Blocking keys under which a declared (normalized) plate is stored."""
    folded = fold(plate)
    return segment_keys(folded, len(folded)) if folded else []


def probe_keys(read: str) -> set[str]:
    """Blocking keys to look up for a read: its folded text assuming 0 or 1 insertion/deletion."""
    folded = fold(read)
    n = len(folded)
    if n == 0:
        return set()
    return {k for length in (n - 1, n, n + 1) if length > 0 for k in segment_keys(folded, length)}
