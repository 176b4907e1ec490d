"""Site adaptation: fine-tune the shipped plate recognizer on a site's labeled plates.

`adapt(folders, out_dir)` reads labeled folders in the `labels.csv` format of the evaluation sets
(`file,text,region,rows,x1,y1,x2,y2`: crops, or scenes with a plate box), starts from the shipped
checkpoint, fine-tunes on the site's plates mixed half and half with plates rendered on the fly (so
the model keeps every layout it knew), and writes a model folder the edge loads (`inference.model_dir`) and
`smartgate eval --model-dir` uses: `plate_rec.onnx` + `plate_rec.json` + `adapted.json` (what it
was adapted on). Rows of regions the model does not read (US/EU/BR, containers) are skipped.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from models.plate_recognizer import render
from models.plate_recognizer.train import CHECKPOINT, ctc_step, load_checkpoint, load_config

log = logging.getLogger(__name__)

READ_REGIONS = ("vn", "cn")
BOX_MARGIN = 0.06  # a labeled plate box is widened by this share on each side


class LabeledDataError(ValueError):
    """A labeled folder that cannot be used (no labels.csv, or no usable row)."""


@dataclass(frozen=True)
class LabeledPlate:
    """One labeled plate image, cut to the plate, grey at the model's input size."""

    image: np.ndarray  # (HEIGHT, WIDTH) uint8
    text: str
    source: str  # folder/file


def _cut(image: np.ndarray, box: tuple[int, int, int, int] | None) -> np.ndarray:
    if box is None:
        return image
    x1, y1, x2, y2 = box
    mx, my = int((x2 - x1) * BOX_MARGIN), int((y2 - y1) * BOX_MARGIN)
    h, w = image.shape[:2]
    return image[max(0, y1 - my):min(h, y2 + my), max(0, x1 - mx):min(w, x2 + mx)]


def to_input(image: np.ndarray) -> np.ndarray:
    """A BGR or grey plate image -> (HEIGHT, WIDTH) uint8 grey, as the recognizer reads it."""
    small = cv2.resize(image, (render.WIDTH, render.HEIGHT), interpolation=cv2.INTER_AREA)
    return (small.mean(axis=2) if small.ndim == 3 else small).astype(np.uint8)


def load_labeled(folder: Path, files: set[str] | None = None) -> list[LabeledPlate]:
    """The usable plates of a labeled folder (only `files` when given); unreadable images and
    texts outside the model's charset are logged and skipped."""
    labels = folder / "labels.csv"
    if not labels.is_file():
        raise LabeledDataError(f"{folder}: no labels.csv")
    out = []
    with labels.open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            if row.get("region") not in READ_REGIONS or (files and row["file"] not in files):
                continue
            text = row.get("text", "")
            if not text or any(c not in render.CHARSET for c in text):
                log.warning("%s/%s: text %r outside the charset, skipped", folder.name,
                            row["file"], text)
                continue
            image = cv2.imread(str(folder / "images" / row["file"]), cv2.IMREAD_COLOR)
            if image is None:
                log.warning("%s/%s: unreadable image, skipped", folder.name, row["file"])
                continue
            coords = [row.get(k, "") for k in ("x1", "y1", "x2", "y2")]
            box = tuple(int(float(v)) for v in coords) if all(coords) else None
            crop = _cut(image, box)  # type: ignore[arg-type]
            if crop.size == 0:
                continue
            out.append(LabeledPlate(to_input(crop), text, f"{folder.name}/{row['file']}"))
    return out


def _jitter(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Light camera-like variation of a real crop: shift/scale, blur, contrast, noise."""
    h, w = image.shape
    m = cv2.getRotationMatrix2D((w / 2, h / 2), rng.uniform(-4, 4), rng.uniform(0.92, 1.08))
    m[:, 2] += rng.uniform(-0.05, 0.05, 2) * (w, h)
    out = cv2.warpAffine(image, m, (w, h), borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
    if rng.random() < 0.3:
        out = cv2.GaussianBlur(out, (3, 3), rng.uniform(0.3, 1.2))
    out = (out - 128) * rng.uniform(0.7, 1.3) + 128 + rng.uniform(-25, 25)
    out += rng.normal(0, rng.uniform(0, 6), out.shape)
    return np.clip(out, 0, 255).astype(np.uint8)


def adapt(
    plates: list[LabeledPlate], out_dir: Path, steps: int = 400, minutes: float = 30.0,
    lr: float = 3e-4, batch: int = 32, seed: int = 0, threads: int = 2,
    checkpoint: Path = CHECKPOINT,
) -> dict:
    """Fine-tune the shipped model on `plates` for `steps` (or until `minutes` pass) and write
    the model folder `out_dir`. Returns what was done (steps, loss before/after, seconds)."""
    from models.plate_recognizer.export import export

    if not plates:
        raise LabeledDataError("no labeled plate the recognizer can read (regions vn, cn)")
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    config = load_config()
    model, _ = load_checkpoint(checkpoint, config)
    model = model.to(memory_format=torch.channels_last).train()
    index = {c: i + 1 for i, c in enumerate(render.CHARSET)}
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    ctc = nn.CTCLoss(blank=0, zero_infinity=True)
    rng = np.random.default_rng(seed)
    own_n = max(1, batch // 2)
    started, losses = time.monotonic(), []
    done = 0
    for step in tqdm(range(steps), desc="adapt", unit="step", mininterval=5):
        if time.monotonic() - started > 60 * minutes:
            log.warning("adaptation stopped at step %d: the %.0f-minute budget is spent", step,
                        minutes)
            break
        for group in opt.param_groups:  # short warmup, cosine to 10%
            group["lr"] = lr * min(1.0, (step + 1) / 20) * (
                0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / steps)))
        picks = rng.integers(0, len(plates), own_n)
        own = np.stack([_jitter(plates[i].image, rng) for i in picks])
        samples = [render.render_plate(rng) for _ in range(batch - own_n)]
        images = np.concatenate([own, np.stack([to_input(s.image) for s in samples])])
        x = torch.from_numpy(images).float().div_(255).unsqueeze(1)
        x = x.contiguous(memory_format=torch.channels_last)
        texts = [plates[i].text for i in picks] + [s.text for s in samples]
        flat = torch.tensor([index[c] for t in texts for c in t])
        lengths = torch.tensor([len(t) for t in texts])
        losses.append(ctc_step(model, opt, ctc, x, flat, lengths))
        done = step + 1
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = {
        "steps": done, "labeled_plates": len(plates),
        "loss_first": round(float(np.mean(losses[:20])), 4),
        "loss_last": round(float(np.mean(losses[-20:])), 4),
        "seconds": round(time.monotonic() - started, 1),
        "sources": sorted({p.source.split("/")[0] for p in plates}),
    }
    export(model.eval(), out_dir / "plate_rec.onnx", metrics={"adapted": summary})
    (out_dir / "adapted.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    log.info("adapted model in %s: %s", out_dir, summary)
    return summary
