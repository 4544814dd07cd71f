"""Anomaly work orders (异常工单) for readings missing N consecutive days (SPEC S4.1-5).

A meter whose daily freeze (日冻结, ``headend_reading`` DI 05060101) is missing for
the last N days running, up to and including the day checked, is in a *gap*: it
starts the day after its last reading (or the day its account was opened, if it was
never read). N is the setting ``anomaly_missing_days`` (连续缺数天数, default 3 in
``prepaid/settings/defaults.toml``; per line, area or customer like every setting).

:func:`open_anomaly_orders` opens **one** anomaly work order per account and gap
(``prepaid_anomaly_order``, unique on account and gap start; the work order's
reference is ``anomaly:<account>:<gap start>``), through :class:`prepaid.workorders.
WorkOrders`, and gives it to the least-loaded fault handler of the customer's supply
unit when there is one. Checking again the next day, while the gap goes on, opens
nothing new; a new gap after readings came back is a new episode and a new order.

The handler records what was done (:func:`record_anomaly_result`) and closes the work
order (:func:`close_anomaly_order`). A reading arriving later closes nothing by
itself — someone must have looked — but :func:`list_anomaly_orders` shows it
(``reading_since``: the first reading after the gap began).

Set-based: the accounts rated recently are excluded by their rating state (a rated
reading is a reading), the rest are checked against the head-end's readings in one
statement (the last reading by a primary-key lookup per account).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from headend.collection import FORWARD_BLOCK_DI
from headend.models import Reading
from protocol.clock import Clock

from .models import day_date, day_number
from .service._errors import AnomalyOrderError
from .service._population import ACCOUNT, FETCH_CHUNK, Population, Selection, chunks
from .service.tables import anomaly_order
from .settings import SettingsStore
from .users import Operator
from .workorders import (
    WorkOrder,
    WorkOrderError,
    WorkOrderKind,
    WorkOrderOutcome,
    WorkOrders,
    WorkOrderState,
    work_order_table,
)

__all__ = [
    "SYSTEM_ACTOR",
    "AnomalyOrder",
    "AnomalyOrderError",
    "AnomalyReport",
    "close_anomaly_order",
    "list_anomaly_orders",
    "open_anomaly_orders",
    "record_anomaly_result",
]

log = logging.getLogger(__name__)

SYSTEM_ACTOR: Final = "system:anomaly-orders"
READING: Final[sa.Table] = Reading.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class AnomalyOrder:
    """An anomaly work order for a gap in a meter's readings, with where it stands."""

    id: int
    customer_no: str
    meter_address: str
    gap_start: date
    found_day: date
    missing_days: int
    work_order_no: str | None
    state: str | None
    assignee: str | None
    outcome: str | None
    result: str | None
    reading_since: date | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "customer_no": self.customer_no,
            "meter_address": self.meter_address,
            "gap_start": self.gap_start.isoformat(),
            "found_day": self.found_day.isoformat(),
            "missing_days": self.missing_days,
            "work_order_no": self.work_order_no,
            "state": self.state,
            "assignee": self.assignee,
            "outcome": self.outcome,
            "result": self.result,
            "reading_since": self.reading_since.isoformat() if self.reading_since else None,
        }


@dataclass(slots=True)
class AnomalyReport:
    """What a check for missing readings did."""

    day: date
    gaps: int = 0
    opened: list[str] = field(default_factory=list)
    already_open: int = 0
    unassigned: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "day": self.day.isoformat(),
            "gaps": self.gaps,
            "opened": self.opened,
            "already_open": self.already_open,
            "unassigned": self.unassigned,
        }


def _order_insert(connection: Connection) -> Any:
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    return (
        dialect.insert(anomaly_order)
        .on_conflict_do_nothing(index_elements=["account_id", "gap_start"])
        .returning(anomaly_order.c.id)
    )


def open_anomaly_orders(
    engine: Engine,
    day: date,
    *,
    clock: Clock,
    settings: SettingsStore | None = None,
    workorders: WorkOrders | None = None,
    selection: Selection | None = None,
    assign: bool = True,
) -> AnomalyReport:
    """Open an anomaly work order for each account missing its readings N days up to ``day``.

    ``day`` is the last reading day checked (usually today's freeze, after collection).
    ``assign``: give each new order to the least-loaded fault handler of its unit.
    """
    settings = settings or SettingsStore(engine, clock=clock)
    workorders = workorders or WorkOrders(engine, clock=clock)
    pop = Population(settings)
    a, s = pop.account, pop.state
    d = day_number(day)
    report = AnomalyReport(day)
    n_min = pop.min_count("anomaly_missing_days")
    last = (
        sa.select(sa.func.max(READING.c.freeze_date))
        .where(
            READING.c.meter_address == a.c.meter_address,
            READING.c.di == FORWARD_BLOCK_DI,
            READING.c.freeze_date <= day,
        )
        .scalar_subquery()
    )
    statement = (
        sa.select(
            a.c.id.label("account_id"),
            a.c.customer_no,
            a.c.meter_address,
            a.c.opened_on,
            pop.unit_t.c.code.label("unit"),
            sa.cast(pop.setting("anomaly_missing_days"), sa.Integer()).label("n"),
            last.label("last_day"),
        )
        .select_from(pop.from_())
        .where(
            a.c.active.is_(True),
            # a reading rated within the shortest N days is a reading: not a gap
            sa.or_(s.c.reading_day.is_(None), s.c.reading_day <= d - n_min),
            pop.chosen(selection),
        )
        .order_by(a.c.id)
    )
    try:
        with engine.connect() as reader:
            for rows in chunks(reader, statement, FETCH_CHUNK):
                for r in rows:
                    gap = _gap(r, day)
                    if gap is None:
                        continue
                    report.gaps += 1
                    _open_one(engine, workorders, r, gap, day, report, assign, clock)
    except SQLAlchemyError as exc:
        raise AnomalyOrderError(
            f"the check for missing readings stopped in the database ({exc}); the work "
            "orders opened so far are kept: run it again"
        ) from exc
    log.info("anomaly orders for %s: %s", day, report.to_dict())
    return report


def _gap(row: Any, day: date) -> tuple[date, int] | None:
    """(first missing day, days missing through ``day``) when the gap is long enough."""
    last = row.last_day
    if isinstance(last, str):  # SQLite returns max() of a DATE column as text
        last = date.fromisoformat(last)
    start = day_date(day_number(last) + 1) if last is not None else row.opened_on
    missing = (day - start).days + 1
    return (start, missing) if missing >= int(row.n) else None


def _open_one(
    engine: Engine,
    workorders: WorkOrders,
    r: Any,
    gap: tuple[date, int],
    day: date,
    report: AnomalyReport,
    assign: bool,
    clock: Clock,
) -> None:
    start, missing = gap
    with engine.begin() as conn:
        inserted = conn.execute(
            _order_insert(conn),
            {
                "account_id": r.account_id,
                "meter_address": r.meter_address,
                "gap_start": day_number(start),
                "found_day": day_number(day),
                "missing_days": missing,
                "created_at": clock.now(),
            },
        ).first()
        if inserted is None:
            report.already_open += 1
            return
        handler = workorders.pick_handler(r.unit) if assign else None
        last = "never" if start == r.opened_on else f"{day_date(day_number(start) - 1)}"
        summary = (
            f"reading missing {missing} days running (连续{missing}天缺数) since {start}: "
            f"meter {r.meter_address}, customer {r.customer_no}, last reading {last}; "
            "check the meter and its communication on site and record what was found"
        )
        try:
            order = workorders.create(
                WorkOrderKind.ANOMALY,
                summary=summary,
                by=SYSTEM_ACTOR,
                account_id=int(r.account_id),
                reference=f"anomaly:{int(r.account_id)}:{day_number(start)}",
                assignee=handler,
                connection=conn,
            )
        except WorkOrderError as exc:
            raise AnomalyOrderError(
                f"cannot open the anomaly work order of customer {r.customer_no}: {exc}"
            ) from exc
        conn.execute(
            sa.update(anomaly_order)
            .where(anomaly_order.c.id == inserted.id)
            .values(work_order_id=order.id, work_order_no=order.number)
        )
    report.opened.append(order.number)
    if handler is None:
        report.unassigned += 1


# -- the handler -----------------------------------------------------------------------


def _order_of(engine: Engine, number: str) -> None:
    with engine.connect() as conn:
        found = conn.execute(
            sa.select(anomaly_order.c.id).where(anomaly_order.c.work_order_no == number)
        ).first()
    if found is None:
        raise AnomalyOrderError(
            f"{number!r} is not an anomaly work order of a missing reading "
            "(feikong anomaly-orders list shows them)"
        )


def record_anomaly_result(
    engine: Engine,
    number: str,
    *,
    by: Operator,
    result: str,
    clock: Clock,
    outcome: WorkOrderOutcome | str = WorkOrderOutcome.DONE,
    workorders: WorkOrders | None = None,
) -> WorkOrder:
    """The handler records what was done on site (e.g. "replaced the GPRS module")."""
    _order_of(engine, number)
    workorders = workorders or WorkOrders(engine, clock=clock)
    return workorders.record_result(number, outcome=outcome, result=result, by=by)


def close_anomaly_order(
    engine: Engine,
    number: str,
    *,
    by: Operator,
    clock: Clock,
    comment: str = "",
    workorders: WorkOrders | None = None,
) -> WorkOrder:
    """Close the anomaly work order once its result is recorded."""
    _order_of(engine, number)
    workorders = workorders or WorkOrders(engine, clock=clock)
    return workorders.close(number, by=by, comment=comment)


def list_anomaly_orders(
    engine: Engine,
    *,
    unfinished: bool = False,
    customer_no: str | None = None,
    limit: int | None = 200,
) -> list[AnomalyOrder]:
    """Anomaly work orders for missing readings, newest first, with any reading since."""
    o, w = anomaly_order, work_order_table
    since = (
        sa.select(sa.func.min(READING.c.freeze_date))
        .where(
            READING.c.meter_address == o.c.meter_address,
            READING.c.di == FORWARD_BLOCK_DI,
            READING.c.freeze_date >= _as_date(engine, o.c.gap_start),
        )
        .scalar_subquery()
    )
    statement = (
        sa.select(
            o,
            ACCOUNT.c.customer_no,
            w.c.state,
            w.c.assignee,
            w.c.outcome,
            w.c.result,
            since.label("reading_since"),
        )
        .select_from(
            o.join(ACCOUNT, ACCOUNT.c.id == o.c.account_id).outerjoin(
                w, w.c.id == o.c.work_order_id
            )
        )
        .order_by(o.c.id.desc())
    )
    if unfinished:
        statement = statement.where(
            w.c.state.not_in([WorkOrderState.CLOSED.value, WorkOrderState.CANCELLED.value])
        )
    if customer_no:
        statement = statement.where(ACCOUNT.c.customer_no == customer_no)
    if limit is not None:
        statement = statement.limit(limit)
    with engine.connect() as conn:
        rows = list(conn.execute(statement))
    out = []
    for r in rows:
        since_day = r.reading_since
        if isinstance(since_day, str):
            since_day = date.fromisoformat(since_day)
        out.append(
            AnomalyOrder(
                id=int(r.id),
                customer_no=r.customer_no,
                meter_address=r.meter_address,
                gap_start=day_date(int(r.gap_start)),
                found_day=day_date(int(r.found_day)),
                missing_days=int(r.missing_days),
                work_order_no=r.work_order_no,
                state=r.state,
                assignee=r.assignee,
                outcome=r.outcome,
                result=r.result,
                reading_since=since_day,
            )
        )
    return out


def _as_date(engine: Engine, day: Any) -> Any:
    """The DATE of a day-number column (days since 1970-01-01), in the engine's SQL."""
    if engine.dialect.name == "postgresql":
        return sa.literal_column("DATE '1970-01-01'") + day
    return sa.func.date("1970-01-01", sa.literal("+").concat(sa.cast(day, sa.String)) + " days")
