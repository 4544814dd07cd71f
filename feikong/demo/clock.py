"""The demo's shared clock (共享时钟): one accelerated time for every process.

:class:`SharedClock` is an :class:`~protocol.clock.AcceleratedClock` pinned to the wall
clock: simulated time ``origin`` was at Unix time ``epoch``, and runs ``speed`` times
faster. Every process of the demo builds one from the same three numbers
(:meth:`SharedClock.to_dict` / :meth:`SharedClock.from_dict`), so the meters, the
head-end, the platform and the customers agree on the time without talking.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any

from protocol.clock import AcceleratedClock

__all__ = ["SharedClock"]


class SharedClock(AcceleratedClock):
    """Simulated time ``origin`` at Unix time ``epoch``, ``speed`` times faster than real."""

    def __init__(self, origin: datetime, speed: float, epoch: float | None = None) -> None:
        super().__init__(origin, speed)
        self.origin = origin
        self.epoch = time.time() if epoch is None else epoch

    def now(self) -> datetime:
        return self.origin + timedelta(seconds=(time.time() - self.epoch) * self.speed)

    def real_seconds_until(self, when: datetime) -> float:
        """Real seconds until the simulated time ``when`` (negative: it has passed)."""
        return (when - self.now()).total_seconds() / self.speed

    def to_dict(self) -> dict[str, Any]:
        return {"origin": self.origin.isoformat(), "speed": self.speed, "epoch": self.epoch}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SharedClock:
        return cls(datetime.fromisoformat(data["origin"]), float(data["speed"]), data["epoch"])
