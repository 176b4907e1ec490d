"""Passage state machine on scripted sequences: voting, split, reversing, weight, gap mode."""

from __future__ import annotations

from datetime import UTC, datetime

from edge.assembly.container_vote import ContainerObservation
from edge.assembly.passage import Observation, PassageAssembler, vote_characters, vote_plates
from edge.recognition.results import ContainerCodeResult, PlateResult
from smartgate.contract import Weight


def obs(text: str, t: float, conf: float = 0.9, role: str = "front_plate",
        camera: str = "L1/front") -> Observation:
    plate = PlateResult(text, text, conf, "vn", 1, "white", (10, 10, 60, 30))
    return Observation(camera, t, plate, f"img{int(t * 10)}", role)


def lane(**kw) -> PassageAssembler:  # type: ignore[no-untyped-def]
    return PassageAssembler("huunghi", "edge-1", "L1", "entry", **kw)


def test_character_vote_fixes_a_different_character_in_each_read() -> None:
    reads = [obs("29C12845", 0, 0.8), obs("29C1Z345", 1, 0.7), obs("2BC12345", 2, 0.6),
             obs("29C123", 3, 0.99)]
    assert vote_characters(reads)[0] == "29C12345"  # type: ignore[index]
    voted = vote_plates(reads)
    assert voted is not None and voted.text == "29C12345"
    assert voted.candidates[0][0] == "29C12345"


def test_whole_text_vote_when_nothing_aligns() -> None:
    voted = vote_plates([obs("29C12345", 0, 0.9), obs("29C1234", 1, 0.5)])
    assert voted is not None and voted.text == "29C12345"


def test_trigger_on_to_off_gives_one_event_with_weight_and_containers() -> None:
    a = lane()
    a.open(100.0)
    assert a.add_plates([obs("29C12345", 100.5)]) == []
    a.add_plates([obs("29C12345", 101.0, role="rear_plate", camera="L1/rear")])
    result = ContainerCodeResult("CSQU3054383", True, 0.9, "22G1", (0, 0, 10, 10), "horizontal",
                                 (("CSQU3054383", 1.0),))
    a.add_containers([ContainerObservation("L1/side", 3, result)], image_id="side1")
    weight = Weight(gross_kg=32500, captured_at=datetime.fromtimestamp(102, UTC))
    a.set_weight(weight)
    event = a.close(103.0)
    assert event is not None and a.close(104.0) is None
    assert event.plate_front is not None and event.plate_front.text == "29C12345"
    assert event.plate_rear is not None and event.plate_rear.camera == "L1/rear"
    assert event.weight == weight
    assert [c.code for c in event.containers] == ["CSQU3054383"]
    assert event.containers[0].image_id == "side1"
    assert event.started_at.timestamp() == 100.0 and event.ended_at.timestamp() == 103.0
    assert {i.camera for i in event.images} == {"L1/front", "L1/rear"}


def test_a_weighbridge_lane_says_its_passages_should_carry_a_weight() -> None:
    """`weighbridge_expected` lets central flag a passage that closed without a weight."""
    for weighbridge in (True, False):
        a = lane(weighbridge=weighbridge)
        a.open(100.0)
        a.add_plates([obs("29C12345", 100.5)])
        event = a.close(101.0)
        assert event is not None and event.weight is None
        assert event.weighbridge_expected is weighbridge


def test_rear_camera_on_a_semi_trailer_reads_the_trailer_plate() -> None:
    """Camera roles → fields: a trailer plate seen by the rear camera is the trailer's."""
    cases = [  # rear read, trailer-camera read -> plate_rear, trailer_plate
        ("29C12345", None, "29C12345", None),  # rigid truck: the tractor's own rear plate
        ("29R01234", None, None, "29R01234"),  # semi-trailer (VN trailer series R)
        ("桂A1234挂", None, None, "桂A1234挂"),  # semi-trailer (CN 挂)
        ("29C12345", "29R01234", "29C12345", "29R01234"),  # trailer camera
        ("29R01234", "29R01284", None, "29R01284"),  # both see the trailer: its camera's read
    ]
    for rear, trailer, want_rear, want_trailer in cases:
        a = lane()
        a.open(0.0)
        a.add_plates([obs("29C12345", 0.5)])
        a.add_plates([obs(rear, 1.0, role="rear_plate", camera="L1/rear")])
        if trailer is not None:
            a.add_plates([obs(trailer, 1.5, role="trailer_plate", camera="L1/trailer")])
        event = a.close(2.0)
        assert event is not None and event.plate_front is not None
        assert event.plate_front.text == "29C12345"
        assert (event.plate_rear.text if event.plate_rear else None) == want_rear, rear
        got = event.trailer_plate.text if event.trailer_plate else None
        assert got == want_trailer, rear


def test_plate_change_mid_passage_splits_into_two_vehicles() -> None:
    a = lane(split_reads=2)
    a.open(0.0)
    a.add_plates([obs("29C12345", 0.5)])
    a.add_plates([obs("29C12345", 1.0)])
    assert a.add_plates([obs("51D67890", 2.0)]) == []  # one read: maybe a misread
    events = a.add_plates([obs("51D67890", 2.5)])
    assert len(events) == 1 and events[0].plate_front.text == "29C12345"  # type: ignore[union-attr]
    assert events[0].ended_at.timestamp() == 1.0
    second = a.close(4.0)
    assert second is not None and second.plate_front.text == "51D67890"  # type: ignore[union-attr]
    assert second.started_at.timestamp() == 2.0


def test_single_misread_does_not_split() -> None:
    a = lane(split_reads=2)
    a.open(0.0)
    for t, text in ((0.5, "29C12345"), (1.0, "51D67890"), (1.5, "29C12345")):
        assert a.add_plates([obs(text, t)]) == []
    event = a.close(2.0)
    assert event is not None and event.plate_front.text == "29C12345"  # type: ignore[union-attr]


def test_reversing_truck_is_merged_not_counted_twice() -> None:
    a = lane(merge_window_s=30)
    a.open(0.0)
    a.add_plates([obs("29C12345", 1.0)])
    first = a.close(2.0)
    assert first is not None
    a.open(10.0)  # backs out and comes again
    a.add_plates([obs("29C12845", 11.0)])  # one character misread
    assert a.close(12.0) is None
    assert a.merged == 1 and a.last_merge is not None
    assert a.last_merge.event_id == first.event_id
    a.open(50.0)  # long after the window: a new passage
    a.add_plates([obs("29C12345", 51.0)])
    assert a.close(52.0) is not None


def test_too_few_reads_emit_nothing() -> None:
    a = lane(min_reads=2)
    a.open(0.0)
    a.add_plates([obs("29C12345", 1.0)])
    assert a.close(2.0) is None and a.discarded == 1


def test_plate_trigger_gap_mode() -> None:
    a = lane(gap_frames=2)
    assert a.feed_frame("L1/front", 0, 0.0, []) == []
    assert a.feed_frame("L1/front", 1, 0.2, [obs("29C12345", 0.2)]) == []
    assert a.feed_frame("L1/front", 2, 0.4, [obs("29C12345", 0.4)]) == []
    assert a.feed_frame("L1/front", 3, 0.6, []) == []
    events = a.feed_frame("L1/front", 4, 0.8, [])
    assert len(events) == 1 and events[0].frames_processed == 2
    assert not a.active
