"""Seeded household load profile (负荷曲线): how much energy a meter registers, and when.

Consumption is reproducible: the same seed and mean give the same energy for the same
day, however often (or seldom) the meter is looked at. A day's energy is

    daily total(seed, day)  ×  normalised intraday cumulative shape(time of day)

The daily total is the mean scaled by integer factors (a seeded day-to-day spread of
0.6..1.4, weekday/weekend, season); the shape is one of a few residential curves
(hourly weights), picked by the seed. Everything is integer arithmetic, so results do
not depend on the platform's floating point, and O(1) per query: the split of the
shape by tariff is precomputed once per (shape, TOU schedule) and shared by every
meter (:func:`shape_table`).

Energy unit: 1e-5 kWh (:data:`meter_sim.registers.UNITS_PER_KWH` per kWh). Day numbers
count from 2000-01-01 (day 0, a Saturday); times of day are seconds.
"""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Final, NamedTuple

from .tou import MINUTES_PER_DAY, TARIFFS, TouSchedule

__all__ = ["SHAPES", "Instant", "LoadProfile", "ShapeTable", "shape_table"]

_MASK: Final = (1 << 64) - 1
_EPOCH_ORDINAL: Final = dt.date(2000, 1, 1).toordinal()
_DAY_S: Final = MINUTES_PER_DAY * 60

SHAPES: Final[tuple[tuple[int, ...], ...]] = tuple(
    tuple(int(w) for w in row.split())
    for row in (
        # evening peak (working household)
        "20 15 12 11 11 13 25 35 30 25 24 26 30 26 24 25 30 45 60 65 60 50 40 30",
        # at home all day
        "18 14 12 11 11 12 20 30 36 38 38 40 42 38 36 36 38 44 52 55 50 42 32 24",
        # late nights
        "35 30 22 15 12 12 15 22 22 20 20 24 26 24 22 24 28 38 48 55 58 56 50 42",
    )
)
"""Hourly weights of the intraday shapes (relative; each is normalised)."""

_WEEKDAY: Final = 940
_WEEKEND: Final = 1150
"""Per-mille day factors; (5 × 940 + 2 × 1150) / 7 = 1000."""
_SEASON: Final = (1150, 1100, 950, 880, 900, 1000, 1150, 1150, 950, 880, 950, 1100)
"""Per-mille month factors (heating in winter, air conditioning in summer)."""
_SEASON_SUM: Final = sum(_SEASON)
_SPREAD: Final = 800_001
"""Day-to-day factor 0.600000..1.400000 in 1e-6."""


def _mix(x: int) -> int:
    """splitmix64: a fast, well-spread 64-bit hash."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def _hash(seed: int, a: int, b: int = 0) -> int:
    return _mix(_mix(_mix(seed & _MASK) ^ (a & _MASK)) ^ (b & _MASK))


_DAY_FACTORS: dict[int, int] = {}
"""Day → weekday/weekend × season month factor (shared by every meter)."""
_DAY_DIVISOR: Final = 1_000_000 * 1000 * _SEASON_SUM


def _day_factor(day: int) -> int:
    """``week × season × 12`` of ``day``: what scales the mean besides the spread."""
    factor = _DAY_FACTORS.get(day)
    if factor is None:
        week = _WEEKEND if (day + 5) % 7 >= 5 else _WEEKDAY
        month = dt.date.fromordinal(_EPOCH_ORDINAL + day).month
        factor = week * _SEASON[month - 1] * 12
        if len(_DAY_FACTORS) > 4096:
            _DAY_FACTORS.clear()
        _DAY_FACTORS[day] = factor
    return factor


@dataclass(frozen=True, slots=True)
class ShapeTable:
    """A shape split by tariff: ``numerators[k][m]`` / ``denominator`` is the share of the
    day's energy used in tariff ``k+1`` before minute ``m`` (0..1440)."""

    weights: tuple[int, ...]
    numerators: tuple[tuple[int, ...], ...]
    denominator: int
    scaled: tuple[tuple[int, ...], ...] = ()
    """Per tariff, ``60 × numerators[k][m]`` for m in 0..1440 and once more for 1441."""
    rates: tuple[tuple[int, ...], ...] = ()
    """Per tariff, the numerator's rise in minute m (per second of it), 0 for 1440."""

    def share(self, tariff_index: int) -> int:
        """Numerator of the whole day's share of tariff ``tariff_index + 1``."""
        return self.numerators[tariff_index][MINUTES_PER_DAY]


@lru_cache(maxsize=64)
def shape_table(shape: int, schedule: TouSchedule) -> ShapeTable:
    """The tariff split of shape ``shape`` under ``schedule`` (computed once, shared)."""
    weights = SHAPES[shape % len(SHAPES)]
    tariffs = schedule.minute_tariffs()
    cumulative = [[0] * (MINUTES_PER_DAY + 1) for _ in range(TARIFFS)]
    running = [0] * TARIFFS
    for minute in range(MINUTES_PER_DAY):
        running[tariffs[minute] - 1] += weights[minute // 60]
        for k in range(TARIFFS):
            cumulative[k][minute + 1] = running[k]
    return ShapeTable(
        weights=weights,
        numerators=tuple(tuple(c) for c in cumulative),
        denominator=sum(weights) * 60,
        scaled=tuple(tuple(n * 60 for n in [*c, c[-1]]) for c in cumulative),
        rates=tuple(tuple(b - a for a, b in itertools.pairwise([*c, c[-1]])) for c in cumulative),
    )


class Instant(NamedTuple):
    """Instantaneous values, integers in the registers' resolutions."""

    voltage_dv: int
    """0.1 V."""
    current_ma: int
    """0.001 A."""
    power_e4_kw: int
    """0.0001 kW."""
    power_factor_e3: int
    """0.001."""
    frequency_chz: int
    """0.01 Hz."""


class LoadProfile:
    """The consumption of one household, from its seed (see the module doc)."""

    __slots__ = ("_day", "_mean_units", "_seed", "_seed_mix", "_table", "_units")

    def __init__(
        self, seed: int, mean_daily_kwh: float | Decimal | str, schedule: TouSchedule
    ) -> None:
        mean = Decimal(str(mean_daily_kwh))
        if not mean >= 0:
            raise ValueError(f"mean daily consumption must be >= 0 kWh, got {mean_daily_kwh}")
        self._seed = seed
        self._mean_units = int(mean * 100_000)
        self._table = shape_table(_mix(seed) % len(SHAPES), schedule)
        self._seed_mix = _mix(seed & _MASK)
        """The seed's part of the day hash (:func:`_hash`), mixed once."""
        self._day = -1
        self._units = 0
        """The last day asked for and its energy (a meter asks for the same day again)."""

    @property
    def seed(self) -> int:
        return self._seed

    @property
    def table(self) -> ShapeTable:
        return self._table

    def daily_units(self, day: int) -> int:
        """Energy of day ``day`` (days since 2000-01-01) in 1e-5 kWh."""
        if day == self._day:
            return self._units
        spread = 600_000 + _mix(_mix(self._seed_mix ^ (day & _MASK))) % _SPREAD  # _hash(seed, day)
        units = self._mean_units * spread * _day_factor(day) // _DAY_DIVISOR
        self._day = day
        self._units = units
        return units

    def cumulative(self, day: int, second: int, daily: int | None = None) -> list[int]:
        """Energy per tariff (1e-5 kWh) used on ``day`` before ``second`` (0..86400).

        Monotone in ``second``, so differences never lose or double-count energy.
        """
        units = self.daily_units(day) if daily is None else daily
        table = self._table
        minute, rest = divmod(second, 60)
        den = table.denominator * 60
        if 0 <= second <= _DAY_S:  # the scaled numerators go one minute past 24:00
            return [
                units * (scaled[minute] + rates[minute] * rest) // den
                for scaled, rates in zip(table.scaled, table.rates, strict=True)
            ]
        if minute >= MINUTES_PER_DAY:
            return [units * num[MINUTES_PER_DAY] * 60 // den for num in table.numerators]
        return [
            units * (num[minute] * 60 + (num[minute + 1] - num[minute]) * rest) // den
            for num in table.numerators
        ]

    def energy(self, day: int, start: int, end: int) -> list[int]:
        """Energy per tariff (1e-5 kWh) used on ``day`` from second ``start`` to ``end``."""
        units = self.daily_units(day)
        if not (0 <= start <= _DAY_S and 0 <= end <= _DAY_S):
            a = self.cumulative(day, start, units)
            b = self.cumulative(day, end, units)
            return [y - x for x, y in zip(a, b, strict=True)]
        # cumulative(end) - cumulative(start), each rounded down as cumulative() does
        table = self._table
        den = table.denominator * 60
        m0, r0 = divmod(start, 60)
        m1, r1 = divmod(end, 60)
        return [
            units * (scaled[m1] + rates[m1] * r1) // den
            - units * (scaled[m0] + rates[m0] * r0) // den
            for scaled, rates in zip(table.scaled, table.rates, strict=True)
        ]

    def instant(self, day: int, second: int, flowing: bool) -> Instant:
        """Voltage, current, power, power factor and frequency at that time of day."""
        minute = second // 60
        h = _hash(self._seed, day, minute + 1)
        voltage = 2200 + (h & 0xFF) % 81 - 40
        frequency = 5000 + (h >> 8 & 0xFF) % 11 - 5
        if not flowing:
            return Instant(voltage, 0, 0, 1000, frequency)
        table = self._table
        jitter = 800 + (h >> 16 & 0xFFFF) % 401  # 0.800..1.200
        power = (
            self.daily_units(day)
            * table.weights[minute // 60]
            * 60
            * jitter
            // (table.denominator * 10 * 1000)
        )  # 1e-5 kWh per hour → 1e-4 kW
        pf = 900 + (h >> 32 & 0xFF) % 91
        current = power * 1_000_000 // (voltage * pf)
        return Instant(voltage, current, power, pf, frequency)
