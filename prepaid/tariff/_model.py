"""One version of a tariff (电价): tiers, seasons, household uplift, free allowance, TOU.

A :class:`Tariff` is immutable data and checks itself on construction: a bad value
raises :class:`TariffError` naming the key and what is expected. Energies are in
hundredths of a kWh (``*_ckwh``), prices in 1e-4 yuan/kWh (``*_e4``).
"""

from __future__ import annotations

import calendar
import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, time
from enum import StrEnum
from typing import Any

from ._errors import TariffError
from ._units import MAX_ENERGY_CKWH, MAX_FREE_CKWH, MAX_PRICE_E4, MAX_TIERS, ckwh_to_kwh

MINUTES_PER_DAY = 24 * 60


class TariffKind(StrEnum):
    """``flat``: one price; ``tiered``: 阶梯电价, a price per tier of cycle energy."""

    FLAT = "flat"
    TIERED = "tiered"


class Cycle(StrEnum):
    """The tier cycle (阶梯周期): thresholds count energy per month or per year."""

    MONTHLY = "monthly"
    ANNUAL = "annual"


#: TOU periods in register order T1..T4: sharp 尖, peak 峰, flat 平, valley 谷.
TOU_PERIODS: tuple[str, ...] = ("sharp", "peak", "flat", "valley")
#: The allowed sets: 2 periods (峰谷) or 4 (尖峰平谷).
TOU_SETS: Mapping[int, tuple[str, ...]] = {2: ("peak", "valley"), 4: TOU_PERIODS}


def format_minute(minute: int) -> str:
    """``480`` → ``'08:00'`` (``1440`` → ``'24:00'``)."""
    return f"{minute // 60:02d}:{minute % 60:02d}"


@dataclass(frozen=True, slots=True)
class TouPeriod:
    """A time-of-use period (分时时段) and its additive price delta.

    ``segments`` are ``(start, end)`` minutes of the day, end exclusive; ``end < start``
    wraps past midnight (``22:00-08:00``). ``delta_e4`` is added to every tier's base
    price for energy in this period (峰谷电价: positive at peak, negative in the valley).
    """

    name: str
    delta_e4: int
    segments: tuple[tuple[int, int], ...]

    def minutes(self) -> list[int]:
        """Every minute of the day this period covers (a wrapped segment in two pieces)."""
        out: list[int] = []
        for start, end in self.segments:
            if start < end:
                out.extend(range(start, end))
            else:
                out.extend(range(start, MINUTES_PER_DAY))
                out.extend(range(0, end))
        return out

    def segment_text(self) -> list[str]:
        return [f"{format_minute(s)}-{format_minute(e)}" for s, e in self.segments]


@dataclass(frozen=True, slots=True)
class Season:
    """Seasonal thresholds (季节性阶梯): in ``months`` the tiers use these thresholds."""

    months: tuple[int, ...]
    thresholds_ckwh: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class HouseholdUplift:
    """Household-size uplift (多人口户增加阶梯基数).

    Households of at least ``min_persons`` get ``add_ckwh[i]`` more on threshold ``i``,
    per cycle. Of several rules the one with the largest ``min_persons`` that applies wins.
    """

    min_persons: int
    add_ckwh: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Tariff:
    """One version of a tariff, in force from ``effective_from`` through ``effective_to``.

    ``effective_to`` is the last day in force (inclusive); ``None`` means "until the
    next version" in a :class:`TariffBook`, or open-ended. ``prices_e4[i]`` is the base
    price of tier ``i + 1``; ``thresholds_ckwh[i]`` is where tier ``i + 2`` starts, in
    cycle energy. ``free_allowance_ckwh`` (免费电量, e.g. for low-income households) is
    the first energy of each cycle, charged at 0 for households that qualify; it lies
    inside tier 1. ``tou`` is empty or 2/4 :class:`TouPeriod` in register order.
    """

    id: str
    name: str
    version: int
    effective_from: date
    prices_e4: tuple[int, ...]
    kind: TariffKind = TariffKind.TIERED
    thresholds_ckwh: tuple[int, ...] = ()
    cycle: Cycle = Cycle.MONTHLY
    cycle_start_month: int = 1
    effective_to: date | None = None
    seasons: tuple[Season, ...] = ()
    uplifts: tuple[HouseholdUplift, ...] = ()
    free_allowance_ckwh: int = 0
    tou: tuple[TouPeriod, ...] = ()
    _tou_by_name: Mapping[str, TouPeriod] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        _validate(self)
        object.__setattr__(self, "_tou_by_name", {p.name: p for p in self.tou})

    # -- identity -------------------------------------------------------------------

    @property
    def label(self) -> str:
        """``"res-monthly v1"``."""
        return f"{self.id} v{self.version}"

    def in_force(self, day: date) -> bool:
        return self.effective_from <= day and (
            self.effective_to is None or day <= self.effective_to
        )

    # -- tiers ----------------------------------------------------------------------

    @property
    def tier_count(self) -> int:
        return len(self.prices_e4)

    def uplift_for(self, household_size: int | None) -> tuple[int, ...]:
        """The threshold additions for a household of ``household_size`` persons."""
        best: HouseholdUplift | None = None
        if household_size is not None:
            for rule in self.uplifts:
                if household_size >= rule.min_persons and (
                    best is None or rule.min_persons > best.min_persons
                ):
                    best = rule
        return best.add_ckwh if best else (0,) * len(self.thresholds_ckwh)

    def base_thresholds(self, month: int) -> tuple[int, ...]:
        """Thresholds per cycle in ``month`` (seasonal if a season covers it)."""
        for season in self.seasons:
            if month in season.months:
                return season.thresholds_ckwh
        return self.thresholds_ckwh

    def thresholds_on(self, day: date, household_size: int | None = None) -> tuple[int, ...]:
        """Full-cycle thresholds that apply on ``day`` (season + household uplift)."""
        add = self.uplift_for(household_size)
        return tuple(t + a for t, a in zip(self.base_thresholds(day.month), add, strict=True))

    # -- prices ---------------------------------------------------------------------

    @property
    def tou_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.tou)

    def delta_e4(self, tou_period: str) -> int:
        try:
            return self._tou_by_name[tou_period].delta_e4
        except KeyError:
            raise TariffError(
                f"unknown TOU period {tou_period!r}: this tariff has "
                f"{', '.join(self.tou_names) or 'no TOU periods'}",
                key="tou",
                source=self.label,
            ) from None

    def price_e4(self, tier: int, tou_period: str | None = None) -> int:
        """The price of ``tier`` (1-based), plus the TOU delta of ``tou_period`` if given."""
        base = self.prices_e4[tier - 1]
        return base if tou_period is None else base + self.delta_e4(tou_period)

    def tou_period_at(self, moment: time) -> str:
        """The TOU period in force at a time of day."""
        minute = moment.hour * 60 + moment.minute
        for period in self.tou:
            for start, end in period.segments:
                inside = start <= minute < end if start < end else minute >= start or minute < end
                if inside:
                    return period.name
        raise TariffError("this tariff has no TOU periods", key="tou", source=self.label)

    # -- cycle ----------------------------------------------------------------------

    def cycle_start(self, day: date) -> date:
        """First day of the tier cycle containing ``day`` (annual: from ``cycle_start_month``)."""
        if self.cycle is Cycle.MONTHLY:
            return day.replace(day=1)
        year = day.year if day.month >= self.cycle_start_month else day.year - 1
        return date(year, self.cycle_start_month, 1)

    def cycle_end(self, day: date) -> date:
        """Last day of the tier cycle containing ``day``."""
        start = self.cycle_start(day)
        if self.cycle is Cycle.MONTHLY:
            return start.replace(day=calendar.monthrange(start.year, start.month)[1])
        nxt = date(start.year + 1, start.month, 1)
        return date.fromordinal(nxt.toordinal() - 1)

    # -- persistence ----------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A JSON/TOML-compatible dict (decimals and dates as strings) for a database row."""
        from ._codec import tariff_to_dict

        return tariff_to_dict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "tariff") -> Tariff:
        """The inverse of :meth:`to_dict`; also reads a ``[[tariff]]`` table of a TOML file."""
        from ._codec import tariff_from_dict

        return tariff_from_dict(data, source=source)


# -- validation -----------------------------------------------------------------------


def _fail(tariff: Tariff, key: str, detail: str) -> TariffError:
    return TariffError(detail, key=key, source=f"{tariff.id!r} v{tariff.version}")


def _kwh_list(values: tuple[int, ...]) -> str:
    return "[" + ", ".join(f"{ckwh_to_kwh(v).normalize():f}" for v in values) + "]"


def _check_thresholds(tariff: Tariff, key: str, values: tuple[int, ...]) -> None:
    want = len(tariff.prices_e4) - 1
    if len(values) != want:
        raise _fail(
            tariff,
            key,
            f"expected {want} thresholds (one fewer than the {len(tariff.prices_e4)} prices), "
            f"got {len(values)}",
        )
    if any(v <= 0 or v > MAX_ENERGY_CKWH for v in values):
        raise _fail(tariff, key, f"expected thresholds > 0 kWh, got {_kwh_list(values)}")
    if any(b <= a for a, b in itertools.pairwise(values)):
        raise _fail(tariff, key, f"expected strictly ascending thresholds, got {_kwh_list(values)}")


def _validate(t: Tariff) -> None:
    if not isinstance(t.id, str) or not t.id.strip() or t.id != t.id.strip():
        raise _fail(t, "id", f"expected a non-empty id without surrounding spaces, got {t.id!r}")
    if not isinstance(t.version, int) or isinstance(t.version, bool) or t.version < 1:
        raise _fail(t, "version", f"expected an integer ≥ 1, got {t.version!r}")
    if t.effective_to is not None and t.effective_to < t.effective_from:
        raise _fail(
            t,
            "effective_to",
            f"expected a day on or after effective_from {t.effective_from}, got {t.effective_to}",
        )
    if t.kind is TariffKind.FLAT:
        if len(t.prices_e4) != 1:
            raise _fail(t, "prices", f"a flat tariff has 1 price, got {len(t.prices_e4)}")
        for key, present in (
            ("thresholds_kwh", t.thresholds_ckwh),
            ("season", t.seasons),
            ("household_uplift", t.uplifts),
        ):
            if present:
                raise _fail(t, key, "a flat tariff has no tiers: remove it or use kind='tiered'")
    else:
        if not 2 <= len(t.prices_e4) <= MAX_TIERS:
            raise _fail(
                t,
                "prices",
                f"a tiered tariff has 2 to {MAX_TIERS} prices (one per tier), "
                f"got {len(t.prices_e4)}",
            )
    if any(p < 0 or p > MAX_PRICE_E4 for p in t.prices_e4):
        raise _fail(t, "prices", "expected prices from 0 to 100 yuan/kWh")
    _check_thresholds(t, "thresholds_kwh", t.thresholds_ckwh)
    if not 1 <= t.cycle_start_month <= 12:
        raise _fail(t, "cycle_start_month", f"expected 1..12, got {t.cycle_start_month}")
    if t.cycle is Cycle.MONTHLY and t.cycle_start_month != 1:
        raise _fail(t, "cycle_start_month", "only annual cycles have a start month; remove it")
    if t.seasons and t.cycle is not Cycle.MONTHLY:
        raise _fail(t, "season", "seasonal thresholds apply to monthly cycles only")
    seen_months: set[int] = set()
    for i, season in enumerate(t.seasons):
        key = f"season[{i}]"
        if not season.months or any(not 1 <= m <= 12 for m in season.months):
            raise _fail(t, f"{key}.months", f"expected months 1..12, got {list(season.months)}")
        if seen_months & set(season.months):
            raise _fail(
                t,
                f"{key}.months",
                f"month(s) {sorted(seen_months & set(season.months))} are in two seasons",
            )
        seen_months |= set(season.months)
        _check_thresholds(t, f"{key}.thresholds_kwh", season.thresholds_ckwh)
    persons: set[int] = set()
    for i, rule in enumerate(t.uplifts):
        key = f"household_uplift[{i}]"
        if rule.min_persons < 1 or rule.min_persons in persons:
            raise _fail(
                t, f"{key}.min_persons", f"expected a distinct count ≥ 1, got {rule.min_persons}"
            )
        persons.add(rule.min_persons)
        if len(rule.add_ckwh) != len(t.thresholds_ckwh) or any(
            a < 0 or a > MAX_ENERGY_CKWH for a in rule.add_ckwh
        ):
            raise _fail(
                t,
                f"{key}.add_kwh",
                f"expected {len(t.thresholds_ckwh)} values ≥ 0 kWh (one per threshold), "
                f"got {_kwh_list(rule.add_ckwh)}",
            )
        for base in (t.thresholds_ckwh, *(s.thresholds_ckwh for s in t.seasons)):
            lifted = tuple(b + a for b, a in zip(base, rule.add_ckwh, strict=True))
            if any(y <= x for x, y in itertools.pairwise(lifted)):
                raise _fail(
                    t,
                    f"{key}.add_kwh",
                    f"thresholds {_kwh_list(base)} + {_kwh_list(rule.add_ckwh)} are "
                    "no longer ascending",
                )
    if not 0 <= t.free_allowance_ckwh <= MAX_FREE_CKWH:
        raise _fail(t, "free_allowance_kwh", "expected 0 to 10000 kWh per cycle")
    if t.free_allowance_ckwh and t.thresholds_ckwh:
        first = min(s[0] for s in (t.thresholds_ckwh, *(s.thresholds_ckwh for s in t.seasons)))
        if t.free_allowance_ckwh > first:
            raise _fail(
                t,
                "free_allowance_kwh",
                f"expected at most the first threshold ({ckwh_to_kwh(first).normalize():f} kWh): "
                "the free allowance lies inside tier 1",
            )
    _validate_tou(t)


def _validate_tou(t: Tariff) -> None:
    if not t.tou:
        return
    names = [p.name for p in t.tou]
    for name in names:
        if name not in TOU_PERIODS:
            raise _fail(
                t, "tou", f"unknown TOU period {name!r}: expected one of {', '.join(TOU_PERIODS)}"
            )
    if len(set(names)) != len(names):
        raise _fail(t, "tou", f"TOU period listed twice: {names}")
    allowed = TOU_SETS.get(len(names))
    if allowed is None or set(names) != set(allowed):
        raise _fail(
            t,
            "tou",
            "expected 2 TOU periods (peak, valley) or 4 (sharp, peak, flat, valley), "
            f"got {', '.join(names)}",
        )
    if tuple(names) != allowed:
        raise _fail(t, "tou", f"expected TOU periods in the order {', '.join(allowed)}")
    owner: list[str | None] = [None] * MINUTES_PER_DAY
    for period in t.tou:
        if abs(period.delta_e4) > MAX_PRICE_E4:
            raise _fail(t, f"tou.{period.name}.delta", "expected at most ±100 yuan/kWh")
        low = min(t.prices_e4) + period.delta_e4
        if low < 0:
            raise _fail(
                t,
                f"tou.{period.name}.delta",
                "the delta makes a tier price negative: base + delta must be ≥ 0",
            )
        if not period.segments:
            raise _fail(t, f"tou.{period.name}.segments", "expected at least one HH:MM-HH:MM")
        for start, end in period.segments:
            if not (0 <= start < MINUTES_PER_DAY and 0 <= end <= MINUTES_PER_DAY) or start == end:
                raise _fail(
                    t,
                    f"tou.{period.name}.segments",
                    f"expected HH:MM-HH:MM with different ends, got "
                    f"{format_minute(start)}-{format_minute(end)}",
                )
        for minute in period.minutes():
            other = owner[minute]
            if other is not None:
                raise _fail(
                    t,
                    f"tou.{period.name}.segments",
                    f"overlaps {other} at {format_minute(minute)}: "
                    "each minute of the day belongs to one period",
                )
            owner[minute] = period.name
    if None in owner:
        first = owner.index(None)
        last = first
        while last < MINUTES_PER_DAY and owner[last] is None:
            last += 1
        raise _fail(
            t,
            "tou",
            f"segments leave {format_minute(first)}-{format_minute(last)} uncovered: "
            "the periods must cover the whole day",
        )
