"""Fee-control overview per supply unit (费控综合查询): what an operator looks at first.

:func:`fee_control_overview` counts, for each supply unit (供电单位) and one day:

- ``customers``: active accounts (each has one meter);
- ``in_warning`` (余额预警): real-time balance at or above zero but below the reminder
  amount in force for the account (提醒金额, the settings hierarchy: customer over
  area over line over default);
- ``in_arrears`` (欠费): real-time balance below zero;
- ``pending_approvals`` (待审批): disconnection requests waiting for the level-1 or the
  level-2 approval (whatever the day);
- ``trips_today`` (当日跳闸): remote trips that succeeded on that day;
- ``trip_failures`` (当日跳闸失败): remote trip attempts that failed on that day (each
  failed attempt counts, the last one that opens the failure work order too);
- ``collection_rate`` (采集成功率): active accounts whose meter has that day's daily
  freeze (``headend_reading``, DI 05060101, freeze date = the day) / active accounts;
  ``None`` for a unit without accounts.

Balances are the stored real-time balances (``prepaid_rating_state``) as the last
rating or payment left them, i.e. "now", not as they were on ``day``.

Everything is set-based: one pass over the accounts (the reminder amount is resolved
in SQL, and only for balances that could be below it), one over the pending requests
and one over the day's disconnection history; a unit is listed even with no account.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import IO, Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from protocol.clock import RealClock

from .rating import DAILY_FORWARD_DI
from .service._population import UNIT, Population
from .settings import SettingsStore
from .workflows.tables import DisconnectionState, disconnection_event_table, disconnection_table

__all__ = [
    "CSV_FIELDS",
    "TOTAL",
    "UnitOverview",
    "fee_control_overview",
    "overview_total",
    "write_overview_csv",
]

TOTAL: Final = "total"
"""The ``supply_unit`` of the total row (:func:`overview_total`)."""

PENDING_STATES: Final = (DisconnectionState.REQUESTED, DisconnectionState.APPROVED_L1)
TRIPPED_ACTIONS: Final = ("tripped",)
"""History actions of a remote trip that succeeded (see prepaid.workflows.disconnection)."""
FAILED_ACTIONS: Final = ("trip-failed", "failed")
"""History actions of a failed remote trip attempt (``failed``: the last attempt, which
opens the disconnection-failure work order)."""

_RATE_PLACES: Final = Decimal("0.0001")
_reading = sa.table(
    "headend_reading",
    sa.column("meter_address"),
    sa.column("di"),
    sa.column("freeze_date"),
)


@dataclass(frozen=True, slots=True)
class UnitOverview:
    """The fee-control overview of one supply unit on one day (see the module doc)."""

    supply_unit: str
    customers: int
    in_warning: int
    in_arrears: int
    pending_approvals: int
    trips_today: int
    trip_failures: int
    collection_rate: Decimal | None
    name: str = ""
    meters_read: int = 0
    """Active accounts whose meter has the day's daily freeze (the rate's numerator)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "supply_unit": self.supply_unit,
            "name": self.name,
            "customers": self.customers,
            "in_warning": self.in_warning,
            "in_arrears": self.in_arrears,
            "pending_approvals": self.pending_approvals,
            "trips_today": self.trips_today,
            "trip_failures": self.trip_failures,
            "meters_read": self.meters_read,
            "collection_rate": (
                str(self.collection_rate) if self.collection_rate is not None else None
            ),
        }


CSV_FIELDS: Final = tuple(UnitOverview.__dataclass_fields__)


def _rate(read: int, meters: int) -> Decimal | None:
    if meters <= 0:
        return None
    return (Decimal(read) / Decimal(meters)).quantize(_RATE_PLACES, rounding=ROUND_HALF_UP)


def fee_control_overview(
    engine: Engine, day: date, *, settings: SettingsStore | None = None
) -> list[UnitOverview]:
    """The overview of every supply unit on ``day``, by unit code (see the module doc).

    ``settings`` gives the reminder amounts (default: the database's settings with the
    shipped defaults).
    """
    store = settings or SettingsStore(engine, clock=RealClock())
    pop = Population(store)
    a, s = pop.account, pop.state
    start = datetime.combine(day, time())
    end = start + timedelta(days=1)

    # a cheap pre-filter: the reminder amount is resolved only for balances under the
    # highest amount set anywhere (CASE evaluates lazily on SQLite and PostgreSQL)
    ceiling = pop.max_fen("reminder_amount")
    warning = sa.case(
        (
            sa.and_(s.c.balance_fen >= 0, s.c.balance_fen < ceiling),
            sa.case((s.c.balance_fen < pop.fen("reminder_amount"), 1), else_=0),
        ),
        else_=0,
    )
    arrears = sa.case((s.c.balance_fen < 0, 1), else_=0)
    # in the select list, EXISTS is a key lookup per account on both databases (never a
    # scan of every day's readings)
    has_reading = sa.exists().where(
        _reading.c.meter_address == a.c.meter_address,
        _reading.c.di == DAILY_FORWARD_DI,
        _reading.c.freeze_date == day,
    )
    read = sa.case((has_reading, 1), else_=0)
    accounts = (
        sa.select(
            a.c.supply_unit_id,
            sa.func.count(),
            sa.func.coalesce(sa.func.sum(warning), 0),
            sa.func.coalesce(sa.func.sum(arrears), 0),
            sa.func.coalesce(sa.func.sum(read), 0),
        )
        .select_from(pop.from_())
        .where(a.c.active)
        .group_by(a.c.supply_unit_id)
    )

    d, e = disconnection_table, disconnection_event_table
    pending = (
        sa.select(a.c.supply_unit_id, sa.func.count())
        .select_from(d.join(a, a.c.id == d.c.account_id))
        .where(d.c.state.in_([st.value for st in PENDING_STATES]))
        .group_by(a.c.supply_unit_id)
    )
    tripped = sa.case((e.c.action.in_(TRIPPED_ACTIONS), 1), else_=0)
    failed = sa.case((e.c.action.in_(FAILED_ACTIONS), 1), else_=0)
    trips = (
        sa.select(a.c.supply_unit_id, sa.func.sum(tripped), sa.func.sum(failed))
        .select_from(e.join(d, d.c.id == e.c.disconnection_id).join(a, a.c.id == d.c.account_id))
        .where(
            e.c.at >= start,
            e.c.at < end,
            e.c.action.in_(TRIPPED_ACTIONS + FAILED_ACTIONS),
        )
        .group_by(a.c.supply_unit_id)
    )
    with engine.connect() as conn:
        units = conn.execute(
            sa.select(UNIT.c.id, UNIT.c.code, UNIT.c.name).order_by(UNIT.c.code)
        ).all()
        counts = {r[0]: tuple(int(v) for v in r[1:]) for r in conn.execute(accounts)}
        waiting = {r[0]: int(r[1]) for r in conn.execute(pending)}
        today = {r[0]: (int(r[1] or 0), int(r[2] or 0)) for r in conn.execute(trips)}
    out = []
    for unit_id, code, name in units:
        customers, in_warning, in_arrears, meters_read = counts.get(unit_id, (0, 0, 0, 0))
        ok, bad = today.get(unit_id, (0, 0))
        out.append(
            UnitOverview(
                supply_unit=str(code),
                customers=customers,
                in_warning=in_warning,
                in_arrears=in_arrears,
                pending_approvals=waiting.get(unit_id, 0),
                trips_today=ok,
                trip_failures=bad,
                collection_rate=_rate(meters_read, customers),
                name=str(name),
                meters_read=meters_read,
            )
        )
    return out


def overview_total(rows: Sequence[UnitOverview]) -> UnitOverview:
    """The sum of ``rows`` (supply unit :data:`TOTAL`); the rate is recomputed from the
    sums (read meters / meters), not averaged."""
    customers = sum(r.customers for r in rows)
    meters_read = sum(r.meters_read for r in rows)
    return UnitOverview(
        supply_unit=TOTAL,
        customers=customers,
        in_warning=sum(r.in_warning for r in rows),
        in_arrears=sum(r.in_arrears for r in rows),
        pending_approvals=sum(r.pending_approvals for r in rows),
        trips_today=sum(r.trips_today for r in rows),
        trip_failures=sum(r.trip_failures for r in rows),
        collection_rate=_rate(meters_read, customers),
        name="合计",
        meters_read=meters_read,
    )


def write_overview_csv(rows: Iterable[UnitOverview], out: Path | IO[str]) -> int:
    """Write ``rows`` as CSV (UTF-8 with a BOM, so spreadsheet programs show the Chinese
    names); returns the number of rows written (header not counted)."""
    if isinstance(out, Path):
        with out.open("w", encoding="utf-8-sig", newline="") as handle:
            return write_overview_csv(rows, handle)
    writer = csv.DictWriter(out, fieldnames=list(CSV_FIELDS))
    writer.writeheader()
    n = 0
    for row in rows:
        writer.writerow(row.to_dict())
        n += 1
    return n
