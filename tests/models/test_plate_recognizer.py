"""The plate recognizer's renderer, training and export (models/plate_recognizer)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge.recognition.grammar import CN, VN, Grammar
from models.plate_recognizer import render

GRAMMAR_OF = {"vn": VN, "cn": CN}


@pytest.mark.parametrize("layout", render.LAYOUTS)
def test_every_layout_renders_labels_its_grammar_accepts(layout: str) -> None:
    rng = np.random.default_rng(7)
    for _ in range(25):
        sample = render.render_plate(rng, layout)
        assert sample.image.shape == (render.HEIGHT, render.WIDTH, 3)
        assert sample.image.dtype == np.uint8
        assert sample.rows in (1, 2)
        assert set(sample.text) <= set(render.CHARSET)
        grammar: Grammar = GRAMMAR_OF[sample.region]
        assert grammar.matches(sample.text), (layout, sample.text)


def test_layouts_cover_one_and_two_rows_of_both_regions() -> None:
    rng = np.random.default_rng(3)
    seen = {(s.region, s.rows) for s in (render.render_plate(rng, layout)
                                         for layout in render.LAYOUTS for _ in range(10))}
    assert seen == {("vn", 1), ("vn", 2), ("cn", 1), ("cn", 2)}


def test_rendering_is_seeded() -> None:
    a = render.render_plate(np.random.default_rng(11))
    b = render.render_plate(np.random.default_rng(11))
    assert a.text == b.text and np.array_equal(a.image, b.image)


def test_cn_typeface_forms_and_fixed_width_cells() -> None:
    latin, _ = render.fonts()
    dejavu = next(i for i, (path, _) in enumerate(latin) if "DejaVu" in path)
    assert render.form_of("1", dejavu) == "I"  # GA 36: a plain bar
    assert render.form_of("3", dejavu) == "\u01b7"  # flat-topped 3, where the font has it
    assert render.form_of("8", dejavu) == "8"
    rng = np.random.default_rng(0)
    _, spans = render._row_mask("A1B3", 60, 400, 0.5, dejavu, rng, mono=True)
    cells = {ch: x1 - x0 for x0, x1, ch in spans}
    assert cells["1"] >= round(render.MONO_CELL * 0.5 * 1.6 * 60) - 1  # a 1 keeps a whole cell
    _, spans = render._row_mask("A1B3", 60, 400, 0.5, dejavu, rng)
    proportional = {ch: x1 - x0 for x0, x1, ch in spans}
    assert proportional["1"] < cells["1"]  # proportional spacing: a narrow 1


def test_every_printed_character_is_in_the_font_that_draws_it() -> None:
    latin, cjk = render.fonts()
    for font_id in range(len(latin) * len(cjk)):
        drawn = set(render.CHARSET) | {render.form_of(c, font_id) for c in render.CN_FORMS}
        missing = [c for c in drawn if not render.has_glyph(c, *render.font_for(c, font_id))]
        assert not missing, (font_id, missing)  # a missing-glyph box would be learnt as the char


def test_dataset_is_the_same_whatever_the_workers(tmp_path: Path) -> None:
    one = render.render_dataset(tmp_path / "a", 1200, seed=5, workers=0)
    two = render.render_dataset(tmp_path / "b", 1200, seed=5, workers=1)
    assert np.array_equal(np.load(one / "images.npy"), np.load(two / "images.npy"))
    assert render.read_labels(one / "labels.csv") == render.read_labels(two / "labels.csv")


@pytest.mark.slow
def test_tiny_training_run_lowers_loss_resumes_and_exports(tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("torch")
    from models.plate_recognizer.train import TrainConfig, train

    config = TrainConfig(
        data_dir=tmp_path / "train", val_dir=tmp_path / "val", train_samples=400,
        val_samples=64, render_workers=0, batch_size=16, lr=3e-3, warmup_steps=10,
        total_steps=70, threads=1, eval_every=60, eval_samples=64,
    )
    ckpt, onnx_path = tmp_path / "ckpt.pt", tmp_path / "plate_rec.onnx"
    metrics = train(config, steps=60, resume=False, out=ckpt, export_to=None)
    assert metrics["step"] == 60
    assert metrics["loss"] < 0.6 * metrics["initial_loss"]
    resumed = train(config, steps=10, resume=True, out=ckpt, export_to=onnx_path)
    assert resumed["step"] == 70

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).random((5, 1, render.HEIGHT, render.WIDTH), dtype=np.float32)
    probs = session.run(None, {session.get_inputs()[0].name: x})[0]
    assert probs.shape[0] == 5 and probs.shape[2] == 1 + len(render.CHARSET)
    assert np.allclose(probs.sum(axis=-1), 1.0, atol=1e-4)
    assert onnx_path.with_suffix(".json").is_file()
