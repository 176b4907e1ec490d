"""eval-adapted's folds: every labeled image is held out exactly once."""

from __future__ import annotations

from pathlib import Path

from tools.eval.crossval import fold_files


def test_folds_partition_the_labeled_files_and_depend_on_the_seed(tmp_path: Path) -> None:
    files = [f"p{i}.jpg" for i in range(23)]
    (tmp_path / "labels.csv").write_text(
        "file,text,region,rows,x1,y1,x2,y2\n" + "".join(f"{f},29A12345,vn,1,,,,\n" for f in files),
        encoding="utf-8")
    folds = fold_files(tmp_path, 5, seed=0)
    assert sorted(x for fold in folds for x in fold) == sorted(files)
    assert sorted(len(fold) for fold in folds) == [4, 4, 5, 5, 5]
    assert fold_files(tmp_path, 5, seed=0) == folds
    assert fold_files(tmp_path, 5, seed=1) != folds
