"""Transports over an asyncio stream pair (TCP sockets, serial ports)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import abstractmethod

from ..errors import TransportError
from ._client import Transport

__all__ = ["StreamTransport", "close_writer"]

logger = logging.getLogger(__name__)

READ_SIZE = 4096


async def close_writer(writer: asyncio.StreamWriter) -> None:
    """Close a stream writer and wait for it, ignoring errors of a dead link."""
    writer.close()
    with contextlib.suppress(OSError, RuntimeError):
        await writer.wait_closed()


class StreamTransport(Transport):
    """A :class:`Transport` whose link is a ``(StreamReader, StreamWriter)`` pair.

    A reader task feeds every received chunk to the parser as it arrives, so
    a dropped link is noticed at once, not on the next request.
    """

    _writer: asyncio.StreamWriter | None = None
    _reader_task: asyncio.Task[None] | None = None

    @abstractmethod
    async def _open_streams(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Open the link; raise :class:`TransportError` saying why it cannot."""

    @property
    def is_open(self) -> bool:
        return self._writer is not None

    async def _connect(self) -> None:
        reader, writer = await self._open_streams()
        self._writer = writer
        self._reader_task = asyncio.create_task(
            self._read_loop(reader, writer), name=f"{self.url} reader"
        )

    async def _disconnect(self) -> None:
        writer, task = self._writer, self._reader_task
        self._writer = self._reader_task = None
        if task is not None:
            task.cancel()
            await asyncio.wait((task,))
        if writer is not None:
            await close_writer(writer)

    async def _write(self, data: bytes) -> None:
        writer = self._writer
        if writer is None:
            raise TransportError(f"{self.url}: not connected")
        try:
            writer.write(data)
            await writer.drain()
        except (OSError, RuntimeError) as exc:
            self._drop(writer, exc)
            raise TransportError(f"{self.url}: write failed: {exc}") from exc

    async def _read_loop(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        error: BaseException | None = TransportError("the peer closed the connection")
        try:
            while data := await reader.read(READ_SIZE):
                self._data_received(data)
        except Exception as exc:  # the link failed: report it, do not crash the loop
            error = exc
        self._drop(writer, error)

    def _drop(self, writer: asyncio.StreamWriter, exc: BaseException | None) -> None:
        """Forget a link that failed by itself (EOF, reset, unplugged adapter)."""
        if self._writer is not writer:
            return  # already closed or replaced
        self._writer = None
        task, self._reader_task = self._reader_task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
        writer.close()
        self._connection_lost(exc)
