"""The console app: login, navigation per role, help, command palette (Pilot-driven)."""

from __future__ import annotations

from pathlib import Path

from textual.pilot import Pilot
from textual.widgets import Input, Static, Tabs

from console.app import ConsoleApp
from console.screens.base import ConsoleScreen
from console.screens.dashboard import DashboardScreen
from console.screens.login import LoginScreen
from console.widgets.help import HelpScreen
from prepaid.audit import AuditLog
from prepaid.users import Action

from .world import PASSWORD, World

SIZE = (140, 44)


async def _log_in(
    pilot: Pilot[None], login: str | None, password: str, *, typed: bool = False
) -> None:
    """Fill the login form (typed key by key, or set) and press Enter in the password."""
    screen = pilot.app.screen
    if typed:
        await pilot.click("#login-name")
        await pilot.press(*(login or ""), "enter", *password)
    else:
        if login is not None:
            screen.query_one("#login-name", Input).value = login
        screen.query_one("#login-password", Input).value = password
        screen.query_one("#login-password", Input).focus()
    await pilot.press("enter")
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def _app(world: World, **kw: object) -> ConsoleApp:
    return ConsoleApp(world.engine, clock=world.clock, users=world.users, **kw)  # type: ignore[arg-type]


async def test_login_opens_the_dashboard(world: World) -> None:
    app = _app(world)
    async with app.run_test(size=SIZE) as pilot:
        assert isinstance(app.screen, LoginScreen)
        await _log_in(pilot, "operator", PASSWORD, typed=True)
        assert isinstance(app.screen, DashboardScreen)
        assert app.user is not None and app.user.login == "operator"
        assert "operator user" in app.sub_title
    logins = AuditLog(world.engine, world.clock).query(action="login")
    assert [e.actor for e in logins] == ["operator"]


async def test_a_wrong_password_is_refused_with_a_clear_message(world: World) -> None:
    app = _app(world)
    async with app.run_test(size=SIZE) as pilot:
        await _log_in(pilot, "operator", "not the password")
        assert isinstance(app.screen, LoginScreen)
        message = str(app.screen.query_one("#login-message", Static).render())
        assert "wrong password for operator" in message
        assert app.screen.query_one("#login-password", Input).value == ""
        assert app.user is None
        # then the right one works
        await _log_in(pilot, None, PASSWORD)
        assert isinstance(app.screen, DashboardScreen)


async def test_a_disabled_account_and_an_unknown_login_are_refused(world: World) -> None:
    app = _app(world)
    async with app.run_test(size=SIZE) as pilot:
        await _log_in(pilot, "gone", PASSWORD)
        message = str(app.screen.query_one("#login-message", Static).render())
        assert "gone is disabled: ask an admin to enable it" in message
        await _log_in(pilot, "nobody", PASSWORD)
        message = str(app.screen.query_one("#login-message", Static).render())
        assert "no operator 'nobody'" in message
        assert isinstance(app.screen, LoginScreen)
    refused = AuditLog(world.engine, world.clock).query(action="login.refused")
    assert len(refused) == 2


class _AuditOnly(ConsoleScreen):
    KEY = "audit-test"
    TITLE = "Audit (test)"
    ACTIONS = frozenset({Action.VIEW_AUDIT})


class _TripOnly(ConsoleScreen):
    KEY = "trip-test"
    TITLE = "Trips (test)"
    ACTIONS = frozenset({Action.TRIP})


PATHS = (
    "console.screens.dashboard:DashboardScreen",
    f"{__name__}:_AuditOnly",
    f"{__name__}:_TripOnly",
    "console.screens.nowhere:Missing",
)


def _tabs(app: ConsoleApp) -> list[str]:
    return [str(t.id) for t in app.screen.query_one(Tabs).query("Tab")]


async def test_navigation_shows_only_the_screens_a_role_may_use(world: World) -> None:
    for login, expected in (
        ("operator", ["nav-dashboard", "nav-trip-test"]),
        ("auditor", ["nav-dashboard", "nav-audit-test"]),
        ("approver.l1", ["nav-dashboard"]),
    ):
        app = _app(world, user=world.operator(login), screen_paths=PATHS)
        async with app.run_test(size=SIZE) as pilot:
            await app.workers.wait_for_complete()
            await pilot.pause()
            assert _tabs(app) == expected, login
            assert any("nowhere" in p for p in app.load_problems)
            # a screen the role may not see cannot be opened by key either
            app.go("audit-test" if login == "operator" else "trip-test")
            await app.workers.wait_for_complete()
            await pilot.pause()
            assert isinstance(app.screen, DashboardScreen)


async def test_keys_and_clicks_switch_screens_and_logout_returns_to_login(world: World) -> None:
    app = _app(world, user=world.operator("operator"), screen_paths=PATHS)
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        await pilot.press("f3")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert isinstance(app.screen, _TripOnly)
        await pilot.click("#nav-dashboard")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert isinstance(app.screen, DashboardScreen)
        await pilot.press("f1")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        await pilot.press("ctrl+l")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert isinstance(app.screen, LoginScreen)
        assert app.user is None
    assert [e.actor for e in AuditLog(world.engine, world.clock).query(action="logout")] == [
        "operator"
    ]


async def test_the_command_palette_lists_the_visible_screens(world: World) -> None:
    app = _app(world, user=world.operator("auditor"), screen_paths=PATHS)
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "Go to Dashboard" in titles and "Go to Audit (test)" in titles
        assert "Go to Trips (test)" not in titles
        assert "Log out" in titles and "Help" in titles
        assert "Refresh the dashboard" in titles
        for command in app.get_system_commands(app.screen):
            if command.title == "Go to Audit (test)":
                command.callback()
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert isinstance(app.screen, _AuditOnly)


async def test_an_empty_database_says_how_to_create_the_first_admin(tmp_path: Path) -> None:
    from prepaid.db import migrate, open_database
    from prepaid.users import Users
    from protocol.clock import SteppedClock

    engine = open_database(f"sqlite:///{tmp_path / 'empty.db'}")
    migrate(engine)
    clock = SteppedClock()
    app = ConsoleApp(engine, clock=clock, users=Users(engine, clock=clock))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        message = str(app.screen.query_one("#login-message", Static).render())
        assert "no operators yet" in message and "feikong users add" in message
    engine.dispose()


async def test_help_lists_the_screens_keys_and_what_the_role_may_do(world: World) -> None:
    app = _app(world, user=world.operator("fault.handler"), screen_paths=PATHS)
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        text = app.screen.text
        assert "| F2 | Dashboard |" in text and "Trips (test)" not in text
        assert "You may: permit-close, read-meter, record-work-order, view" in text
        assert "| Ctrl+P |" in text


class _Broken(ConsoleScreen):
    KEY = "broken"
    TITLE = "Broken (test)"

    def __init__(self, ctx: object) -> None:
        raise RuntimeError("the broken screen's data is missing")


async def test_logout_from_a_detail_view_and_a_broken_screen_keep_the_console_running(
    world: World,
) -> None:
    paths = (*PATHS[:1], "console.screens.customers:CustomersScreen", f"{__name__}:_Broken")
    app = _app(world, user=world.operator("operator"), screen_paths=paths)
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        app.go("broken")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert isinstance(app.screen, DashboardScreen)  # still there, the error notified
        assert any("cannot be opened" in str(n.message) for n in app._notifications)
        app.go("customers")
        await app.workers.wait_for_complete()
        await pilot.pause()
        app.screen.query_one("#customer-query", Input).value = "3300000005"
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        app.screen.query_one("#customer-table DataTable").focus()
        await pilot.press("enter")  # the customer's detail, over the Customers screen
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert len(app.screen_stack) == 3
        await pilot.press("ctrl+l")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert isinstance(app.screen, LoginScreen) and len(app.screen_stack) == 2
        await _log_in(pilot, "auditor", PASSWORD)  # the next operator starts afresh
        assert isinstance(app.screen, DashboardScreen)
        assert app.user is not None and app.user.login == "auditor"
