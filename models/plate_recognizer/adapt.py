"""Site adaptation: fine-tune the shipped plate recognizer on a site's labeled plates.

`adapt(folders, out_dir)` reads labeled folders in the `labels.csv` format of the evaluation sets
(`file,text,region,rows,x1,y1,x2,y2`: crops, or scenes with a plate box), starts from the shipped
checkpoint (or a given one), fine-tunes on the site's plates seen through the renderer's camera
model, three quarters of each batch, mixed with plates rendered once into a pool (so the model
keeps every layout it knew), and writes a model folder the edge loads (`inference.model_dir`) and
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
from models.plate_recognizer.train import CHECKPOINT, TrainConfig, ctc_step, load_checkpoint

log = logging.getLogger(__name__)

READ_REGIONS = ("vn", "cn")
BOX_MARGIN = 0.06  # a labeled plate box is widened by this share on each side
KEEP_SCALE = 2  # a labeled plate is kept at this multiple of the model's input size (for augment)
AUGMENTS = ("light", "camera")


class LabeledDataError(ValueError):
    """A labeled folder that cannot be used (no labels.csv, or no usable row)."""


@dataclass(frozen=True)
class LabeledPlate:
    """One labeled plate image, cut to the plate, grey at the model's input size."""

    image: np.ndarray  # (HEIGHT, WIDTH) uint8
    text: str
    source: str  # folder/file
    rows: int = 1
    large: np.ndarray | None = None  # (KEEP_SCALE * HEIGHT, KEEP_SCALE * WIDTH, 3) uint8 BGR


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
            large = cv2.resize(crop if crop.ndim == 3 else cv2.cvtColor(crop, cv2.COLOR_GRAY2BGR),
                               (KEEP_SCALE * render.WIDTH, KEEP_SCALE * render.HEIGHT),
                               interpolation=cv2.INTER_AREA)
            rows = int(row["rows"]) if (row.get("rows") or "").isdigit() else 1
            out.append(LabeledPlate(to_input(crop), text, f"{folder.name}/{row['file']}", rows,
                                    large))
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


def _camera(plate: LabeledPlate, rng: np.random.Generator) -> np.ndarray:
    """A real crop seen again through the renderer's camera model (crop jitter, perspective,
    rotation, low resolution, light, blur, noise, JPEG): grey at the model's input size."""
    if plate.large is None:
        return _jitter(plate.image, rng)
    for _ in range(4):
        image = render.camera(plate.large, rng, plate.rows)
        if cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).std() >= render.MIN_CONTRAST:
            return to_input(image)
    return _jitter(plate.image, rng)  # washed out every time: the light variation instead


def _own_batch(plates: list[LabeledPlate], picks: np.ndarray, rng: np.random.Generator,
               augment: str, camera_share: float) -> np.ndarray:
    if augment == "camera":
        return np.stack([_camera(plates[i], rng) if rng.random() < camera_share
                         else _jitter(plates[i].image, rng) for i in picks])
    return np.stack([_jitter(plates[i].image, rng) for i in picks])


@dataclass(frozen=True)
class RenderedPool:
    """Rendered plates drawn from while adapting (so the model keeps every layout it knew),
    rendered once: rendering on the fly cost more than the optimizer steps themselves."""

    images: np.ndarray  # (N, HEIGHT, WIDTH) uint8 grey
    texts: list[str]

    @classmethod
    def render(cls, n: int, seed: int) -> RenderedPool:
        """`n` rendered plates (all layouts by weight, the camera model on each) of `seed`."""
        rng = np.random.default_rng([seed, 7])
        samples = [render.render_plate(rng)
                   for _ in tqdm(range(n), desc="render", unit="plate", mininterval=5)]
        return cls(np.stack([to_input(s.image) for s in samples]), [s.text for s in samples])


def checkpoint_config(checkpoint: Path) -> TrainConfig:
    """The training config stored in `checkpoint` (its architecture), not today's config.yaml."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    return TrainConfig.model_validate(state["config"])


def adapt(
    plates: list[LabeledPlate], out_dir: Path, steps: int = 400, minutes: float = 30.0,
    lr: float = 1e-3, batch: int = 32, seed: int = 0, threads: int = 2,
    checkpoint: Path | None = None, own_share: float = 0.75, augment: str = "camera",
    camera_share: float = 0.7, stem_lr: float = 1.0, warmup: int = 20,
    pool: RenderedPool | None = None, pool_size: int = 2000,
) -> dict:
    """Fine-tune the model of `checkpoint` (default: the committed one) on `plates` for `steps` (or until `minutes` pass) and
    write the model folder `out_dir`. Each batch holds `own_share` of the site's plates (varied by
    `augment`: "light" shift/scale/blur/contrast, or "camera": the renderer's camera model on
    `camera_share` of them) and rendered plates for the rest; the CNN stem learns at `stem_lr`
    times `lr`. The rendered plates come from `pool` (default: `pool_size` rendered here, inside
    the time budget). Returns what was done (steps, loss before/after, seconds)."""
    from models.plate_recognizer.export import export

    if not plates:
        raise LabeledDataError("no labeled plate the recognizer can read (regions vn, cn)")
    if augment not in AUGMENTS:
        raise ValueError(f"augment {augment!r}: one of {', '.join(AUGMENTS)}")
    checkpoint = checkpoint or CHECKPOINT
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    model, _ = load_checkpoint(checkpoint, checkpoint_config(checkpoint))
    model = model.to(memory_format=torch.channels_last).train()
    index = {c: i + 1 for i, c in enumerate(render.CHARSET)}
    stem = [p for n, p in model.named_parameters() if n.startswith("stem.")]
    rest = [p for n, p in model.named_parameters() if not n.startswith("stem.")]
    groups = [{"params": rest, "scale": 1.0}]
    if stem_lr > 0:
        groups.append({"params": stem, "scale": stem_lr})
    else:
        for p in stem:
            p.requires_grad_(False)
    opt = torch.optim.AdamW(groups, lr=lr, weight_decay=0.01)
    ctc = nn.CTCLoss(blank=0, zero_infinity=True)
    rng = np.random.default_rng(seed)
    own_n = min(batch, max(1, round(batch * own_share)))
    started, losses = time.monotonic(), []
    if pool is None and own_n < batch:
        pool = RenderedPool.render(pool_size, seed)
    done = 0
    for step in tqdm(range(steps), desc="adapt", unit="step", mininterval=5):
        if time.monotonic() - started > 60 * minutes:
            log.warning("adaptation stopped at step %d: the %.0f-minute budget is spent", step,
                        minutes)
            break
        for group in opt.param_groups:  # short warmup, cosine to 10%
            group["lr"] = group["scale"] * lr * min(1.0, (step + 1) / max(1, warmup)) * (
                0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / steps)))
        picks = rng.integers(0, len(plates), own_n)
        images = _own_batch(plates, picks, rng, augment, camera_share)
        texts = [plates[i].text for i in picks]
        if own_n < batch and pool is not None:
            drawn = rng.integers(0, len(pool.texts), batch - own_n)
            images = np.concatenate([images, pool.images[drawn]])
            texts += [pool.texts[i] for i in drawn]
        x = torch.from_numpy(images).float().div_(255).unsqueeze(1)
        x = x.contiguous(memory_format=torch.channels_last)
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
        "recipe": {"lr": lr, "batch": batch, "own_share": own_share, "augment": augment,
                   "camera_share": camera_share, "stem_lr": stem_lr, "warmup": warmup,
                   "rendered_pool": len(pool.texts) if pool is not None else 0,
                   "checkpoint": str(checkpoint)},
    }
    export(model.eval(), out_dir / "plate_rec.onnx", metrics={"adapted": summary})
    (out_dir / "adapted.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    log.info("adapted model in %s: %s", out_dir, summary)
    return summary
