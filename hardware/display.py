"""Lane message display: the SmartGate display line protocol, a TCP client and a simulator.

Protocol (docs/hardware.md): UTF-8 lines over TCP ending in LF. Requests `SHOW <COLOUR> <text>`,
`CLEAR`, `PING`; one reply line each: `OK`, `PONG` or `ERR <reason>`.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import socketserver
import threading
from dataclasses import dataclass
from typing import Literal, get_args

from hardware.config import DisplayConfig

log = logging.getLogger(__name__)

Colour = Literal["RED", "GREEN", "AMBER", "WHITE"]
COLOURS: tuple[str, ...] = get_args(Colour)
MAX_TEXT = 120
MAX_LINE = 256


class DisplayProtocolError(ValueError):
    """A request line that breaks the display protocol; `line` holds it."""

    def __init__(self, line: bytes, reason: str) -> None:
        super().__init__(f"{reason}: {line!r}")
        self.line = line
        self.reason = reason


class DisplayError(ConnectionError):
    """The display could not be reached or answered with an error; `endpoint` names it."""

    def __init__(self, endpoint: str, reason: str) -> None:
        super().__init__(f"display {endpoint}: {reason}")
        self.endpoint = endpoint


@dataclass(frozen=True)
class DisplayMessage:
    """What a display shows: one line of text in a colour; empty text is a blank display."""

    text: str
    colour: Colour = "WHITE"


@dataclass(frozen=True)
class DisplayRequest:
    """One parsed request: `show` (with its message), `clear` or `ping`."""

    kind: Literal["show", "clear", "ping"]
    message: DisplayMessage | None = None


def clean_text(text: str) -> str:
    """One display line: control characters become spaces, runs of spaces collapse, clipped."""
    printable = "".join(ch if ch.isprintable() else " " for ch in text)
    return " ".join(printable.split())[:MAX_TEXT]


def encode_show(message: DisplayMessage) -> bytes:
    """The request line showing `message` (an empty text encodes as CLEAR)."""
    text = clean_text(message.text)
    if not text:
        return b"CLEAR\n"
    return f"SHOW {message.colour} {text}\n".encode()


def parse_request(line: bytes) -> DisplayRequest:
    """Parse one request line (terminator optional); raises DisplayProtocolError."""
    try:
        text = line.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError as exc:
        raise DisplayProtocolError(line, "not UTF-8") from exc
    verb, _, rest = text.partition(" ")
    if verb == "CLEAR" and not rest:
        return DisplayRequest("clear")
    if verb == "PING" and not rest:
        return DisplayRequest("ping")
    if verb != "SHOW":
        raise DisplayProtocolError(line, "unknown request")
    colour, _, body = rest.partition(" ")
    if colour not in COLOURS:
        raise DisplayProtocolError(line, f"colour must be one of {', '.join(COLOURS)}")
    if not body or len(body) > MAX_TEXT or not body.isprintable():
        raise DisplayProtocolError(line, f"text must be 1-{MAX_TEXT} printable characters")
    return DisplayRequest("show", DisplayMessage(body, colour))  # type: ignore[arg-type]


class DisplayClient:
    """Sends requests to a display, reconnecting once per request if the connection dropped."""

    def __init__(self, config: DisplayConfig) -> None:
        self.config = config
        self.endpoint = f"{config.host}:{config.port}"
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()

    def show(self, message: DisplayMessage) -> None:
        """Show a message (empty text clears); raises DisplayError."""
        self._request(encode_show(message), b"OK")

    def clear(self) -> None:
        """Blank the display; raises DisplayError."""
        self._request(b"CLEAR\n", b"OK")

    def ping(self) -> None:
        """Check the display answers; raises DisplayError."""
        self._request(b"PING\n", b"PONG")

    def close(self) -> None:
        """Drop the connection (the next request reconnects)."""
        with self._lock:
            self._drop()

    def _drop(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _request(self, line: bytes, expected: bytes) -> None:
        with self._lock:
            for attempt in (1, 2):
                try:
                    reply = self._exchange(line)
                    break
                except OSError as exc:
                    self._drop()
                    if attempt == 2:
                        raise DisplayError(self.endpoint, f"unreachable: {exc}") from exc
            if reply != expected:
                raise DisplayError(self.endpoint, f"replied {reply!r} to {line!r}")

    def _exchange(self, line: bytes) -> bytes:
        if self._sock is None:
            self._sock = socket.create_connection(
                (self.config.host, self.config.port), timeout=self.config.timeout_s
            )
        self._sock.sendall(line)
        reply = bytearray()
        while not reply.endswith(b"\n"):
            chunk = self._sock.recv(MAX_LINE)
            if not chunk:
                raise ConnectionResetError("display closed the connection")
            reply += chunk
            if len(reply) > MAX_LINE:
                raise ConnectionResetError("reply too long")
        return bytes(reply).rstrip(b"\r\n")


class _Handler(socketserver.StreamRequestHandler):
    server: _DisplayServer

    def setup(self) -> None:
        super().setup()
        self.server.connections.add(self.connection)

    def finish(self) -> None:
        self.server.connections.discard(self.connection)
        super().finish()

    def handle(self) -> None:
        while True:
            line = self.rfile.readline(MAX_LINE + 1)
            if not line:
                return
            self.wfile.write(self.server.simulator.handle_line(line) + b"\n")


class _DisplayServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], simulator: DisplaySimulator) -> None:
        self.simulator = simulator
        self.connections: set[socket.socket] = set()
        super().__init__(address, _Handler)


class DisplaySimulator:
    """A TCP lane display that logs what it shows; `current` and `history` for tests and demos."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._address = (host, port)
        self._server: _DisplayServer | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.current = DisplayMessage("")
        self.history: list[DisplayMessage] = []
        self.errors = 0
        self.port: int | None = None

    def handle_line(self, line: bytes) -> bytes:
        """Apply one request line and return the reply line (without LF)."""
        try:
            request = parse_request(line)
        except DisplayProtocolError as exc:
            self.errors += 1
            log.warning("display simulator: rejected %s", exc)
            return f"ERR {exc.reason}".encode()
        if request.kind == "ping":
            return b"PONG"
        message = request.message if request.message is not None else DisplayMessage("")
        with self._lock:
            self.current = message
            self.history.append(message)
        log.info("DISPLAY [%s] %s", message.colour, message.text or "(blank)")
        return b"OK"

    def start(self) -> DisplaySimulator:
        """Listen and serve in a thread; returns self (see `port`)."""
        self._server = _DisplayServer(self._address, self)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="display-sim", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            for conn in list(self._server.connections):
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> DisplaySimulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
