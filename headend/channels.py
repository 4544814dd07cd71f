"""The channel pool (通道池): every request to a meter goes out on the meter's channel.

:class:`ChannelPool` holds one set of transports per channel of the archive and a
map from meter address to channel. :meth:`ChannelPool.request` routes a frame to
the meter's channel and keeps the two limits of the head-end:

* **a channel's concurrency** — at most ``concurrency`` requests in flight on a TCP
  endpoint, a gateway (DTU / concentrator) or an MQTT topic; exactly one on a
  serial RS-485 bus (half duplex). On TCP the slots are spread over connections:
  when the transport can pipeline (several outstanding requests to distinct
  addresses on one connection) one connection carries ``pipeline`` of them,
  otherwise each slot gets a connection of its own;
* **one transaction at a time per meter** — a second request to a meter waits
  until the first is answered (or timed out), whatever the channel.

:meth:`ChannelPool.session` lends a :class:`~protocol.client.MasterClient` on the
meter's channel for a multi-frame exchange (identity authentication → 1CH →
status read), holding the meter and one channel slot for the whole exchange.

:meth:`ChannelPool.health` reports each channel's counters and latency
percentiles (from the last :data:`LATENCY_SAMPLES` requests).

Errors: an address not in the archive raises :class:`UnknownMeterError`; a channel
whose transport cannot be built (an unknown URL scheme) raises
:class:`ChannelUnavailableError`. The protocol's own errors pass through as they
are: :class:`~protocol.errors.ResponseTimeoutError` when the meter does not
answer, :class:`~protocol.errors.TransportError` when the link cannot be opened.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import math
from array import array
from collections import deque
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from time import perf_counter
from typing import Any, Final, Self

from sqlalchemy import Table, select
from sqlalchemy.engine import Engine

from protocol.client import MasterClient
from protocol.clock import Clock, RealClock
from protocol.errors import ResponseTimeoutError, TransportError
from protocol.frame import Frame
from protocol.transport import TcpTransport, Transport, open_transport

from . import models
from .errors import HeadendError
from .models import ChannelKind

__all__ = [
    "LATENCY_SAMPLES",
    "ChannelError",
    "ChannelHealth",
    "ChannelPool",
    "ChannelUnavailableError",
    "UnknownMeterError",
    "transport_pipelines",
]

log = logging.getLogger(__name__)

LATENCY_SAMPLES: Final = 4096
"""Request latencies kept per channel for the percentiles of :meth:`ChannelPool.health`."""
_PIPELINE_OPTION: Final = "max_in_flight"


class ChannelError(HeadendError):
    """A request cannot be routed or sent by the channel pool."""


class UnknownMeterError(ChannelError):
    """The address is not in the archive (or its channel is not in the pool)."""


class ChannelUnavailableError(ChannelError):
    """The channel's transport cannot be built (e.g. an unsupported URL scheme)."""


def transport_pipelines() -> bool:
    """True if :class:`~protocol.transport.TcpTransport` takes ``max_in_flight`` (pipelining)."""
    return _PIPELINE_OPTION in inspect.signature(TcpTransport).parameters


@dataclass(frozen=True, slots=True)
class ChannelHealth:
    """A snapshot of one channel (for ``feikong headend status``).

    ``requests`` / ``replies`` / ``timeouts`` are the transports' counters (so
    they include the frames of :meth:`ChannelPool.session` exchanges);
    ``errors`` counts link failures (cannot connect, connection lost);
    ``p50_ms`` / ``p99_ms`` are request latencies through
    :meth:`ChannelPool.request` (``None`` before the first answered request).
    """

    name: str
    kind: str
    url: str
    connected: bool
    in_flight: int
    requests: int
    replies: int
    timeouts: int
    errors: int
    last_error: str | None
    p50_ms: float | None
    p99_ms: float | None
    concurrency: int = 1
    connections: int = 1
    last_error_at: datetime | None = None


def _percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending list (not empty)."""
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


class _Channel:
    """The live side of one archive channel: its transports, slots and counters."""

    __slots__ = (
        "broken",
        "clock",
        "concurrency",
        "errors",
        "free",
        "id",
        "in_flight",
        "kind",
        "last_error",
        "last_error_at",
        "latency",
        "latency_count",
        "name",
        "transports",
        "url",
        "waiters",
    )

    def __init__(
        self,
        channel: models.Channel,
        timeout: float,
        pipeline: int | None,
        clock: Clock,
        window: int = LATENCY_SAMPLES,
    ) -> None:
        if channel.id is None:
            raise ChannelError(f"channel {channel.name!r} has no id; store it in the archive first")
        self.id: int = channel.id
        self.clock = clock
        self.name = channel.name
        self.kind = channel.kind
        self.url = channel.url
        self.concurrency = 1 if channel.kind == ChannelKind.SERIAL else max(1, channel.concurrency)
        self.in_flight = 0
        self.errors = 0
        self.last_error: str | None = None
        self.last_error_at: datetime | None = None
        self.latency = array("d", bytes(8 * window))
        self.latency_count = 0
        self.broken: str | None = None
        self.transports: list[Transport] = []
        self.free: list[Transport] = []
        self.waiters: deque[asyncio.Future[Transport]] = deque()
        try:
            self._build(timeout, pipeline)
        except TransportError as exc:
            self.broken = f"channel {self.name!r} ({self.url}) cannot be used: {exc}"
            self.last_error = self.broken
            log.error("%s", self.broken)

    def _build(self, timeout: float, pipeline: int | None) -> None:
        per_connection = 1
        if self.kind in (ChannelKind.TCP, ChannelKind.GATEWAY) and transport_pipelines():
            depth = self.concurrency if pipeline is None else pipeline
            per_connection = max(1, min(depth, self.concurrency))
        elif self.kind == ChannelKind.MQTT:
            per_connection = self.concurrency  # one client; the broker carries them all
        else:
            per_connection = 1
        connections = math.ceil(self.concurrency / per_connection)
        options: dict[str, Any] = {"response_timeout": timeout}
        if per_connection > 1 and self.kind != ChannelKind.MQTT:
            options[_PIPELINE_OPTION] = per_connection
        for _ in range(connections):
            self.transports.append(open_transport(self.url, **options))
        # One entry per slot: a pipelined connection appears ``per_connection`` times.
        for i in range(self.concurrency):
            self.free.append(self.transports[i % connections])

    async def acquire(self) -> Transport:
        """A free slot (its transport), waiting in line when every slot is taken."""
        if self.free and not self.waiters:
            transport = self.free.pop()
        else:
            future: asyncio.Future[Transport] = asyncio.get_running_loop().create_future()
            self.waiters.append(future)
            try:
                transport = await future
            except asyncio.CancelledError:
                if future.done() and not future.cancelled():
                    self._hand(future.result())  # handed over just as we were cancelled
                else:
                    with contextlib.suppress(ValueError):
                        self.waiters.remove(future)
                raise
        self.in_flight += 1
        return transport

    def release(self, transport: Transport) -> None:
        """Give a slot back: to the first in line, or to the free list."""
        self.in_flight -= 1
        if self.waiters:
            self._hand(transport)
        else:
            self.free.append(transport)

    def _hand(self, transport: Transport) -> None:
        waiters = self.waiters
        while waiters:
            future = waiters.popleft()
            if not future.done():
                future.set_result(transport)
                return
        self.free.append(transport)

    def latencies(self) -> list[float]:
        """The latencies (s) of the last requests, at most the window's size."""
        return self.latency[: min(self.latency_count, len(self.latency))].tolist()

    def fail(self, exc: BaseException, *, count: bool = True) -> None:
        if count:
            self.errors += 1
        self.last_error = str(exc) or type(exc).__name__
        self.last_error_at = self.clock.now()

    def health(self) -> ChannelHealth:
        stats = [t.stats for t in self.transports]
        p50 = p99 = None
        values = sorted(self.latencies())
        if values:
            p50 = round(_percentile(values, 0.50) * 1000, 3)
            p99 = round(_percentile(values, 0.99) * 1000, 3)
        return ChannelHealth(
            name=self.name,
            kind=self.kind,
            url=self.url,
            connected=any(t.is_open for t in self.transports),
            in_flight=self.in_flight,
            requests=sum(s.requests for s in stats),
            replies=sum(s.replies for s in stats),
            timeouts=sum(s.timeouts for s in stats),
            errors=self.errors,
            last_error=self.last_error,
            p50_ms=p50,
            p99_ms=p99,
            concurrency=self.concurrency,
            connections=len(self.transports),
            last_error_at=self.last_error_at,
        )


class ChannelPool:
    """Routes requests to meters over their channels (see the module doc).

    ``timeout`` is the response timeout of every transport (a request may give
    its own). ``pipeline`` is the number of requests one TCP connection carries
    at once: ``None`` (default) pipelines the whole concurrency on one
    connection when the transport supports it, ``1`` opens one connection per
    slot. ``clock`` stamps :attr:`ChannelHealth.last_error_at`. ``latency_window``
    is how many recent request latencies each channel keeps for its percentiles.
    """

    def __init__(
        self,
        *,
        timeout: float = 2.0,
        clock: Clock | None = None,
        pipeline: int | None = None,
        latency_window: int = LATENCY_SAMPLES,
    ) -> None:
        if not timeout > 0:
            raise ChannelError(f"the response timeout must be > 0 s, got {timeout}")
        if pipeline is not None and pipeline < 1:
            raise ChannelError(
                f"pipeline must be at least 1 request per connection, got {pipeline}"
            )
        self.timeout = timeout
        self.clock: Clock = clock or RealClock()
        self.pipeline = pipeline
        self.latency_window = max(1, latency_window)
        self._channels: dict[int, _Channel] = {}
        self._route: dict[str, _Channel] = {}
        self._pending: dict[str, int] = {}
        """Assignments to channels not added yet (resolved by :meth:`add_channel`)."""
        self._busy: dict[str, deque[asyncio.Future[None]] | None] = {}
        self._retired: list[Transport] = []

    # -- building ---------------------------------------------------------------------

    @classmethod
    def from_archive(cls, engine: Engine, **kw: Any) -> Self:
        """A pool with every channel of the archive and every meter assigned to its channel."""
        pool = cls(**kw)
        channel_table: Table = models.Channel.__table__  # type: ignore[attr-defined]
        meter_table: Table = models.Meter.__table__  # type: ignore[attr-defined]
        with engine.connect() as connection:
            for row in connection.execute(select(channel_table)).mappings():
                pool.add_channel(models.Channel(**row))
            query = select(meter_table.c.address, meter_table.c.channel_id)
            rows = connection.execute(query.execution_options(yield_per=50_000))
            for address, channel_id in rows:
                pool.assign(address, channel_id)
        log.info("channel pool: %d channel(s), %d meter(s)", len(pool._channels), len(pool._route))
        return pool

    def add_channel(self, channel: models.Channel) -> None:
        """Add (or replace) a channel; its transports connect on first use."""
        live = _Channel(channel, self.timeout, self.pipeline, self.clock, self.latency_window)
        old = self._channels.get(live.id)
        if old is not None:
            self._retired.extend(old.transports)
            for address, routed in self._route.items():
                if routed is old:
                    self._route[address] = live
        self._channels[live.id] = live
        for address in [a for a, cid in self._pending.items() if cid == live.id]:
            self._route[address] = live
            del self._pending[address]

    def assign(self, address: str, channel_id: int) -> None:
        """Reach meter ``address`` through channel ``channel_id``."""
        channel = self._channels.get(channel_id)
        if channel is None:
            self._pending[address] = channel_id
            self._route.pop(address, None)
        else:
            self._route[address] = channel

    def __contains__(self, address: object) -> bool:
        return address in self._route

    def __len__(self) -> int:
        """Meters the pool can reach."""
        return len(self._route)

    def channel_of(self, address: str) -> str:
        """The name of the meter's channel (raises :class:`UnknownMeterError`)."""
        return self._channel(address).name

    def slots(self, channel_id: int) -> int:
        """How many requests channel ``channel_id`` carries at once (0 if the pool lacks it)."""
        channel = self._channels.get(channel_id)
        return 0 if channel is None else channel.concurrency

    def concurrency(self, addresses: Iterable[str] | None = None) -> int:
        """Slots of the channels (of ``addresses``, or all): how much may be in flight at once."""
        if addresses is None:
            return sum(c.concurrency for c in self._channels.values())
        ids = {self._route[a].id for a in addresses if a in self._route}
        return sum(self._channels[i].concurrency for i in ids)

    # -- requests -----------------------------------------------------------------------

    def _channel(self, address: str) -> _Channel:
        channel = self._route.get(address)
        if channel is None:
            if address in self._pending:
                raise UnknownMeterError(
                    f"meter {address} is assigned to channel {self._pending[address]}, which the "
                    "pool does not have; import the channel into the archive"
                )
            raise UnknownMeterError(
                f"meter {address} is not in the archive; import it (feikong headend "
                "import-archive) before reading it"
            )
        if channel.broken is not None:
            raise ChannelUnavailableError(channel.broken)
        return channel

    async def request(self, address: str, frame: Frame, *, timeout: float | None = None) -> Frame:
        """Send ``frame`` to meter ``address`` on its channel and return the reply frame.

        Waits for the meter's previous transaction and for a free channel slot.
        Abnormal replies are returned as frames (the caller decodes them).
        """
        channel = self._route.get(address)
        if channel is None or channel.broken is not None:
            channel = self._channel(address)  # raises the right error
        if frame.address != address:
            raise ChannelError(f"frame addressed to {frame.address} sent as a request to {address}")
        busy = self._busy
        if address in busy:
            await self._wait_meter(address)
        else:
            busy[address] = None
        try:
            free = channel.free
            if free and not channel.waiters:  # the common case, without a coroutine
                transport = free.pop()
                channel.in_flight += 1
            else:
                transport = await channel.acquire()
            start = perf_counter()
            try:
                reply = await transport.request(frame, timeout=timeout or self.timeout)
            except ResponseTimeoutError as exc:
                channel.fail(exc, count=False)
                raise
            except TransportError as exc:
                channel.fail(exc)
                raise
            finally:
                if channel.waiters:
                    channel.release(transport)
                else:  # what release does when nobody waits for a slot
                    channel.in_flight -= 1
                    free.append(transport)
            i = channel.latency_count
            latency = channel.latency
            latency[i % len(latency)] = perf_counter() - start
            channel.latency_count = i + 1
            return reply
        finally:
            if busy.get(address) is None:
                del busy[address]  # nobody waits for the meter
            else:
                self._release_meter(address)

    @asynccontextmanager
    async def session(self, address: str) -> AsyncIterator[MasterClient]:
        """A :class:`MasterClient` on the meter's channel, holding the meter and one slot."""
        channel = self._channel(address)
        if address in self._busy:
            await self._wait_meter(address)
        else:
            self._busy[address] = None
        try:
            transport = await channel.acquire()
            try:
                yield MasterClient(transport, timeout=self.timeout)
            except ResponseTimeoutError as exc:
                channel.fail(exc, count=False)
                raise
            except TransportError as exc:
                channel.fail(exc)
                raise
            finally:
                channel.release(transport)
        finally:
            self._release_meter(address)

    async def _wait_meter(self, address: str) -> None:
        """Queue behind the meter's current transaction; return owning the meter."""
        queue = self._busy.get(address)
        if queue is None:
            queue = self._busy[address] = deque()
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue.append(future)
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self._release_meter(address)  # handed over just as we were cancelled
            else:
                with contextlib.suppress(ValueError):  # already skipped by a release
                    queue.remove(future)
            raise

    def _release_meter(self, address: str) -> None:
        queue = self._busy.get(address)
        while queue:
            future = queue.popleft()
            if not future.done():
                future.set_result(None)  # ownership passes to the next in line
                return
        self._busy.pop(address, None)

    # -- health and life cycle ------------------------------------------------------------

    def health(self) -> list[ChannelHealth]:
        """One :class:`ChannelHealth` per channel, ordered by name."""
        return [c.health() for c in sorted(self._channels.values(), key=lambda c: c.name)]

    def latencies(self) -> list[float]:
        """Recent request latencies (seconds) of every channel (see ``latency_window``)."""
        return [v for c in self._channels.values() for v in c.latencies()]

    async def aclose(self) -> None:
        """Close every connection (requests still waiting fail with a transport error)."""
        transports = [t for c in self._channels.values() for t in c.transports] + self._retired
        self._retired = []
        for transport in transports:
            try:
                await transport.close()
            except (TransportError, OSError) as exc:
                log.info("closing %s: %s", transport.url, exc)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
