"""Dashboard: the overview per supply unit (as prepaid.statistics counts it), alarms, scope."""

from __future__ import annotations

import threading
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import DataTable, Static

from console.app import ConsoleApp
from console.screens.dashboard import DashboardScreen
from headend.jobs import JobSpec, JobStore
from headend.models import JobKind, JobState
from prepaid.statistics import (
    SnapshotSource,
    fee_control_overview,
    refresh_overview,
    stored_overview,
)
from prepaid.users import Role
from protocol.clock import SteppedClock

from .world import PASSWORD, World

SIZE = (150, 44)


async def _dashboard(app: ConsoleApp, pilot: object) -> DashboardScreen:
    await app.workers.wait_for_complete()
    await pilot.pause()  # type: ignore[attr-defined]
    await app.workers.wait_for_complete()
    await pilot.pause()  # type: ignore[attr-defined]
    screen = app.screen
    assert isinstance(screen, DashboardScreen)
    return screen


def _table(screen: DashboardScreen) -> dict[str, list[str]]:
    table = screen.query_one("#dash-units", DataTable)
    rows = [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]
    return {r[0]: r for r in rows}


async def test_the_overview_counts_customers_warning_arrears_and_collection(world: World) -> None:
    app = ConsoleApp(
        world.engine, clock=world.clock, users=world.users, user=world.operator("operator")
    )
    async with app.run_test(size=SIZE) as pilot:
        screen = await _dashboard(app, pilot)
        rows = _table(screen)
        assert set(rows) == {"33001", "33002", "total"}
        # counted independently: accounts and negative real-time balances per unit
        for unit, customers, arrears in world.rows(
            "SELECT u.code, count(*), sum(s.balance_fen < 0) FROM prepaid_account a"
            " JOIN prepaid_supply_unit u ON u.id = a.supply_unit_id"
            " JOIN prepaid_rating_state s ON s.account_id = a.id WHERE a.active GROUP BY u.code"
        ):
            assert rows[str(unit)][2] == str(customers)
            assert rows[str(unit)][4] == str(arrears)
        assert rows["total"][2] == "240"
        # collection: meters with the 8 March daily freeze / meters
        read = world.rows(
            "SELECT count(*) FROM prepaid_account a WHERE EXISTS (SELECT 1 FROM headend_reading r"
            " WHERE r.meter_address = a.meter_address AND r.di = 84279553"
            " AND r.freeze_date = '2026-03-08')"
        )[0][0]
        assert rows["total"][8] == f"{int(read) * 100 / 240:.2f}%"  # type: ignore[call-overload]
        assert "on 2026-03-08" in str(screen.query_one("#dash-day").render())
        assert str(screen.query_one("#dash-alarms", Static).render()) == "no alarms"


async def test_failed_commands_raise_an_alarm_and_r_refreshes(world: World) -> None:
    app = ConsoleApp(
        world.engine, clock=world.clock, users=world.users, user=world.operator("operator")
    )
    async with app.run_test(size=SIZE) as pilot:
        screen = await _dashboard(app, pilot)
        store = JobStore(world.engine)
        now = world.clock.now()
        job, _ = store.submit(
            JobSpec(JobKind.TRIP, "330000000003", deadline=now + timedelta(minutes=30)), now
        )
        store.finish(job.id, now, JobState.FAILED, error="no answer")
        await pilot.press("r")
        screen = await _dashboard(app, pilot)
        alarms = str(screen.query_one("#dash-alarms", Static).render())
        assert "1 head-end command(s) failed or expired today" in alarms


async def test_an_operator_of_one_supply_unit_sees_only_that_unit(world: World) -> None:
    root = world.operator("root")
    world.users.add(
        "wang",
        display_name="王",
        password=PASSWORD,
        roles=[Role.OPERATOR],
        supply_unit="33002",
        by=root,
    )
    app = ConsoleApp(
        world.engine, clock=world.clock, users=world.users, user=world.operator("wang")
    )
    async with app.run_test(size=SIZE) as pilot:
        screen = await _dashboard(app, pilot)
        rows = _table(screen)
        assert set(rows) == {"33002"}
        assert rows["33002"][2] == str(
            world.rows(
                "SELECT count(*) FROM prepaid_account a JOIN prepaid_supply_unit u"
                " ON u.id = a.supply_unit_id WHERE u.code = '33002'"
            )[0][0]
        )


async def test_a_disconnection_request_shows_as_pending_in_the_trend_and_history(
    tmp_path: Path,
) -> None:
    from console.queries.customers import history
    from console.widgets.chart import TrendChart

    from .workflow_console_rig import CUSTOMERS, console_rig

    r = console_rig(tmp_path)
    episode = r.request(CUSTOMERS[0])
    app = ConsoleApp(r.engine, clock=r.rig.clock, users=r.users, user=r.staff["operator"])
    async with app.run_test(size=SIZE) as pilot:
        screen = await _dashboard(app, pilot)
        rows = _table(screen)
        assert rows["3301"][5] == "1"  # pending approval
        chart = screen.query_one(TrendChart)
        assert chart.days[-1] == r.rig.clock.now().date()
        assert chart.series["requests"][-1] == 1 and sum(chart.series["requests"]) == 1
        assert sum(chart.series["trips"]) == 0
    with r.engine.connect() as conn:
        account_id = conn.exec_driver_sql(
            "SELECT id FROM prepaid_account WHERE customer_no = ?", (CUSTOMERS[0],)
        ).scalar_one()
    steps = history(r.engine, int(account_id))
    assert [(h.what, h.who) for h in steps][:1] == [("disconnection request", "zhang")]
    assert episode.number in steps[0].detail


def _as_of(screen: DashboardScreen) -> str:
    return str(screen.query_one("#dash-asof").render())


def _arrears(world: World, unit: str) -> int:
    (count,) = world.rows(
        "SELECT count(*) FROM prepaid_account a JOIN prepaid_supply_unit u"
        " ON u.id = a.supply_unit_id JOIN prepaid_rating_state s ON s.account_id = a.id"
        " WHERE a.active AND s.balance_fen < 0 AND u.code = :unit",
        unit=unit,
    )[0]
    assert isinstance(count, int)
    return count


async def test_the_dashboard_shows_the_stored_counts_as_of_the_rating_and_r_counts_again(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from console.queries.dashboard import dashboard_data

    refresh_overview(
        world.engine,
        date(2026, 3, 8),
        clock=SteppedClock(datetime(2026, 3, 8, 2, 10)),
        source=SnapshotSource.RATING,
    )
    before = _arrears(world, "33001")
    with world.engine.begin() as conn:  # a customer falls into arrears after the rating
        conn.exec_driver_sql(
            "UPDATE prepaid_rating_state SET balance_fen = -1 WHERE account_id = (SELECT"
            " min(a.id) FROM prepaid_account a JOIN prepaid_supply_unit u ON u.id ="
            " a.supply_unit_id JOIN prepaid_rating_state s ON s.account_id = a.id"
            " WHERE u.code = '33001' AND a.active AND s.balance_fen >= 0)"
        )
    assert _arrears(world, "33001") == before + 1
    # the count runs behind a gate, so the test sees the screen while it counts
    gate = threading.Event()
    counting = dashboard_data

    def gated(*args: Any, **kwargs: Any) -> Any:
        if kwargs.get("refresh"):
            assert gate.wait(30)
        return counting(*args, **kwargs)

    monkeypatch.setattr("console.screens.dashboard.dashboard_data", gated)
    app = ConsoleApp(
        world.engine, clock=world.clock, users=world.users, user=world.operator("operator")
    )
    async with app.run_test(size=SIZE) as pilot:
        screen = await _dashboard(app, pilot)
        assert _table(screen)["33001"][4] == str(before)  # as the rating counted them
        assert "as of the 02:10 rating" in _as_of(screen)
        assert not screen.query_one("#dash-loading").display

        await pilot.press("r")
        await pilot.pause()
        assert screen.counting and screen.query_one("#dash-loading").display
        assert "counting again" in _as_of(screen) and "02:10 rating" in _as_of(screen)
        assert _table(screen)["33001"][4] == str(before)  # the figures shown stay
        await pilot.press("r")  # once is enough
        gate.set()
        screen = await _dashboard(app, pilot)
        assert not screen.counting and not screen.query_one("#dash-loading").display
        assert _table(screen)["33001"][4] == str(before + 1)
        assert "as of the 10:00 refresh" in _as_of(screen)
    stored = stored_overview(world.engine, date(2026, 3, 8))
    assert stored is not None and stored.computed_at == datetime(2026, 3, 8, 10, 0)


async def test_a_day_never_counted_is_counted_at_the_first_look_and_stored(world: World) -> None:
    assert stored_overview(world.engine, date(2026, 3, 8)) is None
    app = ConsoleApp(
        world.engine, clock=world.clock, users=world.users, user=world.operator("operator")
    )
    async with app.run_test(size=SIZE) as pilot:
        screen = await _dashboard(app, pilot)
        assert "as of the 10:00 refresh" in _as_of(screen)
    stored = stored_overview(world.engine, date(2026, 3, 8))
    assert stored is not None
    assert list(stored.units) == fee_control_overview(world.engine, date(2026, 3, 8))
