"""Choosing the PP-OCR + own-model fusion by k-fold CV (tools/eval/fusion_cv.py): on evidence
built from CTC matrices, and the evidence collection itself on a small synthetic folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge.recognition.grammar import Candidate
from edge.recognition.plates import Fusion
from edge.recognition.results import PlateResult
from tools.eval.fusion_cv import (
    PPOCR,
    PlateEvidence,
    fused_outcomes,
    fused_text,
    fusion_cv,
    recommended,
    setting_name,
    settings_grid,
)

CHARS = "0123456789ABCDEFGHKLMNPRSTUVXYZ"


def _matrix(text: str, strength: float = 0.9) -> np.ndarray:
    probs = np.full((2 * len(text) + 2, len(CHARS) + 1), (1 - strength) / len(CHARS))
    probs[:, 0] = strength
    for i, ch in enumerate(text):
        probs[2 * i + 1] = (1 - strength) / len(CHARS)
        probs[2 * i + 1, CHARS.index(ch) + 1] = strength
    return probs / probs.sum(axis=1, keepdims=True)


def _item(i: int, label: str, ppocr_top: str, other: str, own_sees: str, region: str = "vn"
          ) -> PlateEvidence:
    result = PlateResult(ppocr_top, ppocr_top, 0.8, region, 1,
                         candidates=((ppocr_top, 0.8), (other, 0.6)))
    return PlateEvidence("set", f"{i}.jpg", label, CHARS, result, _matrix(own_sees),
                         (Candidate(own_sees, 0.9, region),))


def _evidence() -> list[PlateEvidence]:
    """vn and us: PP-OCR misreads 10 of 30 plates our model reads right (its second
    candidate); cn: our model is wrong on every plate PP-OCR reads right."""
    vn = [_item(i, "51F58244", "51F58214", "51F58244", "51F58244") for i in range(10)]
    vn += [_item(10 + i, "51F58214", "51F58214", "51F58244", "51F58214") for i in range(20)]
    cn = [_item(30 + i, "AB1234", "AB1234", "AB1284", "AB1284", "cn") for i in range(30)]
    us = [_item(60 + i, "ABC1234", "ABC1284", "ABC1234", "ABC1234", "us") for i in range(10)]
    return vn + cn + us


def test_the_batched_table_is_fuse_setting_by_setting() -> None:
    evidence = _evidence()
    settings = settings_grid()
    table = fused_outcomes(evidence, settings)
    for f in settings[:: 7]:
        assert table[setting_name(f)] == [fused_text(e, f) == e.label for e in evidence]
    assert sum(table[PPOCR]) == 50  # of 70


def test_cv_fuses_where_our_model_helps_and_keeps_ppocr_elsewhere() -> None:
    result = fusion_cv(_evidence(), k=5)
    regions = result["per_region"]
    assert regions["cn"]["adopt"] == PPOCR and regions["us"]["adopt"] == PPOCR  # us: not trained
    assert regions["vn"]["adopt"] != PPOCR and regions["vn"]["chosen"] == {regions["vn"]["adopt"]: 5}
    assert result["cv_correct_ppocr"] == 50 and result["cv_correct_fused"] == 60
    assert sum(f["images"] for f in result["per_fold"]) == 70
    assert all(f["fused"] >= f["ppocr"] for f in result["per_fold"])
    fusion = recommended(result)
    assert list(fusion) == ["vn"] and isinstance(fusion["vn"], Fusion)


def test_reads_and_our_model_pair_with_the_eval_outcomes_in_a_mixed_folder(tmp_path: Path) -> None:
    """Crops are read in batches, after the scenes listed among them: every recorded read must
    still land on its own image (read_with_ppocr checks each against `evaluate`'s outcome)."""
    from models.registry import get_spec
    from tools.eval.fusion_cv import PPOCR_ALONE, own_evidence, read_with_ppocr
    from tools.synth.plates import write_dataset

    crops = write_dataset(tmp_path / "crops", "vn", count=3, seed=11)
    scenes = write_dataset(tmp_path / "scenes", "vn", count=2, seed=5, scenes=True)
    folder = tmp_path / "mixed"
    (folder / "images").mkdir(parents=True)
    lines = ["file,text,region,rows,x1,y1,x2,y2"]
    for part in (crops, scenes, crops):  # crop rows around the scenes, the crops listed twice
        for row in (part / "labels.csv").read_text(encoding="utf-8").splitlines()[1:]:
            name, rest = row.split(",", 1)
            target = folder / "images" / f"{part.name}_{name}"
            if not target.exists():
                target.symlink_to(part / "images" / name)
            lines.append(f"{target.name},{rest}")
    (folder / "labels.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")

    data = read_with_ppocr(folder)
    assert len(data.reads) == 8  # in `evaluate`'s outcome order: the scenes before the batch
    assert all(r.scene == r.file.startswith("scenes_") for r in data.reads)
    evidence = own_evidence(data, get_spec("plate_rec").path)
    assert [e.file for e in evidence] == [r.file for r in data.reads]
    for item in evidence:
        if item.ppocr is not None:
            assert item.probs is not None and item.probs.shape[1] == 1 + len(item.chars)
        assert fused_text(item, PPOCR_ALONE) == (item.ppocr.text if item.ppocr else "")
