"""Customers screen: search by each field (keyset pages), detail with readings and charges."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from textual.widgets import DataTable, Input, Select, Static

from console.app import ConsoleApp
from console.queries.customers import SearchField, guess_field, search
from console.screens.customers import CustomerDetailScreen, CustomersScreen
from console.widgets.chart import TrendChart
from console.widgets.paged_table import PagedTable

from .world import CUSTOMERS, World

SIZE = (150, 46)


def _app(world: World, login: str = "customer.service") -> ConsoleApp:
    return ConsoleApp(
        world.engine, clock=world.clock, users=world.users, user=world.operator(login)
    )


async def _search(app: ConsoleApp, pilot: object, text: str, field: SearchField) -> list[str]:
    screen = app.screen
    assert isinstance(screen, CustomersScreen)
    screen.query_one("#customer-query", Input).value = text
    screen.query_one("#customer-field", Select).value = field.value
    screen.run_search()
    await app.workers.wait_for_complete()
    await pilot.pause()  # type: ignore[attr-defined]
    table = screen.query_one(PagedTable).table
    return [str(table.get_row_at(i)[0]) for i in range(table.row_count)]


async def test_search_finds_a_customer_by_each_field(world: World) -> None:
    (c_no, name, phone, meter, area) = world.rows(
        "SELECT a.customer_no, a.name, a.phone, a.meter_address, t.code FROM prepaid_account a"
        " JOIN prepaid_transformer_area t ON t.id = a.transformer_area_id WHERE a.id = 77"
    )[0]
    app = _app(world)
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        await pilot.press("f3")  # Customers is the second screen
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert isinstance(app.screen, CustomersScreen)
        assert await _search(app, pilot, str(c_no), SearchField.CUSTOMER_NO) == [c_no]
        assert c_no in await _search(app, pilot, str(name), SearchField.NAME)
        assert c_no in await _search(app, pilot, str(phone), SearchField.PHONE)
        assert await _search(app, pilot, str(meter), SearchField.METER) == [c_no]
        in_area = await _search(app, pilot, str(area), SearchField.AREA)
        expected_area = [
            r[0]
            for r in world.rows(
                "SELECT a.customer_no FROM prepaid_account a JOIN prepaid_transformer_area t"
                " ON t.id = a.transformer_area_id WHERE t.code = :c ORDER BY a.id LIMIT 50",
                c=area,
            )
        ]
        assert in_area == expected_area and len(in_area) > 1
        # the guess picks the field from what was typed
        assert await _search(app, pilot, str(meter), SearchField.AUTO) == [c_no]
        none = await _search(app, pilot, "nobody-like-this", SearchField.NAME)
        assert none == []
        status = str(app.screen.query_one("#page-status").render())
        assert "no customer's name (户名) starts with 'nobody-like-this'" in status


async def test_pages_go_forward_and_back_without_loading_everything(world: World) -> None:
    app = _app(world)
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        app.go("customers")
        await app.workers.wait_for_complete()
        await pilot.pause()
        first = await _search(app, pilot, "33", SearchField.CUSTOMER_NO)
        assert len(first) == 50 and first[0] == "3300000001"
        paged = app.screen.query_one(PagedTable)
        seen = list(first)
        while paged.page is not None and paged.page.next_cursor is not None:
            paged.next_page()
            await app.workers.wait_for_complete()
            await pilot.pause()
            seen += [str(paged.table.get_row_at(i)[0]) for i in range(paged.table.row_count)]
        assert len(seen) == CUSTOMERS and len(set(seen)) == CUSTOMERS
        assert paged.page_number == 5  # 50 + 50 + 50 + 50 + 40
        paged.previous_page()
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert str(paged.table.get_row_at(0)[0]) == "3300000151"


def test_the_search_queries_walk_an_index(world: World) -> None:
    # what SQLite's planner does with each search's statement: an index search, no scan
    logged: list[tuple[str, object]] = []

    def grab(conn: object, cursor: object, statement: str, params: object, *args: object) -> None:
        logged.append((statement, params))

    for field, text in (
        (SearchField.CUSTOMER_NO, "3300"),
        (SearchField.NAME, "杜"),
        (SearchField.PHONE, "187"),
        (SearchField.METER, "3300"),
        (SearchField.AREA, "TA0000002"),
    ):
        logged.clear()
        sa.event.listen(world.engine, "before_cursor_execute", grab)
        first = search(world.engine, text, field, limit=2)
        search(world.engine, text, field, limit=2, after=first.next_cursor)  # a next page
        sa.event.remove(world.engine, "before_cursor_execute", grab)
        assert first.rows and first.next_cursor is not None
        for statement, params in logged:
            if "prepaid_account.id, prepaid_account.customer_no" not in statement:
                continue
            with world.engine.connect() as conn:
                plan = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, params).all()  # type: ignore[arg-type]
            text_plan = " | ".join(str(r[-1]) for r in plan)
            assert "SCAN prepaid_account" not in text_plan, (field, text_plan)
            assert "SEARCH prepaid_account USING" in text_plan, (field, text_plan)


@pytest.mark.parametrize(
    ("typed", "field"),
    [
        ("330000000077", SearchField.METER),
        ("13912345678", SearchField.PHONE),
        ("3300000077", SearchField.CUSTOMER_NO),
        ("TA0000003", SearchField.AREA),
        ("王", SearchField.NAME),
    ],
)
def test_the_field_is_guessed_from_what_was_typed(typed: str, field: SearchField) -> None:
    assert guess_field(typed) is field


async def test_the_detail_shows_readings_charges_balance_and_history(world: World) -> None:
    (_, c_no, balance) = world.rows(
        "SELECT a.id, a.customer_no, s.balance_fen FROM prepaid_account a"
        " JOIN prepaid_rating_state s ON s.account_id = a.id WHERE a.id = 12"
    )[0]
    charges = world.rows(
        "SELECT day, amount_fen, balance_fen FROM prepaid_charge WHERE account_id = 12 ORDER BY day"
    )
    # a command sent to the customer's meter earlier (it shows under Commands)
    from console.queries.meters import Command, MeterCommands

    (job,) = MeterCommands(world.engine, world.clock).send(
        world.operator("operator"), Command.PERMIT_CLOSE, "330000000012", reason="paid"
    )
    # and a message the customer was sent
    from prepaid.messages import Outbox, Recipient

    sent = Outbox(world.engine, clock=world.clock).enqueue(
        Recipient(str(c_no), "客户", "13800138000"), "custom", {"text": "春节快乐"}, episode="t"
    )
    app = _app(world)
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        app.go("customers")
        await app.workers.wait_for_complete()
        await pilot.pause()
        await _search(app, pilot, str(c_no), SearchField.CUSTOMER_NO)
        paged = app.screen.query_one(PagedTable)
        paged.table.focus()
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        detail = app.screen
        assert isinstance(detail, CustomerDetailScreen)
        title = str(detail.query_one("#detail-title").render())
        assert f"{c_no}" in title and f"{int(balance) / 100:.2f} yuan" in title  # type: ignore[call-overload]
        readings = detail.query_one("#detail-readings", DataTable)
        assert readings.row_count == 8  # 1..8 March, newest first
        assert str(readings.get_row_at(0)[0]) == "2026-03-08"
        table = detail.query_one("#detail-charges", DataTable)
        assert table.row_count == len(charges) >= 5
        newest = table.get_row_at(0)
        assert str(newest[3]) == f"{int(charges[-1][1]) / 100:.2f}"  # type: ignore[call-overload]
        assert str(newest[6]) == f"{int(charges[-1][2]) / 100:.2f}"  # type: ignore[call-overload]
        chart = detail.query_one(TrendChart)
        assert len(chart.days) == len(charges)
        facts = str(detail.query_one("#detail-facts", Static).render())
        assert "real-time balance" in facts
        texts = detail.query_one("#detail-messages", DataTable)
        assert texts.row_count == 1 and "春节快乐" in str(texts.get_row_at(0)[5])
        assert str(texts.get_row_at(0)[0]) == str(sent.message.id)
        commands = detail.query_one("#detail-jobs", DataTable)
        assert [str(c) for c in commands.get_row_at(0)[:3]] == [job.id, "permit-close", "queued"]
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, CustomersScreen)


def test_an_operator_of_one_unit_finds_only_its_customers(world: World) -> None:
    everyone = search(world.engine, "33", SearchField.CUSTOMER_NO, limit=300)
    mine = search(world.engine, "33", SearchField.CUSTOMER_NO, limit=300, supply_unit="33002")
    assert {r.supply_unit for r in everyone.rows} == {"33001", "33002"}
    assert mine.rows and {r.supply_unit for r in mine.rows} == {"33002"}
    assert len(mine.rows) == sum(r.supply_unit == "33002" for r in everyone.rows)


async def test_meter_commands_from_the_detail_open_the_meter(world: World) -> None:
    from console.screens.meters import MetersScreen

    app = _app(world, "operator")
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        app.go("customers")
        await app.workers.wait_for_complete()
        await pilot.pause()
        await _search(app, pilot, "3300000009", SearchField.CUSTOMER_NO)
        app.screen.query_one(PagedTable).table.focus()
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert isinstance(app.screen, CustomerDetailScreen)
        await pilot.press("m")
        await app.workers.wait_for_complete()
        await pilot.pause()
        await app.workers.wait_for_complete()
        assert isinstance(app.screen, MetersScreen)
        assert app.screen.selected == "330000000009"
