"""A stream parser: frames out of bytes that arrive in arbitrary chunks.

Like a pymodbus framer it does no I/O. Feed it whatever the line delivered; it
returns the complete frames, keeps a partial frame for the next call, skips
wake-up bytes and noise, and drops frames with a bad checksum or end byte —
each drop is reported (``errors`` and the ``on_error`` callback) and counted.
Memory is bounded: it never holds more than one maximal frame plus the last
chunk fed.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from .errors import ChecksumError, FrameError, ProtocolError
from .frame import _ADDRESS_CACHE, _UNSCRAMBLE, HEADER_SIZE, Frame, checksum, decode_frame

_END: Final = 0x16
_WAKE4: Final = b"\xfe\xfe\xfe\xfe"
_new_frame: Final = tuple.__new__

__all__ = ["ParserStats", "StreamParser"]

_START: Final = 0x68


@dataclass(slots=True)
class ParserStats:
    """Counters of what the parser saw."""

    frames: int = 0
    checksum_errors: int = 0
    framing_errors: int = 0
    noise_bytes: int = 0
    """Bytes skipped while looking for a frame start (wake-up FE excluded)."""


@dataclass(slots=True)
class StreamParser:
    """Incremental DL/T 645 frame parser.

    >>> p = StreamParser()
    >>> p.feed(bytes.fromhex("FEFE6812107856341268"))
    []
    >>> [f.address for f in p.feed(bytes.fromhex("9100 9D16"))]  # doctest: +SKIP
    """

    on_error: Callable[[ProtocolError], None] | None = None
    max_errors_kept: int = 32
    stats: ParserStats = field(default_factory=ParserStats)
    errors: deque[ProtocolError] = field(init=False)
    _buf: bytearray = field(default_factory=bytearray, init=False)

    def __post_init__(self) -> None:
        self.errors = deque(maxlen=self.max_errors_kept)

    @property
    def pending(self) -> int:
        """Bytes held back waiting for the rest of a frame."""
        return len(self._buf)

    def reset(self) -> None:
        """Forget any partial frame (e.g. after a response timeout)."""
        self._buf.clear()

    def feed(self, data: bytes | bytearray | memoryview) -> list[Frame]:
        """Add received bytes; return the frames completed by them, in order."""
        buf = self._buf
        buf += data
        frames: list[Frame] = []
        pos = 0
        n = len(buf)
        while pos < n:
            start = buf.find(_START, pos)
            if start < 0:
                self._skip(buf, pos, n)
                pos = n
                break
            if start > pos:
                if start - pos != 4 or buf[pos:start] != _WAKE4:  # not just the wake-up bytes
                    self._skip(buf, pos, start)
                pos = start
            if n - pos < HEADER_SIZE:
                break  # wait for the header
            if buf[pos + 7] != _START:
                # Not a frame header: this 68H was noise.
                self.stats.noise_bytes += 1
                pos += 1
                continue
            total = HEADER_SIZE + buf[pos + 9] + 2
            if n - pos < total:
                # Wait for the rest, unless a complete good frame starts later: then
                # this header was noise (e.g. a corrupted length byte) — skip it.
                later = _complete_frame_after(buf, pos + 1, n)
                if later < 0:
                    break
                self._report(FrameError(f"dropped {later - pos} bytes of an unfinished frame"))
                self.stats.framing_errors += 1
                pos = later
                continue
            end = pos + total - 2
            if buf[end + 1] == _END and checksum(buf[pos:end]) == buf[end]:
                # The usual case, decoded here as decode_frame would: a good frame
                # from an address seen before (anything else goes through decode_frame).
                address = _ADDRESS_CACHE.get(bytes(buf[pos + 1 : pos + 7]))
                if address is not None:
                    data = bytes(buf[pos + HEADER_SIZE : end]).translate(_UNSCRAMBLE)
                    frames.append(_new_frame(Frame, (address, buf[pos + 8], data)))
                    self.stats.frames += 1
                    pos += total
                    continue
            try:
                frame, used = decode_frame(buf[pos : pos + total])
            except ChecksumError as exc:
                self._report(exc)
                self.stats.checksum_errors += 1
                pos += 1  # the length may be noise too: resynchronise on the next 68H
                continue
            except FrameError as exc:
                self._report(exc)
                self.stats.framing_errors += 1
                pos += 1
                continue
            frames.append(frame)
            self.stats.frames += 1
            pos += used
        if pos:
            del buf[:pos]
        return frames

    def _skip(self, buf: bytearray, a: int, b: int) -> None:
        # Wake-up FE bytes are expected; anything else between frames is noise.
        skipped = buf[a:b]
        self.stats.noise_bytes += len(skipped) - skipped.count(0xFE)

    def _report(self, exc: ProtocolError) -> None:
        self.errors.append(exc)
        if self.on_error is not None:
            self.on_error(exc)


def _complete_frame_after(buf: bytearray, pos: int, n: int) -> int:
    """Index of the first complete frame with a good checksum and end in ``buf[pos:n]``."""
    while True:
        j = buf.find(_START, pos, n)
        if j < 0 or n - j < HEADER_SIZE + 2:
            return -1
        end = j + HEADER_SIZE + buf[j + 9] if buf[j + 7] == _START else n
        if end + 2 <= n and buf[end + 1] == 0x16 and sum(buf[j:end]) & 0xFF == buf[end]:
            return j
        pos = j + 1
