"""Site adaptation: a small labeled folder changes the shipped model into a new model folder."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("torch")

from models.plate_recognizer import render  # noqa: E402
from models.plate_recognizer.adapt import (  # noqa: E402
    LabeledDataError,
    RenderedPool,
    _own_batch,
    adapt,
    checkpoint_config,
    load_labeled,
)
from models.plate_recognizer.train import CHECKPOINT  # noqa: E402


def _folder(tmp_path: Path, n: int = 12) -> Path:
    folder = tmp_path / "site"
    (folder / "images").mkdir(parents=True)
    rng = np.random.default_rng(7)
    with (folder / "labels.csv").open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(["file", "text", "region", "rows", "x1", "y1", "x2", "y2"])
        for i in range(n):
            sample = render.render_plate(rng)
            cv2.imwrite(str(folder / "images" / f"p{i}.jpg"), sample.image)
            out.writerow([f"p{i}.jpg", sample.text, sample.region, sample.rows, "", "", "", ""])
        out.writerow(["us.jpg", "ABC1234", "us", 1, "", "", "", ""])  # not read: skipped
    return folder


@pytest.mark.slow
def test_adapt_writes_a_different_model_folder(tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    plates = load_labeled(_folder(tmp_path))
    assert len(plates) == 12
    out = tmp_path / "model"
    summary = adapt(plates, out, steps=6, batch=8, threads=1)
    assert summary["steps"] == 6 and (out / "adapted.json").is_file()
    x = np.stack([p.image for p in plates[:4]])[:, None].astype(np.float32) / 255
    shipped = Path(__file__).resolve().parents[2] / "models" / "weights" / "plate_rec.onnx"
    outputs = []
    for path in (shipped, out / "plate_rec.onnx"):
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        outputs.append(session.run(None, {session.get_inputs()[0].name: x})[0])
    assert outputs[0].shape == outputs[1].shape
    assert np.abs(outputs[0] - outputs[1]).max() > 1e-4  # the weights moved


def test_a_folder_without_readable_plates_is_refused(tmp_path: Path) -> None:
    with pytest.raises(LabeledDataError):
        load_labeled(tmp_path)
    with pytest.raises(LabeledDataError):
        adapt([], tmp_path / "out")


def test_camera_variation_keeps_the_input_size_and_varies_each_crop(tmp_path: Path) -> None:
    plates = load_labeled(_folder(tmp_path, n=4))
    assert all(p.large is not None and p.large.shape[2] == 3 for p in plates)
    rng = np.random.default_rng(0)
    picks = np.array([0, 0, 1, 2, 3])
    out = _own_batch(plates, picks, rng, "camera", camera_share=1.0)
    assert out.shape == (5, render.HEIGHT, render.WIDTH) and out.dtype == np.uint8
    assert not np.array_equal(out[0], out[1])  # the same plate twice, seen differently
    assert np.abs(out[0].astype(int) - plates[0].image).mean() > 1  # not the crop itself


@pytest.mark.slow
def test_adapt_from_a_given_checkpoint_with_a_rendered_pool(tmp_path: Path) -> None:
    plates = load_labeled(_folder(tmp_path, n=6))
    checkpoint = tmp_path / "start.pt"
    checkpoint.write_bytes(CHECKPOINT.read_bytes())  # a frozen copy, as eval-adapted uses
    assert checkpoint_config(checkpoint).width > 0
    pool = RenderedPool.render(8, seed=1)
    assert pool.images.shape == (8, render.HEIGHT, render.WIDTH) and len(pool.texts) == 8
    summary = adapt(plates, tmp_path / "model", steps=3, batch=8, threads=1,
                    checkpoint=checkpoint, pool=pool, augment="camera", own_share=0.75,
                    stem_lr=0.0)
    assert summary["steps"] == 3 and summary["recipe"]["checkpoint"] == str(checkpoint)
    assert summary["recipe"]["rendered_pool"] == 8
    assert (tmp_path / "model" / "plate_rec.onnx").is_file()
    with pytest.raises(ValueError):
        adapt(plates, tmp_path / "other", steps=1, checkpoint=checkpoint, augment="heavy")
