"""CN province classifier: rendered training cells and the committed model."""

from __future__ import annotations

import numpy as np

from edge.grammar import CN_PROVINCES
from edge.synth_plates import CELL_SHAPE, render_province_cell
from models.registry import REGISTRY, create_session, file_sha256


def test_rendered_cells_are_deterministic_grey_cells() -> None:
    a = render_province_cell("皖", np.random.default_rng(1))
    b = render_province_cell("皖", np.random.default_rng(1))
    assert a.shape == CELL_SHAPE and a.dtype == np.uint8 and np.array_equal(a, b)
    assert a.std() > 0


def test_province_model_is_registered_small_and_reads_rendered_cells() -> None:
    spec = REGISTRY["cn_province"]
    assert spec.sha256 == file_sha256(spec.path) and spec.path.stat().st_size < 1_000_000
    rng = np.random.default_rng(3)
    labels = np.arange(len(CN_PROVINCES)).repeat(2)
    cells = np.stack([render_province_cell(CN_PROVINCES[k], rng) for k in labels])
    session = create_session(spec.path)
    probs = session.run(None, {"cell": cells[:, None].astype(np.float32)})[0]
    assert probs.shape == (len(labels), len(CN_PROVINCES))
    assert np.mean(probs.argmax(axis=1) == labels) > 0.6
