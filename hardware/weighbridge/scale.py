"""Weighbridge shell: byte transports (serial, TCP), a reconnecting reader and the capture on top.

`Weighbridge` reads the indicator in a thread, frames and parses its output, feeds readings to
the capture state machine and calls back with readings, capture events and connection changes.
A bad frame is logged and counted, a lost connection is reopened with exponential backoff; the
reader never dies of either.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, Protocol

import serial

from hardware.config import WeighbridgeConfig
from hardware.weighbridge.capture import CaptureEvent, WeightCapture
from hardware.weighbridge.protocols import ParseError, WeighbridgeReading, indicator_format

log = logging.getLogger(__name__)


class TransportClosed(ConnectionError):
    """The peer closed the connection or the device went away; `endpoint` names it."""

    def __init__(self, endpoint: str, reason: str) -> None:
        super().__init__(f"{endpoint}: {reason}")
        self.endpoint = endpoint


class ByteTransport(Protocol):
    """A byte source: `read` returns b"" on timeout and raises TransportClosed when gone."""

    endpoint: str

    def open(self) -> None: ...

    def read(self, max_bytes: int) -> bytes: ...

    def close(self) -> None: ...


class SerialTransport:
    """A serial port through pyserial (a real RS-232/485 adapter or a pty)."""

    def __init__(
        self,
        port: str,
        baudrate: int = 9600,
        *,
        bytesize: int = 8,
        parity: str = "N",
        stopbits: int = 1,
        timeout_s: float = 0.2,
    ) -> None:
        self.endpoint = port
        self._settings = dict(
            baudrate=baudrate,
            bytesize=bytesize,
            parity=parity,
            stopbits=stopbits,
            timeout=timeout_s,
        )
        self._port: serial.Serial | None = None

    def open(self) -> None:
        """Open the port; raises TransportClosed when it cannot."""
        try:
            self._port = serial.Serial(self.endpoint, **self._settings)
        except (serial.SerialException, OSError) as exc:
            raise TransportClosed(self.endpoint, f"cannot open: {exc}") from exc

    def read(self, max_bytes: int) -> bytes:
        """Up to `max_bytes` (at least one byte unless the timeout passed)."""
        if self._port is None:
            raise TransportClosed(self.endpoint, "not open")
        try:
            first = self._port.read(1)
            waiting = self._port.in_waiting
            rest = self._port.read(min(waiting, max_bytes - 1)) if first and waiting else b""
        except (serial.SerialException, OSError) as exc:
            raise TransportClosed(self.endpoint, f"read failed: {exc}") from exc
        return first + rest

    def close(self) -> None:
        """Close the port (idempotent)."""
        if self._port is not None:
            self._port.close()
            self._port = None


class TcpTransport:
    """A TCP connection to a serial-to-Ethernet converter in raw (TCP server) mode."""

    def __init__(self, host: str, port: int, *, timeout_s: float = 0.2) -> None:
        self.endpoint = f"{host}:{port}"
        self._addr = (host, port)
        self._timeout = timeout_s
        self._sock: socket.socket | None = None

    def open(self) -> None:
        """Connect; raises TransportClosed when the converter cannot be reached."""
        try:
            sock = socket.create_connection(self._addr, timeout=max(self._timeout, 1.0))
        except OSError as exc:
            raise TransportClosed(self.endpoint, f"cannot connect: {exc}") from exc
        sock.settimeout(self._timeout)
        self._sock = sock

    def read(self, max_bytes: int) -> bytes:
        """Up to `max_bytes`; b"" on timeout."""
        if self._sock is None:
            raise TransportClosed(self.endpoint, "not connected")
        try:
            data = self._sock.recv(max_bytes)
        except TimeoutError:
            return b""
        except OSError as exc:
            raise TransportClosed(self.endpoint, f"receive failed: {exc}") from exc
        if not data:
            raise TransportClosed(self.endpoint, "closed by peer")
        return data

    def close(self) -> None:
        """Close the connection (idempotent)."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def transport_for(config: WeighbridgeConfig) -> ByteTransport:
    """The transport `config.transport` describes."""
    if config.transport == "serial":
        assert config.serial_port is not None  # guaranteed by WeighbridgeConfig validation
        return SerialTransport(
            config.serial_port,
            config.baudrate,
            bytesize=config.bytesize,
            parity=config.parity,
            stopbits=config.stopbits,
        )
    assert config.host is not None and config.tcp_port is not None
    return TcpTransport(config.host, config.tcp_port)


def backoff_delays(initial_s: float, max_s: float) -> Callable[[int], float]:
    """Delay before reconnect attempt n (0-based): doubling from `initial_s`, capped at `max_s`."""
    return lambda attempt: min(max_s, initial_s * 2 ** min(attempt, 30))


ReadingCallback = Callable[[WeighbridgeReading], None]
EventCallback = Callable[[CaptureEvent], None]
StatusCallback = Callable[[bool], None]


class Weighbridge:
    """A weighbridge indicator read in a background thread, with weight capture.

    Callbacks run on the reader thread: `on_event` for capture events (vehicle on, weight
    captured, vehicle off), `on_reading` for every parsed reading, `on_status(connected)` on
    each connection change. `stats` counts frames, parse errors by reason and reconnects.
    """

    def __init__(
        self,
        config: WeighbridgeConfig,
        *,
        on_event: EventCallback | None = None,
        on_reading: ReadingCallback | None = None,
        on_status: StatusCallback | None = None,
        transport: ByteTransport | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.transport = transport or transport_for(config)
        self._format = indicator_format(config)
        self._capture = WeightCapture(config)
        self._on_event = on_event
        self._on_reading = on_reading
        self._on_status = on_status
        self._clock = clock
        self._delay = backoff_delays(config.reconnect_initial_s, config.reconnect_max_s)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._connected = False
        self.stats: Counter[str] = Counter()
        self.last_reading: WeighbridgeReading | None = None

    @property
    def connected(self) -> bool:
        """Whether the indicator's connection is open and delivering bytes."""
        return self._connected

    def start(self) -> Weighbridge:
        """Start the reader thread; returns self."""
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="weighbridge", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the reader thread and close the transport."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self.transport.close()
        self._set_connected(False)

    def __enter__(self) -> Weighbridge:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _set_connected(self, connected: bool) -> None:
        if connected == self._connected:
            return
        self._connected = connected
        if connected:
            log.info("weighbridge %s connected", self.transport.endpoint)
        else:
            log.warning("weighbridge %s disconnected", self.transport.endpoint)
        if self._on_status is not None:
            self._call(self._on_status, connected)

    def _call(self, callback: Callable[[Any], None], arg: object) -> None:
        try:
            callback(arg)
        except Exception:  # a consumer's bug must not stop the reader
            self.stats["callback_errors"] += 1
            log.exception("weighbridge: callback %r failed", callback)

    def _run(self) -> None:
        attempt = 0
        while not self._stop.is_set():
            try:
                self.transport.open()
            except TransportClosed as exc:
                delay = self._delay(attempt)
                attempt += 1
                self.stats["connect_failures"] += 1
                log.warning("weighbridge: %s; retrying in %.1fs", exc, delay)
                self._stop.wait(delay)
                continue
            attempt = 0
            self._read_until_lost()
            self.transport.close()
            self._set_connected(False)
            if not self._stop.is_set():
                self.stats["reconnects"] += 1
                self._stop.wait(self._delay(0))

    def _read_until_lost(self) -> None:
        framer = self._format.new_framer()
        last_data = time.monotonic()
        self._set_connected(True)
        while not self._stop.is_set():
            try:
                data = self.transport.read(4096)
            except TransportClosed as exc:
                log.warning("weighbridge: %s", exc)
                return
            now = time.monotonic()
            if not data:
                if now - last_data > self.config.no_data_timeout_s:
                    log.warning(
                        "weighbridge %s: no data for %.1fs, reconnecting",
                        self.transport.endpoint,
                        self.config.no_data_timeout_s,
                    )
                    self.stats["no_data_timeouts"] += 1
                    return
                continue
            last_data = now
            discarded = framer.discarded
            for frame in framer.feed(data):
                self._handle_frame(frame)
            if framer.discarded != discarded:
                self.stats["bytes_discarded"] += framer.discarded - discarded

    def _handle_frame(self, frame: bytes) -> None:
        try:
            reading = self._format.parse(frame, self._clock())
        except ParseError as exc:
            self.stats["parse_errors"] += 1
            self.stats[f"parse_error:{type(exc).__name__}"] += 1
            log.warning("weighbridge: rejected frame: %s", exc)
            return
        self.stats["frames"] += 1
        self.last_reading = reading
        if self._on_reading is not None:
            self._call(self._on_reading, reading)
        for event in self._capture.feed(reading):
            log.info("weighbridge: %s", event)
            if self._on_event is not None:
                self._call(self._on_event, event)
