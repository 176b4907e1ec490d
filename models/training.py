"""What the project's model trainers share: the LR schedule, config paths, a verified ONNX
export (torch → ONNX, checked in onnxruntime against the eager model) and the JSON beside it.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]
OPSET = 18


class ExportMismatchError(RuntimeError):
    """The exported ONNX does not reproduce the eager model's output."""


def cosine_lr(step: int, peak: float, warmup_steps: int, total_steps: int) -> float:
    """Linear warmup, then cosine decay to 2% of the peak at `total_steps`."""
    if step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    t = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return peak * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * t)))


def resolve_path(path: Path) -> Path:
    """`path` as given when absolute, else relative to the repository root."""
    return path if path.is_absolute() else ROOT / path


def export_verified(model: nn.Module, example: torch.Tensor, dynamic_shapes: dict,
                    output_name: str, check: np.ndarray, out: Path,
                    atol: float = 1e-4) -> tuple[int, ...]:
    """Export `model` to `out` (.onnx, input "image", opset `OPSET`) and verify it in onnxruntime
    on `check` against the eager model before it replaces `out`. Returns the output's shape."""
    import onnxruntime as ort

    logging.getLogger("onnx_ir").setLevel(logging.WARNING)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(model, (example,), dynamo=True, opset_version=OPSET,
                                    input_names=["image"], output_names=[output_name],
                                    dynamic_shapes={"x": dynamic_shapes}, verbose=False)
        program.save(str(tmp), external_data=False)
    with torch.inference_mode():
        expected = model(torch.from_numpy(check)).numpy()
    session = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: check})[0]
    diff = float(np.abs(got - expected).max())
    if got.shape != expected.shape or diff > atol:
        raise ExportMismatchError(f"ONNX differs from eager: shape {got.shape} vs "
                                  f"{expected.shape}, max diff {diff:.2e}")
    os.replace(tmp, out)
    log.info("exported %s (%.2f MB, max diff vs eager %.1e)", out, out.stat().st_size / 1e6, diff)
    return tuple(got.shape)


def write_model_json(out: Path, meta: dict) -> None:
    """Write the JSON beside the ONNX `out`: `meta` plus its opset, sha256 and size."""
    meta = {**meta, "opset": OPSET, "sha256": hashlib.sha256(out.read_bytes()).hexdigest(),
            "size_bytes": out.stat().st_size}
    out.with_suffix(".json").write_text(json.dumps(meta, ensure_ascii=False, indent=2) + "\n",
                                        encoding="utf-8")
