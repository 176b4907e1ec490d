"""Weighbridge simulator: realistic truck weight profiles played as indicator bytes over TCP or a pty.

A profile is a list of segments (ramp, damped oscillation, hold). `render_stream` turns a profile
into the exact bytes an indicator would send (used to record test streams); `WeighbridgeSimulator`
plays queued trucks live in a thread to every connected TCP client and/or a pty for serial.
"""

from __future__ import annotations

import logging
import math
import os
import pty
import select
import socket
import threading
import time
import tty
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, get_args

from hardware.config import FrameConfig, ProtocolName, RegexFormatConfig
from hardware.weighbridge.protocols import (
    encode_a12,
    encode_ascii,
    encode_eq,
    encode_framed,
    encode_tf0,
    encode_toledo,
)

log = logging.getLogger(__name__)

SimProtocol = ProtocolName
PROTOCOLS: tuple[SimProtocol, ...] = get_args(ProtocolName)

# What the simulator speaks for `protocol: regex`: a generic framed indicator sending
# STX, `S` (stable) or `M` (motion), a signed 7-digit weight, `kg`, a hex XOR check, ETX.
SIM_REGEX_FORMAT = RegexFormatConfig(
    pattern=r"(?P<status>[SM])(?P<weight>[+-]\d{7})(?P<unit>kg)",
    stable_tokens=["S"],
    frame=FrameConfig(start="02", end="03", length=15, checksum="xor", checksum_encoding="hex"),
)


def reader_settings(protocol: SimProtocol, *, checksum: bool = False) -> dict[str, Any]:
    """The WeighbridgeConfig keys that read what the simulator sends for `protocol`."""
    settings: dict[str, Any] = {"protocol": protocol}
    if protocol == "toledo":
        settings["toledo_checksum"] = checksum
    if protocol == "regex":
        settings["regex"] = SIM_REGEX_FORMAT
    return settings


@dataclass(frozen=True)
class Segment:
    """A stretch of a weight profile: linear from `start_kg` to `end_kg`, plus damped oscillation.

    `motion` is what the indicator reports during the segment (ramps and oscillation: True).
    """

    duration_s: float
    start_kg: float
    end_kg: float
    motion: bool
    oscillation_kg: float = 0.0
    oscillation_hz: float = 1.2

    def weight_at(self, t: float) -> float:
        """Load `t` seconds into the segment."""
        frac = min(max(t / self.duration_s, 0.0), 1.0) if self.duration_s > 0 else 1.0
        base = self.start_kg + (self.end_kg - self.start_kg) * frac
        if self.oscillation_kg:
            decay = math.exp(-3.0 * frac)
            base += self.oscillation_kg * decay * math.sin(2 * math.pi * self.oscillation_hz * t)
        return base


def ramp(start_kg: float, end_kg: float, duration_s: float) -> Segment:
    """The load changing steadily (a vehicle driving on or off)."""
    return Segment(duration_s, start_kg, end_kg, motion=True)


def settle(level_kg: float, amplitude_kg: float, duration_s: float) -> Segment:
    """The platform oscillating around a level after the vehicle stopped, decaying."""
    return Segment(duration_s, level_kg, level_kg, motion=True, oscillation_kg=amplitude_kg)


def hold(level_kg: float, duration_s: float) -> Segment:
    """A stable load."""
    return Segment(duration_s, level_kg, level_kg, motion=False)


def truck_profile(
    gross_kg: float,
    *,
    ramp_s: float = 3.0,
    settle_s: float = 2.0,
    hold_s: float = 4.0,
    leave_s: float = 3.0,
    empty_s: float = 2.0,
) -> list[Segment]:
    """A truck driving onto the platform, settling, standing still, leaving; then empty."""
    return [
        ramp(0.0, gross_kg, ramp_s),
        settle(gross_kg, max(gross_kg * 0.01, 50.0), settle_s),
        hold(gross_kg, hold_s),
        ramp(gross_kg, 0.0, leave_s),
        hold(0.0, empty_s),
    ]


def axle_profile(
    groups_kg: Sequence[float],
    *,
    move_s: float = 2.0,
    settle_s: float = 1.5,
    hold_s: float = 3.0,
    gap_s: float = 0.8,
    empty_s: float = 3.0,
) -> list[Segment]:
    """A truck crossing a short platform axle group by axle group (empty gap between groups)."""
    segments: list[Segment] = []
    for group in groups_kg:
        segments += [
            ramp(0.0, group, move_s),
            settle(group, max(group * 0.01, 30.0), settle_s),
            hold(group, hold_s),
            ramp(group, 0.0, move_s),
            hold(0.0, gap_s),
        ]
    segments.append(hold(0.0, empty_s))
    return segments


def profile_duration(profile: Sequence[Segment]) -> float:
    """Total seconds a profile lasts."""
    return sum(s.duration_s for s in profile)


def sample(profile: Sequence[Segment], t: float) -> tuple[float, bool]:
    """(load, motion) `t` seconds into a profile; past its end, the last segment's end."""
    for segment in profile:
        if t < segment.duration_s:
            return segment.weight_at(t), segment.motion
        t -= segment.duration_s
    last = profile[-1]
    return last.end_kg, last.motion


def encode_frame(
    protocol: SimProtocol,
    weight_kg: float,
    motion: bool,
    *,
    increment_kg: float = 10.0,
    checksum: bool = False,
) -> bytes:
    """One indicator frame for a load, rounded to the indicator's increment.

    Formats without a motion flag (the Yaohua and Keli ones) cannot say `motion`; the settling
    oscillation of the profile is what keeps the capture from taking a moving load.
    """
    shown = round(weight_kg / increment_kg) * increment_kg
    if protocol == "toledo":
        return encode_toledo(shown, motion=motion, checksum=checksum)
    if protocol == "ascii":
        return encode_ascii(shown, motion=motion)
    if protocol in ("yaohua_tf0", "keli_tf0"):
        return encode_tf0(shown)
    if protocol in ("yaohua_eq_reversed", "yaohua_eq"):
        return encode_eq(shown, reverse=protocol == "yaohua_eq_reversed")
    if protocol == "yaohua_a12":
        return encode_a12(shown)
    assert SIM_REGEX_FORMAT.frame is not None
    digits = min(abs(round(shown)), 9_999_999)
    payload = f"{'M' if motion else 'S'}{'-' if shown < 0 else '+'}{digits:07d}kg"
    return encode_framed(SIM_REGEX_FORMAT.frame, payload.encode())


def frames(
    profile: Sequence[Segment],
    protocol: SimProtocol,
    rate_hz: float,
    *,
    increment_kg: float = 10.0,
    checksum: bool = False,
) -> Iterable[tuple[float, bytes]]:
    """(seconds from start, frame) for a whole profile sent at `rate_hz`."""
    n = int(profile_duration(profile) * rate_hz)
    for i in range(n):
        t = i / rate_hz
        weight, motion = sample(profile, t)
        yield (
            t,
            encode_frame(protocol, weight, motion, increment_kg=increment_kg, checksum=checksum),
        )


def render_stream(
    profile: Sequence[Segment],
    protocol: SimProtocol,
    rate_hz: float = 10.0,
    *,
    increment_kg: float = 10.0,
    checksum: bool = False,
) -> bytes:
    """The whole byte stream an indicator sends for a profile (a 'recording' for tests)."""
    return b"".join(
        f
        for _, f in frames(profile, protocol, rate_hz, increment_kg=increment_kg, checksum=checksum)
    )


class WeighbridgeSimulator:
    """A live indicator: plays queued profiles (idle: empty platform) at `rate_hz` in a thread.

    Serve over TCP with `tcp=(host, port)` (port 0 picks a free one, see `tcp_port`) and/or over a
    pty with `pty=True` (open `pty_path` as a serial port). `time_scale` > 1 plays profiles faster.
    """

    def __init__(
        self,
        protocol: SimProtocol = "toledo",
        *,
        tcp: tuple[str, int] | None = None,
        pty: bool = False,
        rate_hz: float = 10.0,
        time_scale: float = 1.0,
        increment_kg: float = 10.0,
        checksum: bool = False,
    ) -> None:
        if tcp is None and not pty:
            raise ValueError("serve over tcp, pty or both")
        self.protocol = protocol
        self.rate_hz = rate_hz
        self.time_scale = time_scale
        self.increment_kg = increment_kg
        self.checksum = checksum
        self._tcp_addr = tcp
        self._want_pty = pty
        self._queue: deque[list[Segment]] = deque()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._thread: threading.Thread | None = None
        self._server: socket.socket | None = None
        self._clients: list[socket.socket] = []
        self._pty_master: int | None = None
        self._pty_slave: int | None = None
        self.tcp_port: int | None = None
        self.pty_path: str | None = None
        self.frames_sent = 0

    def start(self) -> WeighbridgeSimulator:
        """Open the endpoints and start playing; returns self."""
        if self._tcp_addr is not None:
            server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            server.bind(self._tcp_addr)
            server.listen()
            server.setblocking(False)
            self._server = server
            self.tcp_port = server.getsockname()[1]
        if self._want_pty:
            master, slave = pty.openpty()
            tty.setraw(slave)
            self._pty_master, self._pty_slave = master, slave
            self.pty_path = os.ttyname(slave)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="weighbridge-sim", daemon=True)
        self._thread.start()
        log.info(
            "weighbridge simulator (%s) tcp=%s pty=%s", self.protocol, self.tcp_port, self.pty_path
        )
        return self

    def stop(self) -> None:
        """Stop playing and close every endpoint (clients see the connection drop)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        for client in self._clients:
            client.close()
        self._clients.clear()
        if self._server is not None:
            self._server.close()
            self._server = None
        for fd in (self._pty_master, self._pty_slave):
            if fd is not None:
                os.close(fd)
        self._pty_master = self._pty_slave = None

    def __enter__(self) -> WeighbridgeSimulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def queue_profile(self, profile: Sequence[Segment]) -> None:
        """Play `profile` after whatever is queued."""
        with self._lock:
            self._queue.append(list(profile))
            self._idle.clear()

    def queue_truck(self, gross_kg: float) -> None:
        """Queue a truck that stands on the platform as a whole (see `truck_profile`)."""
        self.queue_profile(truck_profile(gross_kg))

    def queue_axle_truck(self, axle_groups_kg: Sequence[float]) -> None:
        """Queue a truck crossing a short platform axle group by axle group (`axle_profile`)."""
        self.queue_profile(axle_profile(axle_groups_kg))

    def wait_idle(self, timeout: float) -> bool:
        """Block until every queued profile has played; False on timeout."""
        return self._idle.wait(timeout)

    def _next_profile(self) -> list[Segment] | None:
        with self._lock:
            if self._queue:
                return self._queue.popleft()
            self._idle.set()
            return None

    def _run(self) -> None:
        period = 1.0 / self.rate_hz
        profile: list[Segment] | None = None
        started = 0.0
        next_tick = time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            if profile is None:
                profile = self._next_profile()
                started = now
            if profile is not None:
                t = (now - started) * self.time_scale
                weight, motion = sample(profile, t)
                if t >= profile_duration(profile):
                    profile = None
            else:
                weight, motion = 0.0, False
            frame = encode_frame(
                self.protocol,
                weight,
                motion,
                increment_kg=self.increment_kg,
                checksum=self.checksum,
            )
            self._accept()
            self._send(frame)
            next_tick += period
            self._stop.wait(max(0.0, next_tick - time.monotonic()))

    def _accept(self) -> None:
        if self._server is None:
            return
        while True:
            try:
                client, addr = self._server.accept()
            except OSError:  # nobody waiting (non-blocking) or socket closed
                return
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            client.settimeout(1.0)  # a client that stops reading is dropped, never waited on
            log.info("weighbridge simulator: client %s connected", addr)
            self._clients.append(client)

    def _send(self, frame: bytes) -> None:
        self.frames_sent += 1
        for client in list(self._clients):
            try:
                client.sendall(frame)
            except OSError:
                log.info("weighbridge simulator: client dropped")
                client.close()
                self._clients.remove(client)
        if self._pty_master is not None:
            # Nobody may be reading the pty; never block on a full buffer.
            _, ready, _ = select.select([], [self._pty_master], [], 0)
            if ready:
                try:
                    os.write(self._pty_master, frame)
                except OSError:
                    log.debug("weighbridge simulator: pty write failed")
