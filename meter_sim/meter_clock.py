"""The meter's own clock (电能表时钟) and the broadcast time-sync rules (广播校时).

A meter's time is the shared :class:`~protocol.clock.Clock` plus an offset (set by
time sync or a 14H write) plus a drift (:attr:`FaultConfig.clock_drift_s_per_day
<meter_sim.config.FaultConfig.clock_drift_s_per_day>`) that accumulates from the
last time the clock was set. Times are handled as seconds since 2000-01-01 00:00
(:data:`EPOCH`); :func:`to_seconds` and :func:`from_seconds` convert.

Time-sync rules ([FW-A], PROTOCOL.md §1): a sync is refused when the meter was
already synced today, when the meter time (or the new time) is within ±5 min of
00:00 (the daily freeze and the settlement at 1st 00:00), or when it would move
the clock by more than ±5 min.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Final

from protocol.clock import AcceleratedClock, Clock

__all__ = [
    "EPOCH",
    "MAX_SYNC_OFFSET_S",
    "MeterClock",
    "SyncRefused",
    "from_seconds",
    "to_seconds",
]

EPOCH: Final = datetime(2000, 1, 1)
DAY: Final = 86_400
MAX_SYNC_OFFSET_S: Final = 300
"""A time sync may move the clock by at most 5 minutes."""
MIDNIGHT_GUARD_S: Final = 300
"""No time sync within 5 minutes of 00:00."""


def to_seconds(when: datetime) -> float:
    """Seconds since :data:`EPOCH`."""
    return (when - EPOCH).total_seconds()


def from_seconds(seconds: float) -> datetime:
    """The inverse of :func:`to_seconds` (to the microsecond)."""
    return EPOCH + timedelta(seconds=seconds)


class SyncRefused(Exception):
    """A time sync the meter does not apply; the message says which rule."""


class MeterClock:
    """The meter's time, derived from the shared clock (see the module doc)."""

    __slots__ = ("_accelerated", "_anchor", "_drift", "_offset", "clock", "last_sync_day")

    def __init__(self, clock: Clock, drift_s_per_day: float = 0.0) -> None:
        self.clock = clock
        self._accelerated = clock if type(clock) is AcceleratedClock else None
        """The shared clock when it counts seconds itself (no datetimes made per touch)."""
        self._drift = drift_s_per_day / DAY
        self._offset = 0.0
        self._anchor = to_seconds(clock.now())
        self.last_sync_day: int | None = None

    def shared_s(self) -> float:
        """The shared clock now, in seconds since :data:`EPOCH`."""
        clock = self.clock
        if clock is self._accelerated:
            return clock.seconds_since(EPOCH)
        return to_seconds(clock.now())

    def at(self, shared_s: float) -> float:
        """Meter time (seconds) when the shared clock reads ``shared_s``."""
        return shared_s + self._offset + self._drift * (shared_s - self._anchor)

    def now_s(self) -> float:
        """Meter time now, seconds since :data:`EPOCH`."""
        return self.at(self.shared_s())

    def now(self) -> datetime:
        """Meter time now."""
        return from_seconds(self.now_s())

    def set(self, when: datetime) -> None:
        """Set the meter time to ``when`` (a 14H date/time write: no sync rules)."""
        shared = self.shared_s()
        self._offset = to_seconds(when) - shared
        self._anchor = shared

    def sync(self, when: datetime) -> None:
        """Apply a broadcast time sync, or raise :class:`SyncRefused` saying why."""
        now = self.now_s()
        target = to_seconds(when)
        today = int(now // DAY)
        if self.last_sync_day == today:
            raise SyncRefused("already synced today (one broadcast sync a day)")
        for what, t in (("meter time", now), ("new time", target)):
            second = t % DAY
            if second <= MIDNIGHT_GUARD_S or second >= DAY - MIDNIGHT_GUARD_S:
                raise SyncRefused(f"{what} is within ±5 min of 00:00 (freeze/settlement)")
        if abs(target - now) > MAX_SYNC_OFFSET_S:
            raise SyncRefused(
                f"offset {target - now:+.0f} s exceeds ±{MAX_SYNC_OFFSET_S} s; "
                "set the time with a 14H write instead"
            )
        self.set(when)
        self.last_sync_day = int(target // DAY)

    def to_state(self) -> dict[str, Any]:
        return {
            "offset_s": self._offset,
            "anchor_s": self._anchor,
            "last_sync_day": self.last_sync_day,
        }

    def restore_state(self, state: dict[str, Any]) -> None:
        offset = float(state["offset_s"])
        anchor = float(state["anchor_s"])
        last = state.get("last_sync_day")
        self._offset, self._anchor = offset, anchor
        self.last_sync_day = None if last is None else int(last)
