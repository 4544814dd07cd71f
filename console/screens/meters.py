"""Meters (电表): the archive page by page, a meter's live status, and its commands.

Read now (召测: energy and relay), trip (拉闸), permit close (合闸允许) and power
guarantee on/off (保电) go to the head-end as jobs after a confirmation dialog; the
progress bar follows them until the head-end (``feikong headend run``) has carried them
out. A button is disabled when the operator's role may not take its action.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial
from typing import ClassVar, cast

from rich.text import Text
from textual import on
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Input, Static

from headend.errors import HeadendError
from prepaid.users import Action, UserError

from ..context import ConsoleContext
from ..queries.meters import Command, MeterCommands, MeterStatus, meter_page, meter_status
from ..widgets.confirm import Confirmation, ConfirmDialog
from ..widgets.paged_table import Fetch, Page, PagedTable
from ..widgets.progress import JobProgress, describe
from .base import ConsoleScreen

__all__ = ["MetersScreen"]

COLUMNS = ("meter", "customer", "name", "kind", "breaker", "channel", "in service")


class MetersScreen(ConsoleScreen):
    """Find a meter, see its status, send it a command."""

    KEY = "meters"
    TITLE = "Meters"
    ACTIONS = frozenset({Action.VIEW})
    DEFAULT_CSS = """
    MetersScreen .bar { height: auto; }
    MetersScreen #meter-query { width: 1fr; }
    MetersScreen #meter-list { width: 3fr; }
    MetersScreen #meter-side { width: 2fr; padding: 0 1; }
    MetersScreen #meter-status { height: auto; border: round $primary; padding: 0 1; }
    MetersScreen #meter-commands { height: auto; layout: grid; grid-size: 3; grid-gutter: 0 1; }
    MetersScreen #meter-commands Button { margin-top: 1; width: 100%; }
    MetersScreen #meter-message { height: auto; padding: 1 0 0 0; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("slash", "focus_search", "Search")]

    def __init__(self, ctx: ConsoleContext) -> None:
        super().__init__(ctx)
        self.commands = MeterCommands(ctx.engine, ctx.clock)
        self.selected: str | None = None
        self.status: MeterStatus | None = None
        self.last_jobs: list[str] = []

    def compose(self) -> ComposeResult:
        with Horizontal(classes="bar"):
            yield Input(placeholder="meter address (or its first digits) — Enter", id="meter-query")
            yield Button("Find", variant="primary", id="meter-find")
        with Horizontal():
            yield PagedTable(COLUMNS, id="meter-list")
            with Vertical(id="meter-side"):
                yield Static("choose a meter in the list", id="meter-status")
                with Horizontal(id="meter-commands"):
                    for command in Command:
                        yield Button(
                            command.label,
                            id=f"cmd-{command.value}",
                            variant="error" if command is Command.TRIP else "default",
                            disabled=True,
                        )
                yield Static("", id="meter-message")
                yield JobProgress(self.ctx.engine, id="meter-progress")

    def on_mount(self) -> None:
        self.query_one(PagedTable).load(self._fetcher(""))
        self.query_one("#meter-query", Input).focus()

    def on_screen_resume(self) -> None:
        # shown again: the meter's state may have changed meanwhile
        if self.selected is not None:
            self.refresh_status()

    def palette_commands(self) -> Iterable[SystemCommand]:
        yield SystemCommand("Find a meter", "type its address (/)", self.action_focus_search)
        if self.selected is not None:
            for command in Command:
                if self.allowed(command.action):
                    yield SystemCommand(
                        f"{command.label}: meter {self.selected}",
                        "asks for confirmation first",
                        partial(self.ask, command),
                    )

    def action_focus_search(self) -> None:
        self.query_one("#meter-query", Input).focus()

    def _fetcher(self, prefix: str) -> Fetch:
        engine = self.ctx.engine

        def fetch(cursor: object | None, limit: int) -> Page:
            rows, next_cursor = meter_page(
                engine, prefix, after=cast("str | None", cursor), limit=limit
            )
            cells = [
                (
                    r.address,
                    r.customer_no,
                    r.name,
                    r.kind,
                    r.breaker_type,
                    r.channel,
                    "yes" if r.active else "no",
                )
                for r in rows
            ]
            note = f"addresses starting {prefix}" if prefix else "every meter"
            if not rows:
                note = f"no meter's address starts with {prefix!r}"
            return Page(cells, [r.address for r in rows], next_cursor, note)

        return fetch

    @on(Input.Submitted, "#meter-query")
    @on(Button.Pressed, "#meter-find")
    def find(self) -> None:
        prefix = self.query_one("#meter-query", Input).value.strip()
        self.query_one(PagedTable).load(self._fetcher(prefix))
        if len(prefix) == 12 and prefix.isdigit():
            self.select(prefix)

    @on(PagedTable.RowChosen, "#meter-list")
    def _chosen(self, event: PagedTable.RowChosen) -> None:
        event.stop()
        self.select(event.key)

    def select(self, address: str) -> None:
        """Show meter ``address`` and enable the commands the operator may send."""
        self.selected = address
        self.refresh_status()

    def refresh_status(self) -> None:
        if self.selected is None:
            return
        status = meter_status(self.ctx.engine, self.selected)
        self.status = status
        box = self.query_one("#meter-status", Static)
        if status is None:
            box.update(Text(f"meter {self.selected} is not in the head-end archive", style="red"))
        else:
            text = Text()
            for label, value in status.facts():
                text.append(f"{label:<22}", style="bold")
                text.append(f"{value}\n")
            if status.recent:
                text.append("recent commands\n", style="bold")
                for job in status.recent[:5]:
                    text.append(f"  {describe(job)}\n")
            box.update(text)
        for command in Command:
            button = self.query_one(f"#cmd-{command.value}", Button)
            allowed = self.allowed(command.action)
            button.disabled = status is None or not allowed
            button.tooltip = None if allowed else f"your role may not {command.action.value}"

    @on(Button.Pressed, "#meter-commands Button")
    def _pressed(self, event: Button.Pressed) -> None:
        command = Command((event.button.id or "").removeprefix("cmd-"))
        self.ask(command)

    def ask(self, command: Command) -> None:
        """Open the confirmation dialog for ``command`` on the selected meter."""
        if self.selected is None or self.status is None or not self.allowed(command.action):
            return
        s = self.status
        who = f"{s.customer_no} {s.name}".strip() or "no customer"
        body = f"{command.label} on meter {s.address} ({who}).\n"
        if command is Command.TRIP:
            body += (
                "This trips the customer's supply now, outside the disconnection workflow "
                "(no approvals, no notice): for bench tests and emergencies."
            )
            if s.account_guarantee:
                body += "\nThe account is under power guarantee (保电): the meter will refuse."
        elif command is Command.READ:
            body += "Reads the energy and the relay state now."
        dialog = ConfirmDialog(
            f"{command.label} — meter {s.address}",
            body,
            confirm_label=command.label.split(" (")[0],
            ask_reason=command is not Command.READ,
            reason_required=command is Command.TRIP,
        )
        self.app.push_screen(dialog, partial(self._confirmed, command, s.address))

    def _confirmed(self, command: Command, address: str, answer: Confirmation | None) -> None:
        message = self.query_one("#meter-message", Static)
        if answer is None:
            message.update("cancelled: nothing was sent")
            return
        try:
            jobs = self.commands.send(
                self.ctx.user,
                command,
                address,
                reason=answer.reason,
                supply_unit=self.status.supply_unit if self.status else None,
            )
        except (UserError, HeadendError, ValueError) as exc:
            message.update(Text(f"not sent: {exc}", style="red"))
            return
        self.last_jobs = [j.id for j in jobs]
        message.update(
            f"{command.label}: {len(jobs)} job(s) queued for the head-end "
            "(feikong headend run carries them out)"
        )
        self.query_one(JobProgress).track(self.last_jobs)

    @on(JobProgress.Finished)
    def _finished(self) -> None:
        self.refresh_status()

    def show_meter(self, address: str) -> None:
        """Open with meter ``address`` chosen (from a customer's detail)."""
        self.query_one("#meter-query", Input).value = address
        self.find()
