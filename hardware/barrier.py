"""Barrier and traffic light over Modbus coils (TCP or RTU): a client and a pymodbus simulator.

Three coils (addresses from `BarrierConfig`): barrier open (held set while open), red light,
green light. The simulator is a real pymodbus server that mirrors the coils it is written, on
TCP or, for RTU, on a serial port (`PtyLink` gives it a null-modem pair of ptys in tests).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pty
import select
import threading
import tty
from dataclasses import dataclass

from pymodbus import FramerType
from pymodbus.client import ModbusSerialClient, ModbusTcpClient
from pymodbus.exceptions import ModbusException
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from hardware.config import BarrierConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BarrierOutputs:
    """The state of the barrier's three outputs."""

    barrier_open: bool
    red: bool
    green: bool


CLOSED_RED = BarrierOutputs(barrier_open=False, red=True, green=False)
OPEN_GREEN = BarrierOutputs(barrier_open=True, red=False, green=True)


class BarrierError(ConnectionError):
    """A Modbus request to the barrier failed; `endpoint` names the controller."""

    def __init__(self, endpoint: str, reason: str) -> None:
        super().__init__(f"barrier {endpoint}: {reason}")
        self.endpoint = endpoint


class BarrierClient:
    """Writes and reads the barrier coils; reconnects on the next request after a failure."""

    def __init__(self, config: BarrierConfig) -> None:
        self.config = config
        self.endpoint = config.endpoint
        self._client: ModbusTcpClient | ModbusSerialClient
        if config.transport == "rtu":
            assert config.serial_port is not None  # guaranteed by BarrierConfig validation
            self._client = ModbusSerialClient(
                config.serial_port,
                framer=FramerType.RTU,
                baudrate=config.baudrate,
                bytesize=config.bytesize,
                parity=config.parity,
                stopbits=config.stopbits,
                timeout=config.timeout_s,
                retries=0,
            )
        else:
            assert config.host is not None  # guaranteed by BarrierConfig validation
            self._client = ModbusTcpClient(
                config.host, port=config.port, timeout=config.timeout_s, retries=0
            )
        self._lock = threading.Lock()

    def set_outputs(self, outputs: BarrierOutputs) -> None:
        """Drive the three coils; closing and red go first so no instant shows open+red-off."""
        c = self.config
        if outputs.barrier_open:
            order = [(c.coil_red, outputs.red), (c.coil_green, outputs.green)]
            order.append((c.coil_barrier_open, True))
        else:
            order = [(c.coil_barrier_open, False), (c.coil_red, outputs.red)]
            order.append((c.coil_green, outputs.green))
        with self._lock:
            for address, value in order:
                self._call(
                    lambda a=address, v=value: self._client.write_coil(a, v, device_id=c.device_id)
                )

    def read_outputs(self) -> BarrierOutputs:
        """Read the three coils back."""
        c = self.config
        with self._lock:
            bits = [
                self._call(
                    lambda a=a: self._client.read_coils(a, count=1, device_id=c.device_id)
                ).bits[0]
                for a in (c.coil_barrier_open, c.coil_red, c.coil_green)
            ]
        return BarrierOutputs(barrier_open=bits[0], red=bits[1], green=bits[2])

    def close(self) -> None:
        """Close the Modbus connection."""
        with self._lock:
            self._client.close()

    def _call(self, request):  # type: ignore[no-untyped-def]
        try:
            if not self._client.connected and not self._client.connect():
                raise BarrierError(self.endpoint, "cannot connect")
            response = request()
        except ModbusException as exc:
            self._client.close()
            raise BarrierError(self.endpoint, str(exc)) from exc
        if response.isError():
            raise BarrierError(self.endpoint, f"error response {response}")
        return response


class BarrierSimulator:
    """A pymodbus server with `coil_count` coils, reporting the barrier coils it is written.

    Modbus TCP on (`host`, `port`), or with `serial_port` Modbus RTU on that serial device.
    `outputs` is the barrier state as the coils of `config` describe it; `writes` counts writes.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        config: BarrierConfig | None = None,
        coil_count: int = 64,
        serial_port: str | None = None,
        baudrate: int = 9600,
    ) -> None:
        self._address = (host, port)
        self._serial_port = serial_port
        self._baudrate = baudrate
        self.config = config or BarrierConfig(host=host, port=port or 502)
        self.coils = [False] * coil_count
        self.writes = 0
        self.port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: ModbusTcpServer | ModbusSerialServer | None = None
        self._thread: threading.Thread | None = None
        self._device = SimDevice(
            0,  # answer every device id
            simdata=(
                [SimData(0, count=coil_count, values=False, datatype=DataType.BITS)],
                [SimData(0, count=1, values=False, datatype=DataType.BITS)],
                [SimData(0, count=1, values=0, datatype=DataType.REGISTERS)],
                [SimData(0, count=1, values=0, datatype=DataType.REGISTERS)],
            ),
            action=self._on_access,
        )

    @property
    def outputs(self) -> BarrierOutputs:
        """Barrier, red and green as currently written."""
        c = self.config
        return BarrierOutputs(
            self.coils[c.coil_barrier_open], self.coils[c.coil_red], self.coils[c.coil_green]
        )

    async def _on_access(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        values: list[int] | list[bool] | None,
    ) -> None:
        if values is None or function_code not in (5, 15):
            return
        before = self.outputs
        for i, value in enumerate(values):
            if 0 <= address + i < len(self.coils):
                self.coils[address + i] = bool(value)
        self.writes += 1
        after = self.outputs
        if after != before:
            log.info(
                "BARRIER %s, red %s, green %s",
                "OPEN" if after.barrier_open else "CLOSED",
                "on" if after.red else "off",
                "on" if after.green else "off",
            )

    def start(self) -> BarrierSimulator:
        """Serve in a thread with its own event loop; returns self (see `port`)."""
        ready = threading.Event()
        loop = asyncio.new_event_loop()
        self._loop = loop

        async def serve() -> None:
            server: ModbusTcpServer | ModbusSerialServer
            if self._serial_port is not None:
                server = ModbusSerialServer(
                    self._device,
                    framer=FramerType.RTU,
                    port=self._serial_port,
                    baudrate=self._baudrate,
                )
                self._server = server
                await server.serve_forever(background=True)
                self.port = 0  # no TCP port: serving on the serial device
            else:
                server = ModbusTcpServer(self._device, address=self._address)
                self._server = server
                await server.serve_forever(background=True)
                self.port = server.transport.sockets[0].getsockname()[1]  # type: ignore[union-attr,attr-defined]
            ready.set()
            with contextlib.suppress(asyncio.CancelledError):
                await server.serving

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(serve())
            except (OSError, RuntimeError):
                log.exception("barrier simulator failed on %s", self._serial_port or self._address)
            finally:
                ready.set()
                loop.close()

        self._thread = threading.Thread(target=run, name="barrier-sim", daemon=True)
        self._thread.start()
        ready.wait(5)
        if self.port is None:
            where = self._serial_port or self._address
            raise OSError(f"barrier simulator could not listen on {where}")
        return self

    def stop(self) -> None:
        """Shut the server down and join its thread."""
        if self._loop is not None and self._server is not None and self._thread is not None:
            future = asyncio.run_coroutine_threadsafe(self._server.shutdown(), self._loop)
            future.result(timeout=5)
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None
        self._loop = None

    def __enter__(self) -> BarrierSimulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class PtyLink:
    """A null-modem cable made of two ptys: what one end's device writes, the other reads.

    `ends` are the two device paths (open each as a serial port); a thread copies bytes between
    the two pty masters. For running Modbus RTU client and server on one machine.
    """

    def __init__(self) -> None:
        self._fds: list[tuple[int, int]] = []
        self.ends: tuple[str, str] = ("", "")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> PtyLink:
        """Open both pty pairs and start copying; returns self."""
        for _ in range(2):
            master, slave = pty.openpty()
            tty.setraw(slave)
            self._fds.append((master, slave))
        self.ends = (os.ttyname(self._fds[0][1]), os.ttyname(self._fds[1][1]))
        self._thread = threading.Thread(target=self._copy, name="pty-link", daemon=True)
        self._thread.start()
        return self

    def _copy(self) -> None:
        a, b = self._fds[0][0], self._fds[1][0]
        peer = {a: b, b: a}
        while not self._stop.is_set():
            ready, _, _ = select.select([a, b], [], [], 0.05)
            for fd in ready:
                try:
                    data = os.read(fd, 4096)
                    os.write(peer[fd], data)
                except OSError:  # an end not open right now (EIO): its bytes go nowhere
                    continue

    def stop(self) -> None:
        """Stop copying and close every pty descriptor."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        for master, slave in self._fds:
            os.close(master)
            os.close(slave)
        self._fds.clear()

    def __enter__(self) -> PtyLink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
