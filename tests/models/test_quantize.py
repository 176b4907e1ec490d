"""Static int8 quantization of the PP-OCR recognizer, calibrated on rendered plates."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from edge.recognition.ocr import TextRecognizer
from edge.recognition.plates import PlateReader, crop_layouts
from edge.recognition.plates import prepare_line as reader_prepare_line
from models import quantize
from models.plate_lines import prepare_line, row_layouts
from models.plate_recognizer.render import render_plate
from models.registry import REGISTRY, create_session


def test_calibration_inputs_are_what_the_reader_feeds_the_recognizer() -> None:
    rng = np.random.default_rng(3)
    recognizer = TextRecognizer.__new__(TextRecognizer)  # _normalize needs no session
    checked = 0
    for _ in range(30):
        crop = render_plate(rng).image
        reader_lines = [line for layout in crop_layouts(crop) for line in layout.lines]
        ours = [line for lines in row_layouts(crop) for line in lines]
        assert len(ours) == len(reader_lines)
        for mine, theirs in zip(ours, reader_lines, strict=True):
            assert np.array_equal(mine, theirs)
            prepared = reader_prepare_line(theirs)
            assert np.array_equal(prepare_line(mine), prepared)
            width = quantize.rec_input(prepared).shape[3]
            assert np.array_equal(quantize.rec_input(prepared)[0],
                                  recognizer._normalize(prepared, width))
            checked += 1
    assert checked >= 30


def test_feeds_end() -> None:
    feeds = quantize._Feeds("x", [np.zeros((1, 3, 48, 192), np.float32)] * 2)
    assert feeds.get_next() is not None and feeds.get_next() is not None
    assert feeds.get_next() is None


@pytest.mark.slow
def test_static_int8_recognizer_reads_a_rendered_plate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fp32 = REGISTRY["ppocr_rec"].path
    monkeypatch.setitem(REGISTRY, "ppocr_rec", REGISTRY["ppocr_rec"])  # quantize registers it
    written = quantize.quantize_models(tmp_path, ("ppocr_rec",), calibration=3, seed=1)
    path = written["ppocr_rec"]
    assert path == tmp_path / "ppocr_rec.onnx"
    assert REGISTRY["ppocr_rec"].path == path.resolve()
    manifest = json.loads((tmp_path / "quantized.json").read_text())
    assert "quantize_static QDQ" in manifest["ppocr_rec"]["method"]
    assert path.stat().st_size < fp32.stat().st_size / 3  # int8 weights
    session = create_session(path, threads=1)
    ops = {node.op_type for node in onnx.load(str(path)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    reader = PlateReader(recognizer=TextRecognizer(session), regions=("vn",),
                         province_recognizer=False)
    sample = render_plate(np.random.default_rng(11), "vn_long", augment=False)
    plates = reader.read_crops([sample.image])
    assert plates and plates[0].text == sample.text


def test_time_side_by_side_times_every_model_on_every_input(tmp_path: Path) -> None:
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("Relu", ["x"], ["y"])], "relu",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["N", 3])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["N", 3])])
    path = tmp_path / "relu.onnx"
    onnx.save(onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 13)]),
              str(path))
    inputs = [np.zeros((n, 3), np.float32) for n in (1, 2, 3)]
    seconds = quantize.time_side_by_side((path, path), inputs, threads=1)
    assert len(seconds) == 2 and all(len(s) == 3 and min(s) > 0 for s in seconds)


def test_float_keep_names_depthwise_and_leading_convolutions() -> None:
    def conv(name: str, group: int) -> onnx.NodeProto:
        return onnx.helper.make_node("Conv", [f"{name}_in", f"{name}_w"], [f"{name}_out"],
                                     name=name, group=group)

    nodes = [conv("a", 1), conv("b", 8), onnx.helper.make_node("Relu", ["r"], ["s"], name="r"),
             conv("c", 1), conv("d", 4), conv("e", 1)]
    graph = onnx.helper.make_graph(nodes, "g", [], [])
    assert quantize.float_keep(graph, depthwise=True, leading=1) == ["a", "b", "d"]
    assert quantize.float_keep(graph, depthwise=False, leading=3) == ["a", "b", "c"]
    assert quantize.float_keep(graph, depthwise=False, leading=0) == []
