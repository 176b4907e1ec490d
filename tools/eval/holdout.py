"""Generalization hygiene: does a tuned threshold or prior hold under k-fold cross-validation?

A labeled folder is read once per candidate value of one parameter (`PARAMS`), each time with
that value applied in-process (the product modules' defaults are restored afterwards). Then, for
each of k seeded folds, the value with the most correct reads on the other k-1 folds is chosen
and scored on the held-out fold (`select_by_cv`, a pure function over the per-image outcome
table). "Select by CV" accuracy beside each fixed value's accuracy, and how often each value was
chosen, say whether a value tuned while looking at the whole set earns its place.

Ties on the training folds go to the value listed first: list the neutral value (no prior, no
re-search) first, so a tuned value must win outright to be chosen.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from tools.eval.evaluation import evaluate

log = logging.getLogger(__name__)

OFF = "off"
HUGE_LINE = 10**9  # a TALL_LINE no text line reaches: the half-scale re-search never runs


@contextmanager
def _vn_one(value: str) -> Iterator[None]:
    """The VN grammar with the `1` prior factor `value` (GRAMMARS patched, then restored)."""
    from edge.recognition import grammar

    saved = grammar.GRAMMARS["vn"]
    grammar.GRAMMARS["vn"] = tuple(
        replace(g, priors=tuple((ch, float(value)) if ch == "1" else (ch, f)
                                for ch, f in g.priors)) if g.region == "vn" else g
        for g in saved)
    try:
        yield
    finally:
        grammar.GRAMMARS["vn"] = saved


@contextmanager
def _module_constant(module_name: str, name: str, value: float) -> Iterator[None]:
    """`module.name = value` for the duration (a constant read at call time), then restored."""
    import importlib

    module = importlib.import_module(module_name)
    saved = getattr(module, name)
    setattr(module, name, value)
    try:
        yield
    finally:
        setattr(module, name, saved)


def _tall_line(value: str) -> AbstractContextManager[None]:
    return _module_constant("edge.recognition.plates", "TALL_LINE",
                            HUGE_LINE if value == OFF else int(value))


def _province_strength(value: str) -> AbstractContextManager[None]:
    return _module_constant("edge.recognition.province_prior", "STRENGTH", float(value))


def _no_patch(value: str) -> AbstractContextManager[None]:
    return nullcontext()


@dataclass(frozen=True)
class Param:
    """A tunable: how to apply a candidate value, and the product's current default."""

    help: str
    apply: Callable[[str], AbstractContextManager[None]]
    default: Callable[[], str]
    choices: tuple[str, ...] = ()  # when the value set is closed
    evaluate_kwargs: Callable[[str], dict] = lambda value: {}


def _default_vn_one() -> str:
    from edge.recognition.grammar import VN_FLAGGED_ONE

    return _canonical("vn-one", str(VN_FLAGGED_ONE))


def _default_tall_line() -> str:
    from edge.recognition import plates

    return str(plates.TALL_LINE)


def _default_strength() -> str:
    from edge.recognition import province_prior

    return _canonical("province-strength", str(province_prior.STRENGTH))


PARAMS: dict[str, Param] = {
    "vn-one": Param("prior factor of `1` on VN plates (grammar.VN_FLAGGED_ONE)", _vn_one,
                    _default_vn_one),
    "tall-line": Param("text-line height above which a frame is searched again at half scale "
                       "(plates.TALL_LINE; 'off' = never)", _tall_line, _default_tall_line),
    "province-prior": Param("site province prior (evaluate(province_prior=...))", _no_patch,
                            lambda: "adaptive", ("adaptive", OFF),
                            lambda value: {"province_prior": value == "adaptive"}),
    "province-strength": Param("exponent of the province prior (province_prior.STRENGTH)",
                               _province_strength, _default_strength),
}


class ParamError(ValueError):
    """An unknown parameter or a value it cannot take."""


def _canonical(param: str, value: str) -> str:
    """`value` spelled one way (8 and 8.0 are the same prior)."""
    spec = PARAMS.get(param)
    if spec is None:
        raise ParamError(f"unknown parameter {param!r} (known: {', '.join(PARAMS)})")
    if spec.choices:
        if value not in spec.choices:
            raise ParamError(f"{param}: {value!r} is not one of {', '.join(spec.choices)}")
        return value
    if value == OFF and param == "tall-line":
        return value
    try:
        number = float(value)
    except ValueError:
        raise ParamError(f"{param}: {value!r} is not a number") from None
    if number < 0:
        raise ParamError(f"{param}: {value!r} is negative")
    return f"{number:g}"


def select_by_cv(table: Mapping[str, Sequence[bool]], k: int = 5, seed: int = 0) -> dict:
    """k-fold selection over an outcome table {value: per-image correct, same image order}.

    For each seeded fold the value with the most correct reads on the other folds is chosen
    (ties: the value first in `table`'s order) and scored on the fold. Returns the CV accuracy of
    that selection, each fixed value's accuracy (with its paired gains and losses against the
    first value), how often each value was chosen, and per fold the chosen value, the training
    counts and the held-out score."""
    if not table:
        raise ValueError("no candidate values")
    values = list(table)
    matrix = np.array([list(map(bool, table[v])) for v in values], dtype=bool)
    if matrix.ndim != 2:
        raise ValueError("every value needs one outcome per image")
    n = matrix.shape[1]
    if not 2 <= k <= n:
        raise ValueError(f"k={k} folds need 2 <= k <= {n} images")
    order = np.random.default_rng(seed).permutation(n)
    folds = [order[f::k] for f in range(k)]
    chosen_counts = dict.fromkeys(values, 0)
    per_fold = []
    cv_correct = 0
    for f, held in enumerate(folds):
        train = np.ones(n, dtype=bool)
        train[held] = False
        train_correct = matrix[:, train].sum(axis=1)
        best = int(np.argmax(train_correct))  # argmax takes the first of equals
        tied = [values[i] for i in np.flatnonzero(train_correct == train_correct[best])]
        test_correct = int(matrix[best, held].sum())
        cv_correct += test_correct
        chosen_counts[values[best]] += 1
        per_fold.append({"fold": f, "images": len(held), "chosen": values[best],
                         "tied": tied if len(tied) > 1 else [],
                         "train_correct": dict(zip(values, map(int, train_correct),
                                                   strict=True)),
                         "test_correct": test_correct})
    fixed = {v: {"correct": int(matrix[i].sum()), "accuracy": round(float(matrix[i].mean()), 4),
                 # paired with the first (neutral) value: images only this one reads, and back
                 "gains": int((matrix[i] & ~matrix[0]).sum()),
                 "losses": int((matrix[0] & ~matrix[i]).sum())}
             for i, v in enumerate(values)}
    return {"images": n, "folds": k, "seed": seed, "cv_correct": cv_correct,
            "cv_accuracy": round(cv_correct / n, 4), "fixed": fixed, "chosen": chosen_counts,
            "per_fold": per_fold}


def verdict(result: dict, default: str) -> dict:
    """The decision rule of docs/plates.md: `default` holds when CV chooses it in at least
    k-1 folds and its accuracy is not below any alternative's; otherwise the most chosen value
    (ties: the better fixed accuracy) is the CV winner."""
    k = result["folds"]
    chosen = result["chosen"]
    fixed = result["fixed"]
    winner = max(chosen, key=lambda v: (chosen[v], fixed[v]["correct"]))
    if default not in fixed:
        return {"default": default, "holds": None, "cv_winner": winner}
    best_other = max((fixed[v]["correct"] for v in fixed if v != default), default=-1)
    holds = chosen[default] >= k - 1 and fixed[default]["correct"] >= best_other
    return {"default": default, "holds": holds, "cv_winner": default if holds else winner}


def outcome_table(folder: Path, param: str, values: Sequence[str], limit: int | None = None,
                  recognizer: str = "ppocr", cache: Path | None = None) -> dict[str, list[bool]]:
    """Per-image correctness of `folder` read once per candidate value of `param`.

    Images that are unreadable or mislabeled are left out; with `cache` each value's outcomes
    are kept as JSON (the default value's file is shared by every parameter, as it is the same
    configuration)."""
    spec = PARAMS[param]
    default = spec.default()
    table: dict[str, dict[str, bool]] = {}
    for raw in values:
        value = _canonical(param, raw)
        key = "default" if value == default else f"{param}={value}"
        path = cache / f"{folder.name}-{recognizer}-{limit or 'all'}-{key}.json" if cache \
            else None
        if path is not None and path.exists():
            table[value] = json.loads(path.read_text(encoding="utf-8"))
            log.info("%s %s=%s: cached %s", folder.name, param, value, path)
            continue
        with spec.apply(value):
            report = evaluate(folder, limit=limit, recognizer=recognizer,
                              **spec.evaluate_kwargs(value))
        table[value] = {o.row.file: o.correct for o in report.outcomes
                        if not (o.label_error or o.unreadable)}
        log.info("%s %s=%s: %d/%d correct", folder.name, param, value,
                 sum(table[value].values()), len(table[value]))
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(table[value]), encoding="utf-8")
    files = sorted(set.intersection(*(set(t) for t in table.values())))
    return {v: [t[f] for f in files] for v, t in table.items()}


def holdout(folder: Path, param: str, values: Sequence[str], k: int = 5, seed: int = 0,
            limit: int | None = None, recognizer: str = "ppocr",
            cache: Path | None = None) -> dict:
    """`select_by_cv` over `folder`'s outcomes for each value of `param`, with the verdict on
    the product's current default."""
    if param not in PARAMS:
        raise ParamError(f"unknown parameter {param!r} (known: {', '.join(PARAMS)})")
    canonical = list(dict.fromkeys(_canonical(param, v) for v in values))
    if len(canonical) < 2:
        raise ParamError(f"{param}: give at least two different values")
    table = outcome_table(folder, param, canonical, limit, recognizer, cache)
    result = select_by_cv(table, k, seed)
    return {"dataset": str(folder), "param": param, "recognizer": recognizer, **result,
            **verdict(result, PARAMS[param].default())}
