"""Framers and checksums shared by the indicator formats.

Serial bytes arrive in arbitrary chunks, a connection may open in the middle of a frame, and a
line can carry noise. A framer turns the stream into candidate frames, resynchronises on the
next start byte after garbage and counts the bytes it throws away (`discarded`); whether a frame
is a valid reading is the parser's business. Three shapes cover the indicators we read:

* `LineFramer`: frames ended by CR, LF or CRLF (ASCII lines, Yaohua A12 `WG…` frames);
* `DelimitedFramer`: start bytes, then a fixed length and/or end bytes (STX…ETX frames);
* `LeaderFramer`: a leader byte and a short body up to the next leader (Yaohua `=` output).
"""

from __future__ import annotations

from typing import Literal

from hardware.weighbridge.reading import ChecksumError, ParseError

CR = 0x0D
LF = 0x0A

ChecksumKind = Literal["none", "xor", "sum"]
ChecksumEncoding = Literal["hex", "binary"]


def xor_check(data: bytes) -> int:
    """XOR of every byte."""
    value = 0
    for b in data:
        value ^= b
    return value


def sum_check(data: bytes) -> int:
    """Sum of every byte, modulo 256."""
    return sum(data) & 0xFF


def hex_check(value: int) -> bytes:
    """A check byte as two ASCII characters, high nibble first: 0-9 → '0'-'9', 10-15 → 'A'-'F'.

    The Yaohua and Keli manuals describe exactly this ("≤ 9: add 30h; > 9: add 37h").
    """
    return f"{value & 0xFF:02X}".encode()


def _nibble(char: int) -> int | None:
    if 0x30 <= char <= 0x3F:  # '0'-'9', and ':'-'?' from indicators that always add 30h
        return char - 0x30
    if 0x41 <= char <= 0x46 or 0x61 <= char <= 0x66:  # 'A'-'F', 'a'-'f'
        return (char & 0x0F) + 9
    return None


def read_hex_check(frame: bytes, chars: bytes) -> int:
    """The check byte two ASCII nibble characters carry (see `hex_check`) or a ParseError.

    Some Yaohua models (A22) add 30h to every nibble, sending ':'-'?' for 10-15; both spellings
    are read.
    """
    if len(chars) != 2:
        raise ParseError(frame, f"check {chars!r} is not two characters")
    high, low = _nibble(chars[0]), _nibble(chars[1])
    if high is None or low is None:
        raise ParseError(frame, f"check {chars!r} is not hexadecimal")
    return high << 4 | low


def verify_check(
    frame: bytes, covered: bytes, sent: bytes, kind: ChecksumKind, encoding: ChecksumEncoding
) -> None:
    """Raise ChecksumError unless `sent` is the `kind` check of `covered` in `encoding`."""
    if kind == "none":
        return
    expected = xor_check(covered) if kind == "xor" else sum_check(covered)
    if encoding == "hex":
        got = read_hex_check(frame, sent)
    else:
        if len(sent) != 1:
            raise ParseError(frame, f"check {sent!r} is not one byte")
        got = sent[0]
    if got != expected:
        raise ChecksumError(frame, f"{kind} check {got:#04x}, computed {expected:#04x}")


def encode_check(covered: bytes, kind: ChecksumKind, encoding: ChecksumEncoding) -> bytes:
    """The check bytes `verify_check` accepts for `covered`."""
    if kind == "none":
        return b""
    value = xor_check(covered) if kind == "xor" else sum_check(covered)
    return hex_check(value) if encoding == "hex" else bytes([value])


class LineFramer:
    """Frames terminated by CR, LF or CRLF; an over-long line is dropped up to its terminator.

    With `drop_first` the bytes before the first terminator are thrown away: a connection that
    opens mid-line must not yield the tail of a line (for a loose user regex, `345kg` of
    `12345kg` would read as 345 kg). Formats whose lines validate themselves keep it.
    """

    def __init__(self, max_line: int = 128, *, drop_first: bool = False) -> None:
        self.max_line = max_line
        self.discarded = 0
        self._buf = bytearray()
        self._skipping = drop_first  # inside a line to drop (too long, or the first one)

    def feed(self, data: bytes) -> list[bytes]:
        """Append bytes and return every complete non-empty line, without terminator."""
        self._buf += data
        lines: list[bytes] = []
        while True:
            ends = [i for i in (self._buf.find(CR), self._buf.find(LF)) if i >= 0]
            if not ends:
                break
            end = min(ends)
            line = bytes(self._buf[:end])
            del self._buf[: end + 1]
            if self._skipping or len(line) > self.max_line:
                self.discarded += len(line) + 1
                self._skipping = False
            elif line.strip():
                lines.append(line)
        if len(self._buf) > self.max_line:
            self.discarded += len(self._buf)
            self._buf.clear()
            self._skipping = True
        return lines


class DelimitedFramer:
    """Frames of `start` bytes, then either `length` bytes in all or content up to `end` bytes.

    Give `start` and/or `end`, and `length` (the whole frame, delimiters included) when it is
    fixed. A fixed-length frame whose end bytes are not where they belong, or that holds another
    start before its end, was truncated: the framer skips to the next start. Without `start`,
    a frame is whatever precedes `end` (with `length`: the `length` bytes before it), and the
    bytes before the first `end` are dropped as a possible partial frame. `binary` says the
    content may hold any byte (a binary checksum), so a start inside it is not a truncation.
    """

    def __init__(
        self,
        start: bytes = b"",
        end: bytes = b"",
        length: int | None = None,
        *,
        binary: bool = False,
        max_frame: int = 256,
    ) -> None:
        if not end and length is None:
            raise ValueError("a delimited frame needs end bytes, a length or both")
        self.start, self.end, self.length = start, end, length
        self.binary = binary
        self.max_frame = length or max_frame
        self.discarded = 0
        self._buf = bytearray()
        self._synced = bool(start)  # without a start byte, sync on the first end

    def _drop(self, n: int) -> None:
        self.discarded += n
        del self._buf[:n]

    def feed(self, data: bytes) -> list[bytes]:
        """Append bytes and return every complete frame; garbage is dropped and counted."""
        self._buf += data
        frames: list[bytes] = []
        while True:
            frame = self._next_frame()
            if frame is None:
                break
            frames.append(frame)
        return frames

    def _next_frame(self) -> bytes | None:
        if self.start:
            return self._next_started()
        return self._next_ended()

    def _next_started(self) -> bytes | None:
        start, end = self.start, self.end
        while True:
            at = self._buf.find(start)
            if at < 0:  # keep what could be the beginning of a multi-byte start
                keep = len(start) - 1
                self._drop(max(0, len(self._buf) - keep))
                return None
            self._drop(at)
            if self.length is not None:
                if len(self._buf) < self.length:
                    return None
                candidate = bytes(self._buf[: self.length])
                inner = -1 if self.binary else candidate.find(start, len(start))
                if (end and not candidate.endswith(end)) or 0 <= inner < len(candidate) - len(end):
                    self._drop(inner if inner > 0 else 1)
                    continue
                del self._buf[: self.length]
                return candidate
            stop = self._buf.find(end, len(start))
            inner = self._buf.find(start, len(start))
            if inner >= 0 and (stop < 0 or inner < stop) and not self.binary:
                self._drop(inner)  # a truncated frame: a new one starts before this one ends
                continue
            if stop < 0:
                if len(self._buf) > self.max_frame:
                    self._drop(len(start))  # no end in sight: not a frame after all
                    continue
                return None
            candidate = bytes(self._buf[: stop + len(end)])
            del self._buf[: len(candidate)]
            return candidate

    def _next_ended(self) -> bytes | None:
        end = self.end
        while True:
            stop = self._buf.find(end) if end else -1
            if stop < 0:
                if self.length is None and len(self._buf) > self.max_frame:
                    self._drop(len(self._buf))
                    self._synced = False
                return None
            whole = bytes(self._buf[: stop + len(end)])
            del self._buf[: len(whole)]
            if not self._synced:  # what precedes the first end may be a partial frame
                self.discarded += len(whole)
                self._synced = True
                continue
            if self.length is not None:
                if len(whole) < self.length:
                    self.discarded += len(whole)
                    continue
                self.discarded += len(whole) - self.length
                return whole[-self.length :]
            return whole


_SUFFIX = frozenset(b"(ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


class LeaderFramer:
    """Frames that begin with a `leader` byte (Yaohua's `=`) and carry no end byte.

    A frame is the leader and what follows it up to the next leader, a CR or LF, a unit suffix
    (`(` or a letter, as in Keli's `=5123.45(kg)`), or `max_body` bytes, whichever comes first;
    the terminator is not part of the frame. Bytes before the first leader (a connection opened
    mid-frame) and bytes after a frame's end up to the next leader are discarded.
    """

    def __init__(self, leader: bytes = b"=", max_body: int = 8) -> None:
        self.leader = leader[0]
        self.max_body = max_body
        self.discarded = 0
        self._body: bytearray | None = None  # None: waiting for a leader

    def feed(self, data: bytes) -> list[bytes]:
        """Append bytes and return every complete frame, leader included."""
        frames: list[bytes] = []
        for b in data:
            if b == self.leader:
                if self._body:
                    frames.append(bytes([self.leader]) + bytes(self._body))
                elif self._body is not None:
                    self.discarded += 1  # an empty frame: its leader
                self._body = bytearray()
            elif self._body is None:
                self.discarded += 1
            elif b in (CR, LF) or b in _SUFFIX:
                if self._body:
                    frames.append(bytes([self.leader]) + bytes(self._body))
                else:
                    self.discarded += 1  # an empty frame: its leader
                self.discarded += 1 if b in _SUFFIX else 0
                self._body = None
            else:
                self._body.append(b)
                if len(self._body) == self.max_body:
                    frames.append(bytes([self.leader]) + bytes(self._body))
                    self._body = None
        return frames
