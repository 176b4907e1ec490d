"""Weight capture: a pure state machine fed with readings, emitting passage weighing events.

A vehicle is on the platform once the load reaches `threshold_kg`; a stable run (indicator
motion flag clear, load within `stable_tolerance_kg`) lasting `stable_seconds` is captured. In
axle mode (platform shorter than the truck) every stable run is an axle group and the passage's
weight is their sum, reported when the vehicle has left. The vehicle has left once the load has
stayed below `empty_kg` for `off_seconds`. Time comes only from the readings' timestamps.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime

from pydantic import ValidationError

from hardware.config import CaptureConfig
from hardware.weighbridge.reading import WeighbridgeReading
from smartgate.contract import Weight


class WeightRejected(ValueError):
    """A captured weight the passage contract refuses (e.g. above its 200 t range).

    `reason` says why, in words fit for the passage's `weight_error` and the log.
    """

    def __init__(self, gross_kg: float, reason: str) -> None:
        super().__init__(reason)
        self.gross_kg = gross_kg
        self.reason = reason


@dataclass(frozen=True)
class VehicleOn:
    """The load reached the threshold: a vehicle is on the platform."""

    at: float
    load_kg: float


@dataclass(frozen=True)
class WeightCaptured:
    """The passage's weight: the stable gross, or in axle mode the sum of the axle groups."""

    at: float
    gross_kg: float
    axle_groups_kg: tuple[float, ...] = ()

    def to_contract(self) -> Weight:
        """As the contract's `Weight` for the passage event; WeightRejected when it refuses it."""
        try:
            return Weight(
                gross_kg=self.gross_kg,
                stable=True,
                axle_groups_kg=list(self.axle_groups_kg),
                captured_at=datetime.fromtimestamp(self.at, UTC),
            )
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
            )
            raise WeightRejected(
                self.gross_kg, f"captured {self.gross_kg:.0f} kg refused ({problems})"[:200]
            ) from exc


@dataclass(frozen=True)
class VehicleOff:
    """The platform is empty again; `captured` is None when no stable weight was seen."""

    at: float
    captured: WeightCaptured | None


CaptureEvent = VehicleOn | WeightCaptured | VehicleOff


@dataclass(frozen=True)
class CaptureState:
    """Where the capture stands; `CaptureState()` is an empty platform."""

    vehicle_on: bool = False
    run_start: float | None = None
    run_min: float = 0.0
    run_max: float = 0.0
    run_sum: float = 0.0
    run_count: int = 0
    run_taken: bool = False
    below_since: float | None = None
    axle_groups: tuple[float, ...] = ()
    captured: WeightCaptured | None = None


def _broken_run(state: CaptureState) -> CaptureState:
    return replace(state, run_start=None, run_sum=0.0, run_count=0, run_taken=False)


def _extend_run(state: CaptureState, load: float, at: float, tolerance: float) -> CaptureState:
    if state.run_start is not None:
        low, high = min(state.run_min, load), max(state.run_max, load)
        if high - low <= tolerance:
            return replace(
                state,
                run_min=low,
                run_max=high,
                run_sum=state.run_sum + load,
                run_count=state.run_count + 1,
            )
    return replace(
        state, run_start=at, run_min=load, run_max=load, run_sum=load, run_count=1, run_taken=False
    )


def step(
    state: CaptureState, reading: WeighbridgeReading, config: CaptureConfig
) -> tuple[CaptureState, list[CaptureEvent]]:
    """Advance the capture by one reading; returns the new state and the events it caused."""
    at = reading.timestamp
    load = reading.load_kg
    events: list[CaptureEvent] = []

    if not state.vehicle_on:
        if reading.overload or (load is not None and load >= config.threshold_kg):
            events.append(VehicleOn(at=at, load_kg=load if load is not None else float("inf")))
            state = CaptureState(vehicle_on=True)
        else:
            return state, events

    # Leaving: below empty_kg long enough ends the passage.
    if load is not None and load < config.empty_kg:
        below_since = state.below_since if state.below_since is not None else at
        state = replace(_broken_run(state), below_since=below_since)
        if at - below_since >= config.off_seconds:
            captured = state.captured
            if config.axle_mode and state.axle_groups:
                captured = WeightCaptured(
                    at=at,
                    gross_kg=round(sum(state.axle_groups), 3),
                    axle_groups_kg=state.axle_groups,
                )
                events.append(captured)
            events.append(VehicleOff(at=at, captured=captured))
            return CaptureState(), events
        return state, events
    state = replace(state, below_since=None)

    if load is None or not reading.stable:
        return _broken_run(state), events

    state = _extend_run(state, load, at, config.stable_tolerance_kg)
    assert state.run_start is not None
    if state.run_taken or at - state.run_start < config.stable_seconds:
        return state, events
    mean = round(state.run_sum / state.run_count, 3)
    state = replace(state, run_taken=True)
    if config.axle_mode:
        if load >= config.threshold_kg and len(state.axle_groups) < config.max_axle_groups:
            state = replace(state, axle_groups=(*state.axle_groups, mean))
    elif state.captured is None:
        captured = WeightCaptured(at=at, gross_kg=mean)
        state = replace(state, captured=captured)
        events.append(captured)
    return state, events


class WeightCapture:
    """Holds a `CaptureState` and feeds readings through `step`; not thread-safe."""

    def __init__(self, config: CaptureConfig) -> None:
        self.config = config
        self.state = CaptureState()

    def feed(self, reading: WeighbridgeReading) -> list[CaptureEvent]:
        """Advance by one reading and return the events it caused."""
        self.state, events = step(self.state, reading, self.config)
        return events
