"""The scalar rating engine: the charge of a billing period's energy so far (算费).

``charge(tariff_or_book, period, energy)`` returns a :class:`Charge` with a line per
price-version segment × tier (× TOU period) and the total settled to fen. The rules
(units, splits, rounding) are in the package docstring; this module implements them
with Python integers only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from ._book import TariffBook
from ._errors import RatingError, TariffError
from ._limits import Limits, segment_limits
from ._model import TOU_PERIODS, Cycle, Tariff
from ._period import BillingPeriod, PeriodEnergy
from ._units import (
    ckwh_to_kwh,
    div_half_up,
    e4_to_yuan,
    e6_to_fen,
    e6_to_yuan,
    fen_to_yuan,
)


@dataclass(frozen=True, slots=True)
class ChargeLine:
    """One line of a charge: energy of one tier (and TOU period) under one tariff version.

    ``amount_e6 == price_e4 * energy_ckwh`` exactly (1e-6 yuan); ``free`` lines are the
    free allowance, priced 0.
    """

    tariff_id: str
    version: int
    start: date
    end: date
    tier: int
    tou_period: str | None
    free: bool
    energy_ckwh: int
    price_e4: int
    amount_e6: int

    @property
    def kwh(self) -> Decimal:
        return ckwh_to_kwh(self.energy_ckwh)

    @property
    def price(self) -> Decimal:
        """yuan/kWh, 4 decimals."""
        return e4_to_yuan(self.price_e4)

    @property
    def amount(self) -> Decimal:
        """yuan, exact (6 decimals, not rounded)."""
        return e6_to_yuan(self.amount_e6)

    def to_dict(self) -> dict[str, Any]:
        return {
            "tariff": self.tariff_id,
            "version": self.version,
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            "tier": self.tier,
            "tou": self.tou_period,
            "free": self.free,
            "kwh": str(self.kwh),
            "price": str(self.price),
            "amount": str(self.amount),
        }


@dataclass(frozen=True, slots=True)
class SegmentInfo:
    """How one price-version segment of the period was rated (for audit and display).

    ``start..end`` are the segment's days in the period; ``weight`` is what its share
    of the energy was split by (elapsed days, or the daily readings' sum);
    ``axis_start_ckwh`` is where its energy starts on the tier axis (annual cycles:
    prior energy plus earlier segments).
    """

    tariff_id: str
    version: int
    start: date
    end: date
    weight: int
    energy_ckwh: int
    tou_ckwh: Mapping[str, int] | None = field(hash=False)
    axis_start_ckwh: int
    thresholds_ckwh: tuple[int, ...]
    free_ckwh: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "tariff": self.tariff_id,
            "version": self.version,
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            "weight": self.weight,
            "kwh": str(ckwh_to_kwh(self.energy_ckwh)),
            "tou_kwh": None
            if self.tou_ckwh is None
            else {k: str(ckwh_to_kwh(v)) for k, v in self.tou_ckwh.items()},
            "axis_start_kwh": str(ckwh_to_kwh(self.axis_start_ckwh)),
            "thresholds_kwh": [str(ckwh_to_kwh(t)) for t in self.thresholds_ckwh],
            "free_kwh": str(ckwh_to_kwh(self.free_ckwh)),
        }


@dataclass(frozen=True, slots=True)
class Charge:
    """The charge of a period's energy through ``through``: lines, exact sum, fen total.

    ``total_e6`` is the exact sum of the lines (1e-6 yuan); ``total_fen`` is it settled
    ROUND_HALF_UP to fen — the only rounding of money. ``tier`` is the tier the last kWh
    fell in (for tier reminders, 阶梯提醒).
    """

    period: BillingPeriod
    through: date
    energy_ckwh: int
    lines: tuple[ChargeLine, ...]
    segments: tuple[SegmentInfo, ...]
    total_e6: int
    total_fen: int
    tier: int

    @property
    def total(self) -> Decimal:
        """The settled charge in yuan, 2 decimals."""
        return fen_to_yuan(self.total_fen)

    @property
    def total_exact(self) -> Decimal:
        return e6_to_yuan(self.total_e6)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, every number an exact decimal string (``total_fen`` an int)."""
        return {
            "period": {"from": self.period.start.isoformat(), "to": self.period.end.isoformat()},
            "through": self.through.isoformat(),
            "kwh": str(ckwh_to_kwh(self.energy_ckwh)),
            "tier": self.tier,
            "lines": [line.to_dict() for line in self.lines],
            "segments": [s.to_dict() for s in self.segments],
            "total_exact": str(self.total_exact),
            "total": str(self.total),
            "total_fen": self.total_fen,
        }


# -- splitting ------------------------------------------------------------------------


def split_half_up(total: int, weights: Sequence[int]) -> list[int]:
    """Split ``total`` in proportion to ``weights`` by cumulative half-up rounding.

    Part ``i`` is ``round(total * W_i / W) - round(total * W_(i-1) / W)`` with ``W_i``
    the running sum of the weights: the parts add up to ``total`` exactly, each is the
    floor or ceiling of its exact share, and none exceeds its weight when
    ``total <= sum(weights)``.
    """
    whole = sum(weights)
    if whole == 0:
        if total:
            raise RatingError("cannot split energy by zero weights", key="energy")
        return [0] * len(weights)
    parts: list[int] = []
    running = previous = 0
    for weight in weights:
        running += weight
        bound = div_half_up(total * running, whole)
        parts.append(bound - previous)
        previous = bound
    return parts


@dataclass(frozen=True, slots=True)
class Band:
    """A stretch of one tier on the cycle axis (``free``: inside the free allowance)."""

    tier: int
    free: bool
    energy_ckwh: int


def bands(axis_start: int, energy: int, limits: Limits) -> list[Band]:
    """The energy ``[axis_start, axis_start + energy)`` cut at the free allowance and tiers."""
    out: list[Band] = []
    lo_axis, hi_axis = axis_start, axis_start + energy
    bounds = (0, *limits.thresholds_ckwh, None)
    for tier in range(1, len(bounds)):
        t_lo, t_hi = bounds[tier - 1], bounds[tier]
        lo = max(lo_axis, t_lo if t_lo is not None else 0)
        hi = hi_axis if t_hi is None else min(hi_axis, t_hi)
        if hi <= lo:
            continue
        if tier == 1 and limits.free_ckwh > lo:
            free_hi = min(hi, limits.free_ckwh)
            out.append(Band(1, True, free_hi - lo))
            lo = free_hi
            if hi <= lo:
                continue
        out.append(Band(tier, False, hi - lo))
    return out


def tier_at(position: int, thresholds: Sequence[int]) -> int:
    """The tier (1-based) of the last kWh when cycle energy is ``position``."""
    return 1 + sum(1 for t in thresholds if position > t)


# -- versions -------------------------------------------------------------------------


def resolve_versions(
    tariff: Tariff | TariffBook, period: BillingPeriod, tariff_id: str | None
) -> list[tuple[Tariff, date, date]]:
    """The tariff versions in force over ``period``, as ``(version, first, last day)``."""
    if isinstance(tariff, Tariff):
        if tariff_id is not None and tariff_id != tariff.id:
            raise RatingError(f"asked for {tariff_id!r} but given {tariff.label}", key="tariff")
        if not (tariff.in_force(period.start) and tariff.in_force(period.end)):
            raise RatingError(
                f"{tariff.label} is in force {tariff.effective_from}.."
                f"{tariff.effective_to or ''}, not over the whole period {period}: "
                "use a TariffBook with the versions",
                key="period",
            )
        versions = [(tariff, period.start, period.end)]
    else:
        if tariff_id is None:
            ids = tariff.ids()
            if len(ids) != 1:
                raise RatingError(
                    f"the book has {len(ids)} tariffs ({', '.join(ids)}): name one", key="tariff"
                )
            tariff_id = ids[0]
        try:
            versions = tariff.segments(tariff_id, period.start, period.end)
        except RatingError:
            raise
        except TariffError as exc:
            raise RatingError(exc.detail, key=exc.key, source=exc.source) from None
    first = versions[0][0]
    for other, _, _ in versions[1:]:
        if (other.cycle, other.cycle_start_month) != (first.cycle, first.cycle_start_month):
            raise RatingError(
                f"{first.label} and {other.label} have different tier cycles in one period: "
                "settle the period in two parts",
                key="cycle",
            )
    if first.cycle is Cycle.ANNUAL and first.cycle_start(period.start) != first.cycle_start(
        period.end
    ):
        raise RatingError(
            f"period {period} crosses the start of the annual tier cycle "
            f"(month {first.cycle_start_month}): split it there",
            key="period",
        )
    return versions


def _tou_names(versions: Sequence[tuple[Tariff, date, date]]) -> tuple[str, ...]:
    names: tuple[str, ...] = ()
    for tariff, _, _ in versions:
        if not tariff.tou:
            continue
        if names and names != tariff.tou_names:
            raise RatingError(
                f"TOU periods change inside the period ({', '.join(names)} → "
                f"{', '.join(tariff.tou_names)}): settle the period in two parts",
                key="tou",
            )
        names = tariff.tou_names
    return names


# -- the charge -----------------------------------------------------------------------


def charge(
    tariff: Tariff | TariffBook,
    period: BillingPeriod,
    energy: PeriodEnergy,
    *,
    tariff_id: str | None = None,
) -> Charge:
    """Rate ``energy`` (period-to-date) under a tariff or the versions in a book."""
    versions = resolve_versions(tariff, period, tariff_id)
    through = energy.through or period.end
    if through not in period:
        raise RatingError(f"expected a day in {period}, got {through}", key="through")
    tou_names = _tou_names(versions)
    if tou_names:
        if energy.tou_ckwh is None:
            raise RatingError(
                f"{versions[0][0].id} is a time-of-use tariff (分时电价): give the energy per "
                f"TOU period ({', '.join(tou_names)})",
                key="tou",
            )
        extra = set(energy.tou_ckwh) - set(tou_names)
        if extra:
            raise RatingError(
                f"the tariff has TOU periods {', '.join(tou_names)}, not "
                f"{', '.join(sorted(extra, key=TOU_PERIODS.index))}",
                key="tou",
            )

    elapsed_days = (through - period.start).days + 1
    if energy.daily_ckwh is not None and len(energy.daily_ckwh) != elapsed_days:
        raise RatingError(
            f"expected {elapsed_days} daily readings ({period.start}..{through}), "
            f"got {len(energy.daily_ckwh)}",
            key="daily",
        )
    weights: list[int] = []
    for _, start, end in versions:
        last = min(end, through)
        if last < start:
            weights.append(0)
        elif energy.daily_ckwh is None:
            weights.append((last - start).days + 1)
        else:
            first_i = (start - period.start).days
            weights.append(sum(energy.daily_ckwh[first_i : (last - period.start).days + 1]))

    seg_tou: list[dict[str, int] | None]
    if tou_names and energy.tou_ckwh is not None:
        per_name = {
            name: split_half_up(energy.tou_ckwh.get(name, 0), weights) for name in tou_names
        }
        seg_tou = [{name: per_name[name][i] for name in tou_names} for i in range(len(versions))]
        seg_energy = [sum(d.values()) for d in seg_tou if d is not None]
    else:
        seg_tou = [None] * len(versions)
        seg_energy = split_half_up(energy.energy_ckwh, weights)

    annual = versions[0][0].cycle is Cycle.ANNUAL
    axis = energy.prior_ckwh if annual else 0
    lines: list[ChargeLine] = []
    infos: list[SegmentInfo] = []
    tier = 1
    for (version, start, end), weight, seg_e, tou in zip(
        versions, weights, seg_energy, seg_tou, strict=True
    ):
        limits = segment_limits(
            version,
            start,
            end,
            household_size=energy.household_size,
            free=energy.free_allowance,
        )
        infos.append(
            SegmentInfo(
                version.id,
                version.version,
                start,
                end,
                weight,
                seg_e,
                None if tou is None else MappingProxyType(tou),
                axis,
                limits.thresholds_ckwh,
                limits.free_ckwh,
            )
        )
        if start <= through:
            tier = tier_at(axis + seg_e, limits.thresholds_ckwh)
        lines.extend(_segment_lines(version, start, end, axis, seg_e, tou, limits))
        if annual:
            axis += seg_e

    total_e6 = sum(line.amount_e6 for line in lines)
    return Charge(
        period=period,
        through=through,
        energy_ckwh=energy.energy_ckwh,
        lines=tuple(lines),
        segments=tuple(infos),
        total_e6=total_e6,
        total_fen=e6_to_fen(total_e6),
        tier=tier,
    )


def _segment_lines(
    version: Tariff,
    start: date,
    end: date,
    axis: int,
    energy: int,
    tou: Mapping[str, int] | None,
    limits: Limits,
) -> list[ChargeLine]:
    out: list[ChargeLine] = []

    def line(band: Band, period: str | None, ckwh: int) -> None:
        price = 0 if band.free else version.price_e4(band.tier, period)
        out.append(
            ChargeLine(
                version.id,
                version.version,
                start,
                end,
                band.tier,
                period,
                band.free,
                ckwh,
                price,
                price * ckwh,
            )
        )

    cut = bands(axis, energy, limits)
    if not version.tou or tou is None:
        for band in cut:
            line(band, None, band.energy_ckwh)
        return out
    names = version.tou_names
    remaining = [tou.get(name, 0) for name in names]
    for band in cut:
        # this band's energy over the TOU periods, in proportion to what is left of each
        cells = split_half_up(band.energy_ckwh, remaining)
        for i, (name, cell) in enumerate(zip(names, cells, strict=True)):
            remaining[i] -= cell
            if cell:
                line(band, name, cell)
    return out
