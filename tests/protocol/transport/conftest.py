"""Fixtures for the transport tests: meters to talk to, log events, pty null modems."""

from __future__ import annotations

import asyncio
import logging
import os
import tty
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest

from protocol.bcd import bcd_encode
from protocol.frame import Frame

MeterHandler = Callable[[Frame], Awaitable[Frame | None]]


def _energy_reply(request: Frame, hundredths_kwh: int) -> Frame:
    """The meter's normal reply to a read: the requested DI and a 4-byte BCD value."""
    value = bcd_encode(hundredths_kwh, 4)
    return Frame(request.address, request.control | 0x80, request.data[:4] + value)


@pytest.fixture
def meters() -> Callable[[dict[str, int]], MeterHandler]:
    """A handler for a bus of meters: ``{address: value}``; silent for anyone else.

    Like a meter, it answers only reads (11H) addressed to one of its meters.
    """

    def make(values: dict[str, int]) -> MeterHandler:
        async def handler(frame: Frame) -> Frame | None:
            if frame.function == 0x11 and frame.address in values:
                return _energy_reply(frame, values[frame.address])
            return None

        return handler

    return make


class LogEvents(logging.Handler):
    """Await a log record (instead of sleeping until something has happened)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self._watches: list[tuple[str, asyncio.Event]] = []

    def watch(self, text: str) -> asyncio.Event:
        """An event set when a record containing ``text`` is logged."""
        event = asyncio.Event()
        self._watches.append((text, event))
        return event

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        for text, event in self._watches:
            if text in message:
                event.set()


@pytest.fixture
def log_events() -> Iterator[LogEvents]:
    events = LogEvents()
    logger = logging.getLogger("protocol.transport")
    level = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(events)
    try:
        yield events
    finally:
        logger.removeHandler(events)
        logger.setLevel(level)


class Pty:
    """A pseudo-terminal: ``path`` for the code under test, ``master`` for the test."""

    def __init__(self) -> None:
        self.master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no echo, no line editing until pyserial takes over
        os.set_blocking(self.master, False)
        self.path = os.ttyname(self._slave)

    def write(self, data: bytes) -> None:
        os.write(self.master, data)

    async def read(self) -> bytes:
        """The next bytes the code under test wrote."""
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()

        def wake() -> None:
            if not ready.done():
                ready.set_result(None)

        loop.add_reader(self.master, wake)
        try:
            await ready
        finally:
            loop.remove_reader(self.master)
        return os.read(self.master, 4096)

    def close(self) -> None:
        for fd in (self.master, self._slave):
            os.close(fd)


class PtyNullModem:
    """Two ptys whose masters are cross-connected: a serial cable between ``a`` and ``b``."""

    def __init__(self) -> None:
        self._a, self._b = Pty(), Pty()
        self.a, self.b = self._a.path, self._b.path
        loop = asyncio.get_running_loop()
        loop.add_reader(self._a.master, self._pump, self._a.master, self._b.master)
        loop.add_reader(self._b.master, self._pump, self._b.master, self._a.master)

    @staticmethod
    def _pump(src: int, dst: int) -> None:
        try:
            data = os.read(src, 4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:  # EIO while nobody has the slave open
            return
        os.write(dst, data)

    def close(self) -> None:
        loop = asyncio.get_running_loop()
        for pty in (self._a, self._b):
            loop.remove_reader(pty.master)
            pty.close()


@pytest.fixture
async def pty() -> AsyncIterator[Pty]:
    p = Pty()
    try:
        yield p
    finally:
        p.close()


@pytest.fixture
async def null_modem() -> AsyncIterator[PtyNullModem]:
    modem = PtyNullModem()
    try:
        yield modem
    finally:
        modem.close()
