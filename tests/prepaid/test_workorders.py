"""Work orders: states, assignee checks, history, audit, SLA, one per reference."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from prepaid.audit import AuditLog
from prepaid.users import Operator, PermissionDeniedError, Role, Users
from prepaid.workorders import (
    WorkOrderError,
    WorkOrderKind,
    WorkOrderNotFoundError,
    WorkOrderOutcome,
    WorkOrders,
    WorkOrderState,
    WorkOrderStateError,
)
from protocol.clock import SteppedClock

from .security_helpers import PASSWORD, START, add_places, add_staff, fresh_engine, make_users


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    engine = fresh_engine(tmp_path)
    add_places(engine)
    return engine


@pytest.fixture
def clock() -> SteppedClock:
    return SteppedClock(START)


@pytest.fixture
def users(engine: Engine, clock: SteppedClock) -> Users:
    return make_users(engine, clock)


@pytest.fixture
def staff(users: Users) -> dict[str, Operator]:
    return add_staff(users)


@pytest.fixture
def orders(engine: Engine, clock: SteppedClock) -> WorkOrders:
    return WorkOrders(engine, clock=clock)


def test_lifecycle_open_assign_record_close_with_history_and_audit(
    orders: WorkOrders, staff: dict[str, Operator], clock: SteppedClock, engine: Engine
) -> None:
    operator, handler = staff["operator"], staff["fault-handler"]
    order = orders.create(
        WorkOrderKind.DISCONNECTION_FAILURE,
        summary="3 remote trips failed: disconnect on site",
        customer_no="C1",
        by="system:disconnection",
    )
    assert order.number == f"GD{START:%Y%m%d}{order.id:06d}"
    assert order.state is WorkOrderState.OPEN
    assert (order.customer_no, order.meter_address, order.supply_unit) == (
        "C1",
        "000000000001",
        "3301",
    )
    assert order.due_at == START + timedelta(days=2)

    clock.set(START + timedelta(hours=1))
    order = orders.assign(order.number, handler.login, by=operator)
    assert (order.state, order.assignee) == (WorkOrderState.ASSIGNED, handler.login)

    clock.set(START + timedelta(hours=5))
    order = orders.record_result(
        order.number, outcome="done", result="breaker opened on site, sealed", by=handler
    )
    assert order.state is WorkOrderState.RESULT_RECORDED
    assert order.outcome is WorkOrderOutcome.DONE
    order = orders.close(order.number, by=handler)
    assert order.state is WorkOrderState.CLOSED
    assert order.closed_at == START + timedelta(hours=5)

    history = orders.history(order.number)
    assert [(e.action, e.actor, e.to_state.value) for e in history] == [
        ("create", "system:disconnection", "open"),
        ("assign", "operator", "assigned"),
        ("record", "fault.handler", "result-recorded"),
        ("close", "fault.handler", "closed"),
    ]
    assert history[1].at == START + timedelta(hours=1)
    audited = AuditLog(engine, clock).query(target=f"workorder:{order.number}")
    assert [e.action for e in audited] == [
        "workorder.create",
        "workorder.assign",
        "workorder.record",
        "workorder.close",
    ]
    assert audited[2].details["result"] == "breaker opened on site, sealed"
    assert AuditLog(engine, clock).verify().ok


def test_refusals_are_clear_and_audited(
    orders: WorkOrders, staff: dict[str, Operator], users: Users, engine: Engine
) -> None:
    operator, handler = staff["operator"], staff["fault-handler"]
    other = users.add(
        "tech2",
        display_name="tech two",
        password=PASSWORD,
        roles=[Role.FAULT_HANDLER],
        by=staff["admin"],
    )
    order = orders.create("other", summary="check the meter seal", customer_no="C1", by=operator)

    with pytest.raises(WorkOrderError, match="not a fault handler"):
        orders.assign(order.number, "operator", by=operator)
    with pytest.raises(PermissionDeniedError, match="may not assign-work-order"):
        orders.assign(order.number, handler.login, by=staff["customer-service"])
    with pytest.raises(WorkOrderStateError, match="assign it first"):
        orders.record_result(order.number, outcome="done", result="x", by=handler)
    orders.assign(order.number, handler.login, by=operator)
    with pytest.raises(WorkOrderStateError, match="only the assignee"):
        orders.record_result(order.number, outcome="done", result="x", by=other)
    with pytest.raises(WorkOrderError, match="say what was done"):
        orders.record_result(order.number, outcome="done", result="  ", by=handler)
    with pytest.raises(WorkOrderError, match="unknown on-site outcome"):
        orders.record_result(order.number, outcome="maybe", result="x", by=handler)
    with pytest.raises(WorkOrderStateError, match="record the on-site result before closing"):
        orders.close(order.number, by=operator)
    with pytest.raises(WorkOrderNotFoundError, match="no work order"):
        orders.get("GD0")
    with pytest.raises(WorkOrderError, match="no customer"):
        orders.create("other", summary="x", customer_no="C404", by=operator)

    refused = AuditLog(engine, orders.clock).query(action="workorder.*")
    refusals = [e for e in refused if e.action.endswith(".refused")]
    assert len(refusals) == 8
    assert "not a fault handler" in refusals[0].details["reason"]
    assert orders.get(order.number).state is WorkOrderState.ASSIGNED


def test_a_reference_makes_one_work_order_and_reassignment_moves_the_load(
    orders: WorkOrders, staff: dict[str, Operator], users: Users
) -> None:
    users.add(
        "tech0",
        display_name="tech zero",
        password=PASSWORD,
        roles=[Role.FAULT_HANDLER],
        supply_unit="3302",
        by=staff["admin"],
    )
    # tech0 works for 3302 only: for C1 (3301) the only handler is fault.handler
    assert orders.pick_handler("3301") == "fault.handler"
    first = orders.create(
        WorkOrderKind.ANOMALY,
        summary="no reading for 3 days",
        customer_no="C3",
        reference="anomaly:C3:20513",
        assignee=orders.pick_handler("3302"),
        by="system:anomalies",
    )
    again = orders.create(
        WorkOrderKind.ANOMALY,
        summary="no reading for 3 days",
        customer_no="C3",
        reference="anomaly:C3:20513",
        by="system:anomalies",
    )
    assert again.number == first.number
    assert len(orders.list(kind=WorkOrderKind.ANOMALY)) == 1
    assert first.assignee == "fault.handler"  # equal load 0: by login order
    assert orders.handlers("3302") == [("tech0", 0), ("fault.handler", 1)]
    with pytest.raises(WorkOrderError, match="works for supply unit 3302"):
        orders.create("other", summary="x", customer_no="C1", assignee="tech0", by="system:x")


def test_sla_overdue_and_cancel(
    orders: WorkOrders, staff: dict[str, Operator], clock: SteppedClock
) -> None:
    order = orders.create(
        WorkOrderKind.RECONNECTION_FAILURE,
        summary="permit-close failed",
        customer_no="C2",
        by="system:reconnection",
    )
    assert orders.overdue() == []
    clock.set(START + timedelta(hours=25))
    assert [o.number for o in orders.overdue()] == [order.number]
    assert order.overdue(clock.now())
    with pytest.raises(WorkOrderError, match="give the reason"):
        orders.cancel(order.number, by=staff["operator"], reason="")
    cancelled = orders.cancel(order.number, by=staff["operator"], reason="closed by hand")
    assert cancelled.state is WorkOrderState.CANCELLED
    assert orders.cancel(order.number, by=staff["operator"], reason="again") == cancelled
    assert orders.overdue() == []
    assert orders.list(unfinished=True) == []
