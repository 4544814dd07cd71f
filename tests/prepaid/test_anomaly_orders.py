"""Anomaly work orders for readings missing N consecutive days (SPEC S4.1-5)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from prepaid.anomaly_orders import (
    AnomalyOrderError,
    close_anomaly_order,
    list_anomaly_orders,
    open_anomaly_orders,
    record_anomaly_result,
)
from prepaid.workorders import WorkOrders, WorkOrderStateError

from .dunning_rig import HANDLER, Rig, make_rig

MARCH = date(2026, 3, 1)


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    rig = make_rig(tmp_path, start=datetime(2026, 3, 1, 6, 0))
    rig.add("C1", balance=5_000)
    rig.add("C2", balance=5_000)
    rig.add("C3", balance=5_000, opened_on=date(2026, 3, 9))  # never read
    rig.meters()
    rig.operators()
    return rig


def _day(n: int) -> date:
    return MARCH + timedelta(days=n - 1)


def _check(rig: Rig, day: int) -> list[str]:
    """The daily check after collection on March ``day``; the work orders it opened."""
    rig.clock.set(datetime.combine(_day(day), datetime.min.time()) + timedelta(hours=6))
    return open_anomaly_orders(rig.engine, _day(day), clock=rig.clock, settings=rig.settings).opened


def test_a_work_order_after_n_missing_days_none_before_and_only_one(rig: Rig) -> None:
    for d in range(1, 6):  # C1 read March 1–5, then silent; C2 read every day
        rig.reading("C1", _day(d), 100_000 + d * 1_000)
    for d in range(1, 15):
        rig.reading("C2", _day(d), 200_000 + d * 1_000)

    # default anomaly_missing_days = 3 (defaults.toml): March 6 and 7 missing is not enough
    assert _check(rig, 6) == []
    assert _check(rig, 7) == []
    opened = _check(rig, 8)  # March 6, 7, 8 missing
    assert len(opened) == 1
    orders = list_anomaly_orders(rig.engine)
    assert [(o.customer_no, o.gap_start, o.missing_days) for o in orders] == [("C1", _day(6), 3)]
    assert orders[0].state == "assigned" and orders[0].assignee == "tech"
    wo = WorkOrders(rig.engine, clock=rig.clock).get(opened[0])
    assert (
        wo.kind.value == "anomaly"
        and "连续3天缺数" in wo.summary
        and "meter 000000000001" in wo.summary
    )
    for day in (9, 10):  # the same gap goes on: nothing new
        assert _check(rig, day) == []
    # C3 was opened on March 9 and never read: its gap is long enough on March 11
    assert _check(rig, 10) == []
    third = _check(rig, 11)
    assert [o.customer_no for o in list_anomaly_orders(rig.engine)][:1] == ["C3"]
    assert len(third) == 1
    assert len(list_anomaly_orders(rig.engine)) == 2


def test_the_handler_records_and_closes_and_a_reading_closes_nothing(rig: Rig) -> None:
    rig.reading("C1", _day(1), 100_000)
    for d in range(1, 10):
        rig.reading("C2", _day(d), 200_000 + d)
        rig.reading("C3", _day(d), 300_000 + d)
    (number,) = _check(rig, 4)
    with pytest.raises(WorkOrderStateError, match="record the on-site result"):
        close_anomaly_order(rig.engine, number, by=HANDLER, clock=rig.clock)

    rig.reading("C1", _day(5), 100_500)  # the reading comes back by itself
    (order,) = list_anomaly_orders(rig.engine, unfinished=True)
    assert order.state == "assigned"  # still open: someone must look
    assert order.reading_since == _day(5)

    record_anomaly_result(
        rig.engine,
        number,
        by=HANDLER,
        clock=rig.clock,
        result="GPRS module reset on site; readings resumed",
    )
    close_anomaly_order(rig.engine, number, by=HANDLER, clock=rig.clock)
    (order,) = list_anomaly_orders(rig.engine)
    assert (order.state, order.outcome) == ("closed", "done")
    assert order.result == "GPRS module reset on site; readings resumed"
    assert list_anomaly_orders(rig.engine, unfinished=True) == []
    history = WorkOrders(rig.engine, clock=rig.clock).history(number)
    assert [h.action for h in history] == ["create", "assign", "record", "close"]

    # silent again from March 6: a new gap, a new work order
    assert _check(rig, 7) == []
    assert len(_check(rig, 8)) == 1
    assert [o.gap_start for o in list_anomaly_orders(rig.engine)] == [_day(6), _day(2)]

    with pytest.raises(AnomalyOrderError, match="not an anomaly work order"):
        record_anomaly_result(rig.engine, "GD0", by=HANDLER, clock=rig.clock, result="x")


def test_n_is_a_setting_per_scope(rig: Rig) -> None:
    for d in range(1, 4):
        rig.reading("C1", _day(d), 100_000 + d)
        rig.reading("C3", _day(d), 300_000 + d)
    rig.set("anomaly_missing_days", "1", level="customer", key="C1")
    rig.set("anomaly_missing_days", "5", level="default")
    # March 4: C1 (N=1) misses one day; C2 (never read since Jan 1) misses 63 ≥ 5
    _check(rig, 4)
    assert sorted(o.customer_no for o in list_anomaly_orders(rig.engine)) == ["C1", "C2"]
    # C3 (N=5) only after March 4–8
    _check(rig, 7)
    assert len(list_anomaly_orders(rig.engine)) == 2
    _check(rig, 8)
    assert len(list_anomaly_orders(rig.engine)) == 3
