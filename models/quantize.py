"""Int8 copies of the PP-OCR models (onnxruntime quantization) and a folder override.

`quantize_models(folder)` writes `ppocr_det.onnx` and `ppocr_rec.onnx` (weights int8, activations
quantized on the fly) beside a `quantized.json` manifest; `use_model_dir(folder)` registers every
`<name>.onnx` of a folder under its registry name, so sessions created afterwards load it. The
edge uses `inference.model_dir`; `smartgate eval` and other commands honour the environment
variable SMARTGATE_MODEL_DIR (read by `models.registry.get_spec`).

`quantize_models(folder, calibration=N)` quantizes the recognizer statically instead (QDQ, int8
per-channel weights, uint8 activations with ranges calibrated on N rendered plates): the plates
come from `models.plate_recognizer.render` and are cut into lines and normalized the way the
edge's plate reader feeds the recognizer. That preparation is copied here from
`edge.recognition.plates` / `edge.recognition.ocr` (models sits below edge and does not import
it); tests/models/test_quantize.py checks the copy against the reader.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from models.plate_lines import LINE_HEIGHT, prepare_line, row_layouts
from models.registry import REGISTRY, create_session, file_sha256, get_spec, register

if TYPE_CHECKING:
    from onnx import GraphProto

log = logging.getLogger(__name__)

QUANTIZABLE = ("ppocr_det", "ppocr_rec")

REC_MAX_WIDTH = 1600  # widest recognizer input the reader builds
STATIC_OPSET = 13  # per-channel QDQ needs DequantizeLinear's axis (opset 13)
CALIBRATION_CHUNK = 16  # inputs whose activations are held before their ranges are merged
STATIC_OP_TYPES = ("Conv", "MatMul")  # the work; the rest stays float between the QDQ pairs
# Convolutions static quantization may keep in float (`float_keep`): the depthwise ones and the
# first K of the graph. Both off: keeping PP-OCRv6's depthwise convolutions and its first 18 (stem
# and first two stages) in float was slower and read fewer vn-real and lprnet-cn-crops plates
# than all int8 (docs/plates.md, "Static int8 (session 7)").
FLOAT_DEPTHWISE = False
FLOAT_LEADING_CONVS = 0


def quantize_models(
    folder: Path | str, names: tuple[str, ...] = QUANTIZABLE, per_channel: bool = False,
    calibration: int = 0, seed: int = 0, float_depthwise: bool = FLOAT_DEPTHWISE,
    float_leading: int = FLOAT_LEADING_CONVS,
) -> dict[str, Path]:
    """Write int8 copies of `names` into `folder`; returns name → written path.

    With `calibration` > 0 the recognizer is quantized statically, calibrated on that many
    rendered plates (seeded by `seed`), with the convolutions `float_keep` names left in float;
    other models are quantized dynamically.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    manifest = {}
    for name in names:
        spec = get_spec(name)
        source = spec.path
        target = folder / f"{name}.onnx"
        log.info("quantizing %s (%s)", name, source.name)
        if calibration and name == "ppocr_rec":
            floats = quantize_rec_static(source, target, rendered_rec_inputs(calibration, seed),
                                         float_depthwise, float_leading)
            method = (f"onnxruntime quantize_static QDQ, int8 per-channel weights, uint8 "
                      f"activations, MinMax over {calibration} rendered plates (seed {seed}), "
                      f"{', '.join(STATIC_OP_TYPES)} only; kept float: {', '.join(floats) or 'none'}")
        else:
            prepared = folder / f"{name}.pre.onnx"
            quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
            quantize_dynamic(str(prepared), str(target), weight_type=QuantType.QUInt8,
                             per_channel=per_channel)
            prepared.unlink(missing_ok=True)
            method = "onnxruntime quantize_dynamic uint8"
        written[name] = target
        manifest[name] = {
            "source": source.name, "source_sha256": spec.sha256, "sha256": file_sha256(target),
            "bytes": target.stat().st_size, "method": method,
        }
    (folder / "quantized.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False)
                                           + "\n")
    use_model_dir(folder)
    return written


def quantize_rec_static(
    source: Path, target: Path, inputs: Sequence[np.ndarray],
    float_depthwise: bool = FLOAT_DEPTHWISE, float_leading: int = FLOAT_LEADING_CONVS,
) -> list[str]:
    """Statically quantize the recognizer at `source` into `target` (QDQ), with activation
    ranges from `inputs` (recognizer input tensors, 1x3x48xW); returns the convolutions kept
    in float (`float_keep`)."""
    import onnx
    from onnx import version_converter
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if not inputs:
        raise ValueError("static quantization needs at least one calibration input")
    with tempfile.TemporaryDirectory(prefix="smartgate-quant-") as tmp:
        upgraded, prepared = Path(tmp) / "opset.onnx", Path(tmp) / "prepared.onnx"
        onnx.save(version_converter.convert_version(onnx.load(str(source)), STATIC_OPSET),
                  str(upgraded))
        quant_pre_process(str(upgraded), str(prepared), skip_symbolic_shape=True)
        graph = onnx.load(str(prepared)).graph
        floats = float_keep(graph, float_depthwise, float_leading)
        quantize_static(
            str(prepared), str(target), _Feeds(graph.input[0].name, inputs),
            quant_format=QuantFormat.QDQ, per_channel=True,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
            op_types_to_quantize=list(STATIC_OP_TYPES), nodes_to_exclude=floats,
            calibrate_method=CalibrationMethod.MinMax,
            extra_options={"CalibMaxIntermediateOutputs": CALIBRATION_CHUNK},
        )
    return floats


def float_keep(graph: GraphProto, depthwise: bool, leading: int) -> list[str]:
    """Names of the convolutions of `graph` to leave in float: the depthwise ones (`depthwise`)
    and the first `leading` in graph order."""
    from onnx import helper

    convs = [node for node in graph.node if node.op_type == "Conv"]
    keep = {node.name for node in convs[:leading]}
    if depthwise:
        keep |= {node.name for node in convs if any(
            a.name == "group" and helper.get_attribute_value(a) > 1 for a in node.attribute)}
    return [node.name for node in convs if node.name in keep]


class _Feeds:
    """onnxruntime's CalibrationDataReader over a list of input tensors."""

    def __init__(self, input_name: str, inputs: Sequence[np.ndarray]) -> None:
        self._feeds: Iterator[dict[str, np.ndarray]] = ({input_name: x} for x in inputs)

    def get_next(self) -> dict[str, np.ndarray] | None:
        """The next feed, None when done."""
        return next(self._feeds, None)


def rendered_rec_inputs(n: int, seed: int = 0) -> list[np.ndarray]:
    """Recognizer inputs from `n` rendered plate crops: every line the plate reader reads from a
    crop (the whole crop as one row and/or its two rows), prepared and normalized as it does."""
    from tqdm import tqdm

    from models.plate_recognizer.render import render_plate

    rng = np.random.default_rng(seed)
    inputs: list[np.ndarray] = []
    for _ in tqdm(range(n), desc="calibration plates", leave=False):
        crop = render_plate(rng).image
        inputs.extend(rec_input(prepare_line(line))
                      for lines in row_layouts(crop) for line in lines)
    return inputs


def rec_input(line: np.ndarray) -> np.ndarray:
    """One prepared BGR line as the recognizer's 1x3x48xW float input (width rounded up to 8,
    at least 4 heights; values in [-1, 1]), as `TextRecognizer` builds a batch of one."""
    h, w = line.shape[:2]
    width = min(REC_MAX_WIDTH, int(np.ceil(LINE_HEIGHT * max(w / h, 4.0) / 8) * 8))
    new_w = min(width, max(1, int(np.ceil(LINE_HEIGHT * w / h))))
    resized = cv2.resize(line, (new_w, LINE_HEIGHT)).astype(np.float32)
    out = np.zeros((1, 3, LINE_HEIGHT, width), dtype=np.float32)
    out[0, :, :, :new_w] = resized.transpose(2, 0, 1) / 127.5 - 1.0
    return out


def time_side_by_side(
    models: Sequence[Path], inputs: Sequence[np.ndarray], threads: int = 1
) -> list[list[float]]:
    """Seconds per call of each model on each input; the models take turns call by call, so
    a busy machine slows them alike. Each session is warmed up on the first input."""
    sessions = [create_session(path, threads) for path in models]
    names = [session.get_inputs()[0].name for session in sessions]
    for session, name in zip(sessions, names, strict=True):
        session.run(None, {name: inputs[0]})
    seconds: list[list[float]] = [[] for _ in sessions]
    for x in inputs:
        for session, name, out in zip(sessions, names, seconds, strict=True):
            start = time.perf_counter()
            session.run(None, {name: x})
            out.append(time.perf_counter() - start)
    return seconds


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
