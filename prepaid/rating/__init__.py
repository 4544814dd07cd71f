"""Daily rating of every account (日算费), cumulative and exactly once per (account, day).

:func:`rate_day` rates every active account for the daily frozen reading of a day
(``feikong rate``); :func:`rate_accounts` rates a few accounts at once (a payment
arrived: the new real-time balance within a second). The tariff engine
(:mod:`prepaid.tariff`) does the math; this package keeps the state and the charges:

- **cumulative**: each rating charges ``charge(period-to-date energy) − charged so
  far``, so the daily deductions of a billing period add up exactly to its bill;
- **once**: a charge is keyed by (day, account) and the state remembers the last
  rated reading; a run killed midway and run again leaves every balance right;
- **outcomes** (:class:`prepaid.models.Outcome`): normal, below the reminder amount,
  negative balance, missing reading, anomaly (:mod:`prepaid.anomalies`).
"""

from ._compute import (
    AnomalyRow,
    ChunkInput,
    ChunkPlan,
    ClosingCharge,
    RatingOptions,
    TouArrays,
    TouState,
    period_of_day,
    plan_chunk,
    rate_one,
)
from ._errors import RatingRunError
from ._registers import DAILY_FORWARD_DI, TOU_REGISTER_ORDER, parse_rate_registers
from ._run import DEFAULT_CHUNK, AccountResult, RatingReport, rate_accounts, rate_day

__all__ = [
    "DAILY_FORWARD_DI",
    "DEFAULT_CHUNK",
    "TOU_REGISTER_ORDER",
    "AccountResult",
    "AnomalyRow",
    "ChunkInput",
    "ChunkPlan",
    "ClosingCharge",
    "RatingOptions",
    "RatingReport",
    "RatingRunError",
    "TouArrays",
    "TouState",
    "parse_rate_registers",
    "period_of_day",
    "plan_chunk",
    "rate_accounts",
    "rate_day",
    "rate_one",
]
