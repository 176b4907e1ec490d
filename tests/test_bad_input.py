"""Bad input never crashes a parser: each gives a clear, specific rejection (property tests)."""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from central.domain.declarations import parse_csv, parse_json
from edge.config import ConfigError, load_edge_config
from edge.recognition.ocr import ImageError, check_image, decode_image
from smartgate import contract
from smartgate.contract import ContractError

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


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.sampled_from(["site", "node_id", "mqtt", "lanes", "max_batch", "bogus"]),
       value=yaml_values)
def test_edge_config_rejects_or_accepts_cleanly(tmp_path: Path, key: str, value) -> None:
    data = dict(VALID_EDGE, **{key: value})
    path = tmp_path / "lane.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    try:
        load_edge_config(path, env={})
    except ConfigError as exc:
        assert str(path) in str(exc)


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


@settings(max_examples=80)
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


@settings(max_examples=80)
@given(st.text(max_size=400))
def test_declaration_csv_never_crashes(text: str) -> None:
    header = "number,direction,tractor_plate\n"
    try:
        good, errors = parse_csv(header + text)
    except ValueError:
        return
    for err in errors:
        assert err.line >= 1 and err.reason


@settings(max_examples=80)
@given(st.text(max_size=300) | st.binary(max_size=300))
def test_declaration_json_never_crashes(payload) -> None:
    with contextlib.suppress(ValueError):
        parse_json(payload)


@settings(max_examples=80)
@given(st.dictionaries(st.sampled_from(
    ["schema", "version", "command_id", "site", "lane", "action", "issued_by", "message"]),
    st.none() | st.integers() | st.text(max_size=20), max_size=8))
def test_command_payloads_never_crash(data: dict) -> None:
    import json

    with contextlib.suppress(ContractError):
        contract.parse_command(json.dumps(data).encode())
