"""DL/T 645 over a serial line (RS-485 bus, or an IR / RS-232 port): master and bus server.

Opened with :func:`serial_asyncio_fast.open_serial_connection`, so any port
name pyserial accepts works (``/dev/ttyUSB0``, ``COM3``, a pty such as
``/dev/pts/5``). The DL/T 645 default line is 2400 bps 8E1 (PROTOCOL.md §1).
"""

from __future__ import annotations

import asyncio
import errno
import logging
from dataclasses import dataclass
from typing import Final

import serial
import serial_asyncio_fast

from ..errors import TransportError
from ._server import FrameHandler, FrameServer, FrameSession, ReplyDelay
from ._stream import READ_SIZE, StreamTransport, close_writer

try:  # POSIX: pyserial lets termios errors (e.g. EINVAL for a parity) escape from open()
    import termios

    _OPEN_ERRORS: tuple[type[Exception], ...] = (OSError, ValueError, termios.error)
except ImportError:  # pragma: no cover - Windows
    _OPEN_ERRORS = (OSError, ValueError)

__all__ = ["BAUDRATES", "PARITIES", "SerialFrameServer", "SerialSettings", "SerialTransport"]

logger = logging.getLogger(__name__)

BAUDRATES: Final = (300, 600, 1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200)
"""Accepted line speeds: the DL/T 645 rates (600..19200) and common converter rates."""
PARITIES: Final = {"N": "none", "E": "even", "O": "odd", "M": "mark", "S": "space"}
_PARITY_NAMES: Final = {name: code for code, name in PARITIES.items()}


@dataclass(frozen=True, slots=True)
class SerialSettings:
    """Line settings (default 2400 bps 8E1, the DL/T 645 RS-485 default)."""

    baudrate: int = 2400
    parity: str = "E"
    bytesize: int = 8
    stopbits: float = 1

    def __post_init__(self) -> None:
        if isinstance(self.baudrate, bool) or self.baudrate not in BAUDRATES:
            raise TransportError(
                f"baud rate {self.baudrate!r} is not supported; use one of "
                f"{', '.join(map(str, BAUDRATES))} (DL/T 645 meters default to 2400)"
            )
        text = str(self.parity).strip()
        parity = text.upper() if len(text) == 1 else _PARITY_NAMES.get(text.lower(), "")
        if parity not in PARITIES:
            raise TransportError(
                f"parity {self.parity!r} is not valid; use N (none), E (even, the DL/T 645 "
                "default), O (odd), M (mark) or S (space)"
            )
        object.__setattr__(self, "parity", parity)
        if self.bytesize not in (5, 6, 7, 8):
            raise TransportError(f"bytesize must be 5, 6, 7 or 8 data bits, got {self.bytesize!r}")
        if self.stopbits not in (1, 1.5, 2):
            raise TransportError(f"stopbits must be 1, 1.5 or 2, got {self.stopbits!r}")
        if self.stopbits == int(self.stopbits):
            object.__setattr__(self, "stopbits", int(self.stopbits))

    @property
    def bits_per_char(self) -> float:
        """Start bit + data bits + parity bit + stop bits."""
        return 1 + self.bytesize + (0 if self.parity == "N" else 1) + self.stopbits

    def transfer_time(self, nbytes: int) -> float:
        """Seconds the line needs to carry ``nbytes``."""
        return nbytes * self.bits_per_char / self.baudrate

    def __str__(self) -> str:
        stop = f"{self.stopbits:g}"
        return f"{self.baudrate} {self.bytesize}{self.parity}{stop}"


async def _open_serial(
    port: str, settings: SerialSettings
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    try:
        return await serial_asyncio_fast.open_serial_connection(
            url=port,
            baudrate=settings.baudrate,
            parity=settings.parity,
            bytesize=settings.bytesize,
            stopbits=settings.stopbits,
        )
    except _OPEN_ERRORS as exc:
        raise TransportError(_open_error(port, settings, exc)) from exc


def _open_error(port: str, settings: SerialSettings, exc: Exception) -> str:
    code = getattr(exc, "errno", None)
    if code is None and exc.args and isinstance(exc.args[0], int):
        code = exc.args[0]  # termios.error carries (errno, text)
    text = f"cannot open serial port {port} at {settings}"
    if code == errno.EINVAL:
        hint = "the device rejected these line settings" + (
            "; some USB adapters and pseudo-terminals (pty) refuse parity E: try parity=N"
            if settings.parity != "N"
            else ""
        )
    elif code == errno.ENOENT:
        hint = "no such device; check the port name and that the adapter is plugged in"
    elif code in (errno.EACCES, errno.EPERM):
        hint = "permission denied; add the user to the group owning the port (e.g. dialout)"
    elif code == errno.EBUSY:
        hint = "the port is busy; another program is using it"
    else:
        hint = str(exc) or type(exc).__name__
    return f"{text}: {hint}"


class SerialTransport(StreamTransport):
    """The master on a serial line, typically an RS-485 bus of meters.

    Half duplex: one transaction at a time, and at least ``inter_frame_gap``
    seconds of quiet on the line (after the last byte received or sent)
    before each request. ``response_timeout`` runs from the end of sending
    the request (its transmission time at the baud rate is allowed for) to
    the first byte of the reply; a frame whose bytes stall for more than
    ``inter_byte_timeout`` seconds is dropped.
    """

    def __init__(
        self,
        port: str,
        *,
        baudrate: int = 2400,
        parity: str = "E",
        bytesize: int = 8,
        stopbits: float = 1,
        response_timeout: float = 2.0,
        inter_byte_timeout: float | None = 0.5,
        inter_frame_gap: float = 0.05,
        preamble: int = 4,
    ) -> None:
        if not port:
            raise TransportError("serial port name must not be empty (e.g. /dev/ttyUSB0)")
        self.port = port
        self.settings = SerialSettings(baudrate, parity, bytesize, stopbits)
        super().__init__(
            response_timeout=response_timeout,
            inter_byte_timeout=inter_byte_timeout,
            inter_frame_gap=inter_frame_gap,
            preamble=preamble,
        )

    @property
    def url(self) -> str:
        s = self.settings
        sep = "" if self.port.startswith("/") else "/"
        return f"serial://{sep}{self.port}?baud={s.baudrate}&parity={s.parity}"

    def _tx_duration(self, nbytes: int) -> float:
        return self.settings.transfer_time(nbytes)

    async def _open_streams(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await _open_serial(self.port, self.settings)


class SerialFrameServer(FrameServer):
    """Serve the meters of an RS-485 bus on serial ``port``.

    One handler sees every request on the bus and decides which meter, if
    any, answers (a meter stays silent for frames not addressed to it).
    """

    def __init__(
        self,
        handler: FrameHandler,
        port: str,
        *,
        baudrate: int = 2400,
        parity: str = "E",
        bytesize: int = 8,
        stopbits: float = 1,
        reply_preamble: int = 4,
        reply_delay: ReplyDelay = 0.0,
        inter_byte_timeout: float | None = 0.5,
    ) -> None:
        if not port:
            raise TransportError("serial port name must not be empty (e.g. /dev/ttyUSB0)")
        self.port = port
        self.settings = SerialSettings(baudrate, parity, bytesize, stopbits)
        super().__init__(
            handler,
            reply_preamble=reply_preamble,
            reply_delay=reply_delay,
            inter_byte_timeout=inter_byte_timeout,
        )
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        s = self.settings
        sep = "" if self.port.startswith("/") else "/"
        return f"serial://{sep}{self.port}?baud={s.baudrate}&parity={s.parity}"

    async def start(self) -> None:
        if self._task is not None:
            return
        reader, writer = await _open_serial(self.port, self.settings)
        session = self._open_session(self.url, writer.write)
        self._task = asyncio.create_task(self._serve(reader, writer, session))
        self._mark_serving(True)
        logger.info("%s: serving at %s", self.port, self.settings)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        await asyncio.wait((task,))
        self._mark_serving(False)
        logger.info("%s: stopped", self.port)

    async def _serve(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        session: FrameSession,
    ) -> None:
        try:
            while data := await reader.read(READ_SIZE):
                session.feed(data)
            logger.error("%s: the serial port closed; no longer serving", self.port)
        except (OSError, serial.SerialException) as exc:
            logger.error("%s: serial port failed: %s; no longer serving", self.port, exc)
        finally:
            await session.close()
            await close_writer(writer)
            if self._task is asyncio.current_task():
                self._task = None
                self._mark_serving(False)
