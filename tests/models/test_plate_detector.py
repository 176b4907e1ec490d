"""The plate detector's scene renderer, training targets, training and export
(models/plate_detector)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge.recognition.plate_detect import PlateDetector
from models.plate_detector import scene

torch = pytest.importorskip("torch")

from models.plate_detector import train  # noqa: E402  (needs torch)
from models.plate_detector.model import STRIDE  # noqa: E402


def test_scenes_are_seeded_and_hold_their_plates() -> None:
    a = scene.render_scene(np.random.default_rng(5), 192, 256)
    b = scene.render_scene(np.random.default_rng(5), 192, 256)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.corners, b.corners)
    counts = []
    for seed in range(30):
        s = scene.render_scene(np.random.default_rng(seed), 192, 256)
        assert s.image.shape == (192, 256, 3) and s.image.dtype == np.uint8
        assert s.corners.shape[1:] == (4, 2)
        centres = s.corners.mean(axis=1)
        assert ((centres >= 0) & (centres <= (256, 192))).all()
        counts.append(len(s.corners))
    assert 0 in counts and max(counts) >= 2  # empty scenes and several plates both occur


def test_targets_peak_at_each_plate_centre_with_its_size() -> None:
    quad = np.array([[[40, 40], [120, 40], [120, 64], [40, 64]]], np.float32)
    empty = np.full((1, 4, 2), np.nan, np.float32)
    heat, size, weight = train.targets(np.concatenate([quad, empty]), (64, 64))
    r, c = np.unravel_index(heat.argmax(), heat.shape)
    assert heat.max() == 1.0 and (r, c) == (52 // STRIDE, 80 // STRIDE)
    assert np.exp(size[:, r, c]) == pytest.approx((80 / STRIDE, 24 / STRIDE), rel=1e-5)
    assert weight[r, c] == 1.0 and weight[0, 0] == 0.0


def test_training_lowers_the_loss_resumes_and_exports(tmp_path: Path) -> None:
    config = train.TrainConfig(
        data_dir=tmp_path / "train", val_dir=tmp_path / "val", train_samples=32,
        val_samples=8, scene_size=128, batch_size=8, lr=3e-3, warmup_steps=0, total_steps=40,
        checkpoint_minutes=60, export_minutes=60, eval_every=1000)
    ckpt, onnx = tmp_path / "checkpoint.pt", tmp_path / "plate_det.onnx"
    first = train.train(config, steps=4, out=ckpt, export_to=None)
    later = train.train(config, steps=36, out=ckpt, export_to=onnx)
    assert first["step"] == 4 and later["step"] == 40
    assert later["loss"] < first["loss"]
    assert torch.load(ckpt, weights_only=False)["step"] == 40
    import onnxruntime as ort

    detector = PlateDetector(ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"]))
    frame = scene.render_scene(np.random.default_rng(1), 360, 640).image
    found = detector.detect([frame, frame])
    assert found[0] == found[1]
    assert all(0 <= p.box[0] < p.box[2] <= 640 and 0 <= p.box[1] < p.box[3] <= 360
               for p in found[0])

