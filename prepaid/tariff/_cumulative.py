"""Cumulative rating (累计算费): each run charges period-to-date energy minus what was charged.

Because every run settles the whole period-to-date charge and deducts the difference,
the deductions of a period add up exactly to its bill — no rounding drift, ever. A
deduction can be negative (a refund) when days-based splitting moves energy to a
cheaper price version later in the period.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta

from ._book import TariffBook
from ._engine import Charge, charge
from ._errors import RatingError
from ._model import Tariff
from ._period import BillingPeriod, PeriodEnergy


def deduction(previous_charged_fen: int, charge_now: Charge) -> int:
    """What to deduct now: the period-to-date charge minus what was already charged."""
    return charge_now.total_fen - previous_charged_fen


def daily_deductions(
    tariff: Tariff | TariffBook,
    period: BillingPeriod,
    daily_ckwh: Sequence[int],
    *,
    tariff_id: str | None = None,
    prior_ckwh: int = 0,
    household_size: int | None = None,
    free_allowance: bool = False,
    daily_tou_ckwh: Sequence[Mapping[str, int]] | None = None,
    by_readings: bool = False,
) -> list[int]:
    """Fen deducted after each day of ``period`` with the given daily energies.

    Day ``i`` rates the energy of days ``0..i`` through that day. ``daily_tou_ckwh``
    gives each day's energy per TOU period (each day summing to ``daily_ckwh[i]``);
    ``by_readings`` splits energy across a mid-period price change by the daily
    readings instead of by days. The sum of the result is the charge of the whole
    energy through the last day — the period bill when every day is given.
    """
    if len(daily_ckwh) > period.days:
        raise RatingError(
            f"{len(daily_ckwh)} daily values for a {period.days}-day period", key="daily"
        )
    if daily_tou_ckwh is not None and len(daily_tou_ckwh) != len(daily_ckwh):
        raise RatingError("expected one TOU split per day", key="daily_tou")
    out: list[int] = []
    charged = 0
    total = 0
    tou_total: dict[str, int] = {}
    for i, day_energy in enumerate(daily_ckwh):
        total += day_energy
        tou: dict[str, int] | None = None
        if daily_tou_ckwh is not None:
            for name, value in daily_tou_ckwh[i].items():
                tou_total[name] = tou_total.get(name, 0) + value
            tou = dict(tou_total)
        energy = PeriodEnergy(
            total,
            through=period.start + timedelta(days=i),
            tou_ckwh=tou,
            prior_ckwh=prior_ckwh,
            household_size=household_size,
            free_allowance=free_allowance,
            daily_ckwh=tuple(daily_ckwh[: i + 1]) if by_readings else None,
        )
        now = charge(tariff, period, energy, tariff_id=tariff_id)
        out.append(deduction(charged, now))
        charged = now.total_fen
    return out
