"""Customers (客户查询): search by number, name, phone, meter or area; one customer's detail.

The search table pages through the indexes (:mod:`console.queries.customers`), 50
rows at a time; Enter (or a click) on a row opens :class:`CustomerDetailScreen`
with the account, daily readings, charges, a balance-over-time chart, messages,
head-end commands and the fee-control history. From there "Meter commands" opens the
meter on the Meters screen (for operators who may send commands).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, ClassVar, cast

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import (
    Button,
    DataTable,
    Footer,
    Header,
    Input,
    Label,
    Select,
    Static,
    TabbedContent,
    TabPane,
)

from prepaid.users import Action

from ..context import ConsoleContext
from ..queries import customers as q
from ..widgets.chart import TrendChart
from ..widgets.paged_table import Fetch, Page, PagedTable
from ..widgets.table import Table
from .base import ConsoleScreen

if TYPE_CHECKING:
    from ..app import ConsoleApp

__all__ = ["CustomerDetailScreen", "CustomersScreen"]

COLUMNS = ("customer no", "name", "phone", "meter", "area", "unit", "balance", "flags")


def _money(fen: int | None) -> Text:
    text = q.yuan(fen)
    style = "red" if fen is not None and fen < 0 else ""
    return Text(text, style=style, justify="right")


class CustomersScreen(ConsoleScreen):
    """Search customers among millions, a page at a time."""

    KEY = "customers"
    TITLE = "Customers"
    ACTIONS = frozenset({Action.VIEW})
    DEFAULT_CSS = """
    CustomersScreen .bar { height: auto; }
    CustomersScreen #customer-query { width: 1fr; }
    CustomersScreen #customer-field { width: 34; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("slash", "focus_search", "Search")]

    def __init__(self, ctx: ConsoleContext) -> None:
        super().__init__(ctx)
        self.last: q.SearchPage | None = None

    def compose(self) -> ComposeResult:
        with Horizontal(classes="bar"):
            yield Input(
                placeholder="customer no, name, phone, meter or area code — Enter searches",
                id="customer-query",
            )
            yield Select(
                [(f.label, f.value) for f in q.SearchField],
                value=q.SearchField.AUTO.value,
                allow_blank=False,
                id="customer-field",
            )
            yield Button("Search", variant="primary", id="customer-search")
        yield PagedTable(COLUMNS, page_size=q.PAGE, id="customer-table")

    def on_mount(self) -> None:
        self.query_one("#customer-query", Input).focus()

    def palette_commands(self) -> Iterable[SystemCommand]:
        yield SystemCommand(
            "Search customers", "type in the search field (/)", self.action_focus_search
        )

    def action_focus_search(self) -> None:
        self.query_one("#customer-query", Input).focus()

    @on(Input.Submitted, "#customer-query")
    @on(Button.Pressed, "#customer-search")
    def run_search(self) -> None:
        """Search for what is typed, in the chosen field, from the first page."""
        text = self.query_one("#customer-query", Input).value
        field = q.SearchField(str(self.query_one("#customer-field", Select).value))
        self.query_one(PagedTable).load(self._fetcher(text, field))

    def _fetcher(self, text: str, field: q.SearchField) -> Fetch:
        ctx = self.ctx

        def fetch(cursor: object | None, limit: int) -> Page:
            page = q.search(
                ctx.engine,
                text,
                field,
                after=cast("tuple[object, ...] | None", cursor),
                limit=limit,
                supply_unit=ctx.user.supply_unit,
            )
            self.last = page
            rows = [
                (
                    r.customer_no,
                    r.name,
                    r.phone,
                    r.meter_address,
                    r.area,
                    r.supply_unit,
                    _money(r.balance_fen),
                    r.flags,
                )
                for r in page.rows
            ]
            note = page.note or f"by {page.field.label}"
            return Page(rows, [str(r.id) for r in page.rows], page.next_cursor, note)

        return fetch

    @on(PagedTable.RowChosen, "#customer-table")
    def _open(self, event: PagedTable.RowChosen) -> None:
        event.stop()
        self.app.push_screen(CustomerDetailScreen(self.ctx, int(event.key)))


class CustomerDetailScreen(Screen[None]):
    """One customer: account, readings, charges, balance chart, messages, commands, history."""

    DEFAULT_CSS = """
    CustomerDetailScreen #detail-title { text-style: bold; padding: 0 1; }
    CustomerDetailScreen .bar { height: auto; }
    CustomerDetailScreen DataTable { height: 1fr; }
    CustomerDetailScreen #detail-facts { height: auto; padding: 0 1; }
    CustomerDetailScreen TrendChart { height: 1fr; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("m", "meter", "Meter commands"),
    ]

    def __init__(self, ctx: ConsoleContext, account_id: int) -> None:
        super().__init__()
        self.ctx = ctx
        self.account_id = account_id
        self.detail: q.AccountDetail | None = None

    def compose(self) -> ComposeResult:
        yield Header(icon="≡")
        with Horizontal(classes="bar"):
            yield Label("loading…", id="detail-title")
            yield Button(
                "Meter commands",
                id="detail-meter",
                disabled=not any(
                    self.ctx.may(a)
                    for a in (Action.READ_METER, Action.TRIP, Action.PERMIT_CLOSE, Action.GUARANTEE)
                ),
            )
            yield Button("Back", id="detail-back")
        with TabbedContent(id="detail-tabs"):
            with TabPane("Account", id="tab-account"), VerticalScroll():
                yield Static("", id="detail-facts")
            with TabPane("Readings", id="tab-readings"):
                yield self._table("detail-readings", "day", "energy kWh", "registers", "collected")
            with TabPane("Charges", id="tab-charges"):
                yield self._table(
                    "detail-charges",
                    "day",
                    "reading kWh",
                    "energy kWh",
                    "charge",
                    "period kWh",
                    "period charge",
                    "balance",
                    "tier",
                )
            with TabPane("Balance", id="tab-balance"):
                yield TrendChart("real-time balance after each day's charge", y_label="yuan")
            with TabPane("Messages", id="tab-messages"):
                yield self._table(
                    "detail-messages", "id", "created", "kind", "channel", "status", "text"
                )
            with TabPane("Commands", id="tab-commands"):
                yield self._table(
                    "detail-jobs", "job", "kind", "state", "created", "ended", "error"
                )
            with TabPane("History", id="tab-history"):
                yield self._table("detail-history", "at", "what", "who", "detail")
        yield Footer()

    @staticmethod
    def _table(table_id: str, *columns: str) -> DataTable[str | Text]:
        table: DataTable[str | Text] = Table(id=table_id, cursor_type="row", zebra_stripes=True)
        table.add_columns(*columns)
        return table

    def on_mount(self) -> None:
        self._load()

    @work(thread=True, exclusive=True, group="detail")
    def _load(self) -> None:
        engine = self.ctx.engine
        detail = q.account_detail(engine, self.account_id)
        if detail is None:
            self.app.call_from_thread(self._missing)
            return
        until = self.ctx.clock.now().date()
        data = (
            detail,
            q.readings(engine, detail.meter_address),
            q.charges(engine, detail.id, until=until),
            q.messages(engine, detail.customer_no),
            q.jobs(engine, detail.meter_address),
            q.history(engine, detail.id),
        )
        self.app.call_from_thread(self._show, *data)

    def _missing(self) -> None:
        self.query_one("#detail-title", Label).update(
            f"account {self.account_id} is not in the database any more; press Escape"
        )

    def _show(
        self,
        detail: q.AccountDetail,
        readings: list[q.ReadingRow],
        charges: list[q.ChargeRow],
        messages: list[q.MessageRow],
        jobs: list[q.JobRow],
        history: list[q.HistoryRow],
    ) -> None:
        self.detail = detail
        self.title = f"Customer {detail.customer_no}"
        self.sub_title = detail.name
        self.query_one("#detail-title", Label).update(
            f"{detail.customer_no} {detail.name} — balance {q.yuan(detail.balance_fen)} yuan"
        )
        facts = Text()
        for label, value in detail.facts():
            facts.append(f"{label:<28}", style="bold")
            facts.append(f"{value}\n")
        self.query_one("#detail-facts", Static).update(facts)
        t = self.query_one("#detail-readings", DataTable)
        for r in readings:
            kwh = "-" if r.energy_ckwh is None else q.yuan(r.energy_ckwh)
            t.add_row(r.day.isoformat(), Text(kwh, justify="right"), r.value, _when(r.collected_at))
        t = self.query_one("#detail-charges", DataTable)
        for c in reversed(charges):
            t.add_row(
                c.day.isoformat(),
                Text(q.yuan(c.reading_ckwh), justify="right"),
                Text(q.yuan(c.energy_ckwh), justify="right"),
                _money(c.amount_fen),
                Text(q.yuan(c.period_ckwh), justify="right"),
                _money(c.charged_fen),
                _money(c.balance_fen),
                str(c.tier),
            )
        days, balances = q.balance_series(charges)
        self.query_one(TrendChart).show(days, {"balance": balances})
        t = self.query_one("#detail-messages", DataTable)
        for m in messages:
            t.add_row(str(m.id), _when(m.created_at), m.kind, m.channel, m.status, m.text)
        t = self.query_one("#detail-jobs", DataTable)
        for j in jobs:
            t.add_row(
                j.id, j.kind, j.state, _when(j.created_at), _when(j.finished_at), j.error or ""
            )
        t = self.query_one("#detail-history", DataTable)
        for h in history:
            t.add_row(_when(h.at), h.what, h.who, h.detail)

    @on(Button.Pressed, "#detail-back")
    def _back(self) -> None:
        self.app.pop_screen()

    @on(Button.Pressed, "#detail-meter")
    def action_meter(self) -> None:
        if self.detail is None or self.query_one("#detail-meter", Button).disabled:
            return
        app = cast("ConsoleApp", self.app)
        if hasattr(app, "open_meter"):
            app.open_meter(self.detail.meter_address)


def _when(moment: object) -> str:
    if moment is None:
        return ""
    text = (
        moment.isoformat(sep=" ", timespec="seconds")
        if hasattr(moment, "isoformat")
        else str(moment)
    )
    return str(text)
