"""`smartgate eval-holdout`: k-fold selection of a tuned value on synthetic outcome tables, the
in-process overrides restoring the product defaults, and a tiny real run (skips if absent)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge.recognition import grammar, plates, province_prior
from smartgate.cli import build_parser
from tools.eval.cli_eval import run_eval_holdout
from tools.eval.holdout import (
    HUGE_LINE,
    PARAMS,
    ParamError,
    holdout,
    select_by_cv,
    verdict,
)

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def test_a_value_better_everywhere_is_chosen_in_every_fold() -> None:
    n = 50
    table = {"1": [i % 5 != 0 for i in range(n)], "8": [True] * n}
    result = select_by_cv(table, k=5, seed=3)
    assert result["chosen"] == {"1": 0, "8": 5}
    assert result["cv_correct"] == n and result["cv_accuracy"] == 1.0
    assert result["fixed"]["1"] == {"correct": 40, "accuracy": 0.8, "gains": 0, "losses": 0}
    assert (result["fixed"]["8"]["gains"], result["fixed"]["8"]["losses"]) == (10, 0)
    assert sum(f["images"] for f in result["per_fold"]) == n
    assert verdict(result, "8") == {"default": "8", "holds": True, "cv_winner": "8"}


def test_ties_go_to_the_value_listed_first() -> None:
    same = [True, False] * 10
    result = select_by_cv({"off": same, "240": same}, k=5)
    assert result["chosen"] == {"off": 5, "240": 0}
    assert all(f["tied"] == ["off", "240"] for f in result["per_fold"])
    assert verdict(result, "240") == {"default": "240", "holds": False, "cv_winner": "off"}


def test_a_gain_from_one_image_is_not_chosen_in_the_fold_that_holds_it() -> None:
    # "8" wins only image 8: in the fold holding it the training folds tie and "1" is chosen,
    # so select-by-CV scores one read below the fixed "8".
    one = [i % 4 != 0 for i in range(20)]
    eight = list(one)
    eight[8] = True
    result = select_by_cv({"1": one, "8": eight}, k=5, seed=0)
    held = next(f for f in result["per_fold"] if f["train_correct"]["1"] == f["train_correct"]["8"])
    assert held["chosen"] == "1" and held["tied"] == ["1", "8"]
    assert result["chosen"] == {"1": 1, "8": 4}
    assert result["cv_correct"] == sum(eight) - 1 == sum(one)
    assert verdict(result, "8")["holds"] is True  # 4 of 5 folds and the best fixed accuracy


def test_the_folds_are_seeded_and_partition_the_images() -> None:
    table = {"x": [True, False, True] * 7, "y": [False, True, True] * 7}
    first, again = select_by_cv(table, seed=5), select_by_cv(table, seed=5)
    assert first == again
    assert sum(f["images"] for f in first["per_fold"]) == 21


@pytest.mark.parametrize("table, k", [({}, 5), ({"a": [True] * 3}, 5), ({"a": [True] * 9}, 1),
                                      ({"a": [True] * 6, "b": [True] * 5}, 2)])
def test_bad_tables_are_refused(table: dict, k: int) -> None:
    with pytest.raises(ValueError):
        select_by_cv(table, k=k)


def test_overrides_apply_and_restore_the_product_defaults() -> None:
    vn_before, tall_before = grammar.GRAMMARS["vn"], plates.TALL_LINE
    strength_before = province_prior.STRENGTH
    with PARAMS["vn-one"].apply("2"):
        assert dict(grammar.GRAMMARS["vn"][0].priors)["1"] == 2.0
        assert plates.GRAMMARS is grammar.GRAMMARS  # the reader sees the patched mapping
    with pytest.raises(RuntimeError), PARAMS["tall-line"].apply("off"):
        assert plates.TALL_LINE == HUGE_LINE
        raise RuntimeError("restored even when the run fails")
    with PARAMS["province-strength"].apply("1"):
        assert province_prior.STRENGTH == 1.0
    assert grammar.GRAMMARS["vn"] is vn_before and tall_before == plates.TALL_LINE
    assert strength_before == province_prior.STRENGTH
    assert PARAMS["province-prior"].evaluate_kwargs("off") == {"province_prior": False}


def test_unknown_parameters_and_bad_values_are_clean_cli_errors(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for argv, message in ((["--param", "nope", "--values", "1,2"], "unknown parameter"),
                          (["--param", "vn-one", "--values", "1,x"], "not a number"),
                          (["--param", "province-prior", "--values", "off,on"], "not one of"),
                          (["--param", "vn-one", "--values", "8,8.0"], "two different")):
        args = build_parser().parse_args(["eval-holdout", str(tmp_path), *argv])
        assert run_eval_holdout(args) == 2
        assert message in capsys.readouterr().err
    with pytest.raises(ParamError):
        holdout(tmp_path, "tall-line", ["-1", "240"])


def test_tiny_real_run_the_vn_one_prior_changes_reads(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = DATA / "vn-real"
    if not (folder / "labels.csv").is_file():
        pytest.skip(f"real evaluation data not present at {folder}")
    args = build_parser().parse_args(["eval-holdout", str(folder), "--param", "vn-one",
                                      "--values", "0,8", "--folds", "4", "--limit", "8",
                                      "--cache", str(tmp_path), "--json"])
    assert run_eval_holdout(args) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["images"] == 8 and sum(summary["chosen"].values()) == 4
    # a zero prior on `1` cannot read the plates whose label holds a 1: the override is live
    assert summary["fixed"]["0"]["correct"] < summary["fixed"]["8"]["correct"]
    assert len(list(tmp_path.glob("vn-real-*.json"))) == 2
    again = holdout(folder, "vn-one", ["0", "8"], k=4, limit=8, cache=tmp_path)
    assert again["fixed"] == summary["fixed"]  # served from the cache
