"""DL/T 645 over TCP: a client for meters behind a DTU or serial server, and a server."""

from __future__ import annotations

import asyncio
import logging

from ..errors import TransportError
from ._server import FrameHandler, FrameServer, ReplyDelay
from ._stream import READ_SIZE, StreamTransport, close_writer

__all__ = ["TcpFrameServer", "TcpTransport"]

logger = logging.getLogger(__name__)


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _check_port(port: int, *, allow_zero: bool) -> None:
    low = 0 if allow_zero else 1
    if isinstance(port, bool) or not isinstance(port, int) or not low <= port <= 65535:
        raise TransportError(f"TCP port must be an integer {low}..65535, got {port!r}")


class TcpTransport(StreamTransport):
    """A persistent TCP connection to ``host:port`` (a DTU, a serial server, a simulator).

    The connection opens lazily. When it breaks, the next request reconnects:
    up to ``connect_attempts`` tries, each limited to ``connect_timeout``
    seconds, waiting ``reconnect_delay`` seconds after the first failure and
    twice as long after each further one, never more than
    ``max_reconnect_delay``; then :class:`TransportError` names ``host:port``.
    The other options are those of :class:`Transport`.
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
        super().__init__(
            response_timeout=response_timeout,
            inter_byte_timeout=inter_byte_timeout,
            inter_frame_gap=inter_frame_gap,
            preamble=preamble,
        )

    @property
    def url(self) -> str:
        return f"tcp://{_host_port(self.host, self.port)}"

    async def _open_streams(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        delay = self.reconnect_delay
        reason = ""
        for attempt in range(1, self.connect_attempts + 1):
            if attempt > 1:
                await asyncio.sleep(delay)
                delay = min(2 * delay, self.max_reconnect_delay)
            try:
                async with asyncio.timeout(self.connect_timeout):
                    return await asyncio.open_connection(self.host, self.port)
            except TimeoutError:
                reason = f"no answer within {self.connect_timeout:g} s"
            except OSError as exc:
                reason = exc.strerror or str(exc)
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


class TcpFrameServer(FrameServer):
    """Serve DL/T 645 frames on ``host:port`` (port 0 picks a free one: see :attr:`port`).

    Connections are served concurrently, each with its own parser.
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
        self._clients: dict[asyncio.Task[None], asyncio.StreamWriter] = {}

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
        try:
            server = await asyncio.start_server(self._on_client, self.host, self._port)
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
        # Closing a connection ends its task through EOF. (Cancelling the task
        # instead makes Python 3.11's StreamReaderProtocol log a spurious error.)
        for writer in self._clients.values():
            writer.close()
        if self._clients:
            await asyncio.wait(list(self._clients))
        await server.wait_closed()
        self._mark_serving(False)
        logger.info("%s: stopped", self.url)

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._clients[task] = writer
        peer = writer.get_extra_info("peername")
        peer_text = _host_port(str(peer[0]), int(peer[1])) if peer else "?"
        label = f"{self.url} from {peer_text}"

        async def write(data: bytes) -> None:
            writer.write(data)
            await writer.drain()

        session = self._open_session(label, write)
        try:
            while data := await reader.read(READ_SIZE):
                session.feed(data)
        except OSError as exc:
            logger.info("%s: connection failed: %s", label, exc)
        finally:
            await session.close()
            await close_writer(writer)
            self._clients.pop(task, None)
