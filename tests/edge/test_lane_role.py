"""A lane's checkpoint role: validated in the edge config, carried in every passage it sends."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from edge.assembly.passage import Observation, PassageAssembler
from edge.config import LaneConfig
from edge.recognition.results import PlateResult
from smartgate import contract

CAMERA = {"name": "front", "role": "front_plate", "source": "sim"}


def test_lane_role_is_validated() -> None:
    lane = LaneConfig.model_validate({"lane": "E1", "role": "yard_entry", "cameras": [CAMERA]})
    assert lane.role == "yard_entry"
    assert LaneConfig.model_validate({"lane": "L1", "cameras": [CAMERA]}).role is None
    with pytest.raises(ValidationError, match="role"):
        LaneConfig.model_validate({"lane": "L1", "role": "parking", "cameras": [CAMERA]})


def test_passage_carries_the_lane_role() -> None:
    a = PassageAssembler("huunghi", "edge-1", "E1", "entry", role="yard_entry")
    a.open(100.0)
    plate = PlateResult("29C12345", "29C12345", 0.9, "vn", 1, "white", (10, 10, 60, 30))
    a.add_plates([Observation("E1/front", 100.5, plate, "img1", "front_plate")])
    event = a.close(101.0)
    assert event is not None and event.role == "yard_entry"
    assert contract.parse_passage(event.to_json()).role == "yard_entry"
    old_edge = event.model_dump(mode="json", by_alias=True)
    del old_edge["role"]  # an edge from before roles: still valid, role None
    assert contract.PassageEvent.model_validate(old_edge).role is None
