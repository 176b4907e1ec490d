"""Multi-frame, multi-camera container voting."""

from __future__ import annotations

import pytest

from edge.assembly.container_vote import (
    ContainerObservation,
    along_truck,
    observations_from_frame,
    vote_containers,
)
from edge.recognition.results import ContainerCodeResult
from smartgate.iso6346 import CONFIDENT, correct_code


def _read(text: str, size_type: str | None = "22G1") -> ContainerCodeResult:
    r = correct_code(text)
    assert r is not None
    return ContainerCodeResult(r.code, r.check_ok, r.confidence, size_type, (0, 0, 10, 10),
                               "horizontal", r.candidates)  # fmt: skip


def test_one_container_from_many_frames_with_a_misread() -> None:
    obs = [
        ContainerObservation("rear", 0, _read("CSQU3054383", "45G1")),
        ContainerObservation("rear", 1, _read("CSQU3054384", None)),  # check digit fails
        ContainerObservation("left", 0, _read("CSQU3O54383", "45G1")),
    ]
    (vote,) = vote_containers(obs)
    assert vote.code == "CSQU3054383" and vote.check_digit_ok
    assert vote.position == "single" and vote.size_type == "45G1"
    assert vote.observations == 3 and vote.cameras == ("left", "rear")
    assert vote.confidence >= CONFIDENT


def test_two_twenty_foot_containers_front_and_rear() -> None:
    obs = [
        ContainerObservation("left", 0, _read("MSCU1234566"), along=0.7),
        ContainerObservation("left", 0, _read("CSQU3054383"), along=0.3),
        ContainerObservation("right", 0, _read("MSCU1234566"), along=0.8),
        ContainerObservation("right", 3, _read("CSQU3054383"), along=0.2),
    ]
    votes = vote_containers(obs)
    assert [(v.code, v.position) for v in votes] == [
        ("CSQU3054383", "front"),
        ("MSCU1234566", "rear"),
    ]


def test_forty_foot_size_type_means_one_container() -> None:
    obs = [
        ContainerObservation("rear", 0, _read("CSQU3054383", "45G1")),
        ContainerObservation("rear", 1, _read("CSQU3054383", "45G1")),
        ContainerObservation("left", 0, _read("MSCU1234566", None)),
    ]
    votes = vote_containers(obs)
    assert [v.code for v in votes] == ["CSQU3054383"]


def test_positions_unknown_without_geometry_and_empty_input() -> None:
    obs = [ContainerObservation("a", 0, _read("MSCU1234566")),
           ContainerObservation("a", 0, _read("CSQU3054383"))]  # fmt: skip
    assert {v.position for v in vote_containers(obs)} == {"unknown"}
    assert vote_containers([]) == []


def test_repeated_weak_reads_are_never_confident() -> None:
    obs = [ContainerObservation("rear", i, _read("CSQU3054384")) for i in range(5)]
    (vote,) = vote_containers(obs)
    assert vote.confidence < CONFIDENT


def test_along_truck() -> None:
    assert along_truck((0, 0, 100, 10), 1000, "left") == pytest.approx(0.05)
    assert along_truck((0, 0, 100, 10), 1000, "right") == pytest.approx(0.95)
    with pytest.raises(ValueError, match="cab_side"):
        along_truck((0, 0, 1, 1), 10, "up")


def test_observations_from_frame_use_the_body_holding_the_code() -> None:
    left = _read("CSQU3054383")
    right = _read("MSCU1234566")
    left = ContainerCodeResult(**{**left.__dict__, "box": (100, 50, 200, 80)})
    right = ContainerCodeResult(**{**right.__dict__, "box": (700, 50, 800, 80)})
    bodies = [(0, 0, 500, 400), (520, 0, 1000, 400)]
    obs = observations_from_frame("left", 4, [left, right], 1000, "right", bodies)
    assert [o.along for o in obs] == [pytest.approx(0.75), pytest.approx(0.24)]
    votes = vote_containers(obs)
    assert [(v.code, v.position) for v in votes] == [
        ("MSCU1234566", "front"),
        ("CSQU3054383", "rear"),
    ]
    assert all(o.along is None for o in observations_from_frame("rear", 0, [left], 1000))
