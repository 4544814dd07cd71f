"""Work orders (工单): list and filter (kind, state, overdue), assign to a fault handler,
record the on-site result, close; with each work order's history.

The actions go through :class:`prepaid.workorders.WorkOrders` of the fee-control
workflows: an operator assigns, the assignee (a fault handler) records the result,
the assignee or an operator closes; a result on a disconnection-failure work order
moves its disconnection on. Refusals are shown with the service's reason.
"""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.widgets import Button, Checkbox, DataTable, Input, Label, Select

from prepaid.users import Action
from prepaid.workorders import (
    WorkOrder,
    WorkOrderKind,
    WorkOrderOutcome,
    WorkOrders,
    WorkOrderState,
)

from ..context import ConsoleContext
from ..queries._paging import Pager
from ..queries.approvals import fee_control
from ..queries.workorders import WorkOrderFilter, work_order_page
from ..widgets.table import Table
from ..widgets.workflow_common import (
    RefreshOnResume,
    StatusLine,
    attempt,
    keep_cursor,
    selected_key,
    shows_errors,
    when,
)
from .base import ConsoleScreen

__all__ = ["WorkOrdersScreen"]


class WorkOrdersScreen(RefreshOnResume, ConsoleScreen):
    """Every kind of work order, newest first, a page at a time."""

    KEY = "workorders"
    TITLE = "Work orders (工单)"
    ACTIONS = frozenset({Action.ASSIGN_WORK_ORDER, Action.RECORD_WORK_ORDER})
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "refresh", "Refresh"),
        Binding("n", "next_page", "Next page"),
        Binding("p", "previous_page", "Previous page"),
    ]
    DEFAULT_CSS = """
    WorkOrdersScreen #orders { height: 1fr; }
    WorkOrdersScreen #history { height: 7; }
    WorkOrdersScreen .bar { height: auto; }
    WorkOrdersScreen .bar Select { width: 30; }
    WorkOrdersScreen .bar Input { width: 1fr; }
    WorkOrdersScreen #page { padding: 1 1 0 1; }
    """

    def __init__(self, ctx: ConsoleContext) -> None:
        super().__init__(ctx)
        self.fc = fee_control(ctx)
        self.pager = Pager()
        self.orders: dict[str, WorkOrder] = {}

    @property
    def workorders(self) -> WorkOrders:
        return self.fc.workorders

    def compose(self) -> ComposeResult:
        may_assign = self.allowed(Action.ASSIGN_WORK_ORDER)
        may_record = self.allowed(Action.RECORD_WORK_ORDER)
        yield Label("Assign to a fault handler, record the on-site result, close.", id="title")
        with Horizontal(classes="bar"):
            yield Select([(k.value, k.value) for k in WorkOrderKind], prompt="any kind", id="kind")
            yield Select(
                [(s.value, s.value) for s in WorkOrderState], prompt="any state", id="state"
            )
            yield Checkbox("unfinished", id="unfinished")
            yield Checkbox("overdue", id="overdue")
        yield Table(id="orders", cursor_type="row", zebra_stripes=True)
        with Horizontal(classes="bar"):
            yield Button("◀ Previous", id="prev")
            yield Button("Next ▶", id="next")
            yield Label("", id="page")
        with Horizontal(classes="bar"):
            handlers = [
                (f"{login} ({n} open)", login)
                for login, n in self.workorders.handlers(self.ctx.user.supply_unit)
            ]
            yield Select(handlers, prompt="fault handler", id="handler", disabled=not may_assign)
            yield Button("Assign", id="assign", variant="primary", disabled=not may_assign)
            yield Button("Close", id="close", disabled=not (may_assign or may_record))
        with Horizontal(classes="bar"):
            yield Select(
                [(o.value, o.value) for o in WorkOrderOutcome],
                value=WorkOrderOutcome.DONE.value,
                allow_blank=False,
                id="outcome",
                disabled=not may_record,
            )
            yield Input(placeholder="what was done on site", id="result", disabled=not may_record)
            yield Button("Record result", id="record", variant="success", disabled=not may_record)
        yield StatusLine(id="status")
        yield Label("History of the selected work order")
        yield Table(id="history", cursor_type="none")

    def on_mount(self) -> None:
        self.query_one("#orders", DataTable).focus()
        self.query_one("#orders", DataTable).add_columns(
            "number", "kind", "state", "customer", "assignee", "due", "overdue", "summary"
        )
        self.query_one("#history", DataTable).add_columns("at", "who", "what", "to", "comment")
        self.reload()

    @property
    def status(self) -> StatusLine:
        return self.query_one("#status", StatusLine)

    def current_filter(self) -> WorkOrderFilter:
        kind = self.query_one("#kind", Select).value
        state = self.query_one("#state", Select).value
        return WorkOrderFilter(
            kind=WorkOrderKind(kind) if isinstance(kind, str) else None,
            state=WorkOrderState(state) if isinstance(state, str) else None,
            overdue=self.query_one("#overdue", Checkbox).value,
            unfinished=self.query_one("#unfinished", Checkbox).value,
            supply_unit=self.ctx.user.supply_unit,
        )

    @shows_errors
    def reload(self) -> None:
        now = self.ctx.clock.now()
        page = work_order_page(
            self.ctx.engine,
            self.current_filter(),
            now=now,
            before=self.pager.before,
            size=self.pager.size,
        )
        self.pager.seen(page)
        table = self.query_one("#orders", DataTable)
        keep = selected_key(table)
        table.clear()
        self.orders = {}
        for o in page.items:
            self.orders[o.number] = o
            table.add_row(
                o.number,
                o.kind.value,
                o.state.value,
                o.customer_no or o.meter_address or "-",
                o.assignee or "-",
                when(o.due_at),
                "OVERDUE" if o.overdue(now) else "",
                o.summary,
                key=o.number,
            )
        keep_cursor(table, keep)
        self.query_one("#page", Label).update(self.pager.label)
        self.show_history()

    @shows_errors
    def show_history(self) -> None:
        table = self.query_one("#history", DataTable)
        table.clear()
        number = self.selected
        if number is None:
            return
        for ev in self.workorders.history(number):
            table.add_row(when(ev.at), ev.actor, ev.action, ev.to_state.value, ev.comment or "")

    @property
    def selected(self) -> str | None:
        return selected_key(self.query_one("#orders", DataTable))

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id in ("kind", "state"):
            self.pager.reset()
            self.reload()

    def on_checkbox_changed(self, event: Checkbox.Changed) -> None:
        self.pager.reset()
        self.reload()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == "orders":
            self.show_history()

    def action_refresh(self) -> None:
        self.reload()

    def action_next_page(self) -> None:
        if self.pager.forward():
            self.reload()

    def action_previous_page(self) -> None:
        if self.pager.back():
            self.reload()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        match event.button.id:
            case "prev":
                self.action_previous_page()
            case "next":
                self.action_next_page()
            case "assign":
                self.assign()
            case "record":
                self.record()
            case "close":
                self.close_order()

    def _chosen(self) -> str | None:
        number = self.selected
        if number is None:
            self.status.error("Choose a work order in the list first.")
        return number

    def assign(self) -> None:
        number = self._chosen()
        if number is None:
            return
        handler = self.query_one("#handler", Select).value
        if not isinstance(handler, str):
            self.status.error("Choose the fault handler to assign it to.")
            return
        done = attempt(
            self.status, lambda: self.workorders.assign(number, handler, by=self.ctx.user)
        )
        if done is not None:
            self.status.ok(f"{done.number}: assigned to {done.assignee}")
            self.reload()

    def record(self) -> None:
        number = self._chosen()
        if number is None:
            return
        outcome = str(self.query_one("#outcome", Select).value)
        result = self.query_one("#result", Input).value
        done = attempt(
            self.status,
            lambda: self.workorders.record_result(
                number, outcome=outcome, result=result, by=self.ctx.user
            ),
        )
        if done is not None:
            self.status.ok(f"{done.number}: result recorded ({outcome}: {done.result})")
            self.query_one("#result", Input).value = ""
            self.reload()

    def close_order(self) -> None:
        number = self._chosen()
        if number is None:
            return
        done = attempt(self.status, lambda: self.workorders.close(number, by=self.ctx.user))
        if done is not None:
            self.status.ok(f"{done.number}: {done.state.value}")
            self.reload()
