"""Train the Chinese province-glyph classifier (`models/weights/cn_province.onnx`).

Training data is synthetic only: `edge.synth_plates.render_province_cell` renders each of the
31 province characters from the WenQuanYi Micro Hei font, squeezed and thickened like the plate
typeface, on blue/yellow/green/white/black plate colours, with the plate edge and the next letter
beside it, tilted, shifted, blurred, brought down to 9–24 px, noised and JPEG-compressed.

    pip install -e '.[train]'
    python -m models.train_province --samples 2000 --epochs 5

Prints the held-out synthetic accuracy and the sha256 to record in `models/registry.py`.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from edge.grammar import CN_PROVINCES
from edge.synth_plates import CELL_SHAPE, render_province_cell
from models.registry import WEIGHTS_DIR, file_sha256

log = logging.getLogger(__name__)


def make_set(per_class: int, seed: int, cache: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """`per_class` rendered cells of every province: (N, H, W) uint8 images and labels.

    With `cache`, a set rendered before with the same arguments is loaded from that folder.
    """
    path = cache / f"province-{per_class}-{seed}.npz" if cache else None
    if path is not None and path.is_file():
        with np.load(path) as data:
            return data["cells"], data["labels"]
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(CN_PROVINCES)), per_class)
    rng.shuffle(labels)
    cells = np.stack([render_province_cell(CN_PROVINCES[k], rng)
                      for k in tqdm(labels, desc=f"render seed {seed}", unit="cell")])
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, cells=cells, labels=labels)
    return cells, labels


def normalize(cells: torch.Tensor) -> torch.Tensor:
    """Per-cell standardisation (the exported model does the same on raw 0–255 input)."""
    x = cells.float()
    mean = x.mean(dim=(-2, -1), keepdim=True)
    std = x.std(dim=(-2, -1), keepdim=True).clamp_min(8.0)
    return (x - mean) / std


class ProvinceNet(nn.Module):
    """Four convolutions and a small dense head over a (N, 1, 32, 24) grey cell, 0–255."""

    def __init__(self, classes: int) -> None:
        super().__init__()

        def conv(cin: int, cout: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]

        self.features = nn.Sequential(
            *conv(1, 16), nn.MaxPool2d(2), *conv(16, 32), nn.MaxPool2d(2),
            *conv(32, 64), *conv(64, 64), nn.MaxPool2d(2),
        )
        cells = (CELL_SHAPE[0] // 8) * (CELL_SHAPE[1] // 8)
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.3), nn.Linear(64 * cells, 128),
                                  nn.ReLU(), nn.Linear(128, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.head(self.features(normalize(x))), dim=1)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(normalize(x)))


def train(per_class: int, epochs: int, seed: int, out: Path, cache: Path | None = None) -> float:
    """Train on rendered cells, export ONNX to `out`; return the held-out synthetic accuracy."""
    torch.manual_seed(seed)
    model = ProvinceNet(len(CN_PROVINCES))
    val_x, val_y = make_set(max(20, per_class // 10), seed + 1000, cache)
    xs, ys = make_set(per_class, seed, cache)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    steps = epochs * int(np.ceil(len(xs) / 256))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.05)
    x_all = torch.from_numpy(xs)[:, None]
    y_all = torch.from_numpy(ys).long()
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(x_all))
        bar = tqdm(range(0, len(order), 256), desc=f"epoch {epoch + 1}/{epochs}", unit="batch")
        for start in bar:
            idx = order[start : start + 256]
            loss = loss_fn(model.logits(x_all[idx]), y_all[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            bar.set_postfix(loss=f"{loss.item():.3f}")
        accuracy = evaluate(model, val_x, val_y)
        log.info("epoch %d: held-out synthetic accuracy %.4f", epoch + 1, accuracy)
    model.eval()
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(model, (torch.zeros(1, 1, *CELL_SHAPE),), str(out), dynamo=False,
                      input_names=["cell"], output_names=["probs"],
                      dynamic_axes={"cell": {0: "N"}, "probs": {0: "N"}}, opset_version=17)
    return accuracy


@torch.no_grad()
def evaluate(model: nn.Module, xs: np.ndarray, ys: np.ndarray) -> float:
    """Top-1 accuracy on rendered cells."""
    model.eval()
    pred = model(torch.from_numpy(xs)[:, None].float()).argmax(dim=1).numpy()
    return float(np.mean(pred == ys))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2000, help="rendered cells per province")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=WEIGHTS_DIR / "cn_province.onnx")
    parser.add_argument("--cache", type=Path, help="folder keeping rendered sets between runs")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    accuracy = train(args.samples, args.epochs, args.seed, args.out, args.cache)
    log.info("held-out synthetic accuracy %.4f; %s sha256 %s (%d bytes)", accuracy, args.out,
             file_sha256(args.out), args.out.stat().st_size)


if __name__ == "__main__":
    main()
