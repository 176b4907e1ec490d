"""Train the plate recognizer on pre-rendered crops, resuming from the committed checkpoint.

`train(config, steps)` runs `steps` more optimizer steps (or until the schedule's end), saving
model + optimizer + step + RNG state to the checkpoint every `checkpoint_minutes` and exporting
the ONNX every `export_minutes`, so a long run continues over several sittings:

    python -m models.plate_recognizer.train [--config PATH] [--steps N] [--no-resume]
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import yaml
from pydantic import BaseModel, ConfigDict, Field
from torch import nn
from tqdm import tqdm

from models.plate_recognizer import render
from models.plate_recognizer.model import PlateRecognizer, count_parameters
from models.training import cosine_lr, resolve_path

log = logging.getLogger(__name__)

PACKAGE_DIR = Path(__file__).resolve().parent
CONFIG = PACKAGE_DIR / "config.yaml"
CHECKPOINT = PACKAGE_DIR / "checkpoint.pt"
ONNX_OUT = PACKAGE_DIR.parent / "weights" / "plate_rec.onnx"


class TrainConfig(BaseModel):
    """What a training run needs; `config.yaml` holds the committed values."""

    model_config = ConfigDict(extra="forbid")

    seed: int = Field(0, description="seed of rendering, initialization and batch order")
    data_dir: Path = Field(Path("data/plate_recognizer/train"), description="training crops")
    val_dir: Path = Field(Path("data/plate_recognizer/val"), description="held-out crops")
    train_samples: int = Field(100_000, gt=0, description="crops rendered for training")
    val_samples: int = Field(4000, gt=0, description="held-out crops (seed + 1)")
    render_workers: int = Field(1, ge=0, description="extra processes while rendering")
    batch_size: int = Field(64, gt=0, description="crops per step")
    lr: float = Field(2e-3, gt=0, description="peak learning rate (AdamW)")
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay")
    warmup_steps: int = Field(200, ge=0, description="linear warmup steps")
    total_steps: int = Field(3000, gt=0, description="length of the cosine LR schedule")
    threads: int = Field(1, gt=0, description="torch intra-op threads")
    width: int = Field(128, gt=0, description="feature width of the encoder")
    layers: int = Field(2, gt=0, description="transformer encoder layers")
    heads: int = Field(4, gt=0, description="attention heads")
    checkpoint_minutes: float = Field(10, gt=0, description="checkpoint interval")
    export_minutes: float = Field(20, gt=0, description="ONNX export interval")
    eval_every: int = Field(200, gt=0, description="steps between held-out evaluations")
    eval_samples: int = Field(1000, gt=0, description="held-out crops per evaluation")


def load_config(path: Path = CONFIG) -> TrainConfig:
    """The training config in a YAML file."""
    return TrainConfig.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))


def build_model(config: TrainConfig) -> PlateRecognizer:
    """A fresh recognizer for the project's charset."""
    return PlateRecognizer(1 + len(render.CHARSET), config.width, config.layers, config.heads,
                           (render.HEIGHT, render.WIDTH))


@dataclass
class Dataset:
    """Pre-rendered crops (memmap) with their labels as charset indices (1-based)."""

    images: np.ndarray  # (N, H, W) uint8
    targets: list[list[int]]
    texts: list[str]

    @classmethod
    def open(cls, folder: Path, n: int, seed: int, workers: int) -> Dataset:
        """Open `folder`, rendering `n` crops with `seed` first if it holds none."""
        if not (folder / "labels.csv").is_file():
            log.info("rendering %d crops (seed %d) into %s", n, seed, folder)
            with tqdm(total=n, unit="img", desc="render", mininterval=5) as bar:
                render.render_dataset(folder, n, seed, workers, progress=bar.update)
        images = np.load(folder / "images.npy", mmap_mode="r")
        texts = [row["text"] for row in render.read_labels(folder / "labels.csv")]
        index = {c: i + 1 for i, c in enumerate(render.CHARSET)}
        return cls(images, [[index[c] for c in t] for t in texts], texts)

    def batch(self, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(images (B,1,H,W) float, flat targets, target lengths) of sample indices."""
        idx = np.sort(idx)
        x = torch.from_numpy(np.ascontiguousarray(self.images[idx])).float().div_(255)
        x = x.unsqueeze(1).contiguous(memory_format=torch.channels_last)
        tg = [self.targets[i] for i in idx]
        flat = torch.tensor([c for t in tg for c in t], dtype=torch.long)
        return x, flat, torch.tensor([len(t) for t in tg], dtype=torch.long)


def greedy(probs: np.ndarray) -> list[str]:
    """Best-path CTC decoding of (N, T, C) probabilities into texts."""
    out = []
    for seq in probs.argmax(axis=-1):
        chars, prev = [], 0
        for k in seq.tolist():
            if k != prev and k != 0:
                chars.append(render.CHARSET[k - 1])
            prev = k
        out.append("".join(chars))
    return out


def evaluate(model: nn.Module, data: Dataset, n: int, batch: int = 256) -> float:
    """Greedy exact-match accuracy on the first `n` crops of `data`."""
    model.eval()
    n = min(n, len(data.texts))
    right = 0
    with torch.inference_mode():
        for a in range(0, n, batch):
            idx = np.arange(a, min(n, a + batch))
            x, _, _ = data.batch(idx)
            texts = greedy(model(x).numpy())
            right += sum(t == data.texts[i] for t, i in zip(texts, idx, strict=True))
    model.train()
    return right / n


def lr_at(step: int, config: TrainConfig) -> float:
    """The learning rate of `step` under `config`'s warmup + cosine schedule."""
    return cosine_lr(step, config.lr, config.warmup_steps, config.total_steps)


def _batch_indices(step: int, n: int, batch: int, seed: int) -> np.ndarray:
    """The samples of step `step`: a seeded permutation per epoch, so a resumed run continues
    where it stopped."""
    per_epoch = n // batch
    epoch, k = divmod(step, per_epoch)
    perm = np.random.default_rng([seed, epoch]).permutation(n)
    return perm[k * batch:(k + 1) * batch]


def ctc_step(model: PlateRecognizer, opt: torch.optim.Optimizer, ctc: nn.CTCLoss,
             x: torch.Tensor, flat: torch.Tensor, lengths: torch.Tensor) -> float:
    """One optimizer step on a batch (images, flat targets, target lengths); returns the loss."""
    logp = model.logits(x).log_softmax(-1).transpose(0, 1)  # (T, N, C)
    frames = torch.full((x.shape[0],), logp.shape[0], dtype=torch.long)
    loss = ctc(logp, flat, frames, lengths)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), 5.0)
    opt.step()
    return float(loss.item())


def save_checkpoint(path: Path, model: nn.Module, opt: torch.optim.Optimizer, step: int,
                    config: TrainConfig, metrics: dict) -> None:
    """Write model + optimizer + step + RNG state atomically.

    Adam's moments are stored in bfloat16 (the optimizer casts them back to float32 on load),
    which keeps the committed checkpoint under the repository's 6 MB large-file guard.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    opt_state = opt.state_dict()
    opt_state = {**opt_state, "state": {
        k: {name: v.to(torch.bfloat16) if name.startswith("exp_avg") else v
            for name, v in per_param.items()}
        for k, per_param in opt_state["state"].items()}}
    state = {
        "model": model.state_dict(), "optimizer": opt_state, "step": step,
        "config": config.model_dump(mode="json"), "charset": render.CHARSET,
        "torch_rng": torch.get_rng_state(), "metrics": metrics,
    }
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
    log.info("checkpoint step %d -> %s", step, path)


def load_checkpoint(path: Path, config: TrainConfig) -> tuple[PlateRecognizer, dict]:
    """The model of a checkpoint and the checkpoint's state dict."""
    state = torch.load(path, map_location="cpu", weights_only=False)
    if state["charset"] != render.CHARSET:
        raise ValueError(f"checkpoint {path} was trained for another charset")
    model = build_model(config)
    model.load_state_dict(state["model"])
    return model, state


def train(config: TrainConfig, steps: int | None = None, resume: bool = True,
          out: Path = CHECKPOINT, export_to: Path | None = ONNX_OUT) -> dict:
    """Train for `steps` more steps (None: to the end of the schedule), checkpointing into
    `out` and exporting the ONNX to `export_to` (None: never). Returns the last metrics.
    """
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    train_data = Dataset.open(resolve_path(config.data_dir), config.train_samples, config.seed,
                              config.render_workers)
    val_data = Dataset.open(resolve_path(config.val_dir), config.val_samples, config.seed + 1,
                            config.render_workers)
    model = build_model(config)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    step = 0
    metrics: dict = {}
    if resume and out.is_file():
        model, state = load_checkpoint(out, config)
        opt = torch.optim.AdamW(model.parameters(), lr=config.lr,
                                weight_decay=config.weight_decay)
        opt.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
        step, metrics = state["step"], state.get("metrics", {})
        log.info("resumed from %s at step %d", out, step)
    model = model.to(memory_format=torch.channels_last)
    model.train()
    log.info("model: %d parameters, %d train / %d held-out crops", count_parameters(model),
             len(train_data.texts), len(val_data.texts))
    end = config.total_steps if steps is None else step + steps
    stop: list[int] = []  # SIGTERM: checkpoint and export at the next step, then return
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: stop.append(signum))
    try:
        with tqdm(total=end - step, unit="step", mininterval=10, desc="train") as bar:
            step, smooth, initial, metrics = _loop(
                config, model, opt, train_data, val_data, step, end, out, export_to, bar, stop)
    finally:
        signal.signal(signal.SIGTERM, previous)
    metrics["step"] = step
    if smooth is not None:
        metrics["loss"], metrics["initial_loss"] = round(smooth, 4), round(initial, 4)
    return metrics


def _loop(config: TrainConfig, model: PlateRecognizer, opt: torch.optim.Optimizer,
          train_data: Dataset, val_data: Dataset, step: int, end: int, out: Path,
          export_to: Path | None, bar: tqdm, stop: list[int],
          ) -> tuple[int, float | None, float, dict]:
    """The optimizer steps of one sitting; returns (step, smoothed loss, first loss, metrics)."""
    from models.plate_recognizer.export import export

    ctc = nn.CTCLoss(blank=0, zero_infinity=True)
    n = len(train_data.texts)
    last_ckpt = last_export = time.monotonic()
    smooth: float | None = None
    initial = math.nan
    metrics: dict = {}
    seen, t0 = 0, time.monotonic()
    while step < end:
        for group in opt.param_groups:
            group["lr"] = lr_at(step, config)
        x, flat, lengths = train_data.batch(_batch_indices(step, n, config.batch_size,
                                                           config.seed))
        value = ctc_step(model, opt, ctc, x, flat, lengths)
        step += 1
        seen += x.shape[0]
        if smooth is None:
            initial = value
        smooth = value if smooth is None else 0.98 * smooth + 0.02 * value
        bar.update(1)
        bar.set_postfix(loss=f"{smooth:.3f}", lr=f"{lr_at(step, config):.2e}")
        last = step == end or bool(stop)
        if step % config.eval_every == 0 or last:
            acc = evaluate(model, val_data, config.eval_samples)
            rate = seen / (time.monotonic() - t0)
            metrics = {"step": step, "loss": round(smooth, 4), "val_accuracy": round(acc, 4),
                       "img_per_s": round(rate, 1)}
            log.info("step %d loss %.4f held-out greedy accuracy %.4f (%.1f img/s)",
                     step, smooth, acc, rate)
        now = time.monotonic()
        if now - last_ckpt > 60 * config.checkpoint_minutes or last:
            save_checkpoint(out, model, opt, step, config, metrics)
            last_ckpt = now
        if export_to is not None and (now - last_export > 60 * config.export_minutes or last):
            export(model, export_to, metrics={**metrics, "steps": step})
            model = model.to(memory_format=torch.channels_last).train()
            last_export = now
        if stop:
            log.info("stopped by signal at step %d", step)
            break
    return step, smooth, initial, metrics


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
