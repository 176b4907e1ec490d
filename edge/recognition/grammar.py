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
from functools import lru_cache

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


@lru_cache(maxsize=16)
def _confusable_columns(chars: str) -> tuple[np.ndarray, np.ndarray]:
    """Columns of `chars` that have confusable partners in `chars`, and per such column its
    partners' columns (padded with `len(chars)`, a column of zeros)."""
    cols = {c: i for i, c in enumerate(chars)}
    targets, partners = [], []
    for ch, others in CONFUSABLE.items():
        idx = [cols[p] for p in others if p in cols]
        if ch in cols and idx:
            targets.append(cols[ch])
            partners.append(idx)
    width = max((len(p) for p in partners), default=0)
    padded = np.full((len(partners), width), len(chars), dtype=np.int64)
    for row, idx in zip(padded, partners, strict=True):
        row[: len(idx)] = idx
    return np.array(targets, dtype=np.int64), padded


def confusion_boost(probs: np.ndarray, chars: str) -> np.ndarray:
    """Character probabilities where each glyph also gets a share of its confusable partners'."""
    targets, partners = _confusable_columns(chars)
    boosted = probs.copy()
    if len(targets):
        padded = np.concatenate((probs, np.zeros((len(probs), 1), dtype=probs.dtype)), axis=1)
        best = padded[:, partners].max(axis=2) * SUBSTITUTION_PENALTY
        boosted[:, targets] = np.maximum(boosted[:, targets], best)
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


@lru_cache(maxsize=64)
def _class_columns(classes: tuple[tuple[str, str], ...], chars: str) -> dict[str, np.ndarray]:
    """Per class code of a grammar, the columns of `chars` it allows (codes with none left out)."""
    out = {}
    for code, allowed in classes:
        cols = np.array([i for i, c in enumerate(chars) if c in allowed], dtype=np.int64)
        if cols.size:
            out[code] = cols
    return out


def _align(
    logb: np.ndarray, slot_logp: np.ndarray, slot_arg: np.ndarray, lengths: np.ndarray
) -> list[np.ndarray | None]:
    """CTC Viterbi over slots for M templates at once: per template the slot index per frame
    (−1 = blank), or None if infeasible.

    `logb[t]`: log blank probability; `slot_logp[m, t, i]`: best log probability of template m's
    slot i class at frame t; `slot_arg` its glyph; template m has `lengths[m]` slots (the
    slots past them are padding: a state only depends on the states before it, so a template
    ends at its own last slot). Two slots may touch without a blank only where their glyphs
    differ.
    """
    m_len, t_len, n = slot_logp.shape
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
    differ = slot_arg[:, :-1, :-1] != slot_arg[:, 1:, 1:]
    for t in range(1, t_len):
        step[:, 1:] = dp[:, :-1]
        skip[:, 3::2] = np.where(differ[:, t - 1], dp[:, 1:-2:2], neg)
        # argmax over (stay, step, skip), first on ties
        moved = step > dp
        best = np.where(moved, step, dp)
        jumped = skip > best
        back[:, t] = np.where(jumped, 2, moved)
        dp = np.where(jumped, skip, best) + emit[:, t]
    rows = np.arange(m_len)
    last = 2 * lengths
    end = np.where(dp[rows, last] >= dp[rows, last - 1], last, last - 1)
    feasible = np.isfinite(dp[rows, end]) & (lengths <= t_len)
    path = np.empty((m_len, t_len), dtype=np.int64)
    state = end
    for t in range(t_len - 1, -1, -1):
        path[:, t] = state
        state = state - back[rows, t, state]
    slots = np.where(path % 2 == 1, path // 2, -1)
    return [slots[m] if feasible[m] else None for m in range(m_len)]


class _RunCosts:
    """The three cheapest glyphs of a class as the one character of a run of frames (a slot).

    A glyph's cost is its −log probability: its best frame counts its probability; every other
    frame of the slot must be the same glyph or blank, so a second character hidden in the slot
    is paid for. Kept per run and class, as templates aligned alike share their runs.
    """

    def __init__(self, glyphs: np.ndarray, blank: np.ndarray, chars: str) -> None:
        self.logp = np.log(np.maximum(glyphs, 1e-6))
        self.hold = np.log(np.maximum(np.maximum(glyphs, blank[:, None]), 1e-6))
        self.chars = chars
        self.cache: dict[tuple[int, int, str], tuple[tuple[float, str], ...]] = {}

    def options(
        self, start: int, stop: int, code: str, cols: np.ndarray
    ) -> tuple[tuple[float, str], ...]:
        """(cost, glyph) of the three cheapest glyphs of class `code` (columns `cols`) over
        frames start..stop-1, cheapest first."""
        key = (start, stop, code)
        if key not in self.cache:
            logp, hold = self.logp[start:stop, cols], self.hold[start:stop, cols]
            peak = logp.argmax(axis=0)
            at = np.arange(len(cols))
            cost = -(hold.sum(axis=0) - hold[peak, at] + logp[peak, at])
            self.cache[key] = tuple((float(cost[k]), self.chars[cols[k]])
                                    for k in np.argsort(cost)[:3])
        return self.cache[key]


def decode(
    probs: np.ndarray, chars: str, grammars: Sequence[Grammar], top_n: int = 5
) -> list[Candidate]:
    """Ranked plate readings of a (T, 1 + len(chars)) CTC matrix (column 0 = blank).

    Each template of each grammar is aligned to the frames; its per-slot top characters give
    candidates scored by the weighted geometric mean of their probabilities, with frames left to the
    blank but likely to hold a character (a glyph the template has no room for) as a penalty.

    All templates share one Viterbi (the grammar priors leave the blank column alone). A
    template's best reading (each slot's cheapest glyph) bounds its score, so templates are
    expanded best bound first and those that cannot reach the `top_n` found so far are skipped:
    the result is the same as expanding every template.
    """
    greedy = probs.argmax(axis=1)
    n_read = int(np.sum((greedy != 0) & (np.diff(greedy, prepend=0) != 0)))
    logb = np.log(np.maximum(probs[:, 0], 1e-6))
    jobs = []  # (grammar, template, glyph matrix, run costs, class columns)
    slot_logp, slot_arg = [], []
    for grammar in grammars:
        weighted = apply_priors(probs, chars, grammar.priors) if grammar.priors else probs
        glyphs = confusion_boost(weighted[:, 1:], chars)
        columns = _class_columns(grammar.classes, chars)
        best = {}
        for code, cols in columns.items():
            sub = glyphs[:, cols]
            best[code] = (np.log(np.maximum(sub.max(axis=1), 1e-6)), cols[sub.argmax(axis=1)])
        costs = _RunCosts(glyphs, weighted[:, 0], chars)
        for t in grammar.templates:
            if abs(len(t) - n_read) <= 2 and set(t) <= columns.keys():
                jobs.append((grammar, t, costs, columns))
                slot_logp.append([best[c][0] for c in t])
                slot_arg.append([best[c][1] for c in t])
    if not jobs:
        return []
    lengths = np.array([len(t) for _, t, _, _ in jobs])
    n = int(lengths.max())
    logp_pad = np.full((len(jobs), len(probs), n), -np.inf)
    arg_pad = np.full((len(jobs), len(probs), n), -1, dtype=np.int64)
    for m, (lp, ar) in enumerate(zip(slot_logp, slot_arg, strict=True)):
        logp_pad[m, :, : len(lp)] = np.stack(lp, axis=1)
        arg_pad[m, :, : len(ar)] = np.stack(ar, axis=1)
    paths = _align(logb, logp_pad, arg_pad, lengths)
    bounded = []  # (score bound, job index, per-slot options, blank cost)
    for m, ((grammar, template, costs, columns), slots) in enumerate(
        zip(jobs, paths, strict=True)
    ):
        if slots is None:
            continue
        blank_cost = float(logb[slots < 0].sum())
        frames = np.flatnonzero(slots >= 0)  # a slot's frames are one run: the path is monotone
        order = np.arange(len(template))
        starts = frames[np.searchsorted(slots[frames], order)].tolist()
        stops = (frames[np.searchsorted(slots[frames], order, side="right") - 1] + 1).tolist()
        weights = dict(grammar.weights)
        options: list[tuple[tuple[float, str], ...]] = []
        least = -blank_cost
        for i, code in enumerate(template):
            if code == EMBLEM:
                options.append(((0.0, ""),))
                continue
            weight = weights.get(code, 1.0)
            options.append(tuple((c * weight, ch) for c, ch in
                                 costs.options(starts[i], stops[i], code, columns[code])))
            least += options[-1][0][0]
        total_weight = sum(weights.get(code, 1.0) for code in template)
        bound = grammar.factor * math.exp(-least / total_weight)
        bounded.append((bound, m, options, blank_cost, total_weight))
    found: dict[str, Candidate] = {}
    floor = 0.0  # the top_n-th best score found so far
    for bound, m, options, blank_cost, total_weight in sorted(bounded, key=lambda b: -b[0]):
        if bound < floor:
            break
        grammar, template = jobs[m][0], jobs[m][1]
        beam: list[tuple[float, str, int]] = [(-blank_cost, "", 0)]  # cost, text, letters
        for code, opts in zip(template, options, strict=True):
            serial = code == "A"
            beam = heapq.nsmallest(top_n, (
                (c + oc, t + ch, k + (serial and ch.isalpha()))
                for c, t, k in beam for oc, ch in opts
                if grammar.max_serial_letters is None
                or k + (serial and ch.isalpha()) <= grammar.max_serial_letters
            ))
        for path_cost, text, _ in beam:
            digits = sum(ch.isdigit() for ch in text)
            if digits < grammar.min_digits:
                continue
            score = grammar.factor * math.exp(-path_cost / total_weight)
            if digits == len(text):
                score *= grammar.digits_only_factor
            if text not in found or found[text].score < score:
                found[text] = Candidate(text, score, grammar.region)
        if len(found) >= top_n:
            floor = heapq.nlargest(top_n, (c.score for c in found.values()))[-1]
    return sorted(found.values(), key=lambda c: c.score, reverse=True)[:top_n]
