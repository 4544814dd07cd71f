"""DL/T 645 over TCP: a client for meters behind a DTU, gateway or serial server, and a server.

Both ends use :class:`asyncio.Protocol` rather than streams: a pipelined
gateway link carries tens of thousands of frames a second, so received chunks
go straight to the parser and the frames written in one turn of the event loop
leave in one write.
"""

from __future__ import annotations

import asyncio
import logging
from typing import cast

from ..errors import TransportError
from ..frame import Frame
from ._client import Transport
from ._server import FrameHandler, FrameServer, FrameSession, ReplyDelay

__all__ = ["TcpFrameServer", "TcpTransport"]

logger = logging.getLogger(__name__)


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _check_port(port: int, *, allow_zero: bool) -> None:
    low = 0 if allow_zero else 1
    if isinstance(port, bool) or not isinstance(port, int) or not low <= port <= 65535:
        raise TransportError(f"TCP port must be an integer {low}..65535, got {port!r}")


class _ClientProtocol(asyncio.Protocol):
    """The socket end of a :class:`TcpTransport`: bytes in to the parser, writes batched."""

    def __init__(self, owner: TcpTransport) -> None:
        self.owner = owner
        self.transport: asyncio.Transport | None = None
        self.out: list[bytes] = []
        self.flush_handle: asyncio.Handle | None = None
        self.resumed: asyncio.Future[None] | None = None
        """Set while the socket's send buffer is full (until it drains)."""
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.owner._data_received(data)

    def eof_received(self) -> bool | None:
        return None  # close the connection: the peer hung up

    def connection_lost(self, exc: Exception | None) -> None:
        if self.flush_handle is not None:
            self.flush_handle.cancel()
            self.flush_handle = None
        self._wake(exc or TransportError("the connection closed"))
        if not self.closed.done():
            self.closed.set_result(None)
        self.owner._lost(self, exc)

    def pause_writing(self) -> None:
        if self.resumed is None:
            self.resumed = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        self._wake(None)

    def write(self, data: bytes) -> None:
        """Queue ``data``; everything queued in this turn of the loop leaves in one write."""
        self.out.append(data)
        if self.flush_handle is None:
            self.flush_handle = asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        self.flush_handle = None
        out, self.out = self.out, []
        if out and self.transport is not None and not self.transport.is_closing():
            self.transport.write(out[0] if len(out) == 1 else b"".join(out))

    def _wake(self, exc: BaseException | None) -> None:
        resumed, self.resumed = self.resumed, None
        if resumed is not None and not resumed.done():
            if exc is None:
                resumed.set_result(None)
            else:
                resumed.set_exception(exc)
                resumed.exception()  # the writer may have given up already


class TcpTransport(Transport):
    """A persistent TCP connection to ``host:port`` (a DTU, a gateway, a simulator).

    The connection opens lazily. When it breaks, the next request reconnects:
    up to ``connect_attempts`` tries, each limited to ``connect_timeout``
    seconds, waiting ``reconnect_delay`` seconds after the first failure and
    twice as long after each further one, never more than
    ``max_reconnect_delay``; then :class:`TransportError` names ``host:port``.

    ``max_in_flight`` > 1 pipelines: up to that many requests to distinct
    meters are outstanding on the one connection (a concentrator or gateway
    with many meters behind one endpoint; URL ``tcp://HOST:PORT?pipeline=N``),
    their replies matched by meter address. The default 1 keeps one
    transaction at a time. The other options are those of :class:`Transport`.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        response_timeout: float = 2.0,
        connect_timeout: float = 3.0,
        connect_attempts: int = 3,
        reconnect_delay: float = 0.1,
        max_reconnect_delay: float = 5.0,
        inter_byte_timeout: float | None = 0.5,
        inter_frame_gap: float = 0.0,
        preamble: int = 4,
        max_in_flight: int = 1,
    ) -> None:
        if not host:
            raise TransportError("TCP host must not be empty")
        _check_port(port, allow_zero=False)
        if not connect_timeout > 0:
            raise TransportError(f"connect_timeout must be > 0 s, got {connect_timeout}")
        if connect_attempts < 1:
            raise TransportError(f"connect_attempts must be >= 1, got {connect_attempts}")
        if not 0 <= reconnect_delay <= max_reconnect_delay:
            raise TransportError(
                "reconnect delays must satisfy 0 <= reconnect_delay <= max_reconnect_delay, "
                f"got {reconnect_delay} and {max_reconnect_delay}"
            )
        self.host = host
        self.port = port
        self.connect_timeout = connect_timeout
        self.connect_attempts = connect_attempts
        self.reconnect_delay = reconnect_delay
        self.max_reconnect_delay = max_reconnect_delay
        self._protocol: _ClientProtocol | None = None
        super().__init__(
            response_timeout=response_timeout,
            inter_byte_timeout=inter_byte_timeout,
            inter_frame_gap=inter_frame_gap,
            preamble=preamble,
            max_in_flight=max_in_flight,
        )

    @property
    def url(self) -> str:
        return f"tcp://{_host_port(self.host, self.port)}"

    @property
    def is_open(self) -> bool:
        return self._protocol is not None

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        delay = self.reconnect_delay
        reason = ""
        for attempt in range(1, self.connect_attempts + 1):
            if attempt > 1:
                await asyncio.sleep(delay)
                delay = min(2 * delay, self.max_reconnect_delay)
            try:
                async with asyncio.timeout(self.connect_timeout):
                    _, protocol = await loop.create_connection(
                        lambda: _ClientProtocol(self), self.host, self.port
                    )
            except TimeoutError:
                reason = f"no answer within {self.connect_timeout:g} s"
            except OSError as exc:
                reason = exc.strerror or str(exc)
            else:
                self._protocol = protocol
                return
            logger.info(
                "%s: connect attempt %d/%d failed: %s",
                self.url,
                attempt,
                self.connect_attempts,
                reason,
            )
        tries = "1 attempt" if self.connect_attempts == 1 else f"{self.connect_attempts} attempts"
        raise TransportError(
            f"cannot connect to {_host_port(self.host, self.port)} ({tries}; last error: "
            f"{reason}); check that the DTU or simulator is running and reachable"
        )

    async def _disconnect(self) -> None:
        protocol, self._protocol = self._protocol, None
        if protocol is not None and protocol.transport is not None:
            protocol.flush()
            protocol.transport.close()
            await asyncio.shield(protocol.closed)

    def _write_now(self, frame: Frame, data: bytes) -> bool:
        protocol = self._protocol
        if protocol is None or protocol.resumed is not None:
            return False
        protocol.write(data)  # leaves with the others written in this turn of the loop
        return True

    async def _write(self, data: bytes) -> None:
        protocol = self._protocol
        if protocol is None:
            raise TransportError(f"{self.url}: not connected")
        protocol.write(data)
        if protocol.resumed is not None:  # the peer is not reading: wait until it does
            try:
                await asyncio.shield(protocol.resumed)
            except (OSError, TransportError) as exc:
                raise TransportError(f"{self.url}: write failed: {exc}") from exc

    def _lost(self, protocol: _ClientProtocol, exc: BaseException | None) -> None:
        if self._protocol is not protocol:
            return  # closed by us, or an old connection
        self._protocol = None
        self._connection_lost(exc or TransportError("the peer closed the connection"))


class _ServerProtocol(asyncio.Protocol):
    """One accepted connection of a :class:`TcpFrameServer`."""

    def __init__(self, server: TcpFrameServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.session: FrameSession | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it
        self.transport = stream = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        peer_text = _host_port(str(peer[0]), int(peer[1])) if peer else "?"
        self.session = self.server._open_session(
            f"{self.server.url} from {peer_text}", stream.write
        )
        self.server._connections.add(self)

    def data_received(self, data: bytes) -> None:
        if self.session is not None:
            self.session.feed(data)

    def eof_received(self) -> bool | None:
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None and self.session is not None:
            logger.info("%s: connection failed: %s", self.session.label, exc)
        self.server._spawn_close(self)

    def pause_writing(self) -> None:
        # The client does not read its replies: stop reading its requests until it does.
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()


class TcpFrameServer(FrameServer):
    """Serve DL/T 645 frames on ``host:port`` (port 0 picks a free one: see :attr:`port`).

    Connections are served concurrently, each with its own parser; the frames
    of one connection are handled as they arrive (see :class:`FrameServer`).
    """

    def __init__(
        self,
        handler: FrameHandler,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        reply_preamble: int = 4,
        reply_delay: ReplyDelay = 0.0,
        inter_byte_timeout: float | None = 0.5,
    ) -> None:
        _check_port(port, allow_zero=True)
        super().__init__(
            handler,
            reply_preamble=reply_preamble,
            reply_delay=reply_delay,
            inter_byte_timeout=inter_byte_timeout,
        )
        self.host = host
        self._port = port
        self._server: asyncio.Server | None = None
        self._connections: set[_ServerProtocol] = set()
        self._closing: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        """The bound port once started (the requested one before)."""
        return self._port

    @property
    def url(self) -> str:
        return f"tcp://{_host_port(self.host, self._port)}"

    async def start(self) -> None:
        if self._server is not None:
            return
        loop = asyncio.get_running_loop()
        try:
            server = await loop.create_server(lambda: _ServerProtocol(self), self.host, self._port)
        except OSError as exc:
            raise TransportError(
                f"cannot listen on {_host_port(self.host, self._port)}: {exc.strerror or exc}"
            ) from exc
        self._server = server
        if server.sockets:
            self._port = int(server.sockets[0].getsockname()[1])
        self._mark_serving(True)
        logger.info("%s: serving", self.url)

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for connection in list(self._connections):
            if connection.transport is not None:
                connection.transport.close()
        if self._connections:
            await asyncio.wait([c.closed for c in self._connections])
        if self._closing:
            await asyncio.wait(self._closing)
        await server.wait_closed()
        self._mark_serving(False)
        logger.info("%s: stopped", self.url)

    def _spawn_close(self, connection: _ServerProtocol) -> None:
        async def close() -> None:
            try:
                if connection.session is not None:
                    await connection.session.close()
            finally:
                self._connections.discard(connection)
                if not connection.closed.done():
                    connection.closed.set_result(None)

        task = asyncio.get_running_loop().create_task(close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)
