"""Weight capture state machine on byte streams recorded from the simulator and on hand-made ones."""

from __future__ import annotations

import pytest

from hardware.config import CaptureConfig, WeighbridgeConfig
from hardware.weighbridge.capture import (
    CaptureEvent,
    VehicleOff,
    VehicleOn,
    WeightCapture,
    WeightCaptured,
    WeightRejected,
)
from hardware.weighbridge.protocols import WeighbridgeReading, encode_toledo, indicator_format
from hardware.weighbridge.simulator import (
    axle_profile,
    hold,
    ramp,
    render_stream,
    settle,
    truck_profile,
)

RATE = 10.0


def replay(stream: bytes, protocol: str, config: CaptureConfig, chunk: int = 37) -> list:
    """Feed a recorded stream through framer, parser and capture; frame i is at i / RATE s."""
    fmt = indicator_format(
        WeighbridgeConfig(protocol=protocol, transport="tcp", host="h", tcp_port=1)
    )
    framer = fmt.new_framer()
    capture = WeightCapture(config)
    events: list[CaptureEvent] = []
    n = 0
    for i in range(0, len(stream), chunk):
        for frame in framer.feed(stream[i : i + chunk]):
            events += capture.feed(fmt.parse(frame, n / RATE))
            n += 1
    return events


@pytest.mark.parametrize("protocol", ["toledo", "ascii"])
@pytest.mark.parametrize("gross", [3_500.0, 18_040.0, 41_230.0])
def test_whole_truck_captured_once(protocol: str, gross: float) -> None:
    stream = render_stream(truck_profile(gross), protocol, RATE)
    events = replay(stream, protocol, CaptureConfig(stable_seconds=2.0))
    kinds = [type(e) for e in events]
    assert kinds == [VehicleOn, WeightCaptured, VehicleOff]
    captured = events[1]
    assert captured.gross_kg == pytest.approx(gross, abs=10)  # 10 kg indicator increment
    assert events[2].captured == captured
    # Captured only after the oscillation (ramp 3 s + settle 2 s) and the stable wait.
    assert captured.at >= 3.0 + 2.0 + 2.0 - 0.2


def test_oscillation_without_motion_flag_is_not_captured_early() -> None:
    # An indicator that never flags motion (regex formats without status): only the tolerance
    # protects against capturing while the platform still swings.
    stream = render_stream([ramp(0, 30_000, 3), settle(30_000, 400, 3), hold(30_000, 4)], "ascii")
    stream = stream.replace(b"US,", b"ST,")
    events = replay(stream, "ascii", CaptureConfig(stable_seconds=1.0, stable_tolerance_kg=40))
    captured = [e for e in events if isinstance(e, WeightCaptured)]
    assert len(captured) == 1
    assert captured[0].gross_kg == pytest.approx(30_000, abs=40)
    assert captured[0].at > 3.0 + 1.5


def test_vehicle_leaving_before_stable_has_no_weight() -> None:
    profile = [ramp(0, 25_000, 2), settle(25_000, 300, 1.5), ramp(25_000, 0, 2), hold(0, 2)]
    events = replay(render_stream(profile, "toledo"), "toledo", CaptureConfig())
    assert [type(e) for e in events] == [VehicleOn, VehicleOff]
    assert events[1].captured is None


def test_axle_by_axle_sums_groups() -> None:
    groups = [6_500.0, 17_200.0, 16_900.0]
    config = CaptureConfig(axle_mode=True, stable_seconds=1.5, off_seconds=2.0)
    events = replay(render_stream(axle_profile(groups), "toledo"), "toledo", config)
    assert [type(e) for e in events] == [VehicleOn, WeightCaptured, VehicleOff]
    captured = events[1]
    assert captured.axle_groups_kg == pytest.approx(groups, abs=10)
    assert captured.gross_kg == pytest.approx(sum(groups), abs=30)
    weight = captured.to_contract()
    assert weight.gross_kg == captured.gross_kg and len(weight.axle_groups_kg) == 3


def test_axle_groups_become_passages_when_off_seconds_below_gap() -> None:
    # With off_seconds below the gap between groups, each group is its own passage: the
    # setting matters and the machine honours it.
    config = CaptureConfig(axle_mode=True, stable_seconds=1.5, off_seconds=0.3)
    stream = render_stream(axle_profile([6_000.0, 15_000.0]), "toledo")
    events = replay(stream, "toledo", config)
    assert [type(e) for e in events].count(VehicleOff) == 2


def r(
    t: float, load: float | None, stable: bool = True, overload: bool = False
) -> WeighbridgeReading:
    return WeighbridgeReading(load, None, None, stable, overload, t)


def test_hand_written_sequence_with_overload_and_drift() -> None:
    config = CaptureConfig(threshold_kg=500, empty_kg=200, stable_seconds=1.0, off_seconds=0.5)
    capture = WeightCapture(config)
    seq = [
        r(0.0, 0.0),
        r(0.5, 300.0),  # below threshold: nothing
        r(1.0, None, False, True),  # overload counts as a vehicle on
        r(1.5, 20_000.0),
        r(2.0, 20_010.0),
        r(2.4, 20_100.0),  # drift beyond tolerance restarts the stable run
        r(3.0, 20_100.0),
        r(3.4, 20_100.0),  # 1.0 s stable since 2.4
        r(4.0, 100.0),
        r(4.2, 600.0),  # bounced back above empty before off_seconds
        r(4.3, 100.0),
        r(4.9, 100.0),  # 0.6 s below empty: off
    ]
    events = [e for reading in seq for e in capture.feed(reading)]
    assert events[0] == VehicleOn(at=1.0, load_kg=float("inf"))
    assert events[1] == WeightCaptured(at=3.4, gross_kg=20_100.0)
    assert events[2] == VehicleOff(at=4.9, captured=events[1])
    assert len(events) == 3


def test_hand_written_toledo_bytes_through_framer() -> None:
    # Raw frames as a Toledo indicator sends them, motion bit set while the truck settles.
    frames = (
        [b"\x02*8 008000000000\r"] * 3
        + [b"\x02*0 015020000000\r"] * 25
        + [b"\x02*0 000000000000\r"] * 15
    )
    events = replay(b"".join(frames), "toledo", CaptureConfig(stable_seconds=2.0))
    assert [type(e) for e in events] == [VehicleOn, WeightCaptured, VehicleOff]
    assert events[1].gross_kg == 15020.0
    assert encode_toledo(15020) == frames[3]


def test_capture_over_the_contract_range_is_a_named_rejection() -> None:
    """250 t is a reading the indicator may send but no passage may carry: WeightRejected."""
    with pytest.raises(WeightRejected) as err:
        WeightCaptured(at=0.0, gross_kg=250_000.0).to_contract()
    assert err.value.gross_kg == 250_000.0
    assert err.value.reason.startswith("captured 250000 kg refused (gross_kg:")
    assert WeightCaptured(at=0.0, gross_kg=199_990.0).to_contract().gross_kg == 199_990.0
