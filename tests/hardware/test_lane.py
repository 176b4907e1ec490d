"""Lane controller: the safety rules as a table over the pure `decide`, then the shell on simulators."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from hardware.barrier import CLOSED_RED, OPEN_GREEN, BarrierClient, BarrierOutputs
from hardware.config import LaneControllerConfig
from hardware.display import DisplayClient, DisplayMessage
from hardware.lane import (
    CentralLost,
    Command,
    LaneController,
    LaneControlState,
    LaneInput,
    PassageCleared,
    PassageWaiting,
    SetBarrier,
    Show,
    Tick,
    VehicleLeft,
    decide,
)
from hardware.lane_sim import LaneSimulators
from smartgate.contract import CommandAction, LaneCommand

CONFIG = LaneControllerConfig(site="huunghi", lane="L1", node_id="edge-1", auto_close_seconds=30)
P1, P2 = "passage-0001", "passage-0002"


def cmd(
    action: CommandAction,
    passage: str | None = P1,
    *,
    lane: str = "L1",
    site: str = "huunghi",
    message: str | None = None,
    inspection_lane: str | None = None,
) -> LaneCommand:
    return LaneCommand(
        site=site,
        lane=lane,
        action=action,
        passage_event_id=passage,
        message=message,
        inspection_lane=inspection_lane,
        issued_by="officer-tran",
    )


WAITING = LaneControlState(current_passage=P1)
OPEN = LaneControlState(current_passage=P1, barrier_open=True, opened_for=P1, opened_at=100.0)
OPEN_BARRIER, CLOSE = CommandAction.OPEN_BARRIER, CommandAction.CLOSE_BARRIER
INSPECT, SHOW = CommandAction.SEND_TO_INSPECTION, CommandAction.SHOW_MESSAGE


@dataclass(frozen=True)
class Rule:
    name: str
    state: LaneControlState
    event: LaneInput
    ok: bool
    barrier: BarrierOutputs | None  # what the barrier is driven to, None: not touched
    opens: bool  # barrier open in the new state
    detail: str = ""
    shows: str | None = None


RULES = [
    Rule("open for the waiting passage", WAITING, Command(cmd(OPEN_BARRIER), 100.0), True,
         OPEN_GREEN, True, shows="PROCEED"),
    Rule("open with no passage waiting", LaneControlState(), Command(cmd(OPEN_BARRIER), 1), False,
         None, False, "no passage is waiting"),
    Rule("open for another passage", WAITING, Command(cmd(OPEN_BARRIER, P2), 1), False, None,
         False, "not the waiting passage"),
    Rule("open without a passage id", WAITING, Command(cmd(OPEN_BARRIER, None), 1), False, None,
         False, "not the waiting passage"),
    Rule("open for another lane", WAITING, Command(cmd(OPEN_BARRIER, lane="L2"), 1), False,
         None, False, "this is huunghi/L1"),
    Rule("open for another site", WAITING, Command(cmd(OPEN_BARRIER, site="langson"), 1), False,
         None, False, "this is huunghi/L1"),
    Rule("redelivered open is harmless", OPEN, Command(cmd(OPEN_BARRIER), 101.0), True, None,
         True, "already open"),
    Rule("open with a custom message", WAITING,
         Command(cmd(OPEN_BARRIER, message="THONG QUA / PROCEED"), 1), True, OPEN_GREEN, True,
         shows="THONG QUA / PROCEED"),
    Rule("close always allowed", OPEN, Command(cmd(CLOSE, None), 1), True, CLOSED_RED, False,
         shows="STOP"),
    Rule("close for another lane refused", OPEN, Command(cmd(CLOSE, lane="L9"), 1), False, None,
         True, "this is huunghi/L1"),
    Rule("inspection keeps barrier closed", WAITING,
         Command(cmd(INSPECT, inspection_lane="2"), 1), True, None, False,
         shows="GO TO INSPECTION LANE 2"),
    Rule("inspection for another passage", WAITING,
         Command(cmd(INSPECT, P2, inspection_lane="2"), 1), False, None, False,
         "not the waiting passage"),
    Rule("inspection without lane or message", WAITING, Command(cmd(INSPECT), 1), False, None,
         False, "needs inspection_lane"),
    Rule("show message", LaneControlState(), Command(cmd(SHOW, None, message="SLOW"), 1), True,
         None, False, shows="SLOW"),
    Rule("show without message", LaneControlState(), Command(cmd(SHOW, None), 1), False, None,
         False, "without a message"),
    Rule("show never opens", WAITING, Command(cmd(SHOW, message="OPEN"), 1), True, None, False,
         shows="OPEN"),
    Rule("central lost closes", OPEN, CentralLost(), True, CLOSED_RED, False,
         shows="SYSTEM OFFLINE - PLEASE WAIT"),
    Rule("vehicle left closes", OPEN, VehicleLeft(), True, CLOSED_RED, False, shows="STOP"),
    Rule("vehicle left, barrier closed", WAITING, VehicleLeft(), True, None, False),
    Rule("timeout closes", OPEN, Tick(130.0), True, CLOSED_RED, False, "timeout", "STOP"),
    Rule("before timeout stays open", OPEN, Tick(129.9), True, None, True),
    Rule("passage waiting shows wait", LaneControlState(), PassageWaiting(P1), True, None, False,
         shows="PLEASE WAIT"),
]  # fmt: skip


@pytest.mark.parametrize("rule", RULES, ids=[r.name for r in RULES])
def test_lane_rules(rule: Rule) -> None:
    d = decide(rule.state, rule.event, CONFIG)
    assert d.ok == rule.ok
    assert rule.detail in d.detail
    barrier = [a.outputs for a in d.actions if isinstance(a, SetBarrier)]
    assert barrier == ([rule.barrier] if rule.barrier else [])
    assert d.state.barrier_open == rule.opens
    shown = [a.message.text for a in d.actions if isinstance(a, Show)]
    assert shown == ([rule.shows] if rule.shows else [])
    if not rule.ok:
        assert d.state == rule.state and d.actions == ()


def test_no_sequence_opens_without_matching_open_command() -> None:
    # Every input except OPEN_BARRIER for the waiting passage, in every order of two: the
    # barrier is never driven open.
    inputs: list[LaneInput] = [
        PassageWaiting(P1),
        PassageCleared(),
        VehicleLeft(),
        CentralLost(),
        Tick(1e9),
        Command(cmd(OPEN_BARRIER, P2), 0),
        Command(cmd(OPEN_BARRIER, lane="L2"), 0),
        Command(cmd(CLOSE), 0),
        Command(cmd(INSPECT, inspection_lane="3"), 0),
        Command(cmd(SHOW, message="HI"), 0),
    ]
    for first in inputs:
        for second in inputs:
            state = LaneControlState()
            for event in (first, second):
                d = decide(state, event, CONFIG)
                assert not any(
                    isinstance(a, SetBarrier) and a.outputs.barrier_open for a in d.actions
                )
                state = d.state
            assert not state.barrier_open


def test_open_after_vehicle_left_is_refused() -> None:
    state = decide(LaneControlState(), PassageWaiting(P1), CONFIG).state
    state = decide(state, Command(cmd(OPEN_BARRIER), 0), CONFIG).state
    state = decide(state, VehicleLeft(), CONFIG).state
    late = decide(state, Command(cmd(OPEN_BARRIER), 5), CONFIG)
    assert not late.ok and not late.state.barrier_open


@pytest.fixture
def lane() -> Iterator[LaneSimulators]:
    sims = LaneSimulators.start()
    yield sims
    sims.stop()


def make_controller(sims: LaneSimulators, auto_close: float = 30.0) -> LaneController:
    config = CONFIG.model_copy(update={"auto_close_seconds": auto_close})
    return LaneController(
        config, BarrierClient(sims.barrier_config()), DisplayClient(sims.display_config())
    )


def test_controller_drives_simulated_barrier_and_display(lane: LaneSimulators) -> None:
    controller = make_controller(lane)
    refused = controller.handle(cmd(OPEN_BARRIER))
    assert not refused.ok and refused.lane == "L1" and refused.node_id == "edge-1"
    assert not lane.barrier_outputs.barrier_open
    controller.set_passage(P1)
    assert lane.display_message == DisplayMessage("PLEASE WAIT", "AMBER")
    command = cmd(OPEN_BARRIER)
    ack = controller.handle(command)
    assert ack.ok and ack.command_id == command.command_id
    assert lane.barrier_outputs == OPEN_GREEN
    assert lane.display_message == DisplayMessage("PROCEED", "GREEN")
    controller.on_vehicle_left()
    assert lane.barrier_outputs == CLOSED_RED
    assert lane.display_message.text == "STOP"
    controller.stop()


def test_controller_closes_on_central_lost_and_timeout(lane: LaneSimulators) -> None:
    controller = make_controller(lane, auto_close=0.3)
    controller.set_passage(P1)
    assert controller.handle(cmd(OPEN_BARRIER)).ok
    controller.on_central_lost()
    assert lane.barrier_outputs == CLOSED_RED
    assert lane.display_message.text == "SYSTEM OFFLINE - PLEASE WAIT"
    controller.set_passage(P2)
    assert controller.handle(cmd(OPEN_BARRIER, P2)).ok
    assert lane.barrier_outputs.barrier_open
    deadline = time.monotonic() + 5
    while lane.barrier_outputs != CLOSED_RED and time.monotonic() < deadline:
        time.sleep(0.05)
    assert lane.barrier_outputs == CLOSED_RED
    assert not controller.state.barrier_open
    controller.stop()


def test_controller_refuses_when_barrier_unreachable(lane: LaneSimulators) -> None:
    controller = make_controller(lane)
    controller.set_passage(P1)
    lane.barrier.stop()
    ack = controller.handle(cmd(OPEN_BARRIER))
    assert not ack.ok and "barrier" in ack.detail
    assert not controller.state.barrier_open
    # Display-only work still succeeds without the barrier.
    assert controller.handle(cmd(SHOW, None, message="WAIT FOR OFFICER")).ok
    assert lane.display_message.text == "WAIT FOR OFFICER"


def test_controller_open_succeeds_when_only_display_fails(lane: LaneSimulators) -> None:
    controller = make_controller(lane)
    controller.set_passage(P1)
    lane.display.stop()
    ack = controller.handle(cmd(OPEN_BARRIER))
    assert ack.ok and "display" in ack.detail
    assert lane.barrier_outputs == OPEN_GREEN
    assert not controller.handle(cmd(SHOW, None, message="HELLO")).ok
    controller.on_vehicle_left()
    assert lane.barrier_outputs == CLOSED_RED
