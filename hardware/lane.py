"""Lane controller: central's lane commands executed safely on the barrier and the lane display.

`decide` is pure: lane state + one input (a command or a lane event) -> new state, device actions,
and for commands an ok/refused verdict. Safety rules it enforces:

* the barrier opens only for an explicit OPEN_BARRIER for this lane naming the passage the lane
  is currently waiting a decision for;
* commands for another site or lane are refused;
* losing central closes the barrier and says so on the display;
* an open barrier closes when the vehicle has left or after `auto_close_seconds`.

`LaneController` is the thin shell: it runs `decide`, drives the barrier and display clients,
arms the auto-close timer and logs every command with its issuer.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

from hardware.barrier import CLOSED_RED, OPEN_GREEN, BarrierOutputs
from hardware.config import LaneControllerConfig
from hardware.display import DisplayMessage
from smartgate.contract import CommandAck, CommandAction, LaneCommand

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LaneControlState:
    """What the controller knows: the passage awaiting a decision and the barrier."""

    current_passage: str | None = None
    barrier_open: bool = False
    opened_for: str | None = None
    opened_at: float | None = None


# Inputs -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    """A lane command from central, received at `now` (seconds)."""

    command: LaneCommand
    now: float


@dataclass(frozen=True)
class PassageWaiting:
    """The lane now waits a decision for this passage."""

    passage_event_id: str


@dataclass(frozen=True)
class PassageCleared:
    """The lane no longer waits a decision (e.g. the vehicle backed out)."""


@dataclass(frozen=True)
class VehicleLeft:
    """The vehicle has left the lane."""


@dataclass(frozen=True)
class CentralLost:
    """The connection to central is lost."""


@dataclass(frozen=True)
class Tick:
    """Time passed; closes a barrier open for longer than `auto_close_seconds`."""

    now: float


LaneInput = Command | PassageWaiting | PassageCleared | VehicleLeft | CentralLost | Tick

# Actions ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SetBarrier:
    """Drive the barrier and lights."""

    outputs: BarrierOutputs


@dataclass(frozen=True)
class Show:
    """Show a message on the lane display."""

    message: DisplayMessage


DeviceAction = SetBarrier | Show


@dataclass(frozen=True)
class Decision:
    """The outcome of one input: `ok`/`detail` answer a command (ok for lane events)."""

    state: LaneControlState
    actions: tuple[DeviceAction, ...] = ()
    ok: bool = True
    detail: str = ""


def _close(state: LaneControlState, message: DisplayMessage, detail: str) -> Decision:
    new = replace(state, barrier_open=False, opened_for=None, opened_at=None)
    return Decision(new, (SetBarrier(CLOSED_RED), Show(message)), True, detail)


def _refuse(state: LaneControlState, detail: str) -> Decision:
    return Decision(state, (), False, detail)


def _command(
    state: LaneControlState, cmd: LaneCommand, now: float, config: LaneControllerConfig
) -> Decision:
    if cmd.site != config.site or cmd.lane != config.lane:
        return _refuse(
            state, f"command for {cmd.site}/{cmd.lane}, this is {config.site}/{config.lane}"
        )
    passage = cmd.passage_event_id
    matches = passage is not None and passage == state.current_passage
    if cmd.action == CommandAction.OPEN_BARRIER:
        if state.current_passage is None:
            return _refuse(state, "no passage is waiting a decision")
        if not matches:
            return _refuse(
                state, f"passage {passage!r} is not the waiting passage {state.current_passage!r}"
            )
        if state.barrier_open and state.opened_for == passage:
            return Decision(state, (), True, "barrier already open for this passage")
        new = replace(state, barrier_open=True, opened_for=passage, opened_at=now)
        text = cmd.message or config.proceed_message
        return Decision(new, (SetBarrier(OPEN_GREEN), Show(DisplayMessage(text, "GREEN"))))
    if cmd.action == CommandAction.CLOSE_BARRIER:
        return _close(state, DisplayMessage(cmd.message or config.stop_message, "RED"), "closed")
    if cmd.action == CommandAction.SEND_TO_INSPECTION:
        if not matches:
            return _refuse(
                state, f"passage {passage!r} is not the waiting passage {state.current_passage!r}"
            )
        if cmd.message:
            text = cmd.message
        elif cmd.inspection_lane:
            text = config.inspection_message.format(lane=cmd.inspection_lane)
        else:
            return _refuse(state, "send_to_inspection needs inspection_lane or message")
        return Decision(state, (Show(DisplayMessage(text, "AMBER")),))
    # SHOW_MESSAGE
    if not cmd.message or not cmd.message.strip():
        return _refuse(state, "show_message without a message")
    return Decision(state, (Show(DisplayMessage(cmd.message, "WHITE")),))


def decide(state: LaneControlState, event: LaneInput, config: LaneControllerConfig) -> Decision:
    """Apply one input to the lane state; never opens the barrier except as the rules allow."""
    if isinstance(event, Command):
        return _command(state, event.command, event.now, config)
    if isinstance(event, PassageWaiting):
        new = replace(state, current_passage=event.passage_event_id)
        actions: tuple[DeviceAction, ...] = ()
        if config.wait_message:
            actions = (Show(DisplayMessage(config.wait_message, "AMBER")),)
        return Decision(new, actions)
    if isinstance(event, PassageCleared):
        return Decision(replace(state, current_passage=None))
    if isinstance(event, VehicleLeft):
        cleared = replace(state, current_passage=None)
        if not state.barrier_open:
            return Decision(cleared)
        return _close(cleared, DisplayMessage(config.stop_message, "RED"), "vehicle left")
    if isinstance(event, CentralLost):
        return _close(state, DisplayMessage(config.central_lost_message, "RED"), "central lost")
    # Tick
    if (
        state.barrier_open
        and state.opened_at is not None
        and event.now - state.opened_at >= config.auto_close_seconds
    ):
        return _close(state, DisplayMessage(config.stop_message, "RED"), "auto-close timeout")
    return Decision(state)


class BarrierDevice(Protocol):
    """What the controller needs of a barrier (BarrierClient)."""

    def set_outputs(self, outputs: BarrierOutputs) -> None: ...


class DisplayDevice(Protocol):
    """What the controller needs of a display (DisplayClient)."""

    def show(self, message: DisplayMessage) -> None: ...


class LaneController:
    """Executes lane commands and events on a barrier and a display; thread-safe.

    `handle(command)` returns the CommandAck to publish. A device that fails turns the ack into
    a refusal naming the device; if opening failed, the controller tries to close again.
    """

    def __init__(
        self,
        config: LaneControllerConfig,
        barrier: BarrierDevice,
        display: DisplayDevice,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.barrier = barrier
        self.display = display
        self._clock = clock
        self._lock = threading.RLock()
        self._timer: threading.Timer | None = None
        self.state = LaneControlState()

    def handle(self, command: LaneCommand) -> CommandAck:
        """Execute (or refuse) one command from central and return its acknowledgement."""
        with self._lock:
            decision = self._apply(Command(command, self._clock()))
        level = logging.INFO if decision.ok else logging.WARNING
        log.log(
            level,
            "lane %s: command %s %s by %s for passage %s -> %s %s",
            self.config.lane,
            command.command_id,
            command.action.value,
            command.issued_by,
            command.passage_event_id,
            "ok" if decision.ok else "REFUSED",
            decision.detail,
        )
        return CommandAck(
            command_id=command.command_id,
            site=self.config.site,
            lane=self.config.lane,
            node_id=self.config.node_id,
            ok=decision.ok,
            detail=decision.detail[:200],
        )

    def set_passage(self, passage_event_id: str) -> None:
        """The lane now waits central's decision for this passage."""
        self._event(PassageWaiting(passage_event_id))

    def clear_passage(self) -> None:
        """The lane no longer waits a decision."""
        self._event(PassageCleared())

    def on_vehicle_left(self) -> None:
        """The vehicle left the lane: close the barrier if open, forget the passage."""
        self._event(VehicleLeft())

    def on_central_lost(self) -> None:
        """Central is unreachable: close the barrier and show the offline message."""
        self._event(CentralLost())

    def tick(self) -> None:
        """Check the auto-close timeout now (the controller's own timer also does this)."""
        self._event(Tick(self._clock()))

    def stop(self) -> None:
        """Cancel the auto-close timer."""
        with self._lock:
            self._cancel_timer()

    def _event(self, event: LaneInput) -> None:
        with self._lock:
            decision = self._apply(event)
        if not decision.ok:
            log.error("lane %s: %s: %s", self.config.lane, type(event).__name__, decision.detail)

    def _apply(self, event: LaneInput) -> Decision:
        before = self.state
        decision = decide(before, event, self.config)
        self.state = decision.state
        failed: list[tuple[DeviceAction, str]] = []
        for action in decision.actions:
            failure = self._execute(action)
            if failure is None:
                continue
            failed.append((action, failure))
            if isinstance(action, SetBarrier) and action.outputs.barrier_open:
                # Opening failed: record the barrier as closed and try to make it so.
                self.state = replace(
                    self.state, barrier_open=False, opened_for=None, opened_at=None
                )
                self._execute(SetBarrier(CLOSED_RED))
                break
        if self.state.barrier_open and not before.barrier_open:
            self._arm_timer()
        elif not self.state.barrier_open:
            self._cancel_timer()
        if not failed:
            return decision
        # A barrier failure fails the command; a display failure only when showing was the point.
        barrier_failed = any(isinstance(a, SetBarrier) for a, _ in failed)
        only_display = all(isinstance(a, Show) for a in decision.actions)
        ok = decision.ok and not barrier_failed and not only_display
        detail = "; ".join(filter(None, [decision.detail, *(f for _, f in failed)]))
        return replace(decision, state=self.state, ok=ok, detail=detail)

    def _execute(self, action: DeviceAction) -> str | None:
        try:
            if isinstance(action, SetBarrier):
                self.barrier.set_outputs(action.outputs)
            else:
                self.display.show(action.message)
        except ConnectionError as exc:
            log.error("lane %s: %s failed: %s", self.config.lane, action, exc)
            return str(exc)
        return None

    def _arm_timer(self) -> None:
        self._cancel_timer()
        self._timer = threading.Timer(self.config.auto_close_seconds + 0.05, self.tick)
        self._timer.daemon = True
        self._timer.start()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
