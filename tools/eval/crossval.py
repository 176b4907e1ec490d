"""Site adaptation measured honestly: k-fold cross-validation of `smartgate models adapt`.

The labeled folder's rows are split into k folds (seeded); for each fold the shipped recognizer is
adapted on the other k-1 folds and `smartgate eval` reads only the held-out fold, so no image is
scored by a model that trained on it. Folds are written as temporary folders of links to the
original images (nothing is copied into the project).
"""

from __future__ import annotations

import csv
import logging
import tempfile
import time
from pathlib import Path

import numpy as np

from tools.eval.evaluation import evaluate

log = logging.getLogger(__name__)


def fold_files(folder: Path, k: int, seed: int = 0) -> list[list[str]]:
    """The image files of `folder/labels.csv` in k seeded folds of near-equal size."""
    with (folder / "labels.csv").open(encoding="utf-8", newline="") as fh:
        files = [row["file"] for row in csv.DictReader(fh)]
    order = np.random.default_rng(seed).permutation(len(files))
    return [[files[i] for i in order[f::k]] for f in range(k)]


def _subset(folder: Path, files: set[str], out: Path) -> Path:
    """`out` as a labeled folder holding only `files`, its images linked to the originals."""
    (out / "images").mkdir(parents=True)
    with (folder / "labels.csv").open(encoding="utf-8", newline="") as src, \
            (out / "labels.csv").open("w", encoding="utf-8", newline="") as dst:
        reader = csv.DictReader(src)
        writer = csv.DictWriter(dst, fieldnames=reader.fieldnames or [])
        writer.writeheader()
        for row in reader:
            if row["file"] in files:
                writer.writerow(row)
                (out / "images" / row["file"]).symlink_to((folder / "images" / row["file"])
                                                          .resolve())
    return out


def cross_validate(folder: Path, k: int = 5, steps: int = 300, recognizer: str = "fused",
                   seed: int = 0, threads: int = 2, checkpoint: Path | None = None,
                   recipe: dict | None = None) -> dict:
    """Adapted accuracy of `folder` by k-fold cross-validation, with the unadapted score of the
    same held-out images beside it. Every fold adapts `checkpoint` (default: the committed one)
    with `recipe` (keyword arguments of `adapt`: lr, own_share, augment, ...); "shipped" is that
    checkpoint itself, exported once, so the two columns differ only by the adaptation."""
    import torch

    from models.plate_recognizer.adapt import (
        RenderedPool,
        adapt,
        checkpoint_config,
        load_labeled,
    )
    from models.plate_recognizer.export import export
    from models.plate_recognizer.train import CHECKPOINT, load_checkpoint
    from models.quantize import use_model_dir
    from models.registry import REGISTRY, register

    checkpoint = checkpoint or CHECKPOINT  # one path for the export and every fold
    recipe = recipe or {}
    original = REGISTRY["plate_rec"]
    folds = fold_files(folder, k, seed)
    totals = {"images": 0, "correct_adapted": 0, "correct_shipped": 0}
    per_fold = []
    with tempfile.TemporaryDirectory(prefix="smartgate-cv-") as tmp:
        torch.set_num_threads(threads)
        model, _ = load_checkpoint(checkpoint, checkpoint_config(checkpoint))
        export(model.eval(), Path(tmp) / "base" / "plate_rec.onnx")
        rendering = time.monotonic()
        pool = RenderedPool.render(recipe.get("pool_size", 2000), seed)  # shared by the folds
        pool_minutes = round((time.monotonic() - rendering) / 60, 2)
        for f, held in enumerate(folds):
            train_files = {x for g, fold in enumerate(folds) if g != f for x in fold}
            plates = load_labeled(folder, train_files)
            model_dir = Path(tmp) / f"model-{f}"
            done = adapt(plates, model_dir, steps=steps, seed=seed + f, threads=threads,
                         checkpoint=checkpoint, pool=pool, **recipe)
            test = _subset(folder, set(held), Path(tmp) / f"fold-{f}")
            use_model_dir(Path(tmp) / "base")
            before = evaluate(test, recognizer=recognizer).summary()
            use_model_dir(model_dir)
            after = evaluate(test, recognizer=recognizer).summary()
            register(original)
            per_fold.append({"fold": f, "images": after["images"], "shipped": before["correct"],
                             "adapted": after["correct"], "adapt_minutes":
                             round(done["seconds"] / 60, 2), "steps": done["steps"]})
            totals["images"] += after["images"]
            totals["correct_adapted"] += after["correct"]
            totals["correct_shipped"] += before["correct"]
            log.info("fold %d/%d: shipped %d, adapted %d of %d (%.1f min adapting)", f + 1, k,
                     before["correct"], after["correct"], after["images"], done["seconds"] / 60)
    n = max(1, totals["images"])
    return {"dataset": str(folder), "folds": k, "steps": steps, "recognizer": recognizer,
            "checkpoint": str(checkpoint), "recipe": recipe, "threads": threads,
            **totals, "accuracy_shipped": round(totals["correct_shipped"] / n, 4),
            "accuracy_adapted": round(totals["correct_adapted"] / n, 4),
            "adapt_minutes_per_fold": round(sum(p["adapt_minutes"] for p in per_fold) / k, 2),
            "pool_render_minutes": pool_minutes,
            "per_fold": per_fold}
