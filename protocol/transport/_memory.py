"""An in-process link (a null modem) between a client transport and a frame server.

For tests and single-process demos. A :class:`MemoryFrameServer` registers
under a name; ``MemoryTransport("name")`` (or ``open_transport("mem://name")``)
connects to it. Bytes are delivered asynchronously, one event-loop callback per
chunk, like a socket would deliver them.

Each end may have a *manipulator* (the pymodbus ``NullModem`` idea): a callable
given every chunk that end writes and returning the chunks the other end
receives, to split a frame into pieces, add noise, corrupt a byte or drop it
all (return ``[]``). The manipulator is read at every write, so a test may
swap it between requests.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable, Coroutine, Iterable, Sequence
from typing import Any, Final, TypeAlias

from ..errors import TransportError
from ._client import Transport
from ._server import FrameHandler, FrameServer, FrameSession, ReplyDelay

__all__ = ["Manipulator", "MemoryFrameServer", "MemoryTransport", "memory_pair"]

logger = logging.getLogger(__name__)

Manipulator: TypeAlias = Callable[[bytes], Sequence[bytes]]
"""Given the bytes one end writes, return the chunks the other end receives."""

_SERVERS: Final[dict[str, MemoryFrameServer]] = {}
_server_ids = itertools.count(1)


def _manipulate(manipulator: Manipulator | None, data: bytes) -> Sequence[bytes]:
    if manipulator is None:
        return (data,)
    chunks = manipulator(data)
    if isinstance(chunks, bytes | bytearray) or not all(
        isinstance(c, bytes | bytearray | memoryview) for c in chunks
    ):
        raise TransportError(f"a manipulator must return a list of bytes chunks, got {chunks!r}")
    return chunks


class _MemoryEnd:
    """One end of an in-memory byte link."""

    def __init__(self) -> None:
        self.peer: _MemoryEnd | None = None
        self.on_data: Callable[[bytes], None] | None = None
        self.on_close: Callable[[], None] | None = None
        self.closed = False

    def send(self, chunks: Iterable[bytes]) -> None:
        peer = self.peer
        if self.closed or peer is None or peer.closed:
            raise TransportError("the in-memory link is closed")
        loop = asyncio.get_running_loop()
        for chunk in chunks:
            if chunk:
                loop.call_soon(peer._deliver, bytes(chunk))

    def close(self) -> None:
        """Close both ends; the peer's ``on_close`` runs after data already sent."""
        if self.closed:
            return
        self.closed = True
        peer = self.peer
        if peer is not None and not peer.closed:
            asyncio.get_running_loop().call_soon(peer._hangup)

    def _deliver(self, data: bytes) -> None:
        if not self.closed and self.on_data is not None:
            self.on_data(data)

    def _hangup(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.on_close is not None:
            self.on_close()


def _link() -> tuple[_MemoryEnd, _MemoryEnd]:
    a, b = _MemoryEnd(), _MemoryEnd()
    a.peer, b.peer = b, a
    return a, b


class MemoryTransport(Transport):
    """A client connected in memory to the :class:`MemoryFrameServer` named ``name``.

    ``manipulator`` rewrites what this client writes (see the module doc); the
    other options (``max_in_flight`` included) are those of :class:`Transport`.
    """

    def __init__(
        self,
        name: str,
        *,
        manipulator: Manipulator | None = None,
        response_timeout: float = 2.0,
        inter_byte_timeout: float | None = 0.5,
        inter_frame_gap: float = 0.0,
        preamble: int = 4,
        max_in_flight: int = 1,
    ) -> None:
        if not name:
            raise TransportError("an in-memory transport needs a server name (mem://NAME)")
        self.name = name
        self.manipulator = manipulator
        self._end: _MemoryEnd | None = None
        super().__init__(
            response_timeout=response_timeout,
            inter_byte_timeout=inter_byte_timeout,
            inter_frame_gap=inter_frame_gap,
            preamble=preamble,
            max_in_flight=max_in_flight,
        )

    @property
    def url(self) -> str:
        return f"mem://{self.name}"

    @property
    def is_open(self) -> bool:
        return self._end is not None and not self._end.closed

    async def _connect(self) -> None:
        server = _SERVERS.get(self.name)
        if server is None or not server.is_serving:
            serving = sorted(n for n, s in _SERVERS.items() if s.is_serving)
            known = f"servers: {', '.join(serving)}" if serving else "no server is running"
            raise TransportError(
                f"no in-memory server serves {self.url} ({known}); "
                "start a MemoryFrameServer with that name first"
            )
        end, server_end = _link()
        end.on_data = self._data_received
        end.on_close = lambda: self._hangup(end)
        server._accept(server_end)
        self._end = end

    async def _disconnect(self) -> None:
        end, self._end = self._end, None
        if end is not None:
            end.close()

    async def _write(self, data: bytes) -> None:
        end = self._end
        if end is None or end.closed:
            raise TransportError(f"{self.url}: not connected")
        end.send(_manipulate(self.manipulator, data))

    def _hangup(self, end: _MemoryEnd) -> None:
        if self._end is end:
            self._end = None
            self._connection_lost(TransportError("the server closed the link"))


class MemoryFrameServer(FrameServer):
    """A frame server reachable in memory as ``mem://<name>`` while started.

    Without a ``name`` a unique one is chosen (see :attr:`url`).
    ``manipulator`` rewrites the replies it writes (see the module doc).
    """

    def __init__(
        self,
        handler: FrameHandler,
        name: str | None = None,
        *,
        manipulator: Manipulator | None = None,
        reply_preamble: int = 4,
        reply_delay: ReplyDelay = 0.0,
        inter_byte_timeout: float | None = 0.5,
    ) -> None:
        super().__init__(
            handler,
            reply_preamble=reply_preamble,
            reply_delay=reply_delay,
            inter_byte_timeout=inter_byte_timeout,
        )
        self.name = name or f"server-{next(_server_ids)}"
        self.manipulator = manipulator
        self._ends: dict[FrameSession, _MemoryEnd] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._link_ids = itertools.count(1)

    @property
    def url(self) -> str:
        return f"mem://{self.name}"

    async def start(self) -> None:
        if self.is_serving:
            return
        other = _SERVERS.get(self.name)
        if other is not None and other is not self and other._alive():
            raise TransportError(
                f"{self.url} is already served by another MemoryFrameServer; "
                "stop it first or choose another name"
            )
        _SERVERS[self.name] = self
        self._loop = asyncio.get_running_loop()
        self._mark_serving(True)
        logger.debug("%s: serving", self.url)

    async def stop(self) -> None:
        if _SERVERS.get(self.name) is self:
            del _SERVERS[self.name]
        if not self.is_serving:
            return
        self._mark_serving(False)
        for end in self._ends.values():
            end.close()
        sessions = list(self._ends)
        self._ends.clear()
        await asyncio.gather(*(s.close() for s in sessions))
        if self._tasks:
            await asyncio.wait(self._tasks)
        logger.debug("%s: stopped", self.url)

    def _alive(self) -> bool:
        return self.is_serving and self._loop is not None and not self._loop.is_closed()

    def _accept(self, end: _MemoryEnd) -> None:
        def write(data: bytes) -> None:
            end.send(_manipulate(self.manipulator, data))

        session = self._open_session(f"{self.url} link {next(self._link_ids)}", write)
        self._ends[session] = end
        end.on_data = session.feed
        end.on_close = lambda: self._spawn(self._drop(session))

    async def _drop(self, session: FrameSession) -> None:
        self._ends.pop(session, None)
        await session.close()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


async def memory_pair(
    handler: FrameHandler,
    *,
    response_timeout: float = 2.0,
    inter_byte_timeout: float | None = 0.5,
    client_manipulator: Manipulator | None = None,
    server_manipulator: Manipulator | None = None,
    reply_preamble: int = 4,
    reply_delay: ReplyDelay = 0.0,
) -> tuple[MemoryTransport, MemoryFrameServer]:
    """A started :class:`MemoryFrameServer` (uniquely named) and a client for it.

    The caller closes both (``async with server, transport: ...``).
    """
    server = MemoryFrameServer(
        handler,
        manipulator=server_manipulator,
        reply_preamble=reply_preamble,
        reply_delay=reply_delay,
        inter_byte_timeout=inter_byte_timeout,
    )
    await server.start()
    client = MemoryTransport(
        server.name,
        manipulator=client_manipulator,
        response_timeout=response_timeout,
        inter_byte_timeout=inter_byte_timeout,
    )
    return client, server
