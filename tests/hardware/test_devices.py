"""Barrier over Modbus TCP and RTU and the lane display line protocol, against their simulators."""

from __future__ import annotations

import socket

import pytest
from pydantic import ValidationError

from hardware.barrier import (
    CLOSED_RED,
    OPEN_GREEN,
    BarrierClient,
    BarrierError,
    BarrierOutputs,
    BarrierSimulator,
    PtyLink,
)
from hardware.config import BarrierConfig, DisplayConfig
from hardware.display import (
    DisplayClient,
    DisplayError,
    DisplayMessage,
    DisplayProtocolError,
    DisplayRequest,
    DisplaySimulator,
    encode_show,
    parse_request,
)


def test_barrier_coils_written_and_read_back() -> None:
    config_coils = {"coil_barrier_open": 10, "coil_red": 11, "coil_green": 17}
    with BarrierSimulator(config=BarrierConfig(host="127.0.0.1", **config_coils)) as sim:
        client = BarrierClient(BarrierConfig(host="127.0.0.1", port=sim.port, **config_coils))
        try:
            client.set_outputs(OPEN_GREEN)
            assert sim.outputs == OPEN_GREEN
            assert client.read_outputs() == OPEN_GREEN
            assert [i for i, on in enumerate(sim.coils) if on] == [10, 17]
            client.set_outputs(CLOSED_RED)
            assert sim.outputs == CLOSED_RED == client.read_outputs()
            assert sim.coils[0:3] == [False, False, False]  # default coils untouched
        finally:
            client.close()


def test_barrier_down_raises_and_recovers_after_restart() -> None:
    sim = BarrierSimulator().start()
    port = sim.port
    client = BarrierClient(BarrierConfig(host="127.0.0.1", port=port, timeout_s=0.5))
    try:
        client.set_outputs(OPEN_GREEN)
        sim.stop()
        with pytest.raises(BarrierError) as err:
            client.set_outputs(CLOSED_RED)
        assert err.value.endpoint == f"127.0.0.1:{port}"
        sim = BarrierSimulator(port=port).start()
        client.set_outputs(CLOSED_RED)
        assert sim.outputs == CLOSED_RED
    finally:
        client.close()
        sim.stop()


def test_barrier_address_out_of_range_is_an_error() -> None:
    with BarrierSimulator(coil_count=8) as sim:
        client = BarrierClient(
            BarrierConfig(host="127.0.0.1", port=sim.port, coil_barrier_open=100)
        )
        try:
            with pytest.raises(BarrierError, match="error response"):
                client.set_outputs(BarrierOutputs(True, False, True))
        finally:
            client.close()


def test_barrier_config_needs_distinct_coils() -> None:
    with pytest.raises(ValidationError, match="coil addresses must differ"):
        BarrierConfig(host="h", coil_red=0)


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({}, "host is required when transport is tcp"),
        ({"transport": "rtu", "host": "h"}, "serial_port is required when transport is rtu"),
        ({"transport": "rtu", "serial_port": "/dev/ttyUSB1", "parity": "X"}, "parity"),
    ],
)
def test_barrier_config_transport_settings(fields: dict, error: str) -> None:
    with pytest.raises(ValidationError, match=error):
        BarrierConfig(**fields)


def test_barrier_over_modbus_rtu_on_a_serial_line() -> None:
    """Modbus RTU client and the pymodbus RTU server joined by a null-modem pair of ptys."""
    coils = {"coil_barrier_open": 4, "coil_red": 5, "coil_green": 6}
    with PtyLink() as link:
        config = BarrierConfig(transport="rtu", serial_port=link.ends[1], timeout_s=0.5, **coils)
        client = BarrierClient(config)
        try:
            with pytest.raises(BarrierError) as err:  # nobody on the line yet: a timeout
                client.set_outputs(OPEN_GREEN)
            assert err.value.endpoint == f"{link.ends[1]} (RTU)"
            server_config = BarrierConfig(transport="rtu", serial_port=link.ends[0], **coils)
            with BarrierSimulator(serial_port=link.ends[0], config=server_config) as sim:
                client.set_outputs(OPEN_GREEN)
                assert sim.outputs == OPEN_GREEN == client.read_outputs()
                assert [i for i, on in enumerate(sim.coils) if on] == [4, 6]
                client.set_outputs(CLOSED_RED)
                assert sim.outputs == CLOSED_RED
        finally:
            client.close()


@pytest.mark.parametrize(
    ("line", "request_"),
    [
        (b"SHOW GREEN PROCEED\n", DisplayRequest("show", DisplayMessage("PROCEED", "GREEN"))),
        (
            b"SHOW AMBER GO TO INSPECTION LANE 2\r\n",
            DisplayRequest("show", DisplayMessage("GO TO INSPECTION LANE 2", "AMBER")),
        ),
        (
            "SHOW WHITE XIN CHÀO 你好\n".encode(),
            DisplayRequest("show", DisplayMessage("XIN CHÀO 你好")),
        ),
        (b"CLEAR\n", DisplayRequest("clear")),
        (b"PING", DisplayRequest("ping")),
    ],
)
def test_display_requests(line: bytes, request_: DisplayRequest) -> None:
    assert parse_request(line) == request_


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"SHOW BLUE HI\n", "colour"),
        (b"SHOW RED \n", "text"),
        (b"SHOW RED a\tb\n", "text"),
        (b"SHOW RED " + b"x" * 121 + b"\n", "text"),
        (b"BLINK\n", "unknown request"),
        (b"CLEAR now\n", "unknown request"),
        (b"\xff\xfe\n", "UTF-8"),
    ],
)
def test_display_bad_requests(line: bytes, reason: str) -> None:
    with pytest.raises(DisplayProtocolError, match=reason):
        parse_request(line)


def test_encode_show_cleans_text() -> None:
    assert encode_show(DisplayMessage("GO\tTO\n LANE  2", "AMBER")) == b"SHOW AMBER GO TO LANE 2\n"
    assert encode_show(DisplayMessage(" \n")) == b"CLEAR\n"
    assert len(encode_show(DisplayMessage("x" * 500))) == len(b"SHOW WHITE \n") + 120


def test_display_client_and_simulator() -> None:
    with DisplaySimulator() as sim:
        assert sim.port is not None
        client = DisplayClient(DisplayConfig(host="127.0.0.1", port=sim.port))
        client.ping()
        client.show(DisplayMessage("PROCEED", "GREEN"))
        assert sim.current == DisplayMessage("PROCEED", "GREEN")
        client.clear()
        assert sim.current == DisplayMessage("")
        assert sim.history == [DisplayMessage("PROCEED", "GREEN"), DisplayMessage("")]
        # A raw peer sending a bad line gets ERR and the simulator keeps serving.
        with socket.create_connection(("127.0.0.1", sim.port), timeout=2) as raw:
            raw.sendall(b"SHOW PINK X\n")
            assert raw.recv(100).startswith(b"ERR colour")
        assert sim.errors == 1
        client.show(DisplayMessage("STOP", "RED"))
        assert sim.current.text == "STOP"
        client.close()


def test_display_client_reconnects_and_reports_unreachable() -> None:
    sim = DisplaySimulator().start()
    port = sim.port
    assert port is not None
    client = DisplayClient(DisplayConfig(host="127.0.0.1", port=port, timeout_s=0.5))
    try:
        client.show(DisplayMessage("ONE"))
        sim.stop()
        with pytest.raises(DisplayError, match="unreachable"):
            client.show(DisplayMessage("TWO"))
        sim = DisplaySimulator(port=port).start()
        client.show(DisplayMessage("THREE"))
        assert sim.current.text == "THREE"
    finally:
        client.close()
        sim.stop()
