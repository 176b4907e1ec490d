"""Export the plate recognizer to ONNX (dynamo exporter, opset 18, dynamic batch) with the JSON
that travels beside it, checked against eager PyTorch in onnxruntime.

    smartgate models export-plates [--checkpoint PATH] [--out models/weights/plate_rec.onnx]
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from torch import nn

from models.plate_recognizer import render
from models.training import export_verified, write_model_json

log = logging.getLogger(__name__)


def export(model: nn.Module, out: Path, metrics: dict | None = None, atol: float = 1e-4) -> Path:
    """Write `out` (.onnx) and `out.with_suffix('.json')`; verify the ONNX in onnxruntime on a
    batch of 3 rendered crops. Returns `out`.
    """
    model = model.eval().to(memory_format=torch.contiguous_format)
    h, w = render.HEIGHT, render.WIDTH
    example = torch.rand(2, 1, h, w)  # batch 2: a batch-1 example silently fixes the batch to 1
    rng = np.random.default_rng(0)
    x = np.stack([render.render_plate(rng).image.mean(axis=2) for _ in range(3)])
    x = (x[:, None] / 255).astype(np.float32)
    batch = torch.export.Dim("batch", min=1, max=1024)
    shape = export_verified(model, example, {0: batch}, "probs", x, out, atol)
    write_model_json(out, {
        "name": "plate_rec",
        "task": "text_rec",
        "architecture": "CNN stem to 2x48 + transformer encoder (96 frames) + CTC head",
        "input": {"name": "image", "shape": ["N", 1, h, w], "dtype": "float32",
                  "colour": "grey", "range": [0.0, 1.0], "resize": "stretch"},
        "output": {"name": "probs", "shape": ["N", shape[1], shape[2]],
                   "meaning": "CTC probabilities; column 0 = blank, column i = charset[i - 1]"},
        "charset": render.CHARSET,
        "blank_index": 0,
        "license": "Apache-2.0",
        "training_data": "rendered by models/plate_recognizer/render.py only",
        "metrics": metrics or {},
    })
    return out
