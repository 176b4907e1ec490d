"""Export the plate recognizer to ONNX (dynamo exporter, opset 18, dynamic batch) with the JSON
that travels beside it, checked against eager PyTorch in onnxruntime.

    smartgate models export-plates [--checkpoint PATH] [--out models/weights/plate_rec.onnx]
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from models.plate_recognizer import render

log = logging.getLogger(__name__)

OPSET = 18


class ExportMismatchError(RuntimeError):
    """The exported ONNX does not reproduce the eager model's output."""


def export(model: nn.Module, out: Path, metrics: dict | None = None, atol: float = 1e-4) -> Path:
    """Write `out` (.onnx) and `out.with_suffix('.json')`; verify the ONNX in onnxruntime on a
    batch of 3 rendered crops. Returns `out`.
    """
    import onnxruntime as ort

    logging.getLogger("onnx_ir").setLevel(logging.WARNING)
    model = model.eval().to(memory_format=torch.contiguous_format)
    h, w = render.HEIGHT, render.WIDTH
    example = torch.rand(2, 1, h, w)  # batch 2: a batch-1 example silently fixes the batch to 1
    batch = torch.export.Dim("batch", min=1, max=1024)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(model, (example,), dynamo=True, opset_version=OPSET,
                                    input_names=["image"], output_names=["probs"],
                                    dynamic_shapes={"x": {0: batch}}, verbose=False)
        program.save(str(tmp), external_data=False)
    rng = np.random.default_rng(0)
    x = np.stack([render.render_plate(rng).image.mean(axis=2) for _ in range(3)])
    x = (x[:, None] / 255).astype(np.float32)
    with torch.inference_mode():
        expected = model(torch.from_numpy(x)).numpy()
    session = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x})[0]
    diff = float(np.abs(got - expected).max())
    if got.shape != expected.shape or diff > atol:
        raise ExportMismatchError(f"ONNX differs from eager: shape {got.shape} vs "
                                  f"{expected.shape}, max diff {diff:.2e}")
    os.replace(tmp, out)
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    meta = {
        "name": "plate_rec",
        "task": "text_rec",
        "architecture": "CNN stem to 2x48 + transformer encoder (96 frames) + CTC head",
        "input": {"name": "image", "shape": ["N", 1, h, w], "dtype": "float32",
                  "colour": "grey", "range": [0.0, 1.0], "resize": "stretch"},
        "output": {"name": "probs", "shape": ["N", got.shape[1], got.shape[2]],
                   "meaning": "CTC probabilities; column 0 = blank, column i = charset[i - 1]"},
        "charset": render.CHARSET,
        "blank_index": 0,
        "opset": OPSET,
        "sha256": digest,
        "size_bytes": out.stat().st_size,
        "license": "Apache-2.0",
        "training_data": "rendered by models/plate_recognizer/render.py only",
        "metrics": metrics or {},
    }
    out.with_suffix(".json").write_text(json.dumps(meta, ensure_ascii=False, indent=2) + "\n",
                                        encoding="utf-8")
    log.info("exported %s (%.2f MB, max diff vs eager %.1e)", out, out.stat().st_size / 1e6, diff)
    return out
