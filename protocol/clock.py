"""The shared clock: real, accelerated, or stepped by hand.

Every timer in feikong (permit-close delay, command expiry, notice periods,
N-consecutive-day anomalies) reads time from a :class:`Clock` and waits with
:meth:`Clock.sleep`, so tests step months in microseconds and the demo runs
months in minutes. Times are naive local ``datetime`` values, as a meter
shows them (DL/T 645 carries no time zone).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable

__all__ = ["AcceleratedClock", "Clock", "RealClock", "SteppedClock"]


@runtime_checkable
class Clock(Protocol):
    """What every component needs of time."""

    def now(self) -> datetime:
        """The current (simulated) local time."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of clock time."""
        ...


class RealClock:
    """Wall-clock time."""

    def now(self) -> datetime:
        return datetime.now()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class AcceleratedClock:
    """Time that runs ``speed`` times faster than the wall clock from ``start``.

    ``speed=86400`` makes a simulated day pass every real second.
    """

    def __init__(self, start: datetime | None = None, speed: float = 1.0) -> None:
        if speed <= 0:
            raise ValueError(f"clock speed must be > 0, got {speed}")
        self.speed = speed
        self._origin = start or datetime.now()
        self._t0 = time.monotonic()
        self._bases: dict[datetime, float] = {}
        """Seconds from an epoch to the origin (:meth:`seconds_since`)."""

    def now(self) -> datetime:
        return self._origin + timedelta(0, (time.monotonic() - self._t0) * self.speed)

    def seconds_since(self, epoch: datetime) -> float:
        """``(now() - epoch).total_seconds()`` without making the datetimes (to within a
        microsecond's rounding), for callers that count time in seconds."""
        base = self._bases.get(epoch)
        if base is None:
            base = self._bases[epoch] = (self._origin - epoch).total_seconds()
        return base + (time.monotonic() - self._t0) * self.speed

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self.speed)


class SteppedClock:
    """Time that moves only when a test (or the demo driver) calls :meth:`advance`.

    Sleepers wake in due order as time passes them; ``await clock.advance(s)``
    lets each woken task run before moving on, so a test can step through a
    60-second permit-close delay deterministically without real waiting.
    """

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, 0, 0, 0)
        self._sleepers: list[tuple[datetime, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def now(self) -> datetime:
        return self._now

    def set(self, when: datetime) -> None:
        """Jump to ``when`` without waking sleepers (use :meth:`advance` to wake them)."""
        self._now = when

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(
            self._sleepers, (self._now + timedelta(seconds=seconds), next(self._seq), fut)
        )
        await fut

    @property
    def pending(self) -> int:
        """Number of tasks sleeping on this clock."""
        return sum(1 for *_, f in self._sleepers if not f.done())

    async def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``, waking each sleeper at its due time."""
        target = self._now + timedelta(seconds=seconds)
        await _settle()
        while self._sleepers and self._sleepers[0][0] <= target:
            due, _, fut = heapq.heappop(self._sleepers)
            self._now = max(self._now, due)
            if not fut.done():
                fut.set_result(None)
            await _settle()
        self._now = target
        await _settle()


async def _settle(rounds: int = 20) -> None:
    """Let ready tasks run (and the ones they wake) before time moves on."""
    for _ in range(rounds):
        await asyncio.sleep(0)
