"""Rating anomalies (算费异常): what rating found, counted the way operators look at it.

Rating records an anomaly per account, day and kind (:class:`prepaid.models.Anomaly`):

- ``missing-reading`` (缺抄): no daily reading for the day; the account is not rated
  (its next reading covers the gap);
- ``negative-consumption`` (示值倒走): the register went backwards; not rated until
  the meter is checked (a replaced or reset meter);
- ``jump`` (电量突增): the energy since the last reading is over ``jump_factor`` × the
  account's recent daily average; charged, and reported;
- ``no-tariff`` / ``no-tou-registers``: the account cannot be rated as it is.

An anomaly is **open** while the account has no charge for that day: a reading
re-collected later (补抄) and rated closes it (a jump, charged, stays reported).
Statistics count open anomalies by supply unit (供电单位), day and reading segment
(抄表段) — S4.1(4) — and
:func:`missing_streaks` lists the accounts without a reading for N days running
(S4.1(5): they raise an anomaly work order).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Engine

from .models import AnomalyKind, day_date, day_number

__all__ = [
    "AnomalyCount",
    "AnomalyRecord",
    "MissingStreak",
    "anomalies_of",
    "anomaly_counts",
    "missing_streaks",
]

# a jump is charged and stays reported; the others are open until the day is rated
_OPEN = (
    " AND (an.kind = 'jump' OR NOT EXISTS (SELECT 1 FROM prepaid_charge c"
    " WHERE c.day = an.day AND c.account_id = an.account_id))"
)


@dataclass(frozen=True, slots=True)
class AnomalyCount:
    """Accounts with an open anomaly of ``kind`` on ``day`` in a unit and segment."""

    supply_unit: str
    day: date
    reading_segment: str
    kind: AnomalyKind
    accounts: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "supply_unit": self.supply_unit,
            "date": self.day.isoformat(),
            "reading_segment": self.reading_segment,
            "kind": self.kind.value,
            "accounts": self.accounts,
        }


@dataclass(frozen=True, slots=True)
class AnomalyRecord:
    """One recorded anomaly of an account."""

    account_id: int
    day: date
    kind: AnomalyKind
    reading_ckwh: int | None
    previous_ckwh: int | None
    detail: str
    open: bool


@dataclass(frozen=True, slots=True)
class MissingStreak:
    """An account without a rated reading since ``last_reading`` (``days`` days missed)."""

    account_id: int
    customer_no: str
    supply_unit: str
    reading_segment: str
    last_reading: date | None
    days: int


def anomaly_counts(
    engine: Engine,
    first: date,
    last: date | None = None,
    *,
    kinds: tuple[AnomalyKind, ...] | None = None,
    supply_unit: str | None = None,
) -> list[AnomalyCount]:
    """Open anomalies per supply unit, day and reading segment, ``first..last`` (inclusive)."""
    last = last or first
    params: dict[str, Any] = {"first": day_number(first), "last": day_number(last)}
    where = ""
    if kinds:
        names = {f"k{i}": k.value for i, k in enumerate(kinds)}
        params.update(names)
        where += f" AND an.kind IN ({', '.join(':' + n for n in names)})"
    if supply_unit:
        params["unit"] = supply_unit
        where += " AND u.code = :unit"
    rows = _query(
        engine,
        "SELECT u.code, an.day, coalesce(g.code, '-'), an.kind, count(*)"  # noqa: S608
        " FROM prepaid_anomaly an JOIN prepaid_account a ON a.id = an.account_id"
        " JOIN prepaid_supply_unit u ON u.id = a.supply_unit_id"
        " LEFT JOIN prepaid_reading_segment g ON g.id = a.reading_segment_id"
        f" WHERE an.day BETWEEN :first AND :last{where}{_OPEN}"
        " GROUP BY u.code, an.day, coalesce(g.code, '-'), an.kind"
        " ORDER BY u.code, an.day, coalesce(g.code, '-'), an.kind",
        params,
    )
    return [
        AnomalyCount(str(u), day_date(int(d)), str(g), AnomalyKind(k), int(n))
        for u, d, g, k, n in rows
    ]


def anomalies_of(engine: Engine, account_id: int) -> list[AnomalyRecord]:
    """Every anomaly recorded for an account, oldest first."""
    rows = _query(
        engine,
        "SELECT an.account_id, an.day, an.kind, an.reading_ckwh, an.previous_ckwh, an.detail,"
        " an.kind = 'jump' OR NOT EXISTS (SELECT 1 FROM prepaid_charge c"
        "  WHERE c.day = an.day AND c.account_id = an.account_id)"
        " FROM prepaid_anomaly an WHERE an.account_id = :account ORDER BY an.day, an.kind",
        {"account": account_id},
    )
    return [
        AnomalyRecord(int(a), day_date(int(d)), AnomalyKind(k), r, p, str(t), bool(o))
        for a, d, k, r, p, t, o in rows
    ]


def missing_streaks(engine: Engine, day: date, days: int) -> list[MissingStreak]:
    """Active accounts whose last rated reading is ``days`` or more days before ``day``.

    These missed ``days`` daily readings running (through ``day``); S4.1(5) raises an
    anomaly work order for each.
    """
    if days < 1:
        raise ValueError(f"days must be ≥ 1, got {days}")
    d = day_number(day)
    rows = _query(
        engine,
        "SELECT a.id, a.customer_no, u.code, coalesce(g.code, '-'), s.reading_day"
        " FROM prepaid_rating_state s JOIN prepaid_account a ON a.id = s.account_id"
        " JOIN prepaid_supply_unit u ON u.id = a.supply_unit_id"
        " LEFT JOIN prepaid_reading_segment g ON g.id = a.reading_segment_id"
        " WHERE a.active AND (s.reading_day IS NULL OR s.reading_day <= :limit)"
        " ORDER BY a.id",
        {"limit": d - days},
    )
    out = []
    for ident, customer, unit, segment, reading_day in rows:
        last = day_date(int(reading_day)) if reading_day is not None else None
        missed = d - int(reading_day) if reading_day is not None else days
        out.append(MissingStreak(int(ident), str(customer), str(unit), str(segment), last, missed))
    return out


def _query(engine: Engine, sql: str, params: dict[str, Any]) -> list[Any]:
    with engine.connect() as connection:
        return list(connection.execute(text(sql), params).all())
