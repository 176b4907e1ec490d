"""Weighbridge reader over real local peers: the simulator on TCP and on a pty, reconnects, garbage."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from hardware.config import WeighbridgeConfig
from hardware.weighbridge.capture import CaptureEvent, VehicleOff, VehicleOn, WeightCaptured
from hardware.weighbridge.protocols import encode_tf0, encode_toledo
from hardware.weighbridge.scale import Weighbridge
from hardware.weighbridge.simulator import WeighbridgeSimulator

FAST = {"stable_seconds": 0.4, "off_seconds": 0.2, "reconnect_initial_s": 0.05,
        "reconnect_max_s": 0.2}  # fmt: skip


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def captured(events: list[CaptureEvent]) -> list[WeightCaptured]:
    return [e for e in events if isinstance(e, WeightCaptured)]


@pytest.fixture
def tcp_sim() -> Iterator[WeighbridgeSimulator]:
    with WeighbridgeSimulator(
        "toledo", tcp=("127.0.0.1", 0), rate_hz=25, time_scale=5, checksum=True
    ) as sim:
        yield sim


@pytest.mark.slow
def test_tcp_reads_and_captures_trucks(tcp_sim: WeighbridgeSimulator) -> None:
    config = WeighbridgeConfig(
        protocol="toledo",
        toledo_checksum=True,
        transport="tcp",
        host="127.0.0.1",
        tcp_port=tcp_sim.tcp_port,
        **FAST,
    )
    events: list[CaptureEvent] = []
    status: list[bool] = []
    with Weighbridge(config, on_event=events.append, on_status=status.append) as scale:
        assert wait_until(lambda: scale.last_reading is not None)
        assert scale.connected and status == [True]
        tcp_sim.queue_truck(27_480)
        tcp_sim.queue_truck(9_020)
        assert wait_until(lambda: len([e for e in events if isinstance(e, VehicleOff)]) == 2, 15)
    assert [c.gross_kg for c in captured(events)] == [27_480.0, 9_020.0]
    assert [type(e) for e in events].count(VehicleOn) == 2
    assert scale.stats["parse_errors"] == 0 and scale.stats["frames"] > 50
    assert status == [True, False]


def test_serial_over_pty_pair() -> None:
    with WeighbridgeSimulator("ascii", pty=True, rate_hz=25, time_scale=5) as sim:
        assert sim.pty_path is not None
        config = WeighbridgeConfig(
            protocol="ascii", transport="serial", serial_port=sim.pty_path, **FAST
        )
        events: list[CaptureEvent] = []
        with Weighbridge(config, on_event=events.append) as scale:
            assert wait_until(lambda: scale.last_reading is not None)
            sim.queue_truck(33_310)
            assert wait_until(lambda: any(isinstance(e, VehicleOff) for e in events), 15)
    assert [c.gross_kg for c in captured(events)] == [33_310.0]


def test_reconnects_after_simulator_restart() -> None:
    sim = WeighbridgeSimulator("toledo", tcp=("127.0.0.1", 0), rate_hz=25, time_scale=5).start()
    port = sim.tcp_port
    assert port is not None
    config = WeighbridgeConfig(
        protocol="toledo", transport="tcp", host="127.0.0.1", tcp_port=port, **FAST
    )
    events: list[CaptureEvent] = []
    status: list[bool] = []
    scale = Weighbridge(config, on_event=events.append, on_status=status.append).start()
    try:
        assert wait_until(lambda: scale.connected)
        sim.stop()
        assert wait_until(lambda: not scale.connected)
        time.sleep(0.3)  # a few refused connection attempts with backoff
        sim = WeighbridgeSimulator("toledo", tcp=("127.0.0.1", port), rate_hz=25, time_scale=5)
        sim.start()
        assert wait_until(lambda: scale.connected)
        sim.queue_truck(15_000)
        assert wait_until(lambda: bool(captured(events)), 15)
    finally:
        scale.stop()
        sim.stop()
    assert status[:3] == [True, False, True]
    assert scale.stats["reconnects"] >= 1 and scale.stats["connect_failures"] >= 1
    assert captured(events)[0].gross_kg == 15_000.0


class OneShotServer:
    """A local TCP peer that sends fixed bytes to its first client, then keeps it open."""

    def __init__(self, payload: bytes) -> None:
        self.payload = payload
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.clients: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            self.clients.append(client)
            client.sendall(self.payload)

    def close(self) -> None:
        self.server.close()
        for client in self.clients:
            client.close()


def test_garbage_is_counted_not_fatal() -> None:
    good = encode_toledo(12_000)
    payload = b"\xff\xfe junk" + good + b"\x02*0 0120x0000000\r" + good + b"\x02" + b"z" * 40 + good
    peer = OneShotServer(payload)
    config = WeighbridgeConfig(
        protocol="toledo", transport="tcp", host="127.0.0.1", tcp_port=peer.port, **FAST
    )
    readings: list = []
    try:
        with Weighbridge(config, on_reading=readings.append) as scale:
            assert wait_until(lambda: len(readings) == 3)
            assert scale.stats["parse_errors"] == 1
            assert scale.stats["bytes_discarded"] > 0
            assert scale.connected
    finally:
        peer.close()
    assert {r.gross_kg for r in readings} == {12_000.0}


def test_silent_connection_is_reopened_and_callback_errors_are_contained() -> None:
    peer = OneShotServer(encode_toledo(700))  # one frame, then silence
    config = WeighbridgeConfig(
        protocol="toledo",
        transport="tcp",
        host="127.0.0.1",
        tcp_port=peer.port,
        no_data_timeout_s=0.3,
        **FAST,
    )

    def broken(_: object) -> None:
        raise RuntimeError("consumer bug")

    try:
        with Weighbridge(config, on_reading=broken) as scale:
            assert wait_until(lambda: scale.stats["no_data_timeouts"] >= 2)
            assert scale.stats["callback_errors"] >= 2  # one frame per connection
    finally:
        peer.close()


def test_yaohua_stream_mid_frame_with_a_corrupt_check_over_tcp() -> None:
    """A connection opened mid-frame, noise, a frame with a wrong XOR: counted, the rest read."""
    good = [encode_tf0(w) for w in (18_000, 18_010, 18_020)]
    corrupt = good[1][:-2] + b"0\x03" if good[1][-2:-1] != b"0" else good[1][:-2] + b"1\x03"
    payload = good[0][5:] + b"\xff\xfe" + good[0] + corrupt + good[2]
    peer = OneShotServer(payload)
    config = WeighbridgeConfig(
        protocol="yaohua_tf0", unit="kg", transport="tcp", host="127.0.0.1", tcp_port=peer.port,
        **FAST,
    )  # fmt: skip
    readings: list = []
    try:
        with Weighbridge(config, on_reading=readings.append) as scale:
            assert wait_until(lambda: len(readings) == 2)
            assert scale.stats["parse_error:ChecksumError"] == 1
            assert scale.stats["bytes_discarded"] == len(good[0][5:]) + 2
    finally:
        peer.close()
    assert [r.gross_kg for r in readings] == [18_000.0, 18_020.0]
