"""Approvals (停电审批): the level-1 and level-2 queues of disconnection requests.

A user sees the queue of each level they hold and approves or rejects the request
under the cursor with a comment. The decision goes through the disconnection
workflow, which refuses what the user may not do — the requester approves nothing,
the level-2 approver is not the level-1 approver — and that refusal is shown as is.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.widgets import Button, DataTable, Input, Label, Select

from prepaid.users import Action
from prepaid.workflows import Disconnection

from ..context import ConsoleContext
from ..queries.approvals import QueueLevel, approval_queue, fee_control, levels_of
from ..widgets.table import Table
from ..widgets.workflow_common import (
    RefreshOnResume,
    StatusLine,
    attempt,
    selected_key,
    shows_errors,
    when,
    yuan,
)
from .base import ConsoleScreen

__all__ = ["ApprovalsScreen"]


class ApprovalsScreen(RefreshOnResume, ConsoleScreen):
    """Level-1 and level-2 approval queues; approve or reject with a comment."""

    KEY = "approvals"
    TITLE = "Approvals (停电审批)"
    ACTIONS = frozenset({Action.APPROVE_L1, Action.APPROVE_L2})
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "approve", "Approve"),
        Binding("x", "reject", "Reject"),
        Binding("r", "refresh", "Refresh"),
    ]
    DEFAULT_CSS = """
    ApprovalsScreen #queue { height: 1fr; }
    ApprovalsScreen #history { height: 8; }
    ApprovalsScreen .bar { height: auto; }
    ApprovalsScreen .bar Input { width: 1fr; }
    """

    def __init__(self, ctx: ConsoleContext) -> None:
        super().__init__(ctx)
        self.fc = fee_control(ctx)
        self.levels = levels_of(ctx)
        self.episodes: dict[str, Disconnection] = {}

    def compose(self) -> ComposeResult:
        held = ", ".join(level.title for level in self.levels) or "no approval role"
        yield Label(
            f"{self.ctx.user.login} holds: {held}. The requester approves nothing.", id="title"
        )
        options = [(level.title, level.action.value) for level in self.levels]
        with Horizontal(classes="bar"):
            yield Select(
                options,
                value=options[0][1] if options else Select.NULL,
                allow_blank=not options,
                id="level",
                disabled=len(options) < 2,
            )
        yield Table(id="queue", cursor_type="row", zebra_stripes=True)
        with Horizontal(classes="bar"):
            yield Input(placeholder="comment (the reason, to reject)", id="comment")
            yield Button("Approve", variant="success", id="approve", disabled=not self.levels)
            yield Button("Reject", variant="error", id="reject", disabled=not self.levels)
            yield Button("Refresh", id="refresh")
        yield StatusLine(id="status")
        yield Label("History of the selected request")
        yield Table(id="history", cursor_type="none")

    def on_mount(self) -> None:
        self.query_one("#queue", DataTable).focus()
        queue = self.query_one("#queue", DataTable)
        queue.add_columns(
            "number",
            "customer",
            "area",
            "balance",
            "threshold",
            "requested by",
            "at",
            "approve by",
            "overdue",
            "reason",
        )
        self.query_one("#history", DataTable).add_columns("at", "who", "what", "to", "comment")
        if not self.levels:
            self.status.info("You hold no approval role: nothing to approve here.")
        self.refresh_queue()

    def palette_commands(self) -> Iterable[SystemCommand]:
        yield SystemCommand("Approve", "approve the selected request", self.action_approve)
        yield SystemCommand(
            "Reject", "reject the selected request (the comment is the reason)", self.action_reject
        )

    @property
    def status(self) -> StatusLine:
        return self.query_one("#status", StatusLine)

    @property
    def level(self) -> QueueLevel | None:
        value = self.query_one("#level", Select).value
        for level in self.levels:
            if level.action.value == value:
                return level
        return None

    @shows_errors
    def refresh_queue(self) -> None:
        table = self.query_one("#queue", DataTable)
        table.clear()
        self.episodes = {}
        level = self.level
        if level is None:
            return
        for row in approval_queue(self.fc, self.ctx, level):
            e = row.episode
            self.episodes[e.number] = e
            table.add_row(
                e.number,
                e.customer_no,
                e.area or "-",
                yuan(e.balance_fen),
                yuan(e.threshold_fen),
                e.requested_by,
                when(e.requested_at),
                when(row.deadline),
                row.overdue_text,
                e.reason,
                key=e.number,
            )
        self.show_history()

    @shows_errors
    def show_history(self) -> None:
        table = self.query_one("#history", DataTable)
        table.clear()
        number = self.selected
        if number is None:
            return
        for ev in self.fc.disconnection.history(number):
            table.add_row(when(ev.at), ev.actor, ev.action, ev.to_state.value, ev.comment or "")

    @property
    def selected(self) -> str | None:
        return selected_key(self.query_one("#queue", DataTable))

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "level":
            self.refresh_queue()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == "queue":
            self.show_history()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        match event.button.id:
            case "approve":
                self.action_approve()
            case "reject":
                self.action_reject()
            case "refresh":
                self.action_refresh()

    def action_refresh(self) -> None:
        self.refresh_queue()

    def action_approve(self) -> None:
        level, number = self.level, self.selected
        if level is None or number is None:
            self.status.error("Nothing to approve: choose a request in the queue first.")
            return
        comment = self.query_one("#comment", Input).value.strip()
        step = (
            self.fc.disconnection.approve_l1
            if level.action is Action.APPROVE_L1
            else self.fc.disconnection.approve_l2
        )
        done = attempt(self.status, lambda: step(number, by=self.ctx.user, comment=comment))
        if done is None:
            return
        extra = ""
        if done.planned_at is not None and done.state.value == "notified":
            extra = f"; the customer is told the trip is planned for {when(done.planned_at)}"
        self.status.ok(f"{done.number}: {done.state.value}{extra}")
        self.query_one("#comment", Input).value = ""
        self.refresh_queue()

    def action_reject(self) -> None:
        number = self.selected
        if self.level is None or number is None:
            self.status.error("Nothing to reject: choose a request in the queue first.")
            return
        reason = self.query_one("#comment", Input).value.strip()
        if not reason:
            self.status.error(f"Type the reason for rejecting {number} in the comment first.")
            self.query_one("#comment", Input).focus()
            return
        done = attempt(
            self.status,
            lambda: self.fc.disconnection.reject(number, by=self.ctx.user, reason=reason),
        )
        if done is None:
            return
        self.status.ok(f"{done.number}: rejected ({reason})")
        self.query_one("#comment", Input).value = ""
        self.refresh_queue()
