"""All three simulators of one lane (weighbridge, barrier, display) in-process, for demos and tests.

sims = LaneSimulators.start(protocol="toledo")
scale = Weighbridge(sims.weighbridge_config(), on_event=print).start()
barrier, display = BarrierClient(sims.barrier_config()), DisplayClient(sims.display_config())
sims.queue_truck(32_000)
...
scale.stop(); sims.stop()
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hardware.barrier import BarrierOutputs, BarrierSimulator
from hardware.config import BarrierConfig, DisplayConfig, WeighbridgeConfig
from hardware.display import DisplayMessage, DisplaySimulator
from hardware.weighbridge.simulator import SimProtocol, WeighbridgeSimulator, reader_settings


@dataclass
class LaneSimulators:
    """Running simulators of one lane; build with `LaneSimulators.start`, end with `stop`."""

    host: str
    weighbridge: WeighbridgeSimulator
    barrier: BarrierSimulator
    display: DisplaySimulator

    @classmethod
    def start(
        cls,
        protocol: SimProtocol = "toledo",
        *,
        host: str = "127.0.0.1",
        weighbridge_port: int = 0,
        barrier_port: int = 0,
        display_port: int = 0,
        rate_hz: float = 10.0,
        time_scale: float = 1.0,
    ) -> LaneSimulators:
        """Start the three simulators on `host` (port 0: a free port each) in threads."""
        weighbridge = WeighbridgeSimulator(
            protocol, tcp=(host, weighbridge_port), rate_hz=rate_hz, time_scale=time_scale
        ).start()
        started: list[Any] = [weighbridge]
        try:
            barrier = BarrierSimulator(host, barrier_port).start()
            started.append(barrier)
            display = DisplaySimulator(host, display_port).start()
        except OSError:
            for sim in started:
                sim.stop()
            raise
        return cls(host, weighbridge, barrier, display)

    @property
    def weighbridge_port(self) -> int:
        """TCP port of the weighbridge indicator stream."""
        assert self.weighbridge.tcp_port is not None
        return self.weighbridge.tcp_port

    @property
    def barrier_port(self) -> int:
        """Modbus TCP port of the barrier controller."""
        assert self.barrier.port is not None
        return self.barrier.port

    @property
    def display_port(self) -> int:
        """TCP port of the lane display."""
        assert self.display.port is not None
        return self.display.port

    def queue_truck(self, gross_kg: float) -> None:
        """Drive a truck of `gross_kg` onto the weighbridge, stop, and off again."""
        self.weighbridge.queue_truck(gross_kg)

    def queue_axle_truck(self, axle_groups_kg: Sequence[float]) -> None:
        """Drive a truck over a short weighbridge axle group by axle group."""
        self.weighbridge.queue_axle_truck(axle_groups_kg)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until every queued truck has crossed the weighbridge."""
        return self.weighbridge.wait_idle(timeout)

    @property
    def barrier_outputs(self) -> BarrierOutputs:
        """What the barrier and lights show now."""
        return self.barrier.outputs

    @property
    def display_message(self) -> DisplayMessage:
        """What the lane display shows now."""
        return self.display.current

    def weighbridge_config(self, **capture: Any) -> WeighbridgeConfig:
        """A WeighbridgeConfig reading this simulator over TCP; `capture` overrides settings."""
        return WeighbridgeConfig(
            **reader_settings(self.weighbridge.protocol, checksum=self.weighbridge.checksum),
            transport="tcp",
            host=self.host,
            tcp_port=self.weighbridge_port,
            **capture,
        )

    def barrier_config(self) -> BarrierConfig:
        """A BarrierConfig for the simulated barrier (default coils 0, 1, 2)."""
        return BarrierConfig(host=self.host, port=self.barrier_port)

    def display_config(self) -> DisplayConfig:
        """A DisplayConfig for the simulated display."""
        return DisplayConfig(host=self.host, port=self.display_port)

    def stop(self) -> None:
        """Stop all three simulators."""
        self.weighbridge.stop()
        self.barrier.stop()
        self.display.stop()

    def __enter__(self) -> LaneSimulators:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
