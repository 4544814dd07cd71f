"""Tier thresholds and free allowance of one price-version segment of a billing period.

Monthly cycles accrue each threshold day by day (``threshold / days in that month``,
with the day's season and the household uplift), summed exactly as a rational and
rounded half-up to 0.01 kWh once per segment. A single version over a whole calendar
month therefore gets exactly its thresholds. Annual cycles are never prorated.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, timedelta
from fractions import Fraction

from ._model import Cycle, Tariff
from ._units import fraction_half_up


@dataclass(frozen=True, slots=True)
class Limits:
    """Thresholds (cycle energy where tiers 2, 3, … start) and the free allowance, ckwh."""

    thresholds_ckwh: tuple[int, ...]
    free_ckwh: int


def segment_limits(
    tariff: Tariff, start: date, end: date, *, household_size: int | None, free: bool
) -> Limits:
    """The limits of ``tariff`` for the days ``start..end`` of a billing period."""
    if tariff.cycle is Cycle.ANNUAL:
        return Limits(
            tariff.thresholds_on(start, household_size),
            tariff.free_allowance_ckwh if free else 0,
        )
    add = tariff.uplift_for(household_size)
    sums = [Fraction(0)] * len(add)
    free_sum = Fraction(0)
    day = start
    while day <= end:
        days_in_month = calendar.monthrange(day.year, day.month)[1]
        run_end = min(end, day.replace(day=days_in_month))
        days = (run_end - day).days + 1
        base = tariff.base_thresholds(day.month)
        for i, (b, a) in enumerate(zip(base, add, strict=True)):
            sums[i] += Fraction(days * (b + a), days_in_month)
        free_sum += Fraction(days * tariff.free_allowance_ckwh, days_in_month)
        day = run_end + timedelta(days=1)
    return Limits(
        tuple(fraction_half_up(s) for s in sums),
        fraction_half_up(free_sum) if free else 0,
    )
