"""The approvals screen: level 1 then level 2 by two people, the requester refused, reject."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Button, DataTable, Input

from console.screens.approvals import ApprovalsScreen
from prepaid.workflows import DisconnectionState

from .workflow_console_rig import CUSTOMERS, ScreenApp, click, console_rig, status


async def test_level_one_then_level_two_by_two_people(tmp_path: Path) -> None:
    r = console_rig(tmp_path)
    episode = r.request(CUSTOMERS[0])

    app = ScreenApp(ApprovalsScreen(r.ctx("approver-l1")))
    async with app.run_test(size=(140, 40)) as pilot:
        queue = app.screen.query_one("#queue", DataTable)
        assert queue.row_count == 1
        app.screen.query_one("#comment", Input).value = "arrears confirmed"
        await click(pilot, "#approve")
        assert status(app) == f"{episode.number}: approved-l1"
        assert queue.row_count == 0  # it left the level-1 queue
    assert r.fc.disconnection.get(episode.number).l1_by == "approver.l1"

    app = ScreenApp(ApprovalsScreen(r.ctx("approver-l2")))
    async with app.run_test(size=(140, 40)) as pilot:
        assert app.screen.query_one("#queue", DataTable).row_count == 1
        await pilot.press("a")
        await pilot.pause()
        assert status(app).startswith(f"{episode.number}: notified; the customer is told")
    done = r.fc.disconnection.get(episode.number)
    assert done.state is DisconnectionState.NOTIFIED
    assert (done.l1_by, done.l2_by) == ("approver.l1", "approver.l2")


async def test_the_requester_is_refused_with_the_services_reason(tmp_path: Path) -> None:
    r = console_rig(tmp_path)
    episode = r.request(CUSTOMERS[0], by="zhang")  # zhang also holds approver-l1
    app = ScreenApp(ApprovalsScreen(r.ctx("zhang")))
    async with app.run_test(size=(140, 40)) as pilot:
        await click(pilot, "#approve")
        assert status(app).startswith(
            f"refused: zhang requested disconnection {episode.number} and may not approve it"
        )
        assert app.screen.query_one("#queue", DataTable).row_count == 1
    assert r.fc.disconnection.get(episode.number).state is DisconnectionState.REQUESTED


async def test_reject_needs_a_reason_and_ends_the_request(tmp_path: Path) -> None:
    r = console_rig(tmp_path)
    episode = r.request(CUSTOMERS[0])
    app = ScreenApp(ApprovalsScreen(r.ctx("approver-l1")))
    async with app.run_test(size=(140, 40)) as pilot:
        await click(pilot, "#reject")
        assert status(app).startswith("Type the reason for rejecting")
        app.screen.query_one("#comment", Input).value = "customer paid at the counter"
        await click(pilot, "#reject")
        assert status(app) == f"{episode.number}: rejected (customer paid at the counter)"
    assert r.fc.disconnection.get(episode.number).state is DisconnectionState.REJECTED


async def test_a_user_without_an_approval_role_has_the_buttons_disabled(tmp_path: Path) -> None:
    r = console_rig(tmp_path)
    r.request(CUSTOMERS[0])
    assert not ApprovalsScreen.visible_to(r.staff["auditor"])
    app = ScreenApp(ApprovalsScreen(r.ctx("auditor")))
    async with app.run_test(size=(140, 40)):
        assert app.screen.query_one("#approve", Button).disabled
        assert app.screen.query_one("#reject", Button).disabled
        assert app.screen.query_one("#queue", DataTable).row_count == 0


async def test_the_workflow_screens_open_from_the_console_app(tmp_path: Path) -> None:
    from console.app import ConsoleApp
    from console.screens.audit import AuditScreen
    from console.screens.schedule import ScheduleScreen

    r = console_rig(tmp_path)
    episode = r.request(CUSTOMERS[0])
    app = ConsoleApp(r.engine, clock=r.rig.clock, users=r.users, user=r.staff["approver-l1"])
    async with app.run_test(size=(150, 40)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        keys = [cls.KEY for cls in app.visible_screens()]
        assert {"approvals", "schedule"} <= set(keys)
        assert "audit" not in keys and "dunning" not in keys  # approver-l1 has no use for them
        app.go("approvals")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert isinstance(app.screen, ApprovalsScreen)
        await click(pilot, "#approve")
        assert status(app) == f"{episode.number}: approved-l1"
        await pilot.press(f"f{keys.index('schedule') + 2}")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert isinstance(app.screen, ScheduleScreen)
        later = r.request(CUSTOMERS[1])  # raised meanwhile by someone else
        await pilot.press(f"f{keys.index('approvals') + 2}")
        await app.workers.wait_for_complete()
        await pilot.pause()
        queue = app.screen.query_one("#queue", DataTable)
        assert [queue.get_row_at(i)[0] for i in range(queue.row_count)] == [later.number]

    app = ConsoleApp(r.engine, clock=r.rig.clock, users=r.users, user=r.staff["auditor"])
    async with app.run_test(size=(150, 40)) as pilot:
        await app.workers.wait_for_complete()
        app.go("audit")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert isinstance(app.screen, AuditScreen)
        assert app.load_problems == []


async def test_a_request_past_its_approval_time_limit_is_marked_overdue(tmp_path: Path) -> None:
    r = console_rig(tmp_path)
    episode = r.request(CUSTOMERS[0])  # Monday 08:00; level 1 has 24 hours
    r.rig.next_day(1)
    r.rig.clock.set(r.rig.clock.now().replace(hour=10, minute=30))
    app = ScreenApp(ApprovalsScreen(r.ctx("approver-l1")))
    async with app.run_test(size=(160, 40)):
        row = app.screen.query_one("#queue", DataTable).get_row(episode.number)
        assert row[7:9] == ["2026-03-03 08:00", "OVERDUE 2h30m"]
