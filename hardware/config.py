"""Typed configuration of lane hardware: weighbridge indicator, barrier, lane display, controller.

Every model forbids unknown keys so a typo in the edge lane config fails naming the key; the edge
lane config embeds these models as they are.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Unit = Literal["kg", "t", "lb", "g"]
ProtocolName = Literal[
    "toledo",
    "ascii",
    "regex",
    "yaohua_tf0",
    "keli_tf0",
    "yaohua_eq_reversed",
    "yaohua_eq",
    "yaohua_a12",
]


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _hex_bytes(value: str | None, key: str) -> bytes:
    if not value:
        return b""
    try:
        raw = bytes.fromhex(value)
    except ValueError as exc:
        raise ValueError(f"{key} {value!r} is not hexadecimal bytes, e.g. '02' or '0d0a'") from exc
    if not 1 <= len(raw) <= 4:
        raise ValueError(f"{key} {value!r} must be 1 to 4 bytes")
    return raw


class FrameConfig(_Config):
    """How a framed (not CR/LF) indicator output is cut into frames and checked.

    A frame is `start`, the payload the regex reads, the check (when `checksum` is not none),
    then `end`. Give `end`, `length` or both. The check covers the bytes after `start` up to the
    check itself (with `checksum_covers_start`, `start` too): `xor` of those bytes or their `sum`
    modulo 256, sent as two ASCII hex characters high nibble first (`hex`) or as one byte
    (`binary`). Example, a Yaohua tF=0 frame: start `02`, end `03`, length 12, xor, hex.
    """

    start: str | None = Field(default=None, description="start bytes in hex, e.g. '02'")
    end: str | None = Field(default=None, description="end bytes in hex, e.g. '03' or '0d0a'")
    length: int | None = Field(
        default=None, ge=2, le=256, description="whole frame length, delimiters included"
    )
    checksum: Literal["none", "xor", "sum"] = Field(
        default="none", description="check before the end bytes: none, xor or sum (mod 256)"
    )
    checksum_encoding: Literal["hex", "binary"] = Field(
        default="hex", description="hex: two ASCII hex characters; binary: one byte"
    )
    checksum_covers_start: bool = Field(
        default=False, description="the check also covers the start bytes"
    )

    @model_validator(mode="after")
    def _complete(self) -> FrameConfig:
        start, end = _hex_bytes(self.start, "start"), _hex_bytes(self.end, "end")
        if not end and self.length is None:
            raise ValueError("a frame needs end bytes, a length or both")
        if self.checksum != "none" and self.checksum_encoding == "binary" and self.length is None:
            raise ValueError("a binary checksum needs a fixed length (it may equal the end byte)")
        check = 0 if self.checksum == "none" else 2 if self.checksum_encoding == "hex" else 1
        if self.length is not None and self.length < len(start) + len(end) + check + 1:
            raise ValueError(f"length {self.length} leaves no payload")
        return self

    @property
    def start_bytes(self) -> bytes:
        """`start` as bytes (empty when none)."""
        return _hex_bytes(self.start, "start")

    @property
    def end_bytes(self) -> bytes:
        """`end` as bytes (empty when none)."""
        return _hex_bytes(self.end, "end")

    @property
    def check_length(self) -> int:
        """Bytes of check before the end bytes."""
        if self.checksum == "none":
            return 0
        return 2 if self.checksum_encoding == "hex" else 1


class RegexFormatConfig(_Config):
    """An indicator output described by a regular expression with named groups.

    Group `weight` is required (digits, optional sign and decimal point, spaces allowed). Optional
    groups: `status` (compared with `stable_tokens` / `overload_tokens`), `mode` (compared with
    `net_tokens`), `unit` (kg, t, lb or g; otherwise `unit` below applies). Without `frame` the
    output is CR/LF lines; with it, frames as `FrameConfig` describes.
    """

    pattern: str = Field(description="Python regex matched against one line without terminator")
    stable_tokens: list[str] = Field(
        default_factory=lambda: ["ST"],
        description="values of the `status` group meaning a stable reading; without a `status` "
        "group every reading counts as stable and the capture relies on its weight tolerance",
    )
    overload_tokens: list[str] = Field(
        default_factory=lambda: ["OL"], description="values of the `status` group meaning overload"
    )
    net_tokens: list[str] = Field(
        default_factory=lambda: ["NT", "N"], description="values of the `mode` group meaning net"
    )
    unit: Unit = Field(default="kg", description="unit when the pattern has no `unit` group")
    underload_tokens: list[str] = Field(
        default_factory=list, description="values of the `status` group meaning below range"
    )
    frame: FrameConfig | None = Field(
        default=None,
        description="framed output (start/end bytes, length, checksum); None: CR/LF lines",
    )

    @field_validator("pattern")
    @classmethod
    def _compiles_with_weight(cls, v: str) -> str:
        try:
            compiled = re.compile(v)
        except re.error as exc:
            raise ValueError(f"pattern {v!r} does not compile: {exc}") from exc
        if "weight" not in compiled.groupindex:
            raise ValueError(f"pattern {v!r} has no named group `weight`")
        return v


class CaptureConfig(_Config):
    """How a passage's weight is captured from the stream of readings."""

    threshold_kg: float = Field(
        default=500.0, gt=0, description="load at or above which a vehicle is on the platform"
    )
    empty_kg: float = Field(
        default=200.0, ge=0, description="load below which the platform counts as empty"
    )
    off_seconds: float = Field(
        default=1.0,
        ge=0,
        description="the platform must stay below empty_kg this long before vehicle_off; in "
        "axle mode make it longer than the gap between axle groups",
    )
    stable_seconds: float = Field(
        default=2.0, gt=0, description="how long a reading must stay stable to be captured"
    )
    stable_tolerance_kg: float = Field(
        default=40.0,
        ge=0,
        description="largest spread of the load within a stable run (the indicator's motion flag "
        "must also be clear)",
    )
    axle_mode: bool = Field(
        default=False,
        description="platform shorter than the truck: weigh stable axle groups one by one and "
        "report their sum when the vehicle leaves",
    )
    max_axle_groups: int = Field(default=16, ge=1, le=16, description="axle groups kept at most")

    @model_validator(mode="after")
    def _empty_below_threshold(self) -> CaptureConfig:
        if self.empty_kg >= self.threshold_kg:
            raise ValueError(
                f"empty_kg ({self.empty_kg}) must be below threshold_kg ({self.threshold_kg})"
            )
        return self


class WeighbridgeConfig(CaptureConfig):
    """A weighbridge indicator: its output protocol, how it is connected, and capture settings."""

    protocol: ProtocolName = Field(
        description="toledo: Mettler Toledo continuous; ascii: `ST,GS,+0012345kg` lines; "
        "yaohua_tf0 / keli_tf0: STX sign 6 digits decimals XOR ETX; yaohua_eq_reversed / "
        "yaohua_eq: `=` output lowest digit first / forward; yaohua_a12: A12(E) `WG`/`WN` "
        "frames; regex: another indicator described by `regex` (docs/hardware.md has the table)"
    )
    toledo_checksum: bool = Field(
        default=False, description="Toledo frames carry a checksum character after CR"
    )
    unit: Unit = Field(
        default="kg",
        description="the indicator's display unit, for formats whose frames carry none "
        "(yaohua_tf0, keli_tf0, yaohua_eq, yaohua_eq_reversed)",
    )
    capacity_kg: float | None = Field(
        default=None,
        gt=0,
        description="the indicator's range (Max + 9e): a reading above it counts as overload; "
        "for formats with no overload frame",
    )
    regex: RegexFormatConfig | None = Field(
        default=None, description="line format, required when protocol is regex"
    )
    transport: Literal["serial", "tcp"] = Field(
        description="serial port, or TCP to a serial-to-Ethernet converter"
    )
    serial_port: str | None = Field(default=None, description="device path, e.g. /dev/ttyUSB0")
    baudrate: int = Field(default=9600, gt=0, description="serial baud rate")
    bytesize: Literal[7, 8] = Field(default=8, description="serial data bits")
    parity: Literal["N", "E", "O"] = Field(default="N", description="serial parity")
    stopbits: Literal[1, 2] = Field(default=1, description="serial stop bits")
    host: str | None = Field(default=None, description="converter host for the tcp transport")
    tcp_port: int | None = Field(default=None, ge=1, le=65535, description="converter TCP port")
    reconnect_initial_s: float = Field(
        default=0.5, gt=0, description="first wait before reconnecting"
    )
    reconnect_max_s: float = Field(default=10.0, gt=0, description="longest wait between retries")
    no_data_timeout_s: float = Field(
        default=5.0,
        gt=0,
        description="a connection that delivers no bytes this long is closed and reopened",
    )

    @model_validator(mode="after")
    def _transport_and_format_complete(self) -> WeighbridgeConfig:
        if self.transport == "serial" and not self.serial_port:
            raise ValueError("serial_port is required when transport is serial")
        if self.transport == "tcp" and (not self.host or self.tcp_port is None):
            raise ValueError("host and tcp_port are required when transport is tcp")
        if self.protocol == "regex" and self.regex is None:
            raise ValueError("regex is required when protocol is regex")
        if self.reconnect_max_s < self.reconnect_initial_s:
            raise ValueError("reconnect_max_s must be >= reconnect_initial_s")
        return self

    @property
    def endpoint(self) -> str:
        """Where the indicator is, for logs and status: a device path or host:port."""
        if self.transport == "serial":
            return str(self.serial_port)
        return f"{self.host}:{self.tcp_port}"


class BarrierConfig(_Config):
    """A barrier and traffic light driven through Modbus coils (e.g. a PLC or I/O module).

    `transport: tcp` (Modbus TCP, `host`, `port`) or `rtu` (Modbus RTU over RS-485/RS-232:
    `serial_port` and its line settings).
    """

    transport: Literal["tcp", "rtu"] = Field(
        default="tcp", description="tcp: Modbus TCP; rtu: Modbus RTU over a serial line"
    )
    host: str | None = Field(default=None, description="Modbus TCP server (PLC / remote I/O)")
    port: int = Field(default=502, ge=1, le=65535, description="Modbus TCP port")
    serial_port: str | None = Field(
        default=None, description="serial device for rtu, e.g. /dev/ttyUSB1"
    )
    baudrate: int = Field(default=9600, gt=0, description="rtu baud rate")
    bytesize: Literal[7, 8] = Field(default=8, description="rtu data bits")
    parity: Literal["N", "E", "O"] = Field(default="N", description="rtu parity")
    stopbits: Literal[1, 2] = Field(default=1, description="rtu stop bits")
    device_id: int = Field(default=1, ge=0, le=255, description="Modbus unit / device id")
    coil_barrier_open: int = Field(
        default=0, ge=0, le=65535, description="coil that holds the barrier open while set"
    )
    coil_red: int = Field(default=1, ge=0, le=65535, description="coil of the red light")
    coil_green: int = Field(default=2, ge=0, le=65535, description="coil of the green light")
    timeout_s: float = Field(default=1.0, gt=0, description="Modbus request timeout")

    @model_validator(mode="after")
    def _distinct_coils(self) -> BarrierConfig:
        coils = (self.coil_barrier_open, self.coil_red, self.coil_green)
        if len(set(coils)) != 3:
            raise ValueError(f"coil addresses must differ, got {coils}")
        if self.transport == "tcp" and not self.host:
            raise ValueError("host is required when transport is tcp")
        if self.transport == "rtu" and not self.serial_port:
            raise ValueError("serial_port is required when transport is rtu")
        return self

    @property
    def endpoint(self) -> str:
        """Where the controller is, for logs: host:port or the serial device."""
        if self.transport == "rtu":
            return f"{self.serial_port} (RTU)"
        return f"{self.host}:{self.port}"


class DisplayConfig(_Config):
    """A lane message display speaking the SmartGate line protocol over TCP (docs/hardware.md)."""

    host: str = Field(description="display host")
    port: int = Field(default=5050, ge=1, le=65535, description="display TCP port")
    timeout_s: float = Field(default=1.0, gt=0, description="connect and reply timeout")


class LaneControllerConfig(_Config):
    """Identity of the lane and the messages and timings of its barrier logic."""

    site: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="site id, as in the contract")
    lane: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="this lane's id")
    node_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="edge node id for acks")
    auto_close_seconds: float = Field(
        default=60.0, gt=0, description="an open barrier closes after this even if nobody left"
    )
    proceed_message: str = Field(default="PROCEED", max_length=120, description="on open")
    stop_message: str = Field(default="STOP", max_length=120, description="on close")
    wait_message: str = Field(
        default="PLEASE WAIT", max_length=120, description="when a passage awaits its decision"
    )
    inspection_message: str = Field(
        default="GO TO INSPECTION LANE {lane}",
        max_length=120,
        description="on send_to_inspection; {lane} is the command's inspection lane",
    )
    central_lost_message: str = Field(
        default="SYSTEM OFFLINE - PLEASE WAIT", max_length=120, description="when central is lost"
    )
