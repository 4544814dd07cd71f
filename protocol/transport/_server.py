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
from collections.abc import Awaitable, Callable, Coroutine, Generator
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Self, TypeAlias

from ..address import Address
from ..errors import ProtocolError, TransportError
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

Writer: TypeAlias = Callable[[bytes], None]
"""Write bytes to one connection now (no waiting; flow control is the connection's)."""


@dataclass(frozen=True, slots=True)
class ServerStats:
    """A snapshot of a frame server's counters (all connections together)."""

    frames_received: int = 0
    replies_sent: int = 0
    silent: int = 0
    """Requests the handler chose not to answer."""
    ignored_frames: int = 0
    """Frames never handled: D7 set (other meters' replies, our own echo), or (MQTT)
    a frame on another meter's topic."""
    handler_errors: int = 0
    """Handler exceptions and unusable replies (each logged; no reply sent)."""
    checksum_errors: int = 0
    framing_errors: int = 0
    noise_bytes: int = 0
    partial_frames_dropped: int = 0
    bytes_received: int = 0
    connections: int = 0
    """Connections accepted since start (1 per opening for a serial port, 1 per
    broker connection for MQTT)."""
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
    Frames are handled as they arrive, each in its own task, so a slow meter
    delays only its own reply; replies ready together leave in one write.
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
        self.eager = bool(getattr(getattr(handler, "__self__", None), "answers_eagerly", False))
        """Run the handler at once as each frame arrives, rather than in a task of its own
        (a task is made only if the handler has to wait). On when the handler is a
        method of an object whose ``answers_eagerly`` is true (a fleet of in-process
        meters); the handler must not need a current task until it first waits
        (``asyncio.timeout`` does)."""

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
            active_connections=self._active_connections(),
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

    def _active_connections(self) -> int:
        return len(self._sessions)

    async def _reply(self, frame: Frame, label: str) -> tuple[bytes, Address | None] | None:
        """The bytes answering ``frame`` (and the reply's address), or ``None`` for silence.

        Counts and logs what happened; the caller writes the bytes and counts
        ``replies_sent``. The address is ``None`` for raw bytes from the handler.
        """
        c = self._counters
        c.frames_received += 1
        debug = logger.isEnabledFor(logging.DEBUG)
        if frame.is_reply:
            c.ignored_frames += 1
            if debug:
                logger.debug(
                    "%s: ignored %s from %s (D7 set: a reply, not a request)",
                    label,
                    frame.describe_control(),
                    frame.address,
                )
            return None
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
            return None
        if reply is None:
            c.silent += 1
            if debug:
                logger.debug(
                    "%s: no reply to %s for %s", label, frame.describe_control(), frame.address
                )
            return None
        address: Address | None
        if isinstance(reply, bytes):
            data = reply
            address = None
        else:
            try:
                data = encode_frame(reply, self.reply_preamble)
                address = reply.address
            except (ProtocolError, AttributeError, TypeError, ValueError) as exc:
                c.handler_errors += 1
                logger.error(
                    "%s: the frame handler returned %r for %s, which cannot be sent: %s",
                    label,
                    reply,
                    frame.address,
                    exc,
                )
                return None
        delay = self.reply_delay
        if callable(delay):
            await delay(frame)
        elif delay > 0:
            await asyncio.sleep(delay)
        if debug:
            described = (
                reply.describe_control() if isinstance(reply, Frame) else f"{len(data)} raw bytes"
            )
            logger.debug(
                "%s: answering %s for %s with %s",
                label,
                frame.describe_control(),
                frame.address,
                described,
            )
        return data, address


class FrameSession:
    """One connection of a server: received bytes in, handled frames, replies out.

    Every frame of a received chunk is handled at once, each in a task of its
    own, so a meter that is slow to answer holds up no other (replies may leave
    in another order than the requests came). The replies that are ready in the
    same turn of the event loop leave in one write.
    """

    def __init__(self, server: FrameServer, label: str, write: Writer) -> None:
        self.server = server
        self.label = label
        self._write = write
        self._receiver = FrameReceiver(
            self._on_frame,
            inter_byte_timeout=server.inter_byte_timeout,
            label=label,
            parser_stats=server._parser_stats,
            counters=server._link_counters,
        )
        self._tasks: set[asyncio.Task[None]] = set()
        self._out: list[bytes] = []
        self._flush_handle: asyncio.Handle | None = None
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
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        self.server._sessions.discard(self)
        logger.debug("%s: connection closed", self.label)

    def _on_frame(self, frame: Frame) -> None:
        answer = self._answer(frame)
        if not self.server.eager:
            self._track(asyncio.get_running_loop().create_task(answer))
            return
        # Most answers need no waiting: run the handler now, no task, no loop turn.
        try:
            awaited = answer.send(None)
        except StopIteration:
            return
        except BaseException:
            logger.exception("%s: answering %s failed", self.label, frame.describe_control())
            return
        self._track(asyncio.get_running_loop().create_task(_Resumed(answer, awaited)))

    def _track(self, task: asyncio.Task[None]) -> None:
        """Keep an answer's task until it is done (:meth:`close` cancels those left)."""
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, frame: Frame) -> None:
        answer = await self.server._reply(frame, self.label)
        if answer is None or self._closed:
            return
        self._out.append(answer[0])
        if self._flush_handle is None:
            self._flush_handle = asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_handle = None
        out, self._out = self._out, []
        if not out or self._closed:
            return
        try:
            self._write(out[0] if len(out) == 1 else b"".join(out))
        except (OSError, RuntimeError, TransportError) as exc:
            logger.info("%s: could not write %d replies: %s", self.label, len(out), exc)
            return
        self.server._counters.replies_sent += len(out)


_STARTED: Final = object()


class _Resumed(Coroutine[Any, Any, None]):
    """A coroutine already run up to its first wait, handed to a task to finish.

    The task's first step gets back what the coroutine yielded there (the future
    it waits for); every later step goes to the coroutine itself.
    """

    __slots__ = ("_awaited", "_coro")

    def __init__(self, coro: Coroutine[Any, Any, None], awaited: Any) -> None:
        self._coro = coro
        self._awaited = awaited

    def send(self, value: Any) -> Any:
        awaited = self._awaited
        if awaited is not _STARTED:
            self._awaited = _STARTED
            return awaited
        return self._coro.send(value)

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        self._awaited = _STARTED
        if val is None and tb is None:
            return self._coro.throw(typ)
        return self._coro.throw(typ, val, tb)

    def close(self) -> None:
        self._coro.close()

    def __await__(self) -> Generator[Any, None, None]:
        raise TypeError("a resumed frame answer is driven by its task only")
