"""Anomaly work orders (异常工单): meters without a daily reading for N days running.

Each gap has a work order for the least-loaded fault handler of its supply unit; the
list shows whether a reading has arrived since. The handler records what was done and
closes it here (through :mod:`prepaid.anomaly_orders`); an operator reassigns it on
the work-order screen.
"""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.widgets import Button, Checkbox, DataTable, Input, Label, Select

from prepaid.anomaly_orders import (
    close_anomaly_order,
    list_anomaly_orders,
    record_anomaly_result,
)
from prepaid.users import Action
from prepaid.workorders import WorkOrderOutcome

from ..context import ConsoleContext
from ..queries.approvals import fee_control
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

__all__ = ["AnomaliesScreen"]

_SHOWN = 500


class AnomaliesScreen(RefreshOnResume, ConsoleScreen):
    """Anomaly work orders of missing readings, newest first."""

    KEY = "anomalies"
    TITLE = "Anomalies (异常工单)"
    ACTIONS = frozenset({Action.ASSIGN_WORK_ORDER, Action.RECORD_WORK_ORDER})
    BINDINGS: ClassVar[list[BindingType]] = [Binding("r", "refresh", "Refresh")]
    DEFAULT_CSS = """
    AnomaliesScreen #anomalies { height: 1fr; }
    AnomaliesScreen #history { height: 7; }
    AnomaliesScreen .bar { height: auto; }
    AnomaliesScreen .bar Input { width: 1fr; }
    AnomaliesScreen .bar Select { width: 20; }
    """

    def __init__(self, ctx: ConsoleContext) -> None:
        super().__init__(ctx)
        self.fc = fee_control(ctx)

    def compose(self) -> ComposeResult:
        may_record = self.allowed(Action.RECORD_WORK_ORDER)
        yield Label(
            "Meters without a daily reading for days running; record what was done, then close.",
            id="title",
        )
        with Horizontal(classes="bar"):
            yield Checkbox("unfinished only", value=True, id="unfinished")
        yield Table(id="anomalies", cursor_type="row", zebra_stripes=True)
        with Horizontal(classes="bar"):
            yield Select(
                [(o.value, o.value) for o in WorkOrderOutcome],
                value=WorkOrderOutcome.DONE.value,
                allow_blank=False,
                id="outcome",
                disabled=not may_record,
            )
            yield Input(placeholder="what was done", id="result", disabled=not may_record)
            yield Button("Record result", id="record", variant="success", disabled=not may_record)
            yield Button(
                "Close",
                id="close",
                disabled=not (may_record or self.allowed(Action.ASSIGN_WORK_ORDER)),
            )
        yield StatusLine(id="status")
        yield Label("History of the selected work order")
        yield Table(id="history", cursor_type="none")

    def on_mount(self) -> None:
        self.query_one("#anomalies", DataTable).focus()
        self.query_one("#anomalies", DataTable).add_columns(
            "work order",
            "customer",
            "meter",
            "missing since",
            "days",
            "found",
            "state",
            "assignee",
            "reading since",
            "result",
        )
        self.query_one("#history", DataTable).add_columns("at", "who", "what", "to", "comment")
        self.reload()

    @property
    def status(self) -> StatusLine:
        return self.query_one("#status", StatusLine)

    @shows_errors
    def reload(self) -> None:
        table = self.query_one("#anomalies", DataTable)
        keep = selected_key(table)
        table.clear()
        unfinished = self.query_one("#unfinished", Checkbox).value
        for a in list_anomaly_orders(self.ctx.engine, unfinished=unfinished, limit=_SHOWN):
            if a.work_order_no is None:
                continue
            table.add_row(
                a.work_order_no,
                a.customer_no,
                a.meter_address,
                a.gap_start.isoformat(),
                str(a.missing_days),
                a.found_day.isoformat(),
                a.state or "-",
                a.assignee or "-",
                a.reading_since.isoformat() if a.reading_since else "-",
                a.result or "",
                key=a.work_order_no,
            )
        keep_cursor(table, keep)
        self.show_history()

    @shows_errors
    def show_history(self) -> None:
        table = self.query_one("#history", DataTable)
        table.clear()
        number = selected_key(self.query_one("#anomalies", DataTable))
        if number is None:
            return
        for ev in self.fc.workorders.history(number):
            table.add_row(when(ev.at), ev.actor, ev.action, ev.to_state.value, ev.comment or "")

    def on_checkbox_changed(self, event: Checkbox.Changed) -> None:
        self.reload()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == "anomalies":
            self.show_history()

    def action_refresh(self) -> None:
        self.reload()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        number = selected_key(self.query_one("#anomalies", DataTable))
        if event.button.id not in ("record", "close"):
            return
        if number is None:
            self.status.error("Choose an anomaly work order in the list first.")
            return
        ctx = self.ctx
        if event.button.id == "record":
            outcome = str(self.query_one("#outcome", Select).value)
            result = self.query_one("#result", Input).value
            done = attempt(
                self.status,
                lambda: record_anomaly_result(
                    ctx.engine,
                    number,
                    by=ctx.user,
                    result=result,
                    outcome=outcome,
                    clock=ctx.clock,
                    workorders=self.fc.workorders,
                ),
            )
            if done is not None:
                self.query_one("#result", Input).value = ""
                self.status.ok(f"{done.number}: result recorded ({outcome}: {done.result})")
        else:
            done = attempt(
                self.status,
                lambda: close_anomaly_order(
                    ctx.engine, number, by=ctx.user, clock=ctx.clock, workorders=self.fc.workorders
                ),
            )
            if done is not None:
                self.status.ok(f"{done.number}: {done.state.value}")
        self.reload()
