"""Dunning (催费): batches per transformer area, their records, and printing the batch's
paper notices (纸质催费通知).

Printing renders the batch's paper and manual records with the existing notice code
(:func:`prepaid.dunning.print_batch`: an HTML file with a page per notice, and a text
file) into the notices directory (``$FEIKONG_NOTICES``, default ``./notices``) and
shows the path. It runs in the background with a progress bar.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import ClassVar

from textual import work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.widgets import Button, DataTable, Input, Label, ProgressBar

from prepaid.dunning import list_batches, list_records, print_batch
from prepaid.messages import NoticeFiles
from prepaid.users import Action

from ..context import ConsoleContext
from ..queries.dunning import notices_directory
from ..widgets.table import Table
from ..widgets.workflow_common import (
    REFUSALS,
    RefreshOnResume,
    StatusLine,
    keep_cursor,
    selected_key,
    shows_errors,
    when,
    yuan,
)
from .base import ConsoleScreen

__all__ = ["DunningScreen"]

_BATCHES = 200
_PRINT_ERRORS: tuple[type[Exception], ...] = (*REFUSALS, OSError)


class DunningScreen(RefreshOnResume, ConsoleScreen):
    """Dunning batches, newest first; the records of the one under the cursor."""

    KEY = "dunning"
    TITLE = "Dunning (催费)"
    ACTIONS = frozenset({Action.CREATE_DUNNING})
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "refresh", "Refresh"),
        Binding("o", "print_batch", "Print notices"),
    ]
    DEFAULT_CSS = """
    DunningScreen #batches { height: 1fr; }
    DunningScreen #records { height: 1fr; }
    DunningScreen .bar { height: auto; }
    DunningScreen .bar Input { width: 40; }
    DunningScreen #progress { height: auto; }
    """

    def __init__(self, ctx: ConsoleContext, *, notices_dir: Path | None = None) -> None:
        super().__init__(ctx)
        self.notices_dir = notices_dir or notices_directory()
        self.printed: NoticeFiles | None = None

    def compose(self) -> ComposeResult:
        yield Label(
            "Dunning batches per transformer area (台区); paper and manual records get printed "
            "notices.",
            id="title",
        )
        with Horizontal(classes="bar"):
            yield Input(placeholder="area code (empty: every area)", id="area")
            yield Button("Show", id="show")
            yield Button(
                "Print paper notices",
                id="print",
                variant="primary",
                disabled=not self.allowed(Action.CREATE_DUNNING),
            )
        yield ProgressBar(total=None, show_eta=False, id="progress")
        yield Table(id="batches", cursor_type="row", zebra_stripes=True)
        yield StatusLine(id="status")
        yield Label("Records of the selected batch")
        yield Table(id="records", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        self.query_one("#batches", DataTable).focus()
        self.query_one("#progress", ProgressBar).display = False
        self.query_one("#batches", DataTable).add_columns(
            "batch", "area", "created", "by", "records", "sms", "paper", "manual", "printed", "file"
        )
        self.query_one("#records", DataTable).add_columns(
            "customer", "name", "phone", "method", "balance", "due", "pay by", "message", "problem"
        )
        self.reload()

    def palette_commands(self) -> Iterable[SystemCommand]:
        yield SystemCommand(
            "Print paper notices", "print the selected dunning batch", self.action_print_batch
        )

    @property
    def status(self) -> StatusLine:
        return self.query_one("#status", StatusLine)

    @shows_errors
    def reload(self) -> None:
        table = self.query_one("#batches", DataTable)
        keep = selected_key(table)
        table.clear()
        area = self.query_one("#area", Input).value.strip() or None
        batches = list_batches(self.ctx.engine, area=area, limit=_BATCHES)
        for b in batches:
            table.add_row(
                b.batch_no,
                b.area,
                when(b.created_at),
                b.created_by,
                str(b.records),
                str(b.sms),
                str(b.paper),
                str(b.manual),
                when(b.printed_at),
                b.notice_file or "-",
                key=b.batch_no,
            )
        keep_cursor(table, keep)
        if not batches:
            self.status.info("No dunning batch" + (f" in area {area}." if area else "."))
        self.show_records()

    @shows_errors
    def show_records(self) -> None:
        table = self.query_one("#records", DataTable)
        table.clear()
        batch = selected_key(self.query_one("#batches", DataTable))
        if batch is None:
            return
        for r in list_records(self.ctx.engine, batch_no=batch, limit=1000):
            table.add_row(
                r.customer_no,
                r.name,
                r.phone or "-",
                r.method,
                yuan(r.balance_fen),
                yuan(r.amount_due_fen),
                when(r.pay_by),
                r.message_status or "-",
                r.phone_problem or "",
            )

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == "batches":
            self.show_records()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.reload()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "show":
            self.reload()
        elif event.button.id == "print":
            self.action_print_batch()

    def action_refresh(self) -> None:
        self.reload()

    def action_print_batch(self) -> None:
        if not self.allowed(Action.CREATE_DUNNING):
            self.status.error(
                f"{self.ctx.user.login} may not print dunning notices: that needs the role "
                "operator or customer-service"
            )
            return
        batch = selected_key(self.query_one("#batches", DataTable))
        if batch is None:
            self.status.error("Choose a batch to print first.")
            return
        self.query_one("#print", Button).disabled = True
        self.query_one("#progress", ProgressBar).display = True
        self.status.info(f"Printing the paper notices of {batch} into {self.notices_dir} …")
        self._print(batch)

    @work(thread=True, exclusive=True, group="print")
    def _print(self, batch: str) -> None:
        try:
            self.notices_dir.mkdir(parents=True, exist_ok=True)
            files = print_batch(self.ctx.engine, batch, self.notices_dir, clock=self.ctx.clock)
        except _PRINT_ERRORS as exc:
            self.app.call_from_thread(self._print_done, batch, None, str(exc))
            return
        self.app.call_from_thread(self._print_done, batch, files, None)

    def _print_done(self, batch: str, files: NoticeFiles | None, error: str | None) -> None:
        self.query_one("#progress", ProgressBar).display = False
        self.query_one("#print", Button).disabled = False
        if files is None:
            self.status.error(f"{batch} not printed: {error}")
            return
        self.printed = files
        self.status.ok(
            f"{batch}: {files.count} notices printed to {files.html} (text: {files.text})"
        )
        self.reload()
