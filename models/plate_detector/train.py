"""Train the plate detector on pre-rendered scenes, resuming from the committed checkpoint.

`train(config, steps)` runs `steps` more optimizer steps (or until the schedule's end), saving
model + optimizer + step + RNG state to the checkpoint every `checkpoint_minutes` and exporting
the ONNX every `export_minutes`; SIGTERM checkpoints and exports at the next step:

    python -m models.plate_detector.train [--config PATH] [--steps N] [--no-resume]

Targets (CenterNet-style): a Gaussian per plate centre on the stride-4 grid (focal loss) and
the log of the plate's box size in cells at the cells near its centre (L1).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from pydantic import BaseModel, ConfigDict, Field
from torch import nn
from torch.nn import functional as F
from tqdm import tqdm

from models.plate_detector.export import CHECKPOINT, ONNX_OUT, export, load_checkpoint
from models.plate_detector.model import STRIDE, PlateDetector, count_parameters
from models.plate_detector.scene import render_scene
from models.training import cosine_lr, resolve_path

log = logging.getLogger(__name__)

PACKAGE_DIR = Path(__file__).resolve().parent
CONFIG = PACKAGE_DIR / "config.yaml"
MAX_PLATES = 3  # render_scene puts at most this many plates in a scene


class TrainConfig(BaseModel):
    """What a training run needs; `config.yaml` holds the committed values."""

    model_config = ConfigDict(extra="forbid")

    seed: int = Field(0, description="seed of rendering, initialization and batch order")
    data_dir: Path = Field(Path("data/plate_detector/train"), description="training scenes")
    val_dir: Path = Field(Path("data/plate_detector/val"), description="held-out scenes")
    train_samples: int = Field(10_000, gt=0, description="scenes rendered for training")
    val_samples: int = Field(300, gt=0, description="held-out scenes (seed + 1)")
    scene_size: int = Field(256, gt=0, description="side of the square training scenes")
    batch_size: int = Field(16, gt=0, description="scenes per step")
    lr: float = Field(3e-3, gt=0, description="peak learning rate (AdamW)")
    weight_decay: float = Field(5e-4, ge=0, description="AdamW weight decay")
    warmup_steps: int = Field(100, ge=0, description="linear warmup steps")
    total_steps: int = Field(8000, gt=0, description="length of the cosine LR schedule")
    threads: int = Field(1, gt=0, description="torch intra-op threads")
    checkpoint_minutes: float = Field(5, gt=0, description="checkpoint interval")
    export_minutes: float = Field(15, gt=0, description="ONNX export interval")
    eval_every: int = Field(250, gt=0, description="steps between held-out evaluations")


def load_config(path: Path = CONFIG) -> TrainConfig:
    """The training config in a YAML file."""
    return TrainConfig.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))


def render_dataset(folder: Path, n: int, seed: int, size: int) -> None:
    """Render `n` scenes into `folder`: images.npy (N, size, size, 3) uint8 and corners.npy
    (N, MAX_PLATES, 4, 2) float32, NaN where a scene has fewer plates."""
    folder.mkdir(parents=True, exist_ok=True)
    images = np.lib.format.open_memmap(folder / "images.tmp.npy", "w+", np.uint8,
                                       (n, size, size, 3))
    corners = np.full((n, MAX_PLATES, 4, 2), np.nan, np.float32)
    for i in tqdm(range(n), desc="render", unit="scene", mininterval=10):
        scene = render_scene(np.random.default_rng([seed, i]), size, size)
        images[i] = scene.image
        corners[i, :len(scene.corners)] = scene.corners
    images.flush()
    del images
    np.save(folder / "corners.npy", corners)
    os.replace(folder / "images.tmp.npy", folder / "images.npy")


def open_dataset(folder: Path, n: int, seed: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(images memmap, corners) of `folder`, rendering them first if missing."""
    if not (folder / "images.npy").is_file():
        log.info("rendering %d scenes (seed %d) into %s", n, seed, folder)
        render_dataset(folder, n, seed, size)
    return np.load(folder / "images.npy", mmap_mode="r"), np.load(folder / "corners.npy")


def targets(corners: np.ndarray, out_hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray,
                                                                    np.ndarray]:
    """Training targets of one scene's plate corners (K x 4 x 2, NaN rows ignored) on a grid of
    `out_hw` cells: heat (H, W) Gaussian peaks of 1 at the centre cells, size (2, H, W) log box
    width and height in cells, and the size loss weight (H, W)."""
    h, w = out_hw
    heat = np.zeros((h, w), np.float32)
    size = np.zeros((2, h, w), np.float32)
    weight = np.zeros((h, w), np.float32)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    for quad in corners:
        if np.isnan(quad).any():
            continue
        (x1, y1), (x2, y2) = quad.min(axis=0) / STRIDE, quad.max(axis=0) / STRIDE
        bw, bh = max(x2 - x1, 0.25), max(y2 - y1, 0.25)
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        ix, iy = int(np.clip(np.floor(cx), 0, w - 1)), int(np.clip(np.floor(cy), 0, h - 1))
        sx, sy = bw / 6 + 0.4, bh / 6 + 0.4
        g = np.exp(-((xs - ix) ** 2 / (2 * sx ** 2) + (ys - iy) ** 2 / (2 * sy ** 2)))
        heat = np.maximum(heat, g)
        near = g > 0.5
        size[0][near], size[1][near] = np.log(bw), np.log(bh)
        weight[near] = g[near]
    return heat, size, weight


def batch(images: np.ndarray, corners: np.ndarray, idx: np.ndarray, flip: np.ndarray
          ) -> tuple[torch.Tensor, ...]:
    """(images (B,3,H,W) in [0,1], heat, size, weight) of sample indices, mirrored where
    `flip` is true."""
    x = np.ascontiguousarray(images[np.sort(idx)])
    cs = corners[np.sort(idx)].copy()
    width = x.shape[2]
    for k in np.nonzero(flip)[0]:
        x[k] = x[k, :, ::-1]
        cs[k, :, :, 0] = width - cs[k, :, :, 0]
    out_hw = (x.shape[1] // STRIDE, x.shape[2] // STRIDE)
    heat, size, weight = zip(*(targets(c, out_hw) for c in cs), strict=True)
    t = torch.from_numpy(x).permute(0, 3, 1, 2).float().div_(255)
    return (t.contiguous(), torch.from_numpy(np.stack(heat)),
            torch.from_numpy(np.stack(size)), torch.from_numpy(np.stack(weight)))


def losses(out: torch.Tensor, heat: torch.Tensor, size: torch.Tensor,
           weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(focal heatmap loss, size L1) of a batch, each normalised by the number of plates."""
    p = torch.sigmoid(out[:, 0]).clamp(1e-4, 1 - 1e-4)
    pos = heat.ge(0.999).float()
    n = pos.sum().clamp(min=1.0)
    focal = -(pos * (1 - p) ** 2 * torch.log(p)
              + (1 - pos) * (1 - heat) ** 4 * p ** 2 * torch.log(1 - p)).sum() / n
    l1 = (F.l1_loss(out[:, 1:], size, reduction="none").sum(1) * weight).sum()
    return focal, l1 / weight.sum().clamp(min=1.0)


def peaks(heat: np.ndarray, thresh: float) -> list[tuple[int, int, float]]:
    """Local maxima (row, col, score) of a heatmap above `thresh`, best first."""
    t = torch.from_numpy(heat)[None, None]
    keep = (F.max_pool2d(t, 3, 1, 1) == t)[0, 0].numpy() & (heat >= thresh)
    rows, cols = np.nonzero(keep)
    return sorted(((int(r), int(c), float(heat[r, c])) for r, c in zip(rows, cols, strict=True)),
                  key=lambda p: -p[2])


def evaluate(model: PlateDetector, images: np.ndarray, corners: np.ndarray,
             thresh: float = 0.3) -> dict:
    """Held-out plate recall and precision: a peak above `thresh` is right when it falls in a
    plate's box (each plate matched once)."""
    model.eval()
    hit = found = total = 0
    with torch.inference_mode():
        for a in range(0, len(images), 32):
            x = torch.from_numpy(np.array(images[a:a + 32])).permute(0, 3, 1, 2)
            heat = torch.sigmoid(model(x.float().div_(255))[:, 0]).numpy()
            for k, h in enumerate(heat):
                quads = [q for q in corners[a + k] if not np.isnan(q).any()]
                total += len(quads)
                matched: set[int] = set()
                for r, c, _ in peaks(h, thresh):
                    found += 1
                    px, py = (c + 0.5) * STRIDE, (r + 0.5) * STRIDE
                    for j, q in enumerate(quads):
                        (x1, y1), (x2, y2) = q.min(axis=0), q.max(axis=0)
                        if j not in matched and x1 <= px <= x2 and y1 <= py <= y2:
                            matched.add(j)
                            hit += 1
                            break
    model.train()
    return {"recall": round(hit / max(total, 1), 4), "precision": round(hit / max(found, 1), 4)}


def lr_at(step: int, config: TrainConfig) -> float:
    """The learning rate of `step` under `config`'s warmup + cosine schedule."""
    return cosine_lr(step, config.lr, config.warmup_steps, config.total_steps)


def _batch_indices(step: int, n: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The samples of step `step` and which to mirror: a seeded permutation per epoch, so a
    resumed run continues where it stopped."""
    per_epoch = n // size
    epoch, k = divmod(step, per_epoch)
    perm = np.random.default_rng([seed, epoch]).permutation(n)
    flip = np.random.default_rng([seed, epoch, k]).random(size) < 0.5
    return perm[k * size:(k + 1) * size], flip


def save_checkpoint(path: Path, model: nn.Module, opt: torch.optim.Optimizer, step: int,
                    config: TrainConfig, metrics: dict) -> None:
    """Write model + optimizer + step + RNG state atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step,
             "config": config.model_dump(mode="json"), "torch_rng": torch.get_rng_state(),
             "metrics": metrics}
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
    log.info("checkpoint step %d -> %s", step, path)


def train(config: TrainConfig, steps: int | None = None, resume: bool = True,
          out: Path = CHECKPOINT, export_to: Path | None = ONNX_OUT) -> dict:
    """Train for `steps` more steps (None: to the end of the schedule), checkpointing into
    `out` and exporting the ONNX to `export_to` (None: never). Returns the last metrics."""
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    images, corners = open_dataset(resolve_path(config.data_dir), config.train_samples, config.seed,
                                   config.scene_size)
    val_images, val_corners = open_dataset(resolve_path(config.val_dir), config.val_samples,
                                           config.seed + 1, config.scene_size)
    val_images = np.asarray(val_images)
    model = PlateDetector()
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    step, metrics = 0, {}
    if resume and out.is_file():
        model, state = load_checkpoint(out)
        opt = torch.optim.AdamW(model.parameters(), lr=config.lr,
                                weight_decay=config.weight_decay)
        opt.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
        step, metrics = state["step"], state.get("metrics", {})
        log.info("resumed from %s at step %d", out, step)
    model.train()
    log.info("model: %d parameters, %d train / %d held-out scenes", count_parameters(model),
             len(images), len(val_images))
    end = config.total_steps if steps is None else min(config.total_steps, step + steps)
    stop: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: stop.append(signum))
    last_ckpt = last_export = time.monotonic()
    smooth: float | None = None
    t0, start = time.monotonic(), step
    try:
        with tqdm(total=end - step, unit="step", mininterval=10, desc="train") as bar:
            while step < end:
                for group in opt.param_groups:
                    group["lr"] = lr_at(step, config)
                idx, flip = _batch_indices(step, len(images), config.batch_size, config.seed)
                x, heat, size, weight = batch(images, corners, idx, flip)
                focal, l1 = losses(model(x), heat, size, weight)
                loss = focal + 0.5 * l1
                opt.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(model.parameters(), 5.0)
                opt.step()
                step += 1
                value = float(loss.item())
                smooth = value if smooth is None else 0.98 * smooth + 0.02 * value
                bar.update(1)
                bar.set_postfix(loss=f"{smooth:.3f}", focal=f"{focal.item():.3f}",
                                l1=f"{l1.item():.3f}", refresh=False)
                last = step == end or bool(stop)
                if step % config.eval_every == 0 or last:
                    metrics = {"step": step, "loss": round(smooth, 4),
                               "minutes": round((time.monotonic() - t0) / 60, 1),
                               "steps_this_sitting": step - start,
                               **evaluate(model, val_images, val_corners)}
                    log.info("step %d: %s", step, metrics)
                now = time.monotonic()
                last = last or bool(stop)  # a signal during the evaluation
                if now - last_ckpt > 60 * config.checkpoint_minutes or last:
                    save_checkpoint(out, model, opt, step, config, metrics)
                    last_ckpt = now
                if export_to is not None and (now - last_export > 60 * config.export_minutes
                                              or last):
                    export(model, export_to, metrics=metrics)
                    model.train()
                    last_export = now
                if stop:
                    log.info("stopped by signal at step %d", step)
                    break
    finally:
        signal.signal(signal.SIGTERM, previous)
    return metrics


def main(argv: list[str] | None = None) -> None:
    """Command line: train (resuming), checkpointing and exporting as it goes."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=CONFIG)
    parser.add_argument("--steps", type=int, default=None, help="steps in this sitting")
    parser.add_argument("--no-resume", action="store_true", help="start from scratch")
    parser.add_argument("--out", type=Path, default=CHECKPOINT, help="checkpoint path")
    parser.add_argument("--export-to", type=Path, default=ONNX_OUT, help="ONNX path")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    metrics = train(load_config(args.config), args.steps, not args.no_resume, args.out,
                    args.export_to)
    log.info("done: %s", metrics)


if __name__ == "__main__":
    main()
