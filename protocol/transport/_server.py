"""The meter (从站) end of a DL/T 645 link: frames in, one handler, replies out.

A :class:`FrameServer` knows nothing of meters: it parses what arrives, gives
every request frame to a :data:`FrameHandler`, and writes back the frame the
handler returns (or nothing when it returns ``None``). A handler may also
return raw ``bytes``, written as they are (no preamble added, nothing checked):
a simulator uses this to send a deliberately broken frame (bad checksum,
truncated reply). On an RS-485 bus one
handler sees every frame on the wire and decides which of its meters, if any,
answers. Frames with D7 set (replies of other meters, the echo of our own
replies) never reach the handler, as a meter ignores them.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Self, TypeAlias

from ..errors import FrameError, TransportError
from ..frame import Frame, encode_frame
from ..parser import ParserStats
from ._receiver import FrameReceiver, LinkCounters

__all__ = ["FrameHandler", "FrameServer", "ReplyDelay", "ServerStats"]

logger = logging.getLogger(__name__)

FrameHandler: TypeAlias = Callable[[Frame], Awaitable[Frame | bytes | None]]
"""Answer one request frame: the reply frame, ``None`` to stay silent, or raw
``bytes`` written as they are (for simulating corrupted replies)."""

ReplyDelay: TypeAlias = float | Callable[[Frame], Awaitable[None]]
"""Seconds to wait before each reply, or an async hook awaited with the request."""

Writer: TypeAlias = Callable[[bytes], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class ServerStats:
    """A snapshot of a frame server's counters (all connections together)."""

    frames_received: int = 0
    replies_sent: int = 0
    silent: int = 0
    """Requests the handler chose not to answer."""
    ignored_frames: int = 0
    """Frames with D7 set (other meters' replies, our own echo): never handled."""
    handler_errors: int = 0
    """Handler exceptions and unusable replies (each logged; no reply sent)."""
    checksum_errors: int = 0
    framing_errors: int = 0
    noise_bytes: int = 0
    partial_frames_dropped: int = 0
    bytes_received: int = 0
    connections: int = 0
    """Connections accepted since start (1 per opening for a serial port)."""
    active_connections: int = 0


@dataclass(slots=True)
class _Counters:
    frames_received: int = 0
    replies_sent: int = 0
    silent: int = 0
    ignored_frames: int = 0
    handler_errors: int = 0
    connections: int = 0


class FrameServer(ABC):
    """Common part of the TCP, serial and in-memory frame servers.

    ``reply_preamble`` is the number of ``FE`` bytes (0..4) sent before each
    reply. ``reply_delay`` simulates the meter's answer latency: a number of
    seconds, or an async hook awaited with each request before its reply is
    written. ``inter_byte_timeout`` drops a request frame whose bytes stall.
    Each connection handles its frames one after the other, in order.
    """

    def __init__(
        self,
        handler: FrameHandler,
        *,
        reply_preamble: int = 4,
        reply_delay: ReplyDelay = 0.0,
        inter_byte_timeout: float | None = 0.5,
    ) -> None:
        if not 0 <= reply_preamble <= 4:
            raise TransportError(f"reply_preamble must be 0..4 FE bytes, got {reply_preamble}")
        if isinstance(reply_delay, int | float) and not reply_delay >= 0:
            raise TransportError(f"reply_delay must be >= 0 s, got {reply_delay}")
        if inter_byte_timeout is not None and not inter_byte_timeout > 0:
            raise TransportError(
                f"inter_byte_timeout must be > 0 s (or None to disable), got {inter_byte_timeout}"
            )
        self.handler = handler
        self.reply_preamble = reply_preamble
        self.reply_delay = reply_delay
        self.inter_byte_timeout = inter_byte_timeout
        self._counters = _Counters()
        self._parser_stats = ParserStats()
        self._link_counters = LinkCounters()
        self._sessions: set[FrameSession] = set()
        self._stopped = asyncio.Event()
        self._stopped.set()

    @property
    @abstractmethod
    def url(self) -> str:
        """Where the server listens, as a URL a client can open."""

    @abstractmethod
    async def start(self) -> None:
        """Start serving; raise :class:`TransportError` if the endpoint cannot be opened."""

    @abstractmethod
    async def stop(self) -> None:
        """Stop serving and close every connection (idempotent)."""

    @property
    def is_serving(self) -> bool:
        return not self._stopped.is_set()

    @property
    def stats(self) -> ServerStats:
        c = self._counters
        p = self._parser_stats
        return ServerStats(
            frames_received=c.frames_received,
            replies_sent=c.replies_sent,
            silent=c.silent,
            ignored_frames=c.ignored_frames,
            handler_errors=c.handler_errors,
            checksum_errors=p.checksum_errors,
            framing_errors=p.framing_errors,
            noise_bytes=p.noise_bytes,
            partial_frames_dropped=self._link_counters.partial_frames_dropped,
            bytes_received=self._link_counters.bytes_received,
            connections=c.connections,
            active_connections=len(self._sessions),
        )

    async def serve_forever(self) -> None:
        """Start if needed, then return only when :meth:`stop` is called."""
        if not self.is_serving:
            await self.start()
        await self._stopped.wait()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def __repr__(self) -> str:
        state = "serving" if self.is_serving else "stopped"
        return f"<{type(self).__name__} {self.url} {state}>"

    # -- for concrete servers -------------------------------------------------------

    def _mark_serving(self, serving: bool) -> None:
        if serving:
            self._stopped.clear()
        else:
            self._stopped.set()

    def _open_session(self, label: str, write: Writer) -> FrameSession:
        """A new connection: its own parser, handled in order, written with ``write``."""
        session = FrameSession(self, label, write)
        self._sessions.add(session)
        self._counters.connections += 1
        logger.debug("%s: connection opened", label)
        return session

    async def _close_sessions(self) -> None:
        sessions = list(self._sessions)
        await asyncio.gather(*(s.close() for s in sessions))

    async def _answer(self, frame: Frame, write: Writer, label: str) -> None:
        c = self._counters
        c.frames_received += 1
        if frame.is_reply:
            c.ignored_frames += 1
            logger.debug(
                "%s: ignored %s from %s (D7 set: a reply, not a request)",
                label,
                frame.describe_control(),
                frame.address,
            )
            return
        try:
            reply = await self.handler(frame)
        except Exception:
            c.handler_errors += 1
            logger.exception(
                "%s: the frame handler failed on %s to %s; no reply sent",
                label,
                frame.describe_control(),
                frame.address,
            )
            return
        if reply is None:
            c.silent += 1
            logger.debug(
                "%s: no reply to %s for %s", label, frame.describe_control(), frame.address
            )
            return
        if isinstance(reply, bytes):
            data = reply
            described = f"{len(reply)} raw bytes"
        else:
            try:
                data = encode_frame(reply, self.reply_preamble)
                described = reply.describe_control()
            except (FrameError, AttributeError, TypeError, ValueError) as exc:
                c.handler_errors += 1
                logger.error(
                    "%s: the frame handler returned %r for %s, which cannot be sent: %s",
                    label,
                    reply,
                    frame.address,
                    exc,
                )
                return
        delay = self.reply_delay
        if callable(delay):
            await delay(frame)
        elif delay > 0:
            await asyncio.sleep(delay)
        try:
            await write(data)
        except (OSError, RuntimeError, TransportError) as exc:
            logger.info("%s: could not write the reply to %s: %s", label, frame.address, exc)
            return
        c.replies_sent += 1
        logger.debug(
            "%s: answered %s for %s with %s",
            label,
            frame.describe_control(),
            frame.address,
            described,
        )


class FrameSession:
    """One connection of a server: received bytes in, handled frames, replies out."""

    def __init__(self, server: FrameServer, label: str, write: Writer) -> None:
        self.server = server
        self.label = label
        self._write = write
        self._queue: asyncio.Queue[Frame] = asyncio.Queue()
        self._receiver = FrameReceiver(
            self._queue.put_nowait,
            inter_byte_timeout=server.inter_byte_timeout,
            label=label,
            parser_stats=server._parser_stats,
            counters=server._link_counters,
        )
        self._worker = asyncio.create_task(self._work(), name=f"{label} handler")
        self._closed = False

    def feed(self, data: bytes) -> None:
        """Received bytes."""
        if not self._closed:
            self._receiver.feed(data)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._receiver.reset()
        self._worker.cancel()
        await asyncio.wait((self._worker,))
        self.server._sessions.discard(self)
        logger.debug("%s: connection closed", self.label)

    async def _work(self) -> None:
        while True:
            frame = await self._queue.get()
            await self.server._answer(frame, self._write, self.label)
