"""The audit viewer: filters, paging, and "verify chain" finding a tampered row."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from textual.widgets import Button, DataTable, Input

from console.screens.audit import AuditScreen
from prepaid.audit import audit_table

from .workflow_console_rig import ScreenApp, click, console_rig, status


async def test_verify_the_chain_then_detect_a_tampered_row(tmp_path: Path) -> None:
    r = console_rig(tmp_path)
    total = len(r.fc.ctx.audit.query())
    assert total == 8  # the admin, six staff and zhang were added

    screen = AuditScreen(r.ctx("auditor"))
    app = ScreenApp(screen)
    async with app.run_test(size=(160, 40)) as pilot:
        await click(pilot, "#verify")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert status(app) == f"audit chain intact: {total} entries, last #{total}"
        assert [c.title for c in screen.palette_commands()] == ["Verify audit chain"]

        with r.engine.begin() as conn:  # what someone with the database file could do
            conn.exec_driver_sql("DROP TRIGGER prepaid_audit_no_update")
            conn.execute(
                sa.update(audit_table)
                .where(audit_table.c.id == 3)
                .values(details='{"roles": ["admin"]}')
            )
        await click(pilot, "#verify")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert status(app).startswith(
            "audit chain BROKEN at entry #3: its content does not match its hash (the entry "
            "was changed); entries up to #2 are intact"
        )


async def test_filter_and_page(tmp_path: Path) -> None:
    r = console_rig(tmp_path)
    screen = AuditScreen(r.ctx("admin"))
    screen.pager.size = 3
    app = ScreenApp(screen)
    async with app.run_test(size=(160, 40)) as pilot:
        table = screen.query_one("#entries", DataTable)
        ids = [table.get_row_at(i)[0] for i in range(table.row_count)]
        assert ids == ["8", "7", "6"]
        await click(pilot, "#next")
        assert [table.get_row_at(i)[0] for i in range(table.row_count)] == ["5", "4", "3"]
        await click(pilot, "#prev")
        assert table.get_row_at(0)[0] == "8"
        screen.query_one("#target", Input).value = "operator:z*"
        await click(pilot, "#filter")
        assert [table.get_row_at(i)[4] for i in range(table.row_count)] == ["operator:zhang"]
        assert str(screen.query_one("#page").render()) == "page 1: 1 rows"


async def test_only_auditors_and_admins_see_it(tmp_path: Path) -> None:
    r = console_rig(tmp_path)
    assert AuditScreen.visible_to(r.staff["auditor"])
    assert not AuditScreen.visible_to(r.staff["operator"])
    app = ScreenApp(AuditScreen(r.ctx("operator")))
    async with app.run_test(size=(160, 40)):
        assert app.screen.query_one("#verify", Button).disabled
