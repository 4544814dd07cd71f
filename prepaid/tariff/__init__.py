"""Tariffs and rating: tiered (阶梯电价), time-of-use (分时电价, 峰谷) and flat tariffs.

Tariffs are versioned data (TOML files, database rows); :func:`charge` rates a billing
period's energy so far, :func:`charge_many` rates millions of accounts at once, and
:func:`daily_deductions` shows cumulative rating (累计算费) at work.

Units (never float)
-------------------
- energy: ``int`` hundredths of a kWh (``*_ckwh``), the meter register resolution;
- prices: ``int`` 1e-4 yuan/kWh (``*_e4``), e.g. 0.5200 yuan/kWh → 5200;
- amounts: ``int`` 1e-6 yuan (``*_e6``): ``price_e4 × energy_ckwh``, exact;
- money: ``int`` fen (``*_fen``), produced only by settlement.

Rating rules, including every rounding
--------------------------------------
1. **Tiers.** Energy sits on the tier cycle's axis: a monthly cycle starts at 0 each
   period; an annual cycle (from ``cycle_start_month``) starts at ``prior_ckwh``,
   the energy earlier in the cycle. Tier ``i`` covers ``[T(i-1), T(i))``; each kWh
   is priced by the tier it falls in.
2. **Seasons and household uplift** change the thresholds of a day: the season of
   the day's month, plus ``add_kwh`` of the uplift rule with the largest
   ``min_persons`` not above the household size.
3. **Free allowance** (免费电量): the first ``free_allowance_kwh`` of the cycle axis
   (inside tier 1) is priced 0 for households that qualify.
4. **Monthly thresholds accrue by days** (rounding rule R1): a segment of days gets
   ``Σ_day T(day) / days_in_month(day)``, summed exactly as a rational and then
   rounded ROUND_HALF_UP to 0.01 kWh, once per segment and threshold (the free
   allowance likewise). A whole calendar month under one version gets exactly ``T``.
   Annual thresholds are never prorated.
5. **A price change inside a period** splits it into segments, one per tariff version
   in force (:class:`TariffBook`). The period-to-date energy — and each TOU period's
   energy separately — is split over the segments in proportion to their elapsed days
   (or to the daily readings, when given) by cumulative ROUND_HALF_UP rounding to 0.01
   kWh (R2): part ``i`` = ``round(E·W(≤i)/W) − round(E·W(<i)/W)``, so the parts add up
   exactly. Monthly segments are rated against their own accrued thresholds (rule 4,
   computed over the whole period, not just the elapsed days, so daily rating
   converges on the bill); annual segments follow each other on the cycle axis.
6. **TOU** (峰谷 / 尖峰平谷): a kWh in TOU period ``p`` costs its tier's base price plus
   ``delta(p)`` (free kWh stay at 0). Each tier band's energy — taken in order along
   the axis, the free band first — is split over the TOU periods in proportion to
   what is left of each period's energy, by the cumulative ROUND_HALF_UP rule R2 in
   register order (sharp, peak, flat, valley). The lines thus add up exactly to each
   TOU period's energy and to each tier's energy, and the exact total equals the
   base (non-TOU) charge + Σ delta(p) × (TOU energy of p − its free share).
7. **Money** (R3): line amounts are exact (1e-6 yuan) and never rounded; the only
   rounding of money is the settlement of the period-to-date total to fen,
   ROUND_HALF_UP (ties away from zero) on exact integers.
8. **Cumulative rating**: each run deducts ``charge(period-to-date) − already charged``
   (:func:`deduction`), so a period's deductions add up to its bill exactly; one may be
   negative when rule 5 moves energy to a cheaper version.
"""

from ._book import TariffBook
from ._codec import load_book, loads_book, tariff_from_dict, tariff_to_dict
from ._cumulative import daily_deductions, deduction
from ._engine import Charge, ChargeLine, SegmentInfo, charge, split_half_up
from ._errors import RatingError, TariffError
from ._limits import Limits, segment_limits
from ._model import (
    TOU_PERIODS,
    Cycle,
    HouseholdUplift,
    Season,
    Tariff,
    TariffKind,
    TouPeriod,
)
from ._period import BillingPeriod, PeriodEnergy
from ._units import (
    ckwh_to_kwh,
    div_half_up,
    e4_to_yuan,
    e6_to_fen,
    e6_to_yuan,
    fen_to_yuan,
    kwh_to_ckwh,
    yuan_to_e4,
)
from ._vector import charge_many
from .examples import example_path, example_paths

__all__ = [
    "TOU_PERIODS",
    "BillingPeriod",
    "Charge",
    "ChargeLine",
    "Cycle",
    "HouseholdUplift",
    "Limits",
    "PeriodEnergy",
    "RatingError",
    "Season",
    "SegmentInfo",
    "Tariff",
    "TariffBook",
    "TariffError",
    "TariffKind",
    "TouPeriod",
    "charge",
    "charge_many",
    "ckwh_to_kwh",
    "daily_deductions",
    "deduction",
    "div_half_up",
    "e4_to_yuan",
    "e6_to_fen",
    "e6_to_yuan",
    "example_path",
    "example_paths",
    "fen_to_yuan",
    "kwh_to_ckwh",
    "load_book",
    "loads_book",
    "segment_limits",
    "split_half_up",
    "tariff_from_dict",
    "tariff_to_dict",
    "yuan_to_e4",
]
