"""What is rated: a billing period (电费结算周期) and the energy used in it so far."""

from __future__ import annotations

import calendar
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from types import MappingProxyType

from ._errors import RatingError
from ._model import TOU_PERIODS
from ._units import MAX_ENERGY_CKWH, ckwh_to_kwh


@dataclass(frozen=True, slots=True)
class BillingPeriod:
    """The days settled together, ``start`` through ``end`` inclusive (usually a month).

    Monthly thresholds accrue day by day (``threshold / days in that month`` per day),
    so a calendar month gets the full thresholds and a partial one a prorated share.
    """

    start: date
    end: date

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise RatingError(
                f"expected end on or after start, got {self.start}..{self.end}", key="period"
            )
        if (self.end - self.start).days >= 366:
            raise RatingError(
                f"expected at most 366 days, got {self.start}..{self.end}", key="period"
            )

    @classmethod
    def month(cls, year: int, month: int) -> BillingPeriod:
        """The calendar month ``year-month``."""
        return cls(date(year, month, 1), date(year, month, calendar.monthrange(year, month)[1]))

    @classmethod
    def of(cls, day: date) -> BillingPeriod:
        """The calendar month containing ``day``."""
        return cls.month(day.year, day.month)

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def __iter__(self) -> Iterator[date]:
        day = self.start
        while day <= self.end:
            yield day
            day += timedelta(days=1)

    def __contains__(self, day: object) -> bool:
        return isinstance(day, date) and self.start <= day <= self.end

    def __str__(self) -> str:
        return f"{self.start}..{self.end}"


def _frozen_mapping(value: Mapping[str, int] | None) -> Mapping[str, int] | None:
    return None if value is None else MappingProxyType(dict(value))


@dataclass(frozen=True, slots=True)
class PeriodEnergy:
    """Energy of a billing period so far, in hundredths of a kWh.

    - ``energy_ckwh``: period-to-date total (from the period start through ``through``);
    - ``through``: the last day the energy covers (default: the period's end); monthly
      thresholds stay those of the whole period, so rating day by day converges on the
      period bill;
    - ``tou_ckwh``: energy per TOU period (``{"peak": .., "valley": ..}``), summing to
      the total; required by a TOU tariff, ignored by others;
    - ``prior_ckwh``: energy earlier in the same annual tier cycle (ignored for monthly);
    - ``household_size``: persons, for the household uplift (``None``: no uplift);
    - ``free_allowance``: the household gets the tariff's free allowance;
    - ``daily_ckwh``: actual daily energy from the period start through ``through``; when
      given, a price change inside the period splits energy by these readings instead
      of by days.
    """

    energy_ckwh: int
    through: date | None = None
    tou_ckwh: Mapping[str, int] | None = field(default=None, hash=False)
    prior_ckwh: int = 0
    household_size: int | None = None
    free_allowance: bool = False
    daily_ckwh: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "tou_ckwh", _frozen_mapping(self.tou_ckwh))
        if self.daily_ckwh is not None:
            object.__setattr__(self, "daily_ckwh", tuple(self.daily_ckwh))
        _check_energy("energy", self.energy_ckwh)
        _check_energy("prior", self.prior_ckwh)
        if self.household_size is not None and (
            isinstance(self.household_size, bool)
            or not isinstance(self.household_size, int)
            or self.household_size < 1
        ):
            raise RatingError(
                f"expected persons ≥ 1 or none, got {self.household_size!r}", key="household_size"
            )
        if self.tou_ckwh is not None:
            for name, value in self.tou_ckwh.items():
                if name not in TOU_PERIODS:
                    raise RatingError(
                        f"unknown TOU period {name!r}: expected one of {', '.join(TOU_PERIODS)}",
                        key="tou",
                    )
                _check_energy(f"tou.{name}", value)
            total = sum(self.tou_ckwh.values())
            if total != self.energy_ckwh:
                raise RatingError(
                    f"TOU energies sum to {ckwh_to_kwh(total)} kWh but the total is "
                    f"{ckwh_to_kwh(self.energy_ckwh)} kWh: expected them to add up",
                    key="tou",
                )
        if self.daily_ckwh is not None:
            for value in self.daily_ckwh:
                _check_energy("daily", value)
            if sum(self.daily_ckwh) != self.energy_ckwh:
                raise RatingError(
                    "daily energies must add up to the period-to-date total", key="daily"
                )

    @classmethod
    def from_tou(cls, tou_ckwh: Mapping[str, int], **kwargs: object) -> PeriodEnergy:
        """Energy given per TOU period; the total is their sum."""
        total = sum(tou_ckwh.values())
        return cls(total, tou_ckwh=tou_ckwh, **kwargs)  # type: ignore[arg-type]


def _check_energy(key: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise RatingError(f"expected an integer count of 0.01 kWh, got {value!r}", key=key)
    if not 0 <= value <= MAX_ENERGY_CKWH:
        raise RatingError(
            f"expected 0 to {MAX_ENERGY_CKWH // 100} kWh, got {ckwh_to_kwh(value)}", key=key
        )
