"""Int8 copies of the PP-OCR models (onnxruntime dynamic quantization) and a folder override.

`quantize_models(folder)` writes `ppocr_det.onnx` and `ppocr_rec.onnx` (weights int8, activations
quantized on the fly) beside a `quantized.json` manifest; `use_model_dir(folder)` registers every
`<name>.onnx` of a folder under its registry name, so sessions created afterwards load it. The
edge uses `inference.model_dir`; `smartgate eval` and other commands honour the environment
variable SMARTGATE_MODEL_DIR (read by `models.registry.get_spec`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path

from models.registry import REGISTRY, file_sha256, get_spec, register

log = logging.getLogger(__name__)

QUANTIZABLE = ("ppocr_det", "ppocr_rec")


def quantize_models(
    folder: Path | str, names: tuple[str, ...] = QUANTIZABLE, per_channel: bool = False
) -> dict[str, Path]:
    """Write int8 copies of `names` into `folder`; returns name → written path."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    manifest = {}
    for name in names:
        spec = get_spec(name)
        source = spec.path
        prepared = folder / f"{name}.pre.onnx"
        target = folder / f"{name}.onnx"
        log.info("quantizing %s (%s)", name, source.name)
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        quantize_dynamic(str(prepared), str(target), weight_type=QuantType.QUInt8,
                         per_channel=per_channel)
        prepared.unlink(missing_ok=True)
        written[name] = target
        manifest[name] = {
            "source": source.name, "source_sha256": spec.sha256, "sha256": file_sha256(target),
            "bytes": target.stat().st_size, "method": "onnxruntime quantize_dynamic uint8",
        }
    (folder / "quantized.json").write_text(json.dumps(manifest, indent=2) + "\n")
    use_model_dir(folder)
    return written


def use_model_dir(folder: Path | str) -> list[str]:
    """Register every `<registry name>.onnx` in `folder` in place of the packaged model."""
    folder = Path(folder).resolve()
    if not folder.is_dir():
        raise FileNotFoundError(f"model folder {folder} does not exist")
    used = []
    for path in sorted(folder.glob("*.onnx")):
        if path.stem in REGISTRY:
            register(replace(REGISTRY[path.stem], filename=str(path), source="project",
                             sha256=None))
            used.append(path.stem)
    log.info("models from %s: %s", folder, ", ".join(used) or "none")
    return used
