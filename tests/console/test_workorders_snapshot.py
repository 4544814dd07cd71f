"""Snapshot of the work-order list with its history (fixed data and clock)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual.pilot import Pilot
from textual.widgets import DataTable

from console.screens.anomalies import AnomaliesScreen
from console.screens.workorders import WorkOrdersScreen
from prepaid.anomaly_orders import open_anomaly_orders
from prepaid.workorders import WorkOrderKind

from .workflow_console_rig import CUSTOMERS, ScreenApp, console_rig

SIZE = (150, 40)


def test_work_orders_assigned_and_overdue(snap_compare: Any, tmp_path: Path) -> None:
    r = console_rig(tmp_path)
    op = r.staff["operator"]
    first = r.fc.workorders.create(
        WorkOrderKind.OTHER, summary="seal broken", by=op, customer_no=CUSTOMERS[0]
    )
    r.fc.workorders.assign(first.number, "fault.handler", by=op, comment="urgent")
    r.rig.next_day(4)
    r.fc.workorders.create(
        WorkOrderKind.RECONNECTION_FAILURE,
        summary="permit-close failed",
        by=op,
        customer_no=CUSTOMERS[1],
    )
    screen = WorkOrdersScreen(r.ctx("operator"))

    async def second_row(pilot: Pilot[None]) -> None:
        screen.query_one("#orders", DataTable).focus()
        await pilot.press("down")

    assert snap_compare(ScreenApp(screen), terminal_size=SIZE, run_before=second_row)


def test_anomaly_orders(snap_compare: Any, tmp_path: Path) -> None:
    from datetime import date

    r = console_rig(tmp_path)
    open_anomaly_orders(
        r.engine,
        date(2026, 3, 1),
        clock=r.rig.clock,
        settings=r.rig.settings,
        workorders=r.fc.workorders,
    )
    assert snap_compare(ScreenApp(AnomaliesScreen(r.ctx("fault-handler"))), terminal_size=SIZE)
