"""The day time-segment table (日时段表): which tariff (费率) applies at each minute.

A meter splits its energy registers by tariff: T1 sharp (尖), T2 peak (峰), T3 flat
(平), T4 valley (谷). A :class:`TouSchedule` lists the segment starts of one day;
:data:`DEFAULT_TOU` is a typical residential table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = ["DEFAULT_TOU", "MAX_SEGMENTS", "TARIFFS", "TouSchedule"]

TARIFFS: Final = 4
"""Tariffs 1..4 (sharp, peak, flat, valley)."""
MAX_SEGMENTS: Final = 14
"""DL/T 645 meters hold at most 14 segments per day table."""
MINUTES_PER_DAY: Final = 1440


@dataclass(frozen=True, slots=True)
class TouSchedule:
    """One day table: ``(start minute of day, tariff 1..4)`` pairs, the first at 00:00.

    Hashable, so tables derived from it (see :mod:`meter_sim.profile`) are computed
    once per schedule and shared by every meter that uses it.
    """

    segments: tuple[tuple[int, int], ...]

    def __post_init__(self) -> None:
        if not self.segments or self.segments[0][0] != 0:
            raise ValueError("a day time-segment table starts with a segment at 00:00")
        if len(self.segments) > MAX_SEGMENTS:
            raise ValueError(f"a day table has at most {MAX_SEGMENTS} segments")
        starts = [s for s, _ in self.segments]
        if starts != sorted(set(starts)) or starts[-1] >= MINUTES_PER_DAY:
            raise ValueError("segment starts must increase within the day (00:00..23:59)")
        for _, tariff in self.segments:
            if not 1 <= tariff <= TARIFFS:
                raise ValueError(f"tariff {tariff} is not 1..{TARIFFS}")

    @classmethod
    def parse(cls, text: str) -> TouSchedule:
        """``"00:00=4,07:00=3,08:00=2"`` → a schedule (for scenario files)."""
        segments = []
        for part in text.split(","):
            when, sep, tariff = part.strip().partition("=")
            hh, colon, mm = when.partition(":")
            if not sep or not colon or not (hh.isdigit() and mm.isdigit() and tariff.isdigit()):
                raise ValueError(f"segment {part.strip()!r} is not HH:MM=T (e.g. 07:00=3)")
            segments.append((int(hh) * 60 + int(mm), int(tariff)))
        return cls(tuple(segments))

    def tariff_at(self, minute: int) -> int:
        """The tariff (1..4) in force at ``minute`` (0..1439) of the day."""
        tariff = self.segments[0][1]
        for start, t in self.segments:
            if start > minute:
                break
            tariff = t
        return tariff

    def minute_tariffs(self) -> tuple[int, ...]:
        """The tariff of every minute of the day (1440 entries)."""
        return tuple(self.tariff_at(m) for m in range(MINUTES_PER_DAY))


DEFAULT_TOU: Final = TouSchedule(
    (
        (0, 4),  # 00:00 valley
        (7 * 60, 3),  # 07:00 flat
        (8 * 60, 2),  # 08:00 peak
        (11 * 60, 3),  # 11:00 flat
        (17 * 60, 2),  # 17:00 peak
        (19 * 60, 1),  # 19:00 sharp
        (21 * 60, 2),  # 21:00 peak
        (23 * 60, 4),  # 23:00 valley
    )
)
"""Residential day table: valley at night, sharp in the evening peak."""
