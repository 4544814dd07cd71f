"""Work orders (工单) for the console: paged lists by kind, state and overdue, history,
the fault handlers to assign to, and the service the actions go through.

Assign, record and close go through :class:`prepaid.workorders.WorkOrders` of the
fee-control workflows (:func:`console.queries.approvals.fee_control`), so a result on
a disconnection-failure work order also moves its disconnection episode on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from prepaid.workorders import (
    WorkOrder,
    WorkOrderKind,
    WorkOrderState,
    work_order_table,
)
from prepaid.workorders import _order as _work_order  # the repository's row mapping

from ._paging import PAGE_SIZE, Page, page_of

__all__ = ["WorkOrderFilter", "work_order_page"]

_FINISHED = (WorkOrderState.CLOSED.value, WorkOrderState.CANCELLED.value)


@dataclass(frozen=True, slots=True)
class WorkOrderFilter:
    """What the work-order list shows: ``None`` means any."""

    kind: WorkOrderKind | None = None
    state: WorkOrderState | None = None
    overdue: bool = False
    unfinished: bool = False
    assignee: str | None = None
    supply_unit: str | None = None


def work_order_page(
    engine: Engine,
    flt: WorkOrderFilter,
    *,
    now: datetime,
    before: int | None = None,
    size: int = PAGE_SIZE,
) -> Page[WorkOrder]:
    """One page of work orders matching ``flt``, newest first."""
    t = work_order_table
    query = sa.select(t)
    if flt.kind is not None:
        query = query.where(t.c.kind == flt.kind.value)
    if flt.state is not None:
        query = query.where(t.c.state == flt.state.value)
    if flt.unfinished or flt.overdue:
        query = query.where(t.c.state.not_in(_FINISHED))
    if flt.overdue:
        query = query.where(t.c.due_at < now)
    if flt.assignee:
        query = query.where(t.c.assignee == flt.assignee)
    if flt.supply_unit:
        query = query.where(sa.or_(t.c.supply_unit.is_(None), t.c.supply_unit == flt.supply_unit))
    if before is not None:
        query = query.where(t.c.id < before)
    query = query.order_by(t.c.id.desc()).limit(size + 1)
    with engine.connect() as conn:
        rows = [_work_order(r) for r in conn.execute(query)]
    return page_of(rows, [r.id for r in rows], before, size)
