"""Container body detectors: YOLO output decoding, a tiny YOLO ONNX model, the classical one."""

from __future__ import annotations

import numpy as np
import pytest

from edge.recognition.container_detect import (
    ClassicalContainerDetector,
    ContainerDetector,
    YoloOnnxContainerDetector,
    decode_yolo,
    letterbox,
    nms,
)
from tools.synth.containers import generate


def _v8(rows: list[list[float]]) -> np.ndarray:
    """(4 + nc, N) YOLOv8 output from rows of cx, cy, w, h, class scores..."""
    return np.asarray(rows, dtype=np.float32).T[None]


def test_nms_suppresses_overlaps_only() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], np.float32)
    assert nms(boxes, np.array([0.9, 0.8, 0.7]), 0.45) == [0, 2]
    assert nms(boxes, np.array([0.7, 0.8, 0.9]), 0.45) == [2, 1]


def test_decode_yolov8_layout_with_nms_per_class() -> None:
    out = _v8([
        [100, 100, 40, 20, 0.9, 0.1],
        [102, 101, 40, 20, 0.8, 0.1],  # duplicate of the first, suppressed
        [101, 100, 40, 20, 0.1, 0.7],  # same place, other class: kept
        [300, 200, 50, 50, 0.1, 0.2],  # below threshold
    ])  # fmt: skip
    found = decode_yolo(out, num_classes=2, conf=0.25)
    assert [(c, round(s, 2)) for _, s, c in found] == [(0, 0.9), (1, 0.7)]
    np.testing.assert_allclose(found[0][0], [80, 90, 120, 110])


def test_decode_yolov5_layout_multiplies_objectness() -> None:
    out = np.array([[[50, 60, 20, 10, 0.5, 0.9], [10, 10, 4, 4, 0.1, 0.9]]], np.float32)
    found = decode_yolo(out, num_classes=1, conf=0.25)
    assert len(found) == 1 and found[0][1] == pytest.approx(0.45)
    np.testing.assert_allclose(found[0][0], [40, 55, 60, 65])


def test_decode_rejects_wrong_class_count() -> None:
    with pytest.raises(ValueError, match="classes"):
        decode_yolo(np.zeros((1, 9, 100), np.float32), num_classes=2)


def test_letterbox_keeps_aspect() -> None:
    img, scale, px, py = letterbox(np.zeros((100, 200, 3), np.uint8), (64, 64))
    assert img.shape == (64, 64, 3) and scale == pytest.approx(0.32) and (px, py) == (0, 16)


def _tiny_yolo(path, boxes: np.ndarray, batch: int | str) -> None:
    """An ONNX model ignoring its image and emitting fixed YOLOv8 rows (cx cy w h s0 s1)."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    const = numpy_helper.from_array(boxes.T[None].astype(np.float32), "rows")
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["images"], ["m"], axes=[1, 2, 3], keepdims=0),
            helper.make_node("Mul", ["m", "zero"], ["z"]),
            helper.make_node("Reshape", ["z", "shape"], ["z3"]),
            helper.make_node("Add", ["rows", "z3"], ["output0"]),
        ],
        "tiny_yolo",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [batch, 3, 64, 64])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, None)],
        [
            const,
            numpy_helper.from_array(np.zeros(1, np.float32), "zero"),
            numpy_helper.from_array(np.array([-1, 1, 1], np.int64), "shape"),
        ],  # fmt: skip
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))


@pytest.mark.parametrize("batch", ["N", 1])
def test_yolo_onnx_detector_maps_boxes_to_frame(tmp_path, batch) -> None:
    rows = np.array([[32, 32, 32, 16, 0.9, 0.05], [10, 10, 4, 4, 0.05, 0.8]], np.float32)
    path = tmp_path / "tiny.onnx"
    _tiny_yolo(path, rows, batch)
    det = YoloOnnxContainerDetector(path, classes=("container", "chassis"), keep=("container",))
    assert isinstance(det, ContainerDetector)
    frames = [np.zeros((100, 200, 3), np.uint8), np.zeros((100, 200, 3), np.uint8)]
    found = det.detect(frames)
    assert len(found) == 2 and all(len(f) == 1 for f in found)
    # 200x100 letterboxed into 64x64: scale 0.32, pad y 16 -> box (16..48, 24..40) in input
    assert found[0][0].box == (50, 25, 150, 75) and found[0][0].label == "container"


def test_yolo_detector_reports_missing_model(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="not found"):
        YoloOnnxContainerDetector(tmp_path / "none.onnx")


def test_classical_detector_finds_a_corrugated_face() -> None:
    face = next(generate(1, seed=3))
    frame = np.full((720, 1280, 3), 200, np.uint8)  # plain sky/yard around the container
    frame[100:580, 300:940] = face.image
    det = ClassicalContainerDetector()
    assert isinstance(det, ContainerDetector)
    ((best, *_),) = det.detect([frame])
    x1, y1, x2, y2 = best.box
    assert x1 < 400 and x2 > 840 and y1 < 200 and y2 > 480
    assert det.detect([np.full((240, 320, 3), 200, np.uint8)]) == [[]]
