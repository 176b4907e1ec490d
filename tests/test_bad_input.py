"""Bad input never crashes a parser: each gives a clear, specific rejection (property tests)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from central.domain.declarations import DeclarationFileError, parse_csv, parse_json
from edge.config import ConfigError, load_edge_config
from edge.recognition.ocr import ImageError, check_image, decode_image
from smartgate import contract
from smartgate.contract import ContractError, RejectReason

VALID_EDGE = {
    "site": "huunghi",
    "node_id": "edge-01",
    "lanes": [{"lane": "L1", "cameras": [{"name": "front", "source": "/dev/null"}]}],
}

yaml_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=10,
)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.sampled_from(["site", "node_id", "mqtt", "lanes", "max_batch", "bogus"]),
       value=yaml_values)
def test_edge_config_rejects_or_accepts_cleanly(tmp_path: Path, key: str, value) -> None:
    data = dict(VALID_EDGE, **{key: value})
    path = tmp_path / "lane.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    try:
        load_edge_config(path, env={})
    except ConfigError as exc:
        assert str(path) in str(exc) and key in str(exc), exc


def test_edge_config_error_names_the_key(tmp_path: Path) -> None:
    path = tmp_path / "lane.yaml"
    data = dict(VALID_EDGE, mqtt={"port": 99999})
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=r"mqtt\.port"):
        load_edge_config(path, env={})
    path.write_text("site: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_edge_config(path, env={})


def test_env_override_is_validated(tmp_path: Path) -> None:
    path = tmp_path / "lane.yaml"
    path.write_text(yaml.safe_dump(VALID_EDGE))
    assert load_edge_config(path, env={"SMARTGATE_EDGE_MQTT__PORT": "1884"}).mqtt.port == 1884
    with pytest.raises(ConfigError, match=r"mqtt\.port"):
        load_edge_config(path, env={"SMARTGATE_EDGE_MQTT__PORT": "not-a-port"})


@settings(max_examples=80, deadline=None)
@given(st.binary(max_size=2048))
def test_uploaded_image_bytes_decode_or_raise_image_error(data: bytes) -> None:
    try:
        image = decode_image(data)
    except ImageError:
        return
    assert image.ndim == 3 and image.shape[2] == 3


@pytest.mark.parametrize(
    "array",
    [np.zeros((0, 0, 3), np.uint8), np.zeros((10, 10, 3), np.float32),
     np.zeros((10, 10, 5), np.uint8), np.zeros((1, 1), np.uint8)],
)
def test_unusable_arrays_raise_image_error(array: np.ndarray) -> None:
    with pytest.raises(ImageError):
        check_image(array)


CONTROL = {
    "number": "300000000001", "direction": "import", "tractor_plate": "12C-345.67",
    "trailer_plate": "12R-012.34", "containers": "CSQU3054383", "seals": "S1|S2",
    "gross_weight_kg": "31000", "window_start": "2025-05-08T08:00+07:00",
    "window_end": "2025-05-08T20:00+07:00", "gate": "huunghi", "lane_group": "cargo",
    "status": "valid", "company": "Công ty A", "goods_category": "general",
}  # fmt: skip
TRICKY = ["", " ", "300000000001", "2025-05-08T08:00", "2025-05-09T08:00+07:00", "CSQU3054384",
          "CSQU3054383;CSQU3054383", "12C-345.67;x", "-5", "1e309", "cancelled", "export", 'a"b',
          "x\ny", "桂F·A1234", "\x00", "S" * 40, "a" * 300]  # fmt: skip
_cells = st.one_of(st.sampled_from(TRICKY), st.text(max_size=40))


def _csv(*rows: dict[str, str]) -> str:
    import csv
    import io

    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(CONTROL), lineterminator="\r\n")  # quotes \r
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


@settings(max_examples=150, deadline=None)
@given(column=st.sampled_from(list(CONTROL)), value=_cells)
def test_declaration_csv_row_is_kept_or_rejected_naming_its_column(column: str, value: str) -> None:
    """Every example reaches the row parser (the header is whole and a control row parses);
    the fuzzed row is either a declaration or one RowError that names the fuzzed column."""
    fuzzed = {**CONTROL, "number": "300000000002", column: value}
    good, errors = parse_csv(_csv(CONTROL, fuzzed))
    assert good and good[0].number == "300000000001"
    if not errors:
        assert len(good) == 2
        return
    assert len(good) == 1 and len(errors) == 1
    (error,) = errors
    assert error.line >= 3
    named = column.removesuffix("_kg").split("_")[0]  # e.g. window_end -> window
    assert named in error.reason or (not value.strip() and "required" in error.reason), error


@settings(max_examples=80, deadline=None)
@given(st.text(max_size=300) | st.binary(max_size=300))
def test_declaration_json_bytes_parse_or_name_the_problem(payload: str | bytes) -> None:
    try:
        _good, errors = parse_json(payload)
    except DeclarationFileError as exc:
        assert str(exc).startswith(("not JSON:", "JSON must be a declaration object"))
        return
    for error in errors:
        assert error.line >= 1 and error.reason


_json_values = st.none() | st.booleans() | st.integers() | st.floats() | _cells | st.lists(
    st.text(max_size=12), max_size=5
)


@settings(max_examples=120, deadline=None)
@given(field=st.sampled_from(list(CONTROL)), value=_json_values)
def test_declaration_json_item_is_kept_or_rejected_naming_its_field(field: str, value) -> None:
    item = {**CONTROL, "seals": ["S1"], "containers": ["CSQU3054383"], field: value}
    good, errors = parse_json(json.dumps([item]))
    if good:
        assert not errors
        return
    (error,) = errors
    assert error.line == 1
    named = field.removesuffix("_kg").split("_")[0]
    assert named in error.reason, error


_COMMAND_FIELDS = ["schema", "version", "command_id", "site", "lane", "action", "issued_by",
                   "message"]  # fmt: skip


@settings(max_examples=120, deadline=None)
@given(st.dictionaries(st.sampled_from(_COMMAND_FIELDS),
                       st.none() | st.integers() | st.text(max_size=20) |
                       st.sampled_from(["smartgate.command", "open_barrier", "huunghi", "L1"]),
                       max_size=8),
       st.booleans())  # fmt: skip
def test_command_payload_is_parsed_or_rejected_with_its_reason(data: dict, v1: bool) -> None:
    if v1:  # reach the field validation too
        data = {"schema": "smartgate.command", "version": 1, **data}
    try:
        contract.parse_command(json.dumps(data).encode())
    except ContractError as exc:
        if data.get("schema") != "smartgate.command":
            assert exc.reason is RejectReason.WRONG_SCHEMA and "schema" in str(exc)
        elif data.get("version") != 1:
            assert exc.reason is RejectReason.UNSUPPORTED_VERSION and "version" in str(exc)
        else:
            assert exc.reason is RejectReason.INVALID
            assert any(f in str(exc) for f in _COMMAND_FIELDS), exc
