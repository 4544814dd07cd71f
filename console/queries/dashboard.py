"""What the dashboard shows: the fee-control overview, a trend of the last days, alarms.

The overview per supply unit is the one :mod:`prepaid.statistics` stores for the day
(counted by the day's rating or the last refresh: :func:`~prepaid.statistics.
stored_overview`), counted now only when the day has none or the operator asks
(``refresh``); this module adds the trend (disconnection requests, trips and failed trips per day,
from the disconnection history) and the alarms (告警): what an operator should look
at now, each saying where to look.
"""

from __future__ import annotations

import enum
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Final

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from prepaid.statistics import (
    FAILED_ACTIONS,
    TRIPPED_ACTIONS,
    StoredOverview,
    UnitOverview,
    overview_total,
    refresh_overview,
    stored_overview,
)
from prepaid.workflows.tables import disconnection_event_table
from protocol.clock import Clock

__all__ = [
    "COLLECTION_ALARM_BELOW",
    "Alarm",
    "DashboardData",
    "Severity",
    "Trend",
    "alarms",
    "dashboard_data",
    "trend",
]

COLLECTION_ALARM_BELOW: Final = Decimal("0.95")
"""A supply unit whose collection rate (采集成功率) is below this raises an alarm."""
REQUEST_ACTIONS: Final = ("request",)

_work_order = sa.table(
    "prepaid_work_order", sa.column("state"), sa.column("due_at"), sa.column("supply_unit")
)
_message = sa.table("prepaid_message", sa.column("status"))
_job = sa.table("headend_job", sa.column("state"), sa.column("updated_at"))
_OPEN_ORDER_STATES: Final = ("open", "assigned", "result-recorded")


class Severity(enum.StrEnum):
    WARNING = "warning"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class Alarm:
    """Something to look at now (告警), with where to look."""

    severity: Severity
    text: str


@dataclass(frozen=True, slots=True)
class Trend:
    """Per day: disconnection requests, successful trips, failed trip attempts."""

    days: tuple[date, ...]
    requests: tuple[int, ...]
    trips: tuple[int, ...]
    failures: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class DashboardData:
    day: date
    units: tuple[UnitOverview, ...]
    total: UnitOverview
    trend: Trend
    alarms: tuple[Alarm, ...]
    overview: StoredOverview
    """The stored overview the units come from (when and by what it was counted)."""
    counted_now: bool = False
    """The per-account counts were counted for this look (none stored, or a refresh)."""


def trend(engine: Engine, last_day: date, days: int = 14) -> Trend:
    """Requests, trips and failed trips per day over the ``days`` days up to ``last_day``."""
    first = last_day - timedelta(days=days - 1)
    e = disconnection_event_table
    wanted = REQUEST_ACTIONS + TRIPPED_ACTIONS + FAILED_ACTIONS
    query = sa.select(e.c.at, e.c.action).where(
        e.c.at >= datetime.combine(first, time()),
        e.c.at < datetime.combine(last_day + timedelta(days=1), time()),
        e.c.action.in_(wanted),
    )
    counts: Counter[tuple[date, str]] = Counter()
    with engine.connect() as conn:
        for at, action in conn.execute(query):
            kind = (
                "request"
                if action in REQUEST_ACTIONS
                else "trip"
                if action in TRIPPED_ACTIONS
                else "failure"
            )
            counts[(at.date(), kind)] += 1
    all_days = tuple(first + timedelta(days=n) for n in range(days))
    return Trend(
        days=all_days,
        requests=tuple(counts[(d, "request")] for d in all_days),
        trips=tuple(counts[(d, "trip")] for d in all_days),
        failures=tuple(counts[(d, "failure")] for d in all_days),
    )


def _percent(rate: Decimal) -> str:
    return f"{rate * 100:.2f}%"


def alarms(engine: Engine, now: datetime, units: list[UnitOverview]) -> list[Alarm]:
    """The alarms of ``units`` on ``now``'s day, plus overdue work orders, failed SMS and
    failed head-end jobs of the day (counted with their indexes)."""
    out: list[Alarm] = []
    for u in units:
        if u.trip_failures:
            out.append(
                Alarm(
                    Severity.ERROR,
                    f"{u.supply_unit} {u.name}: {u.trip_failures} failed trip attempt(s) "
                    "today — see the work orders and the disconnection schedule",
                )
            )
        if u.collection_rate is not None and u.collection_rate < COLLECTION_ALARM_BELOW:
            missing = u.customers - u.meters_read
            out.append(
                Alarm(
                    Severity.WARNING,
                    f"{u.supply_unit} {u.name}: collection rate {_percent(u.collection_rate)} "
                    f"({missing} meter(s) without today's reading) — check the head-end "
                    "(feikong headend status)",
                )
            )
    start = datetime.combine(now.date(), time())
    w, m, j = _work_order, _message, _job
    with engine.connect() as conn:
        overdue = conn.execute(
            sa.select(sa.func.count()).where(w.c.state.in_(_OPEN_ORDER_STATES), w.c.due_at < now)
        ).scalar_one()
        failed_sms = conn.execute(
            sa.select(sa.func.count()).where(m.c.status == "failed")
        ).scalar_one()
        failed_jobs = conn.execute(
            sa.select(sa.func.count()).where(
                j.c.state.in_(("failed", "expired")), j.c.updated_at >= start
            )
        ).scalar_one()
    if overdue:
        out.append(Alarm(Severity.ERROR, f"{overdue} work order(s) overdue — see Work orders"))
    if failed_jobs:
        out.append(
            Alarm(
                Severity.WARNING,
                f"{failed_jobs} head-end command(s) failed or expired today — see Meters",
            )
        )
    if failed_sms:
        out.append(Alarm(Severity.WARNING, f"{failed_sms} SMS failed to send — see Messages"))
    return out


def dashboard_data(
    engine: Engine,
    now: datetime,
    *,
    supply_unit: str | None = None,
    days: int = 14,
    refresh: bool = False,
    clock: Clock | None = None,
) -> DashboardData:
    """Everything the dashboard shows for ``now``'s day (one unit, or every unit).

    The per-account counts come from the day's stored overview; they are counted now
    (and stored, as of ``clock``'s time) when ``refresh`` or when the day has none.
    """
    day = now.date()
    stored = None if refresh else stored_overview(engine, day)
    counted_now = stored is None
    if stored is None:
        stored = refresh_overview(engine, day, clock=clock)
    units = list(stored.units)
    if supply_unit is not None:
        units = [u for u in units if u.supply_unit == supply_unit]
    return DashboardData(
        day=day,
        units=tuple(units),
        total=overview_total(units),
        trend=trend(engine, day, days),
        alarms=tuple(alarms(engine, now, units)),
        overview=stored,
        counted_now=counted_now,
    )
