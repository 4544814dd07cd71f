"""The settings editor: a value set at area level changes its source; bad values refused."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Button, DataTable, Input, Select

from console.screens.settings import SettingsScreen

from .workflow_console_rig import ScreenApp, click, console_rig, status


def _row(table: DataTable[object], name: str) -> list[object]:
    return list(table.get_row(name))


async def test_edit_at_area_level_and_see_the_source_change(tmp_path: Path) -> None:
    r = console_rig(tmp_path)
    app = ScreenApp(SettingsScreen(r.ctx("operator")))
    async with app.run_test(size=(160, 45)) as pilot:
        screen = app.screen
        table = screen.query_one("#settings", DataTable)
        assert _row(table, "reminder_amount") == [
            "reminder_amount",
            "提醒金额",
            "20.00",
            "default (defaults.toml)",
        ]
        screen.query_one("#level", Select).value = "area"
        screen.query_one("#key", Input).value = "A1"
        await click(pilot, "#show")
        assert str(screen.query_one("#scope").render()) == "in force at line L1 / area A1"
        table.move_cursor(row=table.get_row_index("reminder_amount"))
        await pilot.pause()
        assert screen.query_one("#value", Input).value == "20.00"
        screen.query_one("#value", Input).value = "15.50"
        screen.query_one("#comment", Input).value = "winter"
        await click(pilot, "#set")
        assert status(app) == "reminder_amount at area A1: 15.50 (was not set)"
        assert _row(table, "reminder_amount")[2:] == ["15.50", "area A1"]
        changes = screen.query_one("#changes", DataTable)
        assert list(changes.get_row_at(0))[1:] == [
            "operator",
            "reminder_amount",
            "-",
            "15.50",
            "winter",
        ]

        await click(pilot, "#unset")
        assert status(app) == "reminder_amount at area A1: unset (was 15.50)"
        assert _row(table, "reminder_amount")[3] == "default (defaults.toml)"


async def test_invalid_values_are_refused_with_the_services_message(tmp_path: Path) -> None:
    r = console_rig(tmp_path)
    app = ScreenApp(SettingsScreen(r.ctx("operator")))
    async with app.run_test(size=(160, 45)) as pilot:
        screen = app.screen
        table = screen.query_one("#settings", DataTable)
        screen.query_one("#level", Select).value = "area"
        screen.query_one("#key", Input).value = "A1"
        await click(pilot, "#show")
        table.move_cursor(row=table.get_row_index("reminder_amount"))
        await pilot.pause()
        screen.query_one("#value", Input).value = "abc"
        await click(pilot, "#set")
        assert status(app).startswith("refused: reminder_amount at area A1: expected")
        table.move_cursor(row=table.get_row_index("disconnection_threshold"))
        await pilot.pause()
        screen.query_one("#value", Input).value = "30"
        await click(pilot, "#set")
        assert status(app).startswith(
            "refused: disconnection_threshold at area A1: dunning_threshold 0.00 "
            "(from default (defaults.toml)) is below disconnection_threshold 30.00"
        )
        assert _row(table, "disconnection_threshold")[2:] == ["0.00", "default (defaults.toml)"]
        screen.query_one("#key", Input).value = "NOSUCH"
        await click(pilot, "#show")
        assert "NOSUCH" in status(app)
    refusals = [e for e in r.fc.ctx.audit.query(action="settings.refused")]
    assert len(refusals) == 2


async def test_roles_that_may_not_edit_have_the_buttons_disabled(tmp_path: Path) -> None:
    r = console_rig(tmp_path)
    app = ScreenApp(SettingsScreen(r.ctx("approver-l1")))
    async with app.run_test(size=(160, 45)):
        assert app.screen.query_one("#set", Button).disabled
        assert app.screen.query_one("#unset", Button).disabled
