"""The master (主站) end of a DL/T 645 link: one request, one reply, one at a time.

:class:`Transport` holds everything that does not depend on the medium: the
transaction lock (RS-485 is half duplex, and one TCP link to a DTU is no better),
the wake-up preamble, reply matching, the response and inter-byte timers, the
quiet gap between frames and the counters. A concrete transport only opens and
closes its link, writes bytes, and hands received bytes to
:meth:`Transport._data_received`.
"""

from __future__ import annotations

import asyncio
import logging
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from types import TracebackType
from typing import Final, Self

from ..codes import FunctionCode
from ..errors import ResponseTimeoutError, TransportError
from ..frame import MAX_FRAME, Frame, encode_frame
from ._receiver import FrameReceiver

__all__ = ["Transport", "TransportStats", "is_reply_to"]

logger = logging.getLogger(__name__)

_DI_CHECKED: Final = frozenset({FunctionCode.READ, FunctionCode.READ_FOLLOW_UP})


@dataclass(frozen=True, slots=True)
class TransportStats:
    """A snapshot of a transport's counters (they count from its creation)."""

    requests: int = 0
    """Request frames written by :meth:`Transport.request`."""
    replies: int = 0
    """Awaited replies received."""
    timeouts: int = 0
    """Requests that got no reply in time."""
    sent: int = 0
    """Frames written by :meth:`Transport.send` (no reply awaited)."""
    frames_received: int = 0
    """Valid frames received, awaited or not."""
    ignored_frames: int = 0
    """Valid frames that were not the awaited reply (echo, other meter, stray, late)."""
    checksum_errors: int = 0
    framing_errors: int = 0
    noise_bytes: int = 0
    partial_frames_dropped: int = 0
    """Frames abandoned because the line went quiet for the inter-byte timeout."""
    bytes_sent: int = 0
    bytes_received: int = 0
    connects: int = 0
    connection_losses: int = 0


@dataclass(slots=True)
class _Counters:
    requests: int = 0
    replies: int = 0
    timeouts: int = 0
    sent: int = 0
    frames_received: int = 0
    ignored_frames: int = 0
    bytes_sent: int = 0
    connects: int = 0
    connection_losses: int = 0


@dataclass(slots=True)
class _Waiter:
    request: Frame
    future: asyncio.Future[Frame]


def _mismatch(request: Frame, frame: Frame) -> str | None:
    """Why ``frame`` is not the reply to ``request`` (``None`` if it is)."""
    if not frame.is_reply:
        if frame == request:
            return "echo of our own request"
        return f"a request (D7=0) for {frame.address}, not a reply"
    if frame.function != request.function:
        return f"reply to function {frame.function:02X}H, awaiting {request.function:02X}H"
    if request.address.is_wildcard or request.address.is_abbreviated:
        if not request.address.matches(frame.address):
            return f"reply from {frame.address}, which {request.address} does not match"
    elif frame.address != request.address:
        return f"reply from {frame.address}, awaiting {request.address}"
    if (
        request.function in _DI_CHECKED
        and not frame.is_abnormal
        and len(request.data) >= 4
        and len(frame.data) >= 4
        and frame.data[:4] != request.data[:4]
    ):
        return (
            f"reply for DI {frame.data[3::-1].hex().upper()}, "
            f"awaiting {request.data[3::-1].hex().upper()}"
        )
    return None


def is_reply_to(request: Frame, frame: Frame) -> bool:
    """True if ``frame`` answers ``request``.

    It must have D7 set, the request's function code, and the request's address —
    or, for a wildcard or abbreviated (``AA``) request, an address it matches.
    For reads (11H, 12H) a normal reply must also carry the requested DI, so a
    late answer to an earlier read of the same meter is not taken for this one.
    """
    return _mismatch(request, frame) is None


class Transport(ABC):
    """A link to one or more meters, seen from the master station.

    Use it as an async context manager, or call :meth:`open` / :meth:`close`.
    A transport that is not open opens itself on the first :meth:`request` or
    :meth:`send`, and a transport that lost its link reopens it the same way.

    ``response_timeout`` is the time allowed for the reply to *start*, counted
    from the end of sending the request. Once a frame is arriving it may take
    longer, as long as no two bytes are more than ``inter_byte_timeout`` apart
    (``None`` disables the inter-byte rule). ``inter_frame_gap`` is the quiet
    time kept between the last byte on the line and the next request.
    ``preamble`` is the number of ``FE`` wake-up bytes sent before each frame.

    A subclass sets whatever its :attr:`url` needs before calling
    ``super().__init__()``, opens its link in :meth:`_connect`, feeds received
    bytes to :meth:`_data_received` and reports a link that died by itself to
    :meth:`_connection_lost`.
    """

    def __init__(
        self,
        *,
        response_timeout: float = 2.0,
        inter_byte_timeout: float | None = 0.5,
        inter_frame_gap: float = 0.0,
        preamble: int = 4,
    ) -> None:
        if not response_timeout > 0:
            raise TransportError(f"response_timeout must be > 0 s, got {response_timeout}")
        if inter_byte_timeout is not None and not inter_byte_timeout > 0:
            raise TransportError(
                f"inter_byte_timeout must be > 0 s (or None to disable), got {inter_byte_timeout}"
            )
        if not inter_frame_gap >= 0:
            raise TransportError(f"inter_frame_gap must be >= 0 s, got {inter_frame_gap}")
        if not 0 <= preamble <= 4:
            raise TransportError(f"preamble must be 0..4 FE bytes, got {preamble}")
        self.response_timeout = response_timeout
        self.inter_frame_gap = inter_frame_gap
        self.preamble = preamble
        self._lock = asyncio.Lock()
        self._receiver = FrameReceiver(
            self._on_frame, inter_byte_timeout=inter_byte_timeout, label=self.url
        )
        self._waiter: _Waiter | None = None
        self._counters = _Counters()
        self._last_tx_end = -math.inf
        self._link_down = asyncio.Event()
        self._link_down.set()

    # -- what a concrete transport provides ---------------------------------------

    @property
    @abstractmethod
    def url(self) -> str:
        """Where this transport goes, as a URL (used in every message)."""

    @property
    @abstractmethod
    def is_open(self) -> bool:
        """True while the link is up."""

    @abstractmethod
    async def _connect(self) -> None:
        """Open the link, or raise :class:`TransportError` saying why it cannot."""

    @abstractmethod
    async def _disconnect(self) -> None:
        """Close the link (idempotent). Must not call :meth:`_connection_lost`."""

    @abstractmethod
    async def _write(self, data: bytes) -> None:
        """Write bytes to the open link; raise :class:`TransportError` on failure."""

    def _tx_duration(self, nbytes: int) -> float:
        """Seconds the line needs to carry ``nbytes`` (0 for packet links)."""
        return 0.0

    # -- public API -----------------------------------------------------------------

    @property
    def inter_byte_timeout(self) -> float | None:
        return self._receiver.inter_byte_timeout

    @property
    def stats(self) -> TransportStats:
        """A snapshot of the counters, including those of the stream parser."""
        c = self._counters
        p = self._receiver.parser.stats
        return TransportStats(
            requests=c.requests,
            replies=c.replies,
            timeouts=c.timeouts,
            sent=c.sent,
            frames_received=c.frames_received,
            ignored_frames=c.ignored_frames,
            checksum_errors=p.checksum_errors,
            framing_errors=p.framing_errors,
            noise_bytes=p.noise_bytes,
            partial_frames_dropped=self._receiver.counters.partial_frames_dropped,
            bytes_sent=c.bytes_sent,
            bytes_received=self._receiver.counters.bytes_received,
            connects=c.connects,
            connection_losses=c.connection_losses,
        )

    async def open(self) -> None:
        """Open the link now (otherwise the first request opens it)."""
        async with self._lock:
            await self._ensure_open()

    async def close(self) -> None:
        """Close the link; a request still waiting fails with :class:`TransportError`."""
        self._fail_waiter(TransportError(f"{self.url}: transport closed while awaiting a reply"))
        await self._disconnect()
        self._receiver.reset()
        self._link_down.set()

    async def wait_disconnected(self) -> None:
        """Return once the link is down (closed, lost, or never opened)."""
        await self._link_down.wait()

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        state = "open" if self.is_open else "closed"
        return f"<{type(self).__name__} {self.url} {state}>"

    async def request(self, frame: Frame, *, timeout: float | None = None) -> Frame:
        """Send ``frame`` and return the meter's reply to it.

        Frames that are not the reply (the echo of our own request on a 2-wire
        bus, replies of other meters, late or stray frames) are logged and
        skipped. Raises :class:`ResponseTimeoutError` if no reply starts within
        ``timeout`` (default :attr:`response_timeout`) seconds, and
        :class:`TransportError` if the link cannot be opened or is lost.
        """
        if frame.address.is_broadcast:
            raise TransportError(
                f"{frame.describe_control()} to the broadcast address gets no reply: use send()"
            )
        if frame.is_reply:
            raise TransportError(
                f"control {frame.describe_control()} has D7 set (a meter's reply); "
                "a master sends requests"
            )
        wait = self.response_timeout if timeout is None else timeout
        if not wait > 0:
            raise TransportError(f"timeout must be > 0 s, got {wait}")
        data = encode_frame(frame, self.preamble)
        async with self._lock:
            await self._ensure_open()
            await self._keep_gap()
            loop = asyncio.get_running_loop()
            waiter = _Waiter(frame, loop.create_future())
            self._waiter = waiter
            try:
                self._log_bytes("TX", data)
                await self._write(data)
                self._counters.requests += 1
                self._counters.bytes_sent += len(data)
                self._last_tx_end = loop.time() + self._tx_duration(len(data))
                reply = await self._await_reply(waiter.future, self._last_tx_end + wait)
            finally:
                self._waiter = None
                if not waiter.future.done():
                    waiter.future.cancel()
                elif not waiter.future.cancelled():
                    waiter.future.exception()  # retrieved: the write error is what we raise
            if reply is None:
                self._counters.timeouts += 1
                self._receiver.reset()
                logger.debug("%s: no reply from %s within %g s", self.url, frame.address, wait)
                raise ResponseTimeoutError(
                    f"no reply from meter {frame.address} within {wait:g} s "
                    f"(request {frame.describe_control()} on {self.url})"
                )
            self._counters.replies += 1
            return reply

    async def send(self, frame: Frame) -> None:
        """Send ``frame`` and expect no reply (e.g. a broadcast 08H time sync)."""
        data = encode_frame(frame, self.preamble)
        async with self._lock:
            await self._ensure_open()
            await self._keep_gap()
            self._log_bytes("TX", data)
            await self._write(data)
            self._counters.sent += 1
            self._counters.bytes_sent += len(data)
            self._last_tx_end = asyncio.get_running_loop().time() + self._tx_duration(len(data))

    # -- for concrete transports ------------------------------------------------------

    def _data_received(self, data: bytes) -> None:
        """Hand received bytes to the parser (call from the link's reader)."""
        self._log_bytes("RX", data)
        self._receiver.feed(data)

    def _connection_lost(self, exc: BaseException | None) -> None:
        """Report that the link went down by itself (not through :meth:`close`)."""
        self._counters.connection_losses += 1
        why = f": {exc}" if exc else ""
        logger.info("%s: connection lost%s", self.url, why)
        self._fail_waiter(TransportError(f"connection to {self.url} lost{why}"))
        self._receiver.reset()
        self._link_down.set()

    # -- internals ------------------------------------------------------------------------

    def _log_bytes(self, direction: str, data: bytes) -> None:
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("%s: %s %s", self.url, direction, data.hex(" ").upper())

    async def _ensure_open(self) -> None:
        if self.is_open:
            return
        await self._connect()
        self._counters.connects += 1
        self._receiver.reset()
        self._link_down.clear()
        logger.debug("%s: connected", self.url)

    async def _keep_gap(self) -> None:
        if self.inter_frame_gap <= 0:
            return
        last_rx = self._receiver.last_rx
        quiet_since = max(self._last_tx_end, -math.inf if last_rx is None else last_rx)
        delay = quiet_since + self.inter_frame_gap - asyncio.get_running_loop().time()
        if delay > 0:
            await asyncio.sleep(delay)

    async def _await_reply(self, future: asyncio.Future[Frame], deadline: float) -> Frame | None:
        """The reply, or ``None`` once the deadline passed with no frame arriving."""
        loop = asyncio.get_running_loop()
        inter_byte = self._receiver.inter_byte_timeout
        # A frame that has started by the deadline may finish after it, within reason.
        hard_deadline = deadline
        if inter_byte is not None:
            hard_deadline += self._tx_duration(MAX_FRAME) + 2 * inter_byte
        while True:
            now = loop.time()
            if now < deadline:
                wait = deadline - now
            elif inter_byte is not None and self._receiver.pending and now < hard_deadline:
                wait = min(inter_byte, hard_deadline - now)
            else:
                return None
            await asyncio.wait((future,), timeout=wait)
            if future.done():
                return future.result()

    def _on_frame(self, frame: Frame) -> None:
        self._counters.frames_received += 1
        waiter = self._waiter
        if waiter is None or waiter.future.done():
            self._counters.ignored_frames += 1
            logger.debug(
                "%s: ignored %s from %s: no request awaits it",
                self.url,
                frame.describe_control(),
                frame.address,
            )
            return
        reason = _mismatch(waiter.request, frame)
        if reason is not None:
            self._counters.ignored_frames += 1
            logger.debug(
                "%s: ignored %s from %s: %s",
                self.url,
                frame.describe_control(),
                frame.address,
                reason,
            )
            return
        waiter.future.set_result(frame)

    def _fail_waiter(self, exc: TransportError) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.future.done():
            waiter.future.set_exception(exc)
