"""The work-order screen: an operator assigns, the fault handler records and closes."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Button, Checkbox, DataTable, Input, Select

from console.screens.workorders import WorkOrdersScreen
from prepaid.workorders import WorkOrderKind, WorkOrderState

from .workflow_console_rig import CUSTOMERS, ScreenApp, click, console_rig, status


async def test_assign_record_and_close_with_history(tmp_path: Path) -> None:
    r = console_rig(tmp_path)
    order = r.fc.workorders.create(
        WorkOrderKind.OTHER,
        summary="seal broken on the meter box",
        by=r.staff["operator"],
        customer_no=CUSTOMERS[0],
    )

    app = ScreenApp(WorkOrdersScreen(r.ctx("operator")))
    async with app.run_test(size=(150, 45)) as pilot:
        screen = app.screen
        assert screen.query_one("#record", Button).disabled  # an operator records nothing
        assert screen.query_one("#orders", DataTable).row_count == 1
        screen.query_one("#handler", Select).value = "fault.handler"
        await click(pilot, "#assign")
        assert status(app) == f"{order.number}: assigned to fault.handler"

    app = ScreenApp(WorkOrdersScreen(r.ctx("fault-handler")))
    async with app.run_test(size=(150, 45)) as pilot:
        screen = app.screen
        assert screen.query_one("#assign", Button).disabled
        await click(pilot, "#record")
        assert "say what was done on site" in status(app)  # the service's own words
        screen.query_one("#result", Input).value = "resealed, photo taken"
        await click(pilot, "#record")
        assert status(app) == f"{order.number}: result recorded (done: resealed, photo taken)"
        await click(pilot, "#close")
        assert status(app) == f"{order.number}: closed"
        history = screen.query_one("#history", DataTable)
        actions = [history.get_row_at(i)[2] for i in range(history.row_count)]
        assert actions == ["create", "assign", "record", "close"]
    assert r.fc.workorders.get(order.number).state is WorkOrderState.CLOSED


async def test_filters_by_kind_and_overdue(tmp_path: Path) -> None:
    r = console_rig(tmp_path)
    op = r.staff["operator"]
    old = r.fc.workorders.create(
        WorkOrderKind.OTHER, summary="old", by=op, customer_no=CUSTOMERS[0]
    )
    r.rig.next_day(4)  # past the 3-day due time of the first
    r.fc.workorders.create(WorkOrderKind.ANOMALY, summary="new", by=op, customer_no=CUSTOMERS[1])
    app = ScreenApp(WorkOrdersScreen(r.ctx("operator")))
    async with app.run_test(size=(150, 45)) as pilot:
        table = app.screen.query_one("#orders", DataTable)
        assert table.row_count == 2
        app.screen.query_one("#overdue", Checkbox).value = True
        await pilot.pause()
        assert [table.get_row_at(i)[0] for i in range(table.row_count)] == [old.number]
        assert table.get_row_at(0)[6] == "OVERDUE"
        app.screen.query_one("#overdue", Checkbox).value = False
        app.screen.query_one("#kind", Select).value = "anomaly"
        await pilot.pause()
        assert [table.get_row_at(i)[7] for i in range(table.row_count)] == ["new"]
