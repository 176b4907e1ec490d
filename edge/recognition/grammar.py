"""Plate grammars: which strings are valid plates per region, and format-aware correction.

A grammar is a set of templates, one character class per position. `decode(probs, ...)` reads
a CTC probability matrix under every template (a Viterbi alignment in which each template slot
may only emit characters of its class), so a plate is read as the best string that *is* a plate:
a glyph of the wrong class is replaced by the most probable one of the right class, and a
confusable glyph (O/0, I/1, B/8, D/0, S/5, Z/2, G/6) counts for its partner at a penalty.

Latin-script plates (US, EU, BR) are read against the common national/state formats of their
region (`US`, `EU`, `BR`, in the spirit of OpenALPR's region patterns), with the generic
4–8-character `LATIN_PLATE` as a fallback scored down by `FORMAT_FALLBACK`: a known format may
overrule one confusable glyph (SUBSTITUTION_PENALTY over ~7 characters ≈ 0.86) but not two
(≈ 0.74).

Classes: D digit, L letter (region letter set), A digit or letter, X an emblem between character
groups (any glyph or none of the plate's text: it weighs nothing and is not part of the reading),
P Chinese province character,
S Chinese special suffix (挂 trailer, 学 learner, 警 police, 港 澳 cross-border, 领 consulate),
E the 使 prefix of Chinese embassy plates, M H the 民 航 of civil-aviation (airport) plates.
"""

from __future__ import annotations

import heapq
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

DIGITS = "0123456789"
LATIN = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
VN_LETTERS = "ABCDEFGHKLMNPRSTUVXYZ"  # I J O Q W are not used on Vietnamese plates
CN_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"  # I and O are not used on Chinese plates
CN_PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"
CN_SPECIAL = "挂学警港澳领"
CN_EMBASSY = "使"
CN_CIVIL_AVIATION = "民航"  # airport vehicles: 民航 + 5 characters

# glyph -> what it is often confused with, in the other class
CONFUSABLE = {
    "O": "0", "Q": "0", "D": "0", "U": "0", "I": "1", "L": "1", "T": "1", "J": "1",
    "Z": "2", "B": "8", "S": "5", "G": "6", "A": "4", "E": "3",
    "0": "DO", "1": "ITL", "2": "Z", "3": "E", "4": "A", "5": "S", "6": "G", "7": "T", "8": "B",
}
# The VN typeface's 1 has a long flag: a generic recognizer splits it between 7 and 1, while a
# real 7 leaves 1 almost no probability, so 1 gets this prior factor on VN plates.
VN_FLAGGED_ONE = 8.0
SUBSTITUTION_PENALTY = 0.35  # probability factor for a confusable mapped in by the grammar
FORMAT_FALLBACK = 0.9  # score factor of a Latin reading that fits no format of its region
LATIN_REGIONS = ("us", "eu", "br", "other")
EMBLEM = "X"  # template class of an emblem between character groups (not part of the text)
_SEPARATORS = re.compile(r"[\s\-.·•:_/|]")


def normalize_plate(text: str) -> str:
    """Uppercase and strip separators (spaces, dashes, dots, middle dots)."""
    return _SEPARATORS.sub("", text.upper())


@dataclass(frozen=True)
class Grammar:
    """Plate templates of one region, with the alphabet the recognizer may emit for it."""

    region: str
    templates: tuple[str, ...]
    classes: tuple[tuple[str, str], ...]  # class code -> allowed characters
    min_digits: int = 0
    digits_only_factor: float = 1.0  # score factor for an all-digit reading (rare, timestamps)
    weights: tuple[tuple[str, float], ...] = ()  # class code -> weight in the score (default 1)
    priors: tuple[tuple[str, float], ...] = ()  # glyph -> prior factor for this typeface
    factor: float = 1.0  # score factor of every reading (a fallback grammar ranks below formats)
    max_serial_letters: int | None = None  # letters allowed among the A (alphanumeric) slots

    @property
    def latin(self) -> bool:
        """Whether this grammar reads Latin-script plates (US, EU, BR, other)."""
        return self.region in LATIN_REGIONS

    @property
    def alphabet(self) -> str:
        """Every character any template allows."""
        return "".join(sorted({c for _, chars in self.classes for c in chars}))

    def weight(self, code: str) -> float:
        """Weight of one class's character probability in the geometric-mean score."""
        return dict(self.weights).get(code, 1.0)

    def allowed(self, code: str) -> str:
        """Characters allowed for one class code."""
        return dict(self.classes)[code]

    def matches(self, text: str) -> bool:
        """Whether normalized `text` fits one of the templates."""
        return any(
            len(t) == len(text) and all(ch in self.allowed(c) for ch, c in zip(text, t, strict=True))
            for t in (template.replace(EMBLEM, "") for template in self.templates)
        )

    def display(self, text: str) -> str:
        """Printed form: `51F-582.14`, `29MD1-521.29`, `桂F·A1234`; others unchanged.
        A 2-row plate is displayed on one line, top row first.
        """
        if self.region == "vn" and self.matches(text):
            for n in (5, 4):  # 8 characters are ambiguous (12C-345.67 / 12C3-4567): truck style
                head, num = text[:-n], text[-n:]
                if re.match(r"^\d\d[A-Z]{1,2}\d?$", head) and num.isdigit():
                    return f"{head}-{num[:3]}.{num[3:]}" if n == 5 else f"{head}-{num}"
        if self.region == "cn" and len(text) >= 3 and (text[0] in CN_PROVINCES
                                                       or text.startswith(CN_CIVIL_AVIATION)):
            return f"{text[:2]}·{text[2:]}"
        return text


def _vn_templates() -> tuple[str, ...]:
    series = ("L", "LL", "LD", "LLD")
    return tuple(f"DD{s}{'D' * n}" for s in series for n in (4, 5))


VN = Grammar(
    region="vn",
    templates=_vn_templates(),
    classes=(("D", DIGITS), ("L", VN_LETTERS)),
    priors=(("1", VN_FLAGGED_ONE),),
)
CN = Grammar(
    region="cn",
    templates=("PLAAAAA", "PLAAAAAA", "PLAAAAS", "EDDDDDD", "MHAAAAA"),
    classes=(("P", CN_PROVINCES), ("L", CN_LETTERS), ("A", DIGITS + CN_LETTERS),
             ("S", CN_SPECIAL), ("E", CN_EMBASSY), ("D", DIGITS), ("M", "民"), ("H", "航")),
    weights=(("P", 0.5),),  # the province glyph is the least legible at plate resolution
    max_serial_letters=2,  # GA 36: the serial after province + letter holds at most 2 letters
)
LATIN_PLATE = Grammar(
    region="other",
    templates=tuple("A" * n for n in range(4, 9)),
    classes=(("A", DIGITS + LATIN),),
    min_digits=1,
    digits_only_factor=0.5,
    factor=FORMAT_FALLBACK,
)
_LATIN_CLASSES = (("D", DIGITS), ("L", LATIN), ("A", DIGITS + LATIN), ("X", DIGITS + LATIN))
US = Grammar(
    region="us",
    # standard passenger series of the most populous states and the common older layouts:
    # CA 1ABC234; NY/TX/PA/OH/GA/NC/VA/WA/AZ/MI ABC1234; MO AB1C2D; NJ A12BCD; MA 1AB234 and
    # 1ABC23; MD 1AB2345; FL ABCD12 and 123ABC; CO/older ABC123, 123ABC, AB1234; all-digit
    # 6–7 digit serials (trucks, exempt and older series; camera timestamps, all digits too, are
    # kept off by the plate prior: they sit on the frame border). Many states print their emblem
    # between the groups (MO AB1·C2D, PA/TX ABC·1234): the X slot takes the glyph a recognizer
    # reads there.
    templates=("DLLLDDD", "LLLDDDD", "LLDLDL", "LDDLLL", "DLLDDD", "DLLLDD", "DLLDDDD",
               "LLLLDD", "DDDLLL", "LLLDDD", "LLDDDD", "DDDDDDD", "DDDDDD", "LLDXLDL",
               "LLLXDDDD"),
    classes=_LATIN_CLASSES,
    min_digits=1,
    weights=(("X", 0.0),),
)
EU = Grammar(
    region="eu",
    # SK/IT/FR AB123CD; CZ 1A2 3456 (third character a letter or digit); UK AB12CDE; ES 1234ABC;
    # PL AB12345 and ABC1234; BE 1ABC234; RO AB12CDE; HU ABC123; NL 12ABC3 and AB123C; AT/DE-like
    # district letters + digits (AB1234, ABC123, ABC1234, ABC12345 rare) and DE AB1234C-style
    templates=("LLDDDLL", "DLADDDD", "LLDDLLL", "DDDDLLL", "LLDDDDD", "LLLDDDD", "DLLLDDD",
               "LLLDDD", "DDLLLD", "LLDDDL", "LLDDDD", "LLLLDDD", "LLLDDDDD"),
    classes=_LATIN_CLASSES,
    min_digits=1,
)
BR = Grammar(
    region="br",
    templates=("LLLDDDD", "LLLDLDD"),  # old national series ABC1234, Mercosur ABC1D23
    classes=_LATIN_CLASSES,
    min_digits=1,
)
GRAMMARS: dict[str, tuple[Grammar, ...]] = {
    "vn": (VN,), "cn": (CN,), "us": (US, LATIN_PLATE), "eu": (EU, LATIN_PLATE),
    "br": (BR, LATIN_PLATE), "other": (LATIN_PLATE,),
}


@dataclass(frozen=True)
class Candidate:
    """A grammar-conforming reading with its score (geometric mean of character probabilities)."""

    text: str
    score: float
    region: str


def confusion_boost(probs: np.ndarray, chars: str) -> np.ndarray:
    """Character probabilities where each glyph also gets a share of its confusable partners'."""
    cols = {c: i for i, c in enumerate(chars)}
    boosted = probs.copy()
    for ch, partners in CONFUSABLE.items():
        if ch in cols:
            idx = [cols[p] for p in partners if p in cols]
            if idx:
                best = probs[:, idx].max(axis=1) * SUBSTITUTION_PENALTY
                boosted[:, cols[ch]] = np.maximum(boosted[:, cols[ch]], best)
    return boosted


def apply_priors(probs: np.ndarray, chars: str, priors: Sequence[tuple[str, float]]) -> np.ndarray:
    """Re-weight the glyph columns of a (T, 1 + len(chars)) CTC matrix by per-glyph prior factors.

    Each frame keeps its blank probability: the prior only moves probability between glyphs.
    """
    factors = np.ones(len(chars), dtype=probs.dtype)
    for ch, factor in priors:
        if ch in chars:
            factors[chars.index(ch)] = factor
    glyphs = probs[:, 1:]
    weighted = glyphs * factors
    mass = glyphs.sum(axis=1, keepdims=True)
    weighted *= mass / np.maximum(weighted.sum(axis=1, keepdims=True), 1e-9)
    return np.concatenate((probs[:, :1], weighted), axis=1)


def _align(
    logb: np.ndarray, slot_logp: np.ndarray, slot_arg: np.ndarray
) -> list[np.ndarray | None]:
    """CTC Viterbi over slots for M templates of n slots at once: per template the slot index
    per frame (−1 = blank), or None if infeasible.

    `logb[t]`: log blank probability; `slot_logp[m, t, i]`: best log probability of template m's
    slot i class at frame t; `slot_arg` its glyph. Two slots may touch without a blank only where
    their glyphs differ.
    """
    m_len, t_len, n = slot_logp.shape
    if t_len < n:
        return [None] * m_len
    s_len = 2 * n + 1
    emit = np.empty((m_len, t_len, s_len))
    emit[:, :, 0::2] = logb[None, :, None]
    emit[:, :, 1::2] = slot_logp
    neg = -np.inf
    dp = np.full((m_len, s_len), neg)
    dp[:, 0], dp[:, 1] = emit[:, 0, 0], emit[:, 0, 1]
    back = np.zeros((m_len, t_len, s_len), dtype=np.int8)
    step = np.full((m_len, s_len), neg)
    skip = np.full((m_len, s_len), neg)
    for t in range(1, t_len):
        step[:, 1:] = dp[:, :-1]
        differ = slot_arg[:, t - 1, :-1] != slot_arg[:, t, 1:]
        skip[:, 3::2] = np.where(differ, dp[:, 1:-2:2], neg)
        stacked = np.stack((dp, step, skip))
        move = stacked.argmax(axis=0)
        dp = np.take_along_axis(stacked, move[None], axis=0)[0] + emit[:, t]
        back[:, t] = move
    end = np.where(dp[:, -1] >= dp[:, -2], s_len - 1, s_len - 2)
    feasible = np.isfinite(dp[np.arange(m_len), end])
    path = np.empty((m_len, t_len), dtype=np.int64)
    state = end
    rows = np.arange(m_len)
    for t in range(t_len - 1, -1, -1):
        path[:, t] = state
        state = state - back[rows, t, state]
    slots = np.where(path % 2 == 1, path // 2, -1)
    return [slots[m] if feasible[m] else None for m in range(m_len)]


def _slot_costs(glyphs: np.ndarray, blank: np.ndarray) -> np.ndarray:
    """−log probability of each glyph as the one character of a slot's frames.

    The glyph's best frame counts its probability; every other frame of the slot must be the
    same glyph or blank, so a second character hidden in the slot is paid for.
    """
    logp = np.log(np.maximum(glyphs, 1e-6))
    hold = np.log(np.maximum(np.maximum(glyphs, blank[:, None]), 1e-6))
    peak = logp.argmax(axis=0)
    cols = np.arange(glyphs.shape[1])
    return -(hold.sum(axis=0) - hold[peak, cols] + logp[peak, cols])


def decode(
    probs: np.ndarray, chars: str, grammars: Sequence[Grammar], top_n: int = 5
) -> list[Candidate]:
    """Ranked plate readings of a (T, 1 + len(chars)) CTC matrix (column 0 = blank).

    Each template of each grammar is aligned to the frames; its per-slot top characters give
    candidates scored by the weighted geometric mean of their probabilities, with frames left to the
    blank but likely to hold a character (a glyph the template has no room for) as a penalty.
    """
    greedy = probs.argmax(axis=1)
    n_read = int(np.sum((greedy != 0) & (np.diff(greedy, prepend=0) != 0)))
    found: dict[str, Candidate] = {}
    for grammar in grammars:
        weighted = apply_priors(probs, chars, grammar.priors) if grammar.priors else probs
        logb = np.log(np.maximum(weighted[:, 0], 1e-6))
        glyphs = confusion_boost(weighted[:, 1:], chars)
        classes = {}
        for code, allowed in grammar.classes:
            cols = np.array([i for i, c in enumerate(chars) if c in allowed], dtype=np.int64)
            if not cols.size:
                continue
            sub = glyphs[:, cols]
            arg = sub.argmax(axis=1)
            classes[code] = (cols, np.log(np.maximum(sub.max(axis=1), 1e-6)), cols[arg])
        usable = [t for t in grammar.templates
                  if abs(len(t) - n_read) <= 2 and set(t) <= classes.keys()]
        paths: dict[str, np.ndarray | None] = {}
        for length in sorted({len(t) for t in usable}):  # one Viterbi per template length
            group = [t for t in usable if len(t) == length]
            slot_logp = np.stack([np.stack([classes[c][1] for c in t], axis=1) for t in group])
            slot_arg = np.stack([np.stack([classes[c][2] for c in t], axis=1) for t in group])
            paths.update(zip(group, _align(logb, slot_logp, slot_arg), strict=True))
        for template in usable:
            slots = paths[template]
            if slots is None:
                continue
            blank_cost = float(logb[slots < 0].sum())
            beam: list[tuple[float, str, int]] = [(-blank_cost, "", 0)]  # cost, text, letters
            for i, code in enumerate(template):
                if code == EMBLEM:
                    options = [(0.0, "")]
                else:
                    cols = classes[code][0]
                    cost = _slot_costs(glyphs[slots == i][:, cols], weighted[slots == i, 0])
                    top = np.argsort(cost)[:3]
                    options = [(float(cost[k]) * grammar.weight(code), chars[cols[k]])
                               for k in top]
                serial = code == "A"
                beam = heapq.nsmallest(top_n, (
                    (c + oc, t + ch, n + (serial and ch.isalpha()))
                    for c, t, n in beam for oc, ch in options
                    if grammar.max_serial_letters is None
                    or n + (serial and ch.isalpha()) <= grammar.max_serial_letters
                ))
            total_weight = sum(grammar.weight(code) for code in template)
            for path_cost, text, _ in beam:
                digits = sum(ch.isdigit() for ch in text)
                if digits < grammar.min_digits:
                    continue
                score = grammar.factor * math.exp(-path_cost / total_weight)
                if digits == len(text):
                    score *= grammar.digits_only_factor
                if text not in found or found[text].score < score:
                    found[text] = Candidate(text, score, grammar.region)
    return sorted(found.values(), key=lambda c: c.score, reverse=True)[:top_n]
