"""Bytes in, frames out, for a live link: a stream parser plus an inter-byte timer.

Shared by the client transports and the frame servers. The parser itself does no
I/O and keeps no time; this wrapper adds the one timing rule of the receive side
(PROTOCOL.md §1): a frame whose bytes stop arriving for longer than the
inter-byte timeout is abandoned, so its remains cannot glue onto the next frame.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import ProtocolError
from ..frame import Frame
from ..parser import ParserStats, StreamParser

__all__ = ["FrameReceiver", "LinkCounters"]

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class LinkCounters:
    """Receive-side counters that the parser does not keep."""

    bytes_received: int = 0
    partial_frames_dropped: int = 0


class FrameReceiver:
    """Feed it received chunks; it calls ``on_frame`` for each complete frame.

    ``parser_stats`` and ``counters`` may be shared by several receivers (one per
    connection of a server) so that a server reports totals.
    """

    def __init__(
        self,
        on_frame: Callable[[Frame], None],
        *,
        inter_byte_timeout: float | None,
        label: str,
        parser_stats: ParserStats | None = None,
        counters: LinkCounters | None = None,
    ) -> None:
        self._on_frame = on_frame
        self.inter_byte_timeout = inter_byte_timeout
        self.label = label
        self.parser = StreamParser(
            on_error=self._on_error, stats=parser_stats if parser_stats else ParserStats()
        )
        self.counters = counters if counters is not None else LinkCounters()
        self.last_rx: float | None = None
        """Event-loop time of the last byte received."""
        self._stall: asyncio.TimerHandle | None = None

    @property
    def pending(self) -> int:
        """Bytes of an unfinished frame held back."""
        return self.parser.pending

    def feed(self, data: bytes) -> None:
        """Add a received chunk; deliver the frames it completes."""
        if not data:
            return
        loop = asyncio.get_running_loop()
        self.last_rx = loop.time()
        self.counters.bytes_received += len(data)
        frames = self.parser.feed(data)
        self._cancel_stall()
        if self.parser.pending and self.inter_byte_timeout is not None:
            self._stall = loop.call_later(self.inter_byte_timeout, self._stalled)
        for frame in frames:
            self._on_frame(frame)

    def reset(self) -> None:
        """Forget a partial frame (after a timeout, a reconnect or on close)."""
        self._cancel_stall()
        self.parser.reset()

    def _cancel_stall(self) -> None:
        if self._stall is not None:
            self._stall.cancel()
            self._stall = None

    def _stalled(self) -> None:
        self._stall = None
        pending = self.parser.pending
        if pending:
            self.counters.partial_frames_dropped += 1
            logger.warning(
                "%s: dropped a partial frame of %d bytes: no byte for %.3g s (inter-byte timeout)",
                self.label,
                pending,
                self.inter_byte_timeout,
            )
            self.parser.reset()

    def _on_error(self, exc: ProtocolError) -> None:
        logger.warning("%s: dropped a received frame: %s", self.label, exc)
