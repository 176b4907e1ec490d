"""MQTT brokers for the demo, tests and benchmarks: the embedded amqtt broker (run on its own
event-loop thread) and the one launcher of Debian's mosquitto."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on `host` right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class EmbeddedBroker:
    """An amqtt broker listening on host:port, started and stopped from synchronous code."""

    def __init__(self, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.host = host
        self.port = port or free_port(host)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="amqtt", daemon=True)
        self._broker = None

    def start(self, timeout_s: float = 10.0) -> EmbeddedBroker:
        """Start listening; returns self once the port accepts connections."""
        from amqtt.broker import Broker

        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True},
            },
        }
        self._thread.start()

        async def _start() -> None:
            self._broker = Broker(config)
            await self._broker.start()

        asyncio.run_coroutine_threadsafe(_start(), self._loop).result(timeout_s)
        log.info("embedded MQTT broker on %s:%d", self.host, self.port)
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        """Shut the broker down and stop its loop."""
        if self._broker is not None:
            try:
                asyncio.run_coroutine_threadsafe(self._broker.shutdown(), self._loop).result(
                    timeout_s
                )
            except Exception:
                log.exception("amqtt shutdown failed")
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout_s)


def mosquitto_binary() -> str | None:
    """Path of Debian's mosquitto executable, if installed."""
    return shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
    )


def wait_port(host: str, port: int, timeout_s: float = 15.0) -> None:
    """Block until host:port accepts TCP connections."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"{host}:{port} did not open within {timeout_s}s")


class MosquittoNotInstalledError(RuntimeError):
    """Debian's mosquitto is not on this machine."""


class Mosquitto:
    """A mosquitto process on loopback for tests and benchmarks, restartable on the same port.

    `persistent` keeps its state in `folder` (saved on every change, as docs/deploy.md asks of a
    site broker); `extra` is appended to the generated configuration.
    """

    def __init__(
        self, folder: Path, *, port: int | None = None, persistent: bool = True,
        extra: str = "", host: str = "127.0.0.1",
    ) -> None:
        binary = mosquitto_binary()
        if binary is None:
            raise MosquittoNotInstalledError(
                "mosquitto is not installed (scripts/test installs Debian's mosquitto)")
        self.host, self.port = host, port or free_port(host)
        folder.mkdir(parents=True, exist_ok=True)
        lines = [f"listener {self.port} {host}", "allow_anonymous true",
                 "max_inflight_messages 1000", "max_queued_messages 1000000"]
        if os.geteuid() == 0:  # as root, mosquitto drops to its own user unless told not to
            lines.insert(0, "user root")
        if persistent:
            lines += ["persistence true", f"persistence_location {folder}/",
                      "autosave_interval 1", "autosave_on_changes true"]
        else:
            lines.append("persistence false")
        self.conf = folder / "mosquitto.conf"
        self.conf.write_text("\n".join(lines) + "\n" + extra)
        self.cmd = [binary, "-c", str(self.conf)]
        self.proc: subprocess.Popen | None = None

    def start(self) -> Mosquitto:
        """Start (again, from its persistence file) and wait for the port."""
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        wait_port(self.host, self.port)
        return self

    def signal(self, sig: int) -> None:
        """Send a signal (SIGKILL, SIGSTOP, SIGCONT)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            if sig == signal.SIGKILL:
                self.proc.wait(5)

    def stop(self, graceful: bool = False) -> None:
        """Kill the broker (SIGKILL), or with `graceful` let it save its persistent state."""
        if self.proc is not None and self.proc.poll() is None:
            if graceful:
                self.proc.terminate()
            else:
                self.proc.kill()
            self.proc.wait(10)
        self.proc = None
