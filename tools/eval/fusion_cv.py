"""The PP-OCR + own-model fusion (`plates.fuse`, mode fused) chosen by k-fold cross-validation.

Each labeled plate folder is read once with PP-OCR, as `smartgate eval` reads it
(`read_with_ppocr`, cacheable: it does not depend on our model). Our model then reads every
plate PP-OCR read (`own_evidence`: the crop itself, or the read corners widened as the pipeline
widens them), in one batch. The fusion only re-ranks the text of the plate PP-OCR read. Its
confidence stays PP-OCR's, and so do which plate a frame reports and what is read again. Any
fusion setting can therefore be scored on this evidence in milliseconds, with `fuse`'s own
steps (`fused_outcomes`). `fusion_cv` tries a grid of `Fusion` settings, PP-OCR alone first so
that it wins ties. Per region of PP-OCR's reading and per seeded fold, it picks the setting
with the most correct reads on the other folds, then scores it and PP-OCR alone on the held-out
fold (`tools.eval.holdout.select_by_cv`).
"""

from __future__ import annotations

import itertools
import logging
import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from edge.recognition.ctc import text_log_likelihood
from edge.recognition.grammar import Candidate, Grammar, decode
from edge.recognition.ocr import check_image, warp_quad
from edge.recognition.plate_rec import PlateRecognizer, widen_quad
from edge.recognition.plates import (
    TOP_CANDIDATES,
    Fusion,
    PlateReader,
    fuse,
    fused_order,
    fusion_texts,
)
from edge.recognition.province_prior import ProvincePrior
from edge.recognition.results import PlateResult
from tools.eval.evaluation import evaluate, load_labels, reader_regions
from tools.eval.holdout import select_by_cv

log = logging.getLogger(__name__)

PPOCR = "ppocr"  # the neutral setting: PP-OCR's reading, our model ignored
WEIGHTS = (0.5, 1.0, 2.0, 4.0)
MARGINS = (2.0, 1.5, 1.0, 0.5, 0.25, 0.0)  # strictest first: ties go to the more conservative setting
ABSENT = (0.0, 0.5)
# Our model was trained on rendered Vietnamese and Chinese plates only (models/plate_recognizer):
# other regions keep PP-OCR's reading, no setting is searched for them.
FUSED_REGIONS = ("vn", "cn")
CONFUSABLE = (False, True)  # may ours overturn on look-alike glyphs alone (False first: stricter)


@dataclass(frozen=True)
class PlateRead:
    """PP-OCR's read of one labeled plate image (None: nothing read); `scene` for a whole
    photo, whose plate our model sees as the read corners widened (`widen_quad`)."""

    file: str
    label: str
    ppocr: PlateResult | None
    scene: bool


@dataclass(frozen=True)
class DatasetReads:
    """PP-OCR's reads of one labeled folder, with the reader's alphabet and grammars."""

    folder: Path
    chars: str
    grammars: tuple[Grammar, ...]
    reads: tuple[PlateRead, ...]


@dataclass(frozen=True)
class PlateEvidence:
    """One labeled plate image: PP-OCR's read, and our model's matrix (columns: blank, `chars`)
    and grammar candidates of the same plate (None / empty where PP-OCR read nothing)."""

    dataset: str
    file: str
    label: str
    chars: str
    ppocr: PlateResult | None
    probs: np.ndarray | None
    own: tuple[Candidate, ...]


PPOCR_ALONE = Fusion(0.0, 0.0, 0.0)


def setting_name(fusion: Fusion) -> str:
    """`ppocr` for weight 0, else `w=…,m=…,a=…`."""
    if fusion.weight == 0:
        return PPOCR
    return (f"w={fusion.weight:g},m={fusion.margin:g},a={fusion.absent:g},"
            f"c={int(fusion.confusable)}")


def settings_grid(weights: Sequence[float] = WEIGHTS, margins: Sequence[float] = MARGINS,
                  absent: Sequence[float] = ABSENT,
                  confusable: Sequence[bool] = CONFUSABLE) -> list[Fusion]:
    """PP-OCR alone first, then every combination, the more conservative first."""
    return [PPOCR_ALONE] + [Fusion(w, m, a, c) for c, a, w, m in
                            itertools.product(confusable, absent, weights, margins)]


class _RecordingReader:
    """The PP-OCR reader `evaluate` drives, keeping the whole result of each image's read."""

    def __init__(self, reader: PlateReader) -> None:
        self.reader = reader
        self.records: list[tuple[PlateResult | None, bool]] = []

    def read_crops(self, crops: Sequence[np.ndarray]) -> list[PlateResult]:
        results = self.reader.read_crops(crops)
        self.records += ((r, False) for r in results)
        return results

    def read_frames(self, frames: Sequence[np.ndarray]) -> list[list[PlateResult]]:
        results = self.reader.read_frames(frames)
        self.records += ((plates[0] if plates else None, True) for plates in results)
        return results


def read_with_ppocr(folder: Path) -> DatasetReads:
    """Read `folder` with PP-OCR as `smartgate eval` does (the province prior learning in file
    order) and keep each plate image's whole result."""
    rows = [r for r in load_labels(folder) if r.region != "container"]
    reader = PlateReader(regions=reader_regions(rows), province_prior=ProvincePrior())
    recording = _RecordingReader(reader)
    report = evaluate(folder, reader=recording)  # type: ignore[arg-type]
    outcomes = [o for o in report.outcomes if o.row.region != "container" and not o.unreadable]
    if len(outcomes) != len(recording.records):
        raise RuntimeError(f"{folder}: {len(outcomes)} plate outcomes, "
                           f"{len(recording.records)} reads recorded")
    reads = []
    for o, (result, scene) in zip(outcomes, recording.records, strict=True):
        if o.read != (result.text if result is not None else ""):
            raise RuntimeError(f"{folder}/{o.row.file}: recorded read differs from the outcome")
        reads.append(PlateRead(o.row.file, o.row.text, result, scene))
    return DatasetReads(folder, reader.chars, reader.grammars, tuple(reads))


def read_cached(folder: Path, cache: Path | None) -> DatasetReads:
    """`read_with_ppocr`, kept in `cache` under the folder's name (delete it when the PP-OCR
    pipeline changes)."""
    path = cache / f"{folder.name}-ppocr.pkl" if cache is not None else None
    if path is not None and path.exists():
        log.info("%s: cached PP-OCR reads %s", folder.name, path)
        return pickle.loads(path.read_bytes())  # noqa: S301 - our own cache file
    reads = read_with_ppocr(folder)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(pickle.dumps(reads))
    return reads


def own_evidence(data: DatasetReads, model: Path) -> list[PlateEvidence]:
    """Our model (`model`: plate_rec.onnx with its .json) on every plate PP-OCR read in `data`,
    the plate image as the pipeline gives it (the crop, or the read corners widened), batched."""
    own = PlateRecognizer.from_files(model, data.chars)
    images = []
    for read in data.reads:
        if read.ppocr is None:
            continue
        image = check_image(cv2.imread(str(data.folder / "images" / read.file), cv2.IMREAD_COLOR),
                            read.file)
        if read.scene and read.ppocr.quad is not None:
            image = warp_quad(image, widen_quad(np.array(read.ppocr.quad, dtype=np.float32)))
        images.append(image)
    probs = iter(own.probabilities(images))
    out = []
    for read in tqdm(data.reads, desc=f"{data.folder.name} candidates", unit="img"):
        p = next(probs) if read.ppocr is not None else None
        candidates = tuple(decode(p, data.chars, data.grammars, TOP_CANDIDATES)) \
            if p is not None else ()
        out.append(PlateEvidence(data.folder.name, read.file, read.label, data.chars,
                                 read.ppocr, p, candidates))
    return out


def fused_text(item: PlateEvidence, fusion: Fusion) -> str:
    """What the pipeline in fused mode with `fusion` reads for this plate image."""
    if item.ppocr is None:
        return ""
    return fuse(item.ppocr, item.own, "fused", item.probs, item.chars, fusion).text


def fused_outcomes(evidence: Sequence[PlateEvidence],
                   settings: Sequence[Fusion]) -> dict[str, list[bool]]:
    """Per-image correctness under each setting: {setting name: [correct, ...]}.

    `fuse`'s own steps, with our model's support of each reading computed once per image
    rather than once per setting (`fused_text` is the one-setting reference)."""
    table: dict[str, list[bool]] = {setting_name(f): [] for f in settings}
    widest = Fusion(1.0, 0.0, 1.0)  # absent > 0: every reading either model proposes
    for item in tqdm(evidence, desc="fusion settings", unit="img"):
        if item.ppocr is None or item.probs is None or not item.ppocr.candidates:
            for f in settings:
                table[setting_name(f)].append((item.ppocr.text if item.ppocr else "")
                                              == item.label)
            continue
        every = fusion_texts(item.ppocr, item.own, widest)
        support = dict(zip(every, text_log_likelihood(item.probs, every, item.chars),
                           strict=True))
        for f in settings:
            if f.weight == 0:
                text = item.ppocr.text
            else:
                texts = fusion_texts(item.ppocr, item.own, f)
                order, _ = fused_order(item.ppocr, texts, np.array([support[t] for t in texts]),
                                       f)
                text = texts[order[0]]
            table[setting_name(f)].append(text == item.label)
    return table


def region_of(item: PlateEvidence) -> str:
    """The region of PP-OCR's reading, which picks the fusion setting (`plates.FUSION`)."""
    return item.ppocr.region if item.ppocr is not None else "none"


def fusion_cv(evidence: Sequence[PlateEvidence], k: int = 5, seed: int = 0,
              settings: Sequence[Fusion] | None = None) -> dict:
    """k-fold selection of a fusion setting per region of PP-OCR's reading.

    The images of each region are split into k seeded folds (`select_by_cv`'s split, so fold f
    of the pool is the union of every region's fold f); for each fold and region the setting
    with the most correct reads on the other folds is chosen (ties: PP-OCR alone, then the more
    conservative setting) and scored on the fold, beside PP-OCR alone on the same images.
    Regions outside `FUSED_REGIONS`, or with fewer than k images, keep PP-OCR's reading.
    A region's `adopt`ed setting (what `recommended` puts in `plates.FUSION`) is its most
    chosen one if chosen in at least k-1 folds and its held-out reads beat PP-OCR's there."""
    settings = list(settings or settings_grid())
    table = fused_outcomes(evidence, settings)
    datasets = sorted({e.dataset for e in evidence})
    per_fold = [{"fold": f, "images": 0, "ppocr": 0, "fused": 0, "chosen": {},
                 "per_dataset": {d: {"images": 0, "ppocr": 0, "fused": 0} for d in datasets}}
                for f in range(k)]
    per_region = {}
    for region in sorted({region_of(e) for e in evidence}):
        idx = [i for i, e in enumerate(evidence) if region_of(e) == region]
        sub = {name: [oks[i] for i in idx] for name, oks in table.items()}
        order = np.random.default_rng(seed).permutation(len(idx))  # select_by_cv's folds
        if region in FUSED_REGIONS and len(idx) >= k:
            result = select_by_cv(sub, k, seed)
            chosen = [fold["chosen"] for fold in result["per_fold"]]
        else:
            result = {"chosen": {PPOCR: k}}
            chosen = [PPOCR] * k
        for f in range(k):
            fold = per_fold[f]
            fold["chosen"][region] = chosen[f]
            for j in order[f::k]:
                item = evidence[idx[j]]
                row = fold["per_dataset"][item.dataset]
                for part in (fold, row):
                    part["images"] += 1
                    part["ppocr"] += sub[PPOCR][j]
                    part["fused"] += sub[chosen[f]][j]
        counts = {v: c for v, c in result["chosen"].items() if c}
        winner = max(counts, key=lambda v: (counts[v], sum(sub[v])))
        cv_ppocr = sum(sub[PPOCR][j] for f in range(k) for j in order[f::k])
        cv_fused = sum(sub[chosen[f]][j] for f in range(k) for j in order[f::k])
        adopt = winner if counts[winner] >= k - 1 and cv_fused > cv_ppocr else PPOCR
        per_region[region] = {
            "images": len(idx), "chosen": counts, "cv_winner": winner, "adopt": adopt,
            "cv_ppocr": cv_ppocr, "cv_fused": cv_fused,
            "ppocr": sum(sub[PPOCR]), "winner_fixed": sum(sub[winner]),
            "best_fixed": max(sub, key=lambda v: sum(sub[v])),
            "best_fixed_correct": max(sum(v) for v in sub.values())}
    return {"images": len(evidence), "folds": k, "seed": seed, "settings": len(settings),
            "cv_correct_ppocr": sum(f["ppocr"] for f in per_fold),
            "cv_correct_fused": sum(f["fused"] for f in per_fold),
            "per_region": per_region, "per_fold": per_fold}


def recommended(result: dict) -> dict[str, Fusion]:
    """`plates.FUSION` as the adopted settings of `fusion_cv`'s regions (PP-OCR alone left
    out)."""
    out = {}
    for region, stats in result["per_region"].items():
        name = stats["adopt"]
        if name != PPOCR:
            w, m, a, c = (float(part.split("=")[1]) for part in name.split(","))
            out[region] = Fusion(w, m, a, bool(c))
    return out


def evaluate_fusion(folders: Sequence[Path], k: int = 5, seed: int = 0,
                    cache: Path | None = None) -> dict:
    """`fusion_cv` over the plate images of `folders`, with the registry's plate_rec model (a
    `--model-dir` one when registered), and the `plates.FUSION` its CV winners make."""
    from models.registry import get_spec

    model = get_spec("plate_rec").path
    evidence = [e for folder in folders for e in own_evidence(read_cached(folder, cache), model)]
    result = fusion_cv(evidence, k, seed)
    fusion = recommended(result)
    return {"datasets": [str(f) for f in folders], "model": str(model), **result,
            "recommended": {r: setting_name(f) for r, f in fusion.items()}}
