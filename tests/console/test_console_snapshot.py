"""Snapshots of the console's main screens (fixed population, clock and terminal size).

Update after an intended change of the look: ``pytest tests/console/test_console_snapshot.py
--snapshot-update``, then look at the SVGs in ``__snapshots__`` before committing them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual.pilot import Pilot
from textual.widgets import Input, Select, TabbedContent

from console.app import ConsoleApp

from .world import World, make_world

SIZE = (150, 40)


def _app(world: World, login: str | None) -> ConsoleApp:
    user = world.operator(login) if login else None
    return ConsoleApp(world.engine, clock=world.clock, users=world.users, user=user)


async def _settle(pilot: Pilot[None]) -> None:
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    # a blinking cursor would make the picture depend on the machine's speed
    for field in pilot.app.screen.query(Input):
        field.cursor_blink = False
    await pilot.pause()


def test_login_screen(snap_compare: Any, tmp_path: Path) -> None:
    app = _app(make_world(tmp_path), None)
    assert snap_compare(app, terminal_size=SIZE, run_before=_settle)


def test_dashboard(snap_compare: Any, tmp_path: Path) -> None:
    app = _app(make_world(tmp_path), "operator")
    assert snap_compare(app, terminal_size=SIZE, run_before=_settle)


def test_customers_found_by_name(snap_compare: Any, tmp_path: Path) -> None:
    app = _app(make_world(tmp_path), "customer.service")

    async def search(pilot: Pilot[None]) -> None:
        await _settle(pilot)
        app.go("customers")
        await _settle(pilot)
        app.screen.query_one("#customer-query", Input).value = "杜"
        app.screen.query_one("#customer-field", Select).value = "name"
        await pilot.press("enter")
        await _settle(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=search)


def test_customer_detail_charges(snap_compare: Any, tmp_path: Path) -> None:
    app = _app(make_world(tmp_path), "customer.service")

    async def detail(pilot: Pilot[None]) -> None:
        await _settle(pilot)
        app.go("customers")
        await _settle(pilot)
        app.screen.query_one("#customer-query", Input).value = "3300000012"
        await pilot.press("enter")
        await _settle(pilot)
        app.screen.query_one("#customer-table DataTable").focus()
        await pilot.press("enter")
        await _settle(pilot)
        app.screen.query_one(TabbedContent).active = "tab-charges"
        await _settle(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=detail)


def test_meters_for_a_role_without_trip(snap_compare: Any, tmp_path: Path) -> None:
    app = _app(make_world(tmp_path), "customer.service")

    async def meter(pilot: Pilot[None]) -> None:
        await _settle(pilot)
        app.go("meters")
        await _settle(pilot)
        app.screen.query_one("#meter-query", Input).value = "330000000007"
        await pilot.press("enter")
        await _settle(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=meter)
