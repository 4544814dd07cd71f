"""The master (主站) end of a DL/T 645 link: requests out, replies matched back to them.

:class:`Transport` holds everything that does not depend on the medium: the
concurrency rules (one transaction at a time on a half-duplex line, or up to
``max_in_flight`` requests to distinct meters on a link that carries many at
once), the wake-up preamble, reply matching, the response and inter-byte timers,
the quiet gap between frames and the counters. A concrete transport only opens
and closes its link, writes bytes, and hands received bytes to
:meth:`Transport._data_received`.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import math
from abc import ABC, abstractmethod
from collections import deque
from dataclasses import dataclass
from types import TracebackType
from typing import Final, Self

from ..codes import ABNORMAL, DIRECTION, FunctionCode
from ..errors import ResponseTimeoutError, TransportError
from ..frame import MAX_FRAME, Frame, encode_frame
from ._receiver import FrameReceiver

__all__ = ["Transport", "TransportStats", "is_reply_to"]

logger = logging.getLogger(__name__)

_DI_CHECKED: Final = frozenset({FunctionCode.READ, FunctionCode.READ_FOLLOW_UP})
_FORGOTTEN: Final = -2
"""``_Waiter.seq`` of a request the transport has let go of."""
_TIMER_SLACK: Final = 0.001
"""A timer may fire up to a clock tick early (uvloop keeps milliseconds)."""


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
    """Valid frames that were not an awaited reply (echo, other meter, stray, late):
    counted and dropped, never given to a request."""
    checksum_errors: int = 0
    framing_errors: int = 0
    noise_bytes: int = 0
    partial_frames_dropped: int = 0
    """Frames abandoned because the line went quiet for the inter-byte timeout."""
    bytes_sent: int = 0
    bytes_received: int = 0
    connects: int = 0
    connection_losses: int = 0
    in_flight: int = 0
    """Requests awaiting their reply at the time of the snapshot."""


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


class _Waiter:
    """One request awaiting its reply: the future gets the reply, or ``None`` on timeout."""

    __slots__ = ("future", "request", "seq", "timer")

    def __init__(self, request: Frame, future: asyncio.Future[Frame | None]) -> None:
        self.request = request
        self.future = future
        self.timer: asyncio.TimerHandle | None = None
        self.seq = -1
        """Its entry in the transport's deadlines (-1: none; ``_FORGOTTEN``: let go)."""


class _Slots:
    """A counting semaphore whose uncontended take needs no coroutine (the hot path)."""

    __slots__ = ("free", "waiters")

    def __init__(self, count: int) -> None:
        self.free = count
        self.waiters: deque[asyncio.Future[None]] = deque()

    def try_take(self) -> bool:
        """Take a slot if one is free and nobody waits in line."""
        if self.free > 0 and not self.waiters:
            self.free -= 1
            return True
        return False

    async def take(self) -> None:
        if self.try_take():
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiters.append(future)
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.give()  # handed over just as we were cancelled: pass it on
            else:
                with contextlib.suppress(ValueError):
                    self.waiters.remove(future)
            raise

    def give(self) -> None:
        """Give a slot back: straight to the first in line, or to the free count."""
        waiters = self.waiters
        while waiters:
            future = waiters.popleft()
            if not future.done():
                future.set_result(None)
                return
        self.free += 1


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

    ``max_in_flight`` (pipelining) is how many requests may await their replies
    at once. With 1 (the default) the link carries one transaction at a time, as
    a half-duplex RS-485 bus must. With N > 1 — a gateway or concentrator with many
    meters behind one endpoint — up to N requests to *distinct* meters go out
    without waiting; each reply is matched to its request by the meter address
    (and :func:`is_reply_to`), so replies may come back in any order, and a late
    or unmatched reply is counted (``ignored_frames``) and dropped, never handed to
    another request. Requests to the same meter still wait for each other, and a
    wildcard or abbreviated (``AA``) request, whose reply address is not known
    in advance, has the link to itself.

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
        max_in_flight: int = 1,
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
        if isinstance(max_in_flight, bool) or not isinstance(max_in_flight, int):
            raise TransportError(f"max_in_flight must be an integer >= 1, got {max_in_flight!r}")
        if max_in_flight < 1:
            raise TransportError(f"max_in_flight must be >= 1, got {max_in_flight}")
        if max_in_flight > 1 and inter_frame_gap > 0:
            raise TransportError(
                "inter_frame_gap is for a half-duplex line (one transaction at a time); "
                f"it cannot be combined with max_in_flight={max_in_flight}"
            )
        self.response_timeout = response_timeout
        self.inter_frame_gap = inter_frame_gap
        self.preamble = preamble
        self.max_in_flight = max_in_flight
        self._slots = _Slots(max_in_flight)
        self._gathering = asyncio.Lock()  # one exclusive request gathers all slots at a time
        self._open_lock = asyncio.Lock()
        self._receiver = FrameReceiver(
            self._on_frame, inter_byte_timeout=inter_byte_timeout, label=self.url
        )
        self._waiters: dict[str, _Waiter] = {}
        """Requests awaiting a reply, by meter address."""
        self._sole: _Waiter | None = None
        """The request that has the link to itself (any request when max_in_flight is 1)."""
        self._counters = _Counters()
        self._deadlines: list[tuple[float, int]] = []
        """Response deadlines (deadline, sequence number) of the requests sent: a heap;
        answered ones stay until due."""
        self._timed: dict[int, _Waiter] = {}
        """The requests still awaiting a reply, by the sequence number of their deadline.
        An answered request leaves at once, so the heap holds no frames, futures or
        waiters for the seconds until its deadline (nothing for the cyclic GC to scan)."""
        self._deadline_seq = itertools.count()
        self._sweeper: asyncio.TimerHandle | None = None
        self._sweep_at = math.inf
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

    async def _send(self, frame: Frame, data: bytes) -> None:
        """Write the encoded ``frame`` (a transport with a channel per meter overrides this)."""
        await self._write(data)

    def _write_now(self, frame: Frame, data: bytes) -> bool:
        """Write without waiting if the link can take it now (else :meth:`_send` does)."""
        return False

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
            in_flight=len(self._waiters),
        )

    async def open(self) -> None:
        """Open the link now (otherwise the first request opens it)."""
        await self._ensure_open()

    async def close(self) -> None:
        """Close the link; requests still waiting fail with :class:`TransportError`."""
        self._fail_waiters(TransportError(f"{self.url}: transport closed while awaiting a reply"))
        self._deadlines.clear()
        self._timed.clear()
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
            self._sweep_at = math.inf
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

        Safe to call from many tasks at once: with ``max_in_flight`` 1 the
        requests go out one after the other; otherwise up to ``max_in_flight``
        requests to distinct meters are outstanding together.
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
        address = frame.address
        exclusive = self.max_in_flight == 1 or "A" in address
        loop = asyncio.get_running_loop()
        if exclusive:
            await self._acquire_all()
        elif address in self._waiters or not self._slots.try_take():
            await self._acquire_one(address)
        waiter = _Waiter(frame, loop.create_future())
        self._waiters[address] = waiter
        if exclusive:
            self._sole = waiter
        try:
            if not self.is_open:
                await self._ensure_open()
            if exclusive:
                await self._keep_gap()
            if logger.isEnabledFor(logging.DEBUG):
                self._log_bytes("TX", data)
            if not self._write_now(frame, data):
                await self._send(frame, data)
            self._counters.requests += 1
            self._counters.bytes_sent += len(data)
            self._last_tx_end = tx_end = loop.time() + self._tx_duration(len(data))
            if not waiter.future.done():
                self._deadline(loop, tx_end + wait, waiter)
            reply = await waiter.future
        finally:
            if waiter.seq != _FORGOTTEN:  # (a settled request was forgotten already)
                self._forget(waiter)
            future = waiter.future
            if not future.done():
                future.cancel()
            elif not future.cancelled():
                future.exception()  # retrieved: the write error is what we raise
            slots = self._slots
            if exclusive or slots.waiters:
                self._release(exclusive)
            else:
                slots.free += 1  # what _release does when nobody waits for a slot
        if reply is None:
            self._counters.timeouts += 1
            if exclusive:
                self._receiver.reset()
            logger.debug("%s: no reply from %s within %g s", self.url, address, wait)
            raise ResponseTimeoutError(
                f"no reply from meter {address} within {wait:g} s "
                f"(request {frame.describe_control()} on {self.url})"
            )
        self._counters.replies += 1
        return reply

    async def send(self, frame: Frame) -> None:
        """Send ``frame`` and expect no reply (e.g. a broadcast 08H time sync)."""
        data = encode_frame(frame, self.preamble)
        half_duplex = self.max_in_flight == 1
        if half_duplex:
            await self._slots.take()
        try:
            await self._ensure_open()
            if half_duplex:
                await self._keep_gap()
            self._log_bytes("TX", data)
            await self._send(frame, data)
            self._counters.sent += 1
            self._counters.bytes_sent += len(data)
            self._last_tx_end = asyncio.get_running_loop().time() + self._tx_duration(len(data))
        finally:
            if half_duplex:
                self._slots.give()

    # -- for concrete transports ------------------------------------------------------

    def _data_received(self, data: bytes) -> None:
        """Hand received bytes to the parser (call from the link's reader)."""
        if logger.isEnabledFor(logging.DEBUG):
            self._log_bytes("RX", data)
        self._receiver.feed(data)

    def _connection_lost(self, exc: BaseException | None) -> None:
        """Report that the link went down by itself (not through :meth:`close`)."""
        self._counters.connection_losses += 1
        why = f": {exc}" if exc else ""
        logger.info("%s: connection lost%s", self.url, why)
        self._fail_waiters(TransportError(f"connection to {self.url} lost{why}"))
        self._receiver.reset()
        self._link_down.set()

    def _on_frame(self, frame: Frame) -> None:
        """A frame arrived: give it to the request awaiting it (or count it ignored)."""
        self._route(frame, frame.address)

    def _route(self, frame: Frame, key: str) -> None:
        """Match ``frame`` against the request to meter ``key`` (or the sole request)."""
        self._counters.frames_received += 1
        waiter = self._waiters.get(key)
        if waiter is None or waiter.future.done():
            waiter = self._sole
            if waiter is None or waiter.future.done():
                self._ignore(frame, "no request awaits it")
                return
        request = waiter.request
        if not (
            # the usual reply, at a glance: D7 added to the request's control (no D6: not
            # abnormal), the request's address (not AA) and its DI
            frame.control == request.control | DIRECTION
            and not request.control & ABNORMAL
            and frame.address == request.address
            and "A" not in request.address
            and len(request.data) >= 4
            and frame.data[:4] == request.data[:4]
        ):
            reason = _mismatch(request, frame)
            if reason is not None:
                self._ignore(frame, reason)
                return
        self._settle(waiter, frame)

    def _ignore(self, frame: Frame, reason: str) -> None:
        self._counters.ignored_frames += 1
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "%s: ignored %s from %s: %s",
                self.url,
                frame.describe_control(),
                frame.address,
                reason,
            )

    # -- internals ------------------------------------------------------------------------

    def _log_bytes(self, direction: str, data: bytes) -> None:
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("%s: %s %s", self.url, direction, data.hex(" ").upper())

    async def _acquire_one(self, address: str) -> None:
        """A slot for a request to ``address``, once no other request to it is out."""
        while True:
            busy = self._waiters.get(address)
            if busy is not None:
                await asyncio.wait((busy.future,))
                continue
            await self._slots.take()
            if address not in self._waiters:
                return
            self._slots.give()  # another request to this meter got in first

    async def _acquire_all(self) -> None:
        """Every slot: the request has the link to itself."""
        if self.max_in_flight == 1:
            await self._slots.take()
            return
        held = 0
        try:
            async with self._gathering:
                while held < self.max_in_flight:
                    await self._slots.take()
                    held += 1
        except BaseException:
            for _ in range(held):
                self._slots.give()
            raise

    def _release(self, exclusive: bool) -> None:
        if not exclusive:
            self._slots.give()
            return
        for _ in range(self.max_in_flight):
            self._slots.give()

    async def _ensure_open(self) -> None:
        if self.is_open:
            return
        async with self._open_lock:
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

    def _deadline(self, loop: asyncio.AbstractEventLoop, deadline: float, waiter: _Waiter) -> None:
        """Time ``waiter`` out at ``deadline``: one timer per transport, not one per request.

        The deadlines go on a heap and a single timer is armed for the earliest;
        answered requests are dropped from it when their deadline comes.
        """
        waiter.seq = seq = next(self._deadline_seq)
        self._timed[seq] = waiter
        heapq.heappush(self._deadlines, (deadline, seq))
        if deadline < self._sweep_at:
            if self._sweeper is not None:
                self._sweeper.cancel()
            self._sweep_at = deadline
            self._sweeper = loop.call_at(deadline, self._sweep)

    def _sweep(self) -> None:
        """The earliest deadline came: expire what is due, re-arm for the next."""
        self._sweeper = None
        loop = asyncio.get_running_loop()
        due = loop.time() + _TIMER_SLACK
        heap = self._deadlines
        timed = self._timed
        while heap and heap[0][0] <= due:
            deadline, seq = heapq.heappop(heap)
            waiter = timed.pop(seq, None)
            if waiter is not None:
                waiter.seq = -1
                if not waiter.future.done():
                    self._expire(waiter, deadline)
        if heap:
            self._sweep_at = heap[0][0]
            self._sweeper = loop.call_at(self._sweep_at, self._sweep)
        else:
            self._sweep_at = math.inf

    def _expire(self, waiter: _Waiter, deadline: float) -> None:
        """The response timer ran out: time the request out, unless a frame is arriving."""
        waiter.timer = None
        if waiter.future.done():
            return
        inter_byte = self._receiver.inter_byte_timeout
        if inter_byte is not None and self._receiver.pending and self._sole is waiter:
            # On a line with one transaction at a time, a frame that has started by the
            # deadline is likely the reply: it may finish after it, within reason.
            hard_deadline = deadline + self._tx_duration(MAX_FRAME) + 2 * inter_byte
            loop = asyncio.get_running_loop()
            now = loop.time()
            if now < hard_deadline:
                waiter.timer = loop.call_at(
                    min(now + inter_byte, hard_deadline), self._expire, waiter, deadline
                )
                return
        self._settle(waiter, None)

    def _settle(self, waiter: _Waiter, reply: Frame | None) -> None:
        """Complete a request (reply, or ``None`` for a timeout); its meter is free again."""
        self._forget(waiter)
        waiter.future.set_result(reply)

    def _forget(self, waiter: _Waiter) -> None:
        if waiter.seq >= 0:
            self._timed.pop(waiter.seq, None)
        waiter.seq = _FORGOTTEN
        address = waiter.request.address
        if self._waiters.get(address) is waiter:
            del self._waiters[address]
        if self._sole is waiter:
            self._sole = None
        if waiter.timer is not None:
            waiter.timer.cancel()
            waiter.timer = None

    def _fail_waiters(self, exc: TransportError) -> None:
        waiters = list(self._waiters.values())
        if self._sole is not None and self._sole not in waiters:
            waiters.append(self._sole)
        for waiter in waiters:
            self._forget(waiter)
            if not waiter.future.done():
                waiter.future.set_exception(exc)
