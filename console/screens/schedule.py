"""The disconnection schedule (停电计划): approved disconnections, when the customer was
told, when the trip falls due and how long it waits for protected hours (保护时段).

An operator or approver may cancel a disconnection before its trip (with a reason);
the disconnection workflow decides whether it still can be.
"""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.widgets import Button, DataTable, Input, Label

from prepaid.users import Action

from ..context import ConsoleContext
from ..queries.approvals import fee_control, schedule
from ..widgets.table import Table
from ..widgets.workflow_common import (
    RefreshOnResume,
    StatusLine,
    attempt,
    selected_key,
    shows_errors,
    when,
)
from .base import ConsoleScreen

__all__ = ["ScheduleScreen"]


class ScheduleScreen(RefreshOnResume, ConsoleScreen):
    """Approved disconnections in the order their trips are planned."""

    KEY = "schedule"
    TITLE = "Disconnection schedule (停电计划)"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("r", "refresh", "Refresh")]
    DEFAULT_CSS = """
    ScheduleScreen #plan { height: 1fr; }
    ScheduleScreen #history { height: 8; }
    ScheduleScreen .bar { height: auto; }
    ScheduleScreen .bar Input { width: 1fr; }
    """

    def __init__(self, ctx: ConsoleContext) -> None:
        super().__init__(ctx)
        self.fc = fee_control(ctx)

    def compose(self) -> ComposeResult:
        yield Label(
            f"Now {when(self.ctx.clock.now())}. A trip due in protected hours waits for the next "
            "allowed moment; it is not dropped.",
            id="title",
        )
        yield Table(id="plan", cursor_type="row", zebra_stripes=True)
        with Horizontal(classes="bar"):
            yield Input(placeholder="reason (to cancel before the trip)", id="reason")
            yield Button(
                "Cancel disconnection",
                variant="warning",
                id="cancel",
                disabled=not self.allowed(Action.CANCEL_DISCONNECTION),
            )
            yield Button("Refresh", id="refresh")
        yield StatusLine(id="status")
        yield Label("History of the selected disconnection")
        yield Table(id="history", cursor_type="none")

    def on_mount(self) -> None:
        self.query_one("#plan", DataTable).focus()
        self.query_one("#plan", DataTable).add_columns(
            "number",
            "customer",
            "area",
            "state",
            "L1 / L2",
            "notice sent",
            "due",
            "trip planned",
            "waits (protected hours)",
            "trips",
        )
        self.query_one("#history", DataTable).add_columns("at", "who", "what", "to", "comment")
        self.refresh_plan()

    @property
    def status(self) -> StatusLine:
        return self.query_one("#status", StatusLine)

    @shows_errors
    def refresh_plan(self, *, announce_empty: bool = True) -> None:
        table = self.query_one("#plan", DataTable)
        table.clear()
        rows = schedule(self.fc, self.ctx)
        for row in rows:
            table.add_row(
                row.number,
                row.customer_no,
                row.area,
                row.state,
                row.approvals,
                when(row.notified_at),
                when(row.due_at),
                when(row.planned_at),
                row.wait_text,
                str(row.trips),
                key=row.number,
            )
        if not rows and announce_empty:
            self.status.info("No approved disconnection is waiting.")
        self.show_history()

    @shows_errors
    def show_history(self) -> None:
        table = self.query_one("#history", DataTable)
        table.clear()
        number = selected_key(self.query_one("#plan", DataTable))
        if number is None:
            return
        for ev in self.fc.disconnection.history(number):
            table.add_row(when(ev.at), ev.actor, ev.action, ev.to_state.value, ev.comment or "")

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == "plan":
            self.show_history()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "cancel":
            self.cancel_selected()
        elif event.button.id == "refresh":
            self.action_refresh()

    def action_refresh(self) -> None:
        self.refresh_plan()

    def cancel_selected(self) -> None:
        number = selected_key(self.query_one("#plan", DataTable))
        if number is None:
            self.status.error("Choose a disconnection in the schedule first.")
            return
        reason = self.query_one("#reason", Input).value.strip()
        if not reason:
            self.status.error(f"Type the reason for cancelling {number} first.")
            return
        done = attempt(
            self.status,
            lambda: self.fc.disconnection.cancel(number, by=self.ctx.user, reason=reason),
        )
        if done is not None:
            self.status.ok(f"{done.number}: {done.state.value} ({reason})")
            self.refresh_plan(announce_empty=False)
