"""`smartgate eval` on a generated labeled folder, and real-data smoke tests (skip if absent)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from smartgate.cli import build_parser
from tools.eval.cli_eval import run_eval
from tools.eval.evaluation import LabelFileError, LabelRow, Outcome, Report, evaluate, load_labels
from tools.synth.plates import write_dataset

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def test_eval_on_generated_folder(tmp_path: Path) -> None:
    folder = write_dataset(tmp_path / "set", "vn", count=6, seed=11)
    rows = load_labels(folder)
    assert [r.rows for r in rows] == [1, 2, 1, 2, 1, 2] and rows[0].box is None
    summary = evaluate(folder).summary()
    assert summary["images"] == 6 and summary["accuracy"] >= 5 / 6
    assert set(summary["per_region"]["vn"]["per_rows"]) == {"1", "2"}


def test_eval_cli_json_last_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = write_dataset(tmp_path / "set", "cn", count=2, seed=4)
    args = build_parser().parse_args(["eval", str(folder), "--json", "--errors",
                                      str(tmp_path / "err")])
    assert run_eval(args) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {"images", "correct", "accuracy", "accuracy_o_equals_0", "per_region",
            "median_ms_per_image", "accuracy_top_n"} <= set(summary)
    assert summary["accuracy_top_n"] >= summary["accuracy"]
    assert summary["province_prior"] == "adaptive"


def test_top_n_counts_a_label_among_the_candidates() -> None:
    row = LabelRow("a.jpg", "WSG979", "us", 1, (0, 0, 9, 9))
    assert Outcome(row, "WS6979", 1.0, candidates=("WS6979", "WSG979")).in_top_n
    assert not Outcome(row, "WS6979", 1.0, candidates=("WS6979", "NS6979")).in_top_n
    report = Report([Outcome(row, "WS6979", 1.0, candidates=("WSG979",)),
                     Outcome(row, "WSG979", 1.0)])
    assert report.summary()["accuracy"] == 0.5 and report.summary()["accuracy_top_n"] == 1.0


def test_missing_labels_raise(tmp_path: Path) -> None:
    with pytest.raises(LabelFileError, match="labels.csv"):
        load_labels(tmp_path)


def test_unreadable_images_are_listed_not_scored(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    folder = write_dataset(tmp_path / "set", "vn", count=2, seed=11)
    (folder / "images" / "corrupt.jpg").write_bytes(b"not a jpeg")
    cv2.imwrite(str(folder / "images" / "sliver.png"), np.zeros((1, 300, 3), np.uint8))
    with (folder / "labels.csv").open("a", encoding="utf-8") as fh:
        fh.write("corrupt.jpg,51F58214,vn,1,,,,\nabsent.jpg,51F58214,vn,1,,,,\n"
                 "sliver.png,51F58214,vn,1,,,,\n")
    args = build_parser().parse_args(["eval", str(folder), "--json", "--errors",
                                      str(tmp_path / "err")])
    assert run_eval(args) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["images"] == 2
    assert summary["unreadable_images"] == ["corrupt.jpg", "absent.jpg", "sliver.png"]


def test_bad_label_row_is_a_clean_cli_error(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "labels.csv").write_text("file,text,region,rows,x1,y1,x2,y2\n"
                                         "a.jpg,51F58214,vn,two,,,,\n", encoding="utf-8")
    assert run_eval(build_parser().parse_args(["eval", str(tmp_path)])) == 2
    assert "labels.csv:2" in capsys.readouterr().err


@pytest.mark.parametrize(("name", "limit", "minimum"), [
    ("vn-real", 40, 0.9), ("lprnet-cn-crops", 48, 0.85), ("ccpd-samples-clpr", 4, 0.5),
])
def test_real_data_smoke(name: str, limit: int, minimum: float) -> None:
    folder = DATA / name
    if not (folder / "labels.csv").is_file():
        pytest.skip(f"real evaluation data not present at {folder}")
    assert evaluate(folder, limit=limit).summary()["accuracy"] >= minimum


def test_error_sheets_without_a_cjk_font(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         caplog: pytest.LogCaptureFixture) -> None:
    """A machine without a CJK font still gets its error sheets (Chinese shown as '?')."""
    from tools.eval.evaluation import error_sheet
    from tools.synth import plates

    folder = write_dataset(tmp_path / "set", "cn", count=1, seed=4)
    row = load_labels(folder)[0]
    assert any(not ch.isascii() for ch in row.text)  # a Chinese label to caption
    monkeypatch.setattr(plates, "CJK_FONTS", ())
    plates._font.cache_clear()
    try:
        paths = error_sheet(Report([Outcome(row, "GA12345", 1.0)]), folder, tmp_path / "err")
    finally:
        plates._font.cache_clear()
    assert len(paths) == 1 and cv2.imread(str(paths[0])) is not None
    assert "no CJK font installed" in caplog.text


def test_bench_containers_times_rapidocr_beside_ours(tmp_path: Path) -> None:
    from rapidocr import RapidOCR

    from tools.eval.cli_containers import score_folder
    from tools.synth.containers import generate

    (tmp_path / "images").mkdir()
    rows = ["file,text,region,rows,x1,y1,x2,y2"]
    for k, face in enumerate(generate(2, seed=7)):
        cv2.imwrite(str(tmp_path / "images" / f"f{k}.png"), face.image)
        rows.append(f"f{k}.png,{face.code},container,,{','.join(map(str, face.box))}")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    summary = score_folder(tmp_path, RapidOCR()).as_dict()
    assert summary["total"] == 2 and summary["correct"] == 2
    ours, theirs = summary["median_ms_per_image"], summary["rapidocr_median_ms_per_image"]
    assert isinstance(ours, float) and isinstance(theirs, float) and ours > 0 and theirs > 0
    assert summary["speedup_vs_rapidocr"] == pytest.approx(theirs / ours, rel=0.01, abs=0.01)
    assert "rapidocr_median_ms_per_image" not in score_folder(tmp_path).as_dict()


def test_bench_stage_shares_time_the_sessions_and_the_rest() -> None:
    from models.registry import create_session, get_spec
    from tools.eval.evaluation import _stage_shares, _TimedSession

    seconds: dict[str, float] = {}
    session = _TimedSession(create_session(get_spec("ppocr_rec").path, 1), "rec", seconds)
    name = session.get_inputs()[0].name  # the wrapped session's own attributes
    line = np.zeros((1, 3, 48, 192), np.float32)

    def read(image: np.ndarray) -> None:
        session.run(None, {name: line})
        cv2.GaussianBlur(image, (31, 31), 5)  # not in a session: "other"

    shares = _stage_shares(read, [np.zeros((720, 1280, 3), np.uint8)] * 3, seconds, "test")
    assert set(shares) == {"rec", "other", "ms_per_image"} and shares["ms_per_image"] > 0
    assert 0 < shares["rec"] < 1 and 0 < shares["other"] < 1
    assert shares["rec"] + shares["other"] == pytest.approx(1, abs=0.002)
