"""The disconnection schedule: notice sent, due time, the wait for protected hours; cancel."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from textual.widgets import Button, DataTable, Input

from console.screens.schedule import ScheduleScreen
from prepaid.workflows import DisconnectionState

from .workflow_console_rig import CUSTOMERS, ScreenApp, click, console_rig, status


async def test_the_schedule_shows_the_protected_hours_wait_and_cancels(tmp_path: Path) -> None:
    r = console_rig(tmp_path)
    episode = r.request(CUSTOMERS[0])
    r.fc.disconnection.approve_l1(episode.number, by=r.staff["approver-l1"])
    r.rig.clock.set(datetime(2026, 3, 2, 19, 0))  # Monday evening
    r.fc.disconnection.approve_l2(episode.number, by=r.staff["approver-l2"])
    # due a day later, Tuesday 19:00 — inside 18:00-08:00, so planned Wednesday 08:00

    app = ScreenApp(ScheduleScreen(r.ctx("operator")))
    async with app.run_test(size=(170, 40)) as pilot:
        plan = app.screen.query_one("#plan", DataTable)
        assert plan.get_row_at(0) == [
            episode.number,
            CUSTOMERS[0],
            "A1",
            "notified",
            "approver.l1 / approver.l2",
            "2026-03-02 19:00",
            "2026-03-03 19:00",
            "2026-03-04 08:00",
            "13h00m",
            "0",
        ]
        await click(pilot, "#cancel")
        assert status(app).startswith(f"Type the reason for cancelling {episode.number}")
        app.screen.query_one("#reason", Input).value = "paid at the counter"
        await click(pilot, "#cancel")
        assert status(app) == f"{episode.number}: cancelled (paid at the counter)"
        assert plan.row_count == 0
    assert r.fc.disconnection.get(episode.number).state is DisconnectionState.CANCELLED


async def test_roles_that_may_not_cancel_see_the_button_disabled(tmp_path: Path) -> None:
    r = console_rig(tmp_path)
    app = ScreenApp(ScheduleScreen(r.ctx("auditor")))
    async with app.run_test(size=(170, 40)):
        assert app.screen.query_one("#cancel", Button).disabled
        assert status(app) == "No approved disconnection is waiting."
