"""The lane simulators as the demo uses them: in-process, and through the `smartgate sim` CLI."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time

import pytest

from hardware.barrier import OPEN_GREEN, BarrierClient
from hardware.config import BarrierConfig, DisplayConfig, LaneControllerConfig, WeighbridgeConfig
from hardware.display import DisplayClient, DisplayMessage
from hardware.lane import LaneController
from hardware.lane_sim import LaneSimulators
from hardware.weighbridge.capture import CaptureEvent, VehicleOff, WeightCaptured
from hardware.weighbridge.scale import Weighbridge
from hardware.weighbridge.simulator import (
    PROTOCOLS,
    axle_profile,
    profile_duration,
    reader_settings,
    sample,
    truck_profile,
)
from smartgate.contract import CommandAction, LaneCommand
from tests.conftest import wait_until


def test_profiles_ramp_oscillate_hold_and_leave() -> None:
    profile = truck_profile(30_000, ramp_s=3, settle_s=2, hold_s=4, leave_s=3, empty_s=2)
    assert profile_duration(profile) == 14
    assert sample(profile, 0.0) == (0.0, True)
    assert sample(profile, 1.5)[0] == pytest.approx(15_000)
    swing = [sample(profile, 3 + t / 10)[0] for t in range(20)]
    assert max(swing) > 30_100 and min(swing) < 29_900  # platform oscillates, motion set
    assert sample(profile, 7.0) == (30_000, False)  # stable hold
    assert sample(profile, 13.0) == (0.0, False)
    axles = axle_profile([6_000, 15_000])
    assert max(sample(axles, t / 10)[0] for t in range(int(profile_duration(axles) * 10))) < 15_200


@pytest.mark.slow
def test_lane_simulators_full_passage_axle_by_axle() -> None:
    with LaneSimulators.start("ascii", rate_hz=25, time_scale=5) as sims:
        events: list[CaptureEvent] = []
        scale = Weighbridge(
            sims.weighbridge_config(
                axle_mode=True, stable_seconds=0.3, off_seconds=0.5, reconnect_initial_s=0.05
            ),
            on_event=events.append,
        ).start()
        config = LaneControllerConfig(site="huunghi", lane="L3", node_id="edge-2")
        controller = LaneController(
            config, BarrierClient(sims.barrier_config()), DisplayClient(sims.display_config())
        )
        try:
            deadline = time.monotonic() + 5
            while not scale.connected and time.monotonic() < deadline:
                time.sleep(0.02)
            sims.queue_axle_truck([7_100, 16_800])
            assert sims.wait_idle(20)
            deadline = time.monotonic() + 5
            while (
                not any(isinstance(e, VehicleOff) for e in events) and time.monotonic() < deadline
            ):
                time.sleep(0.02)
            weights = [e for e in events if isinstance(e, WeightCaptured)]
            assert [w.axle_groups_kg for w in weights] == [(7_100.0, 16_800.0)]
            assert weights[0].gross_kg == 23_900.0

            controller.set_passage("evt-12345678")
            ack = controller.handle(
                LaneCommand(
                    site="huunghi",
                    lane="L3",
                    action=CommandAction.OPEN_BARRIER,
                    passage_event_id="evt-12345678",
                    issued_by="rules",
                )
            )
            assert ack.ok
            assert sims.barrier_outputs == OPEN_GREEN
            assert sims.display_message == DisplayMessage("PROCEED", "GREEN")
        finally:
            controller.stop()
            scale.stop()


def test_cli_sim_lane_serves_all_three() -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "smartgate.cli",
            "sim",
            "lane",
            "--weighbridge-port",
            "0",
            "--barrier-port",
            "0",
            "--display-port",
            "0",
            "--trucks",
            "",
        ],  # fmt: skip
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.search(r"weighbridge (\d+) barrier (\d+) display (\d+)", line)
        assert match, line
        wb_port, barrier_port, display_port = (int(p) for p in match.groups())
        barrier = BarrierClient(BarrierConfig(host="127.0.0.1", port=barrier_port))
        barrier.set_outputs(OPEN_GREEN)
        assert barrier.read_outputs() == OPEN_GREEN
        barrier.close()
        DisplayClient(DisplayConfig(host="127.0.0.1", port=display_port)).ping()
        with socket.create_connection(("127.0.0.1", wb_port), timeout=3) as conn:
            assert conn.recv(64).startswith(b"\x02")  # Toledo frames of an empty platform
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 130


@pytest.mark.slow
def test_cli_sim_weighbridge_speaks_every_protocol_over_pty_and_tcp() -> None:
    """`smartgate sim weighbridge --protocol NAME`, read back by the real reader, every protocol."""
    procs: dict[str, subprocess.Popen[str]] = {}
    scales: list[Weighbridge] = []
    loads: dict[str, list[float]] = {p: [] for p in PROTOCOLS}
    try:
        for i, protocol in enumerate(PROTOCOLS):
            where = ["--pty"] if i % 2 else ["--tcp", "127.0.0.1:0"]
            procs[protocol] = subprocess.Popen(
                [sys.executable, "-m", "smartgate.cli", "sim", "weighbridge", "--protocol",
                 protocol, *where, "--rate", "20", "--trucks", "18000", "--every", "1000"],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            )  # fmt: skip
        for protocol, proc in procs.items():
            assert proc.stdout is not None
            line = proc.stdout.readline()
            match = re.search(r"on (tcp 127.0.0.1:(\d+)|serial (\S+))", line)
            assert match, line
            if match[2]:
                where_cfg: dict = {
                    "transport": "tcp",
                    "host": "127.0.0.1",
                    "tcp_port": int(match[2]),
                }
            else:
                where_cfg = {"transport": "serial", "serial_port": match[3]}
            config = WeighbridgeConfig(**reader_settings(protocol), **where_cfg)
            sink = loads[protocol]
            scales.append(
                Weighbridge(config, on_reading=lambda r, s=sink: s.append(r.load_kg)).start()
            )
        assert wait_until(lambda: all(any(w > 1000 for w in v) for v in loads.values()), 20), {
            p: v[-3:] for p, v in loads.items()
        }
        assert all(s.stats["parse_errors"] == 0 for s in scales), [s.stats for s in scales]
    finally:
        for scale in scales:
            scale.stop()
        for proc in procs.values():
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=10)


def test_cli_sim_barrier_serves_modbus_rtu_on_a_pty() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "smartgate.cli", "sim", "barrier", "--pty"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.search(r"Modbus RTU, 9600 8N1\) on serial (\S+)", line)
        assert match, line
        client = BarrierClient(BarrierConfig(transport="rtu", serial_port=match[1], timeout_s=2))
        try:
            client.set_outputs(OPEN_GREEN)
            assert client.read_outputs() == OPEN_GREEN
        finally:
            client.close()
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 130
