"""Export the plate detector to ONNX (dynamo exporter, opset 18, dynamic batch, height and
width) with the JSON that travels beside it, checked against eager PyTorch in onnxruntime.

    python -m models.plate_detector.export [--checkpoint PATH] [--out models/weights/plate_det.onnx]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import warnings
from pathlib import Path

import numpy as np
import torch

from models.plate_detector.model import STRIDE, Exported, PlateDetector
from models.plate_detector.scene import render_scene

log = logging.getLogger(__name__)

PACKAGE_DIR = Path(__file__).resolve().parent
CHECKPOINT = PACKAGE_DIR / "checkpoint.pt"
ONNX_OUT = PACKAGE_DIR.parent / "weights" / "plate_det.onnx"
OPSET = 18
INPUT_SIDE = 384  # long side of the letterboxed frame the edge feeds the detector


class ExportMismatchError(RuntimeError):
    """The exported ONNX does not reproduce the eager model's output."""


def load_checkpoint(path: Path) -> tuple[PlateDetector, dict]:
    """The model of a checkpoint and the checkpoint's state dict."""
    state = torch.load(path, map_location="cpu", weights_only=False)
    model = PlateDetector()
    model.load_state_dict(state["model"])
    return model, state


def export(model: PlateDetector, out: Path, metrics: dict | None = None,
           atol: float = 1e-4) -> Path:
    """Write `out` (.onnx) and `out.with_suffix('.json')`; verify the ONNX in onnxruntime on a
    rendered 224 x 384 scene. Returns `out`."""
    import onnxruntime as ort

    logging.getLogger("onnx_ir").setLevel(logging.WARNING)
    wrapped = Exported(model.eval()).eval()
    example = torch.rand(2, 3, 256, 320)
    dims = {0: torch.export.Dim("batch", min=1, max=64),
            2: 32 * torch.export.Dim("h32", min=1, max=64),
            3: 32 * torch.export.Dim("w32", min=1, max=64)}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(wrapped, (example,), dynamo=True, opset_version=OPSET,
                                    input_names=["image"], output_names=["maps"],
                                    dynamic_shapes={"x": dims}, verbose=False)
        program.save(str(tmp), external_data=False)
    scene = render_scene(np.random.default_rng(0), 224, INPUT_SIDE)
    x = (scene.image.transpose(2, 0, 1)[None] / 255).astype(np.float32)
    with torch.inference_mode():
        expected = wrapped(torch.from_numpy(x)).numpy()
    session = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x})[0]
    diff = float(np.abs(got - expected).max())
    if got.shape != expected.shape or diff > atol:
        raise ExportMismatchError(f"ONNX differs from eager: shape {got.shape} vs "
                                  f"{expected.shape}, max diff {diff:.2e}")
    os.replace(tmp, out)
    meta = {
        "name": "plate_det",
        "task": "plate_det",
        "architecture": "strided conv backbone to stride 32 + top-down path to stride 4, "
                        "heatmap + log-size head (CenterNet-style)",
        "input": {"name": "image", "shape": ["N", 3, "H", "W"], "dtype": "float32",
                  "colour": "BGR", "range": [0.0, 1.0], "multiple_of": 32,
                  "resize": f"letterbox, long side {INPUT_SIDE}, pad right/bottom with 0"},
        "output": {"name": "maps", "shape": ["N", 3, "H/4", "W/4"], "stride": STRIDE,
                   "meaning": "channel 0 plate-centre probability; 1, 2 log box width, "
                              "height in cells"},
        "opset": OPSET,
        "sha256": hashlib.sha256(out.read_bytes()).hexdigest(),
        "size_bytes": out.stat().st_size,
        "license": "Apache-2.0",
        "training_data": "rendered by models/plate_detector/scene.py only",
        "metrics": metrics or {},
    }
    out.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    log.info("exported %s (%.2f MB, max diff vs eager %.1e)", out, out.stat().st_size / 1e6, diff)
    return out


def main(argv: list[str] | None = None) -> None:
    """Command line: export a checkpoint."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=CHECKPOINT)
    parser.add_argument("--out", type=Path, default=ONNX_OUT)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    model, state = load_checkpoint(args.checkpoint)
    export(model, args.out, metrics=state.get("metrics", {}))


if __name__ == "__main__":
    main()
