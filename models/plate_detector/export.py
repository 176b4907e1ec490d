"""Export the plate detector to ONNX (dynamo exporter, opset 18, dynamic batch, height and
width) with the JSON that travels beside it, checked against eager PyTorch in onnxruntime.

    python -m models.plate_detector.export [--checkpoint PATH] [--out models/weights/plate_det.onnx]
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import torch

from models.plate_detector.model import STRIDE, Exported, PlateDetector
from models.plate_detector.scene import render_scene
from models.training import export_verified, write_model_json

log = logging.getLogger(__name__)

PACKAGE_DIR = Path(__file__).resolve().parent
CHECKPOINT = PACKAGE_DIR / "checkpoint.pt"
ONNX_OUT = PACKAGE_DIR.parent / "weights" / "plate_det.onnx"
INPUT_SIDE = 384  # long side of the letterboxed frame the edge feeds the detector


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
    wrapped = Exported(model.eval()).eval()
    example = torch.rand(2, 3, 256, 320)
    dims = {0: torch.export.Dim("batch", min=1, max=64),
            2: 32 * torch.export.Dim("h32", min=1, max=64),
            3: 32 * torch.export.Dim("w32", min=1, max=64)}
    scene = render_scene(np.random.default_rng(0), 224, INPUT_SIDE)
    x = (scene.image.transpose(2, 0, 1)[None] / 255).astype(np.float32)
    export_verified(wrapped, example, dims, "maps", x, out, atol)
    write_model_json(out, {
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
        "license": "Apache-2.0",
        "training_data": "rendered by models/plate_detector/scene.py only",
        "metrics": metrics or {},
    })
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
