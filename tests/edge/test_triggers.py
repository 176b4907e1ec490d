"""Triggers and configuration: virtual loop on frames, MQTT payloads, config errors."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.assembly.triggers import (
    LoopState,
    TriggerError,
    loop_step,
    parse_trigger_payload,
    zone_grey,
)
from edge.config import ConfigError, VirtualLoopTrigger, load_edge_config
from edge.runtime.sources import Frame, clip_roi


def _lane(seed: int, truck: bool) -> np.ndarray:
    rng = np.random.default_rng(seed)
    frame = np.clip(rng.normal(100, 5, (360, 640, 3)), 0, 255).astype(np.uint8)
    if truck:
        cv2.rectangle(frame, (150, 80), (500, 330), (20, 30, 40), -1)
    return frame


def test_virtual_loop_switches_on_and_off_with_hysteresis() -> None:
    config = VirtualLoopTrigger(camera="front", zone=(100, 50, 440, 300), on_frames=2,
                                off_frames=3)
    script = [False] * 3 + [True] * 5 + [False] * 5
    state, switches = LoopState(), []
    for i, truck in enumerate(script):
        state, switched = loop_step(state, zone_grey(_lane(i, truck), config.zone), config)
        if switched is not None:
            switches.append((i, switched))
    assert switches == [(4, True), (10, False)]


def test_trigger_payloads() -> None:
    assert parse_trigger_payload(b"on") is True
    assert parse_trigger_payload(b" OFF\n") is False
    for bad in (b"maybe", b"\xff\xfe", b""):
        with pytest.raises(TriggerError):
            parse_trigger_payload(bad)


def test_roi_view_and_clipping() -> None:
    image = np.zeros((100, 200, 3), np.uint8)
    frame = Frame("L1/front", 0, 0.0, image, clip_roi((150, 50, 100, 100), image.shape))
    assert frame.view.shape == (50, 50, 3) and frame.offset == (150, 50)
    assert clip_roi((0, 0, 200, 100), image.shape) is None


def test_config_errors_name_the_key(tmp_path: Path) -> None:
    path = tmp_path / "edge.yaml"
    path.write_text(
        "site: s\nnode_id: n\nlanes:\n  - lane: L1\n    cameras:\n"
        "      - {name: front, source: /x, fsp: 3}\n"
    )
    with pytest.raises(ConfigError, match=r"lanes\.0\.cameras\.0\.fsp"):
        load_edge_config(path)
    path.write_text(
        "site: s\nnode_id: n\nlanes:\n  - lane: L1\n    cameras: [{name: f, source: /x}]\n"
        "    trigger: {type: weighbridge}\n"
    )
    with pytest.raises(ConfigError, match="weighbridge"):
        load_edge_config(path)
    path.write_text(
        "site: s\nnode_id: n\nlanes:\n  - lane: L1\n    cameras: [{name: f, source: /x}]\n"
        "    trigger: {type: virtual_loop, camera: f}\n"
    )
    config = load_edge_config(path, env={"SMARTGATE_EDGE_INFERENCE__MAX_BATCH": "4"})
    assert config.inference.max_batch == 4
