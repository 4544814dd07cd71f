"""The anomaly screen: the fault handler records what was done and closes the order."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from textual.widgets import Button, Checkbox, DataTable, Input

from console.screens.anomalies import AnomaliesScreen
from prepaid.anomaly_orders import open_anomaly_orders
from prepaid.workorders import WorkOrderState

from .workflow_console_rig import ScreenApp, click, console_rig, status


async def test_record_and_close_an_anomaly_work_order(tmp_path: Path) -> None:
    r = console_rig(tmp_path)
    report = open_anomaly_orders(
        r.engine,
        date(2026, 3, 1),
        clock=r.rig.clock,
        settings=r.rig.settings,
        workorders=r.fc.workorders,
    )
    assert len(report.opened) == 3  # no reading at all since the accounts were opened
    first = report.opened[0]

    app = ScreenApp(AnomaliesScreen(r.ctx("operator")))
    async with app.run_test(size=(160, 45)):
        assert app.screen.query_one("#record", Button).disabled  # operators do not record

    app = ScreenApp(AnomaliesScreen(r.ctx("fault-handler")))
    async with app.run_test(size=(160, 45)) as pilot:
        table = app.screen.query_one("#anomalies", DataTable)
        assert table.row_count == 3
        table.move_cursor(row=table.get_row_index(first))
        app.screen.query_one("#result", Input).value = "GPRS module reset"
        await click(pilot, "#record")
        assert status(app) == f"{first}: result recorded (done: GPRS module reset)"
        await click(pilot, "#close")
        assert status(app) == f"{first}: closed"
        assert table.row_count == 2  # unfinished only
        app.screen.query_one("#unfinished", Checkbox).value = False
        await pilot.pause()
        assert table.row_count == 3
    assert r.fc.workorders.get(first).state is WorkOrderState.CLOSED
