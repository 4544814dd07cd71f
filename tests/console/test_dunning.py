"""The dunning screen: batches per area, their records, printing a batch's paper notices."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Button, DataTable, Input

from console.screens.dunning import DunningScreen
from prepaid.dunning import list_batches, run_dunning

from .workflow_console_rig import ScreenApp, click, console_rig, status


async def test_print_a_batch_and_see_the_file(tmp_path: Path) -> None:
    r = console_rig(tmp_path)
    report = run_dunning(
        r.engine, clock=r.rig.clock, by=r.staff["operator"], auto=False, settings=r.rig.settings
    )
    assert {b.area: (b.sms, b.paper, b.manual) for b in report.batches} == {
        "A1": (1, 0, 1),  # 李四's number 12345 is too short: manual dunning
        "A2": (0, 1, 0),  # 王五 is notified on paper
    }
    a2 = next(b.batch_no for b in report.batches if b.area == "A2")
    notices = tmp_path / "notices"

    app = ScreenApp(DunningScreen(r.ctx("operator"), notices_dir=notices))
    async with app.run_test(size=(160, 45)) as pilot:
        batches = app.screen.query_one("#batches", DataTable)
        assert batches.row_count == 2
        batches.move_cursor(row=batches.get_row_index(a2))
        await pilot.pause()
        records = app.screen.query_one("#records", DataTable)
        assert [records.get_row_at(i)[:4] for i in range(records.row_count)] == [
            ["3300000003", "王五", "13800138003", "paper"]
        ]
        await click(pilot, "#print")
        await app.workers.wait_for_complete()
        await pilot.pause()
        html = notices / f"{a2}.html"
        assert status(app) == (
            f"{a2}: 1 notices printed to {html} (text: {notices / (a2 + '.txt')})"
        )
        assert batches.get_row_at(batches.get_row_index(a2))[9] == str(html)
    assert "王五" in html.read_text(encoding="utf-8")
    assert next(b for b in list_batches(r.engine) if b.batch_no == a2).printed_at is not None


async def test_manual_records_are_printed_too_but_not_sms_ones(tmp_path: Path) -> None:
    r = console_rig(tmp_path)
    report = run_dunning(
        r.engine, clock=r.rig.clock, by=r.staff["operator"], auto=False, settings=r.rig.settings
    )
    a1 = next(b.batch_no for b in report.batches if b.area == "A1")
    app = ScreenApp(DunningScreen(r.ctx("customer-service"), notices_dir=tmp_path / "n"))
    async with app.run_test(size=(160, 45)) as pilot:
        app.screen.query_one("#area", Input).value = "A1"
        await click(pilot, "#show")
        assert app.screen.query_one("#batches", DataTable).row_count == 1
        await click(pilot, "#print")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert status(app).startswith(f"{a1}: 1 notices printed to ")
    text = (tmp_path / "n" / f"{a1}.html").read_text(encoding="utf-8")
    assert "李四" in text  # manual: no usable phone
    assert "张三" not in text  # got an SMS


async def test_roles_without_dunning_cannot_print(tmp_path: Path) -> None:
    r = console_rig(tmp_path)
    assert not DunningScreen.visible_to(r.staff["approver-l1"])
    app = ScreenApp(DunningScreen(r.ctx("approver-l1"), notices_dir=tmp_path / "n"))
    async with app.run_test(size=(160, 45)):
        assert app.screen.query_one("#print", Button).disabled
