"""The messages screen: a custom SMS to an area appears in the outbox; invalid numbers."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Button, DataTable, Input, Select, TabbedContent, TextArea

from console.screens.messages import MessagesScreen

from .workflow_console_rig import ScreenApp, click, console_rig, status


async def test_send_a_custom_sms_and_see_it_in_the_outbox(tmp_path: Path) -> None:
    r = console_rig(tmp_path)
    app = ScreenApp(MessagesScreen(r.ctx("customer-service")))
    async with app.run_test(size=(160, 45)) as pilot:
        screen = app.screen
        outbox = screen.query_one("#outbox", DataTable)
        assert outbox.row_count == 0
        screen.query_one("#tabs", TabbedContent).active = "tab-compose"
        await pilot.pause()
        screen.query_one("#text", TextArea).text = "春节期间营业厅照常营业"
        screen.query_one("#areas", Input).value = "A1, A2"
        await pilot.pause()
        assert str(screen.query_one("#length").render()) == "11 / 300 characters, 1 SMS segment(s)"
        await click(pilot, "#count")
        assert status(app).startswith("2 customers would get it (1 notified on paper are left out)")
        await click(pilot, "#send")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert status(app).startswith(
            "campaign 1: recipients 2, queued 1, invalid 1, left out (paper) 1"
        )
        rows = sorted(
            (outbox.get_row_at(i)[3], outbox.get_row_at(i)[5]) for i in range(outbox.row_count)
        )
        assert rows == [("3300000001", "queued"), ("3300000002", "invalid-number")]
        assert "春节期间营业厅照常营业" in outbox.get_row_at(0)[8]
        screen.query_one("#status-filter", Select).value = "invalid-number"
        await pilot.pause()
        assert outbox.row_count == 1
    assert [e.target for e in r.fc.ctx.audit.query(action="sms.custom")] == ["campaign:1"]


async def test_empty_text_is_refused_and_other_roles_cannot_send(tmp_path: Path) -> None:
    r = console_rig(tmp_path)
    app = ScreenApp(MessagesScreen(r.ctx("customer-service")))
    async with app.run_test(size=(160, 45)) as pilot:
        app.screen.query_one("#tabs", TabbedContent).active = "tab-compose"
        app.screen.query_one("#areas", Input).value = "A1"
        await pilot.pause()
        await click(pilot, "#send")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert status(app).startswith("not sent: the custom SMS has no text")
    app = ScreenApp(MessagesScreen(r.ctx("operator")))
    async with app.run_test(size=(160, 45)):
        assert app.screen.query_one("#send", Button).disabled


async def test_invalid_numbers_listed_and_exported(tmp_path: Path) -> None:
    r = console_rig(tmp_path)
    r.rig.add("3300000004", balance=100, phone="", name="赵六")
    target = tmp_path / "out" / "invalid.csv"
    app = ScreenApp(MessagesScreen(r.ctx("operator"), export_dir=tmp_path))
    async with app.run_test(size=(160, 45)) as pilot:
        screen = app.screen
        screen.query_one("#tabs", TabbedContent).active = "tab-invalid"
        await pilot.pause()
        table = screen.query_one("#invalid", DataTable)
        assert [tuple(table.get_row_at(i)[:4]) for i in range(table.row_count)] == [
            ("3300000002", "李四", "12345", "too-short"),
            ("3300000004", "赵六", "", "empty"),
        ]
        screen.query_one("#export-path", Input).value = str(target)
        await click(pilot, "#export")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert status(app) == f"2 invalid numbers written to {target}"
    lines = target.read_text(encoding="utf-8-sig").splitlines()
    assert len(lines) == 3 and "李四" in lines[1] and "赵六" in lines[2]


async def test_an_unreadable_outbox_is_said_not_crashed(tmp_path: Path) -> None:
    r = console_rig(tmp_path)
    with r.engine.begin() as conn:  # an outbox table lost (a half-restored database)
        conn.exec_driver_sql("DROP TABLE prepaid_message_attempt")
        conn.exec_driver_sql("ALTER TABLE prepaid_message RENAME TO prepaid_message_lost")
    app = ScreenApp(MessagesScreen(r.ctx("operator")))
    async with app.run_test(size=(160, 45)) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, MessagesScreen)
        assert status(app).startswith(
            "the database could not be read (no such table: prepaid_message); check that it "
            "is reachable"
        )
