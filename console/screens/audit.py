"""The audit log (审计日志): every change, login and refusal — who, when, what, target —
newest first, a page at a time, filtered by actor, action and target (exact, or a
prefix ending in ``*``: ``settings.*``); and "Verify chain", which recomputes the hash
chain from entry 1 with a progress bar and names the first changed, missing or
cut-off entry (:meth:`prepaid.audit.AuditLog.verify`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from sqlalchemy.exc import SQLAlchemyError
from textual import work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.widgets import Button, DataTable, Input, Label, ProgressBar

from prepaid.audit import AuditLog, ChainReport, canonical_json
from prepaid.users import Action

from ..context import ConsoleContext
from ..queries._paging import Pager
from ..queries.audit import audit_page
from ..widgets.table import Table
from ..widgets.workflow_common import RefreshOnResume, StatusLine, shows_errors, when
from .base import ConsoleScreen

__all__ = ["AuditScreen"]

_VERIFY_BATCH = 2000


class AuditScreen(RefreshOnResume, ConsoleScreen):
    """The audit log viewer and the chain check."""

    KEY = "audit"
    TITLE = "Audit log (审计日志)"
    ACTIONS = frozenset({Action.VIEW_AUDIT})
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "refresh", "Refresh"),
        Binding("n", "next_page", "Next page"),
        Binding("p", "previous_page", "Previous page"),
        Binding("v", "verify", "Verify chain"),
    ]
    DEFAULT_CSS = """
    AuditScreen #entries { height: 1fr; }
    AuditScreen .bar { height: auto; }
    AuditScreen .bar Input { width: 1fr; }
    AuditScreen #page { padding: 1 1 0 1; }
    AuditScreen #verify-progress { height: auto; }
    """

    def __init__(self, ctx: ConsoleContext) -> None:
        super().__init__(ctx)
        self.audit_log = AuditLog(ctx.engine, ctx.clock)
        self.pager = Pager()
        self.report: ChainReport | None = None

    def compose(self) -> ComposeResult:
        yield Label(
            "Append-only and hash-chained; newest first. Prefix filters end in *.", id="title"
        )
        with Horizontal(classes="bar"):
            yield Input(placeholder="actor (login)", id="actor")
            yield Input(placeholder="action (settings.* for a prefix)", id="action")
            yield Input(placeholder="target (operator:* …)", id="target")
            yield Button("Filter", id="filter")
        yield Table(id="entries", cursor_type="row", zebra_stripes=True)
        with Horizontal(classes="bar"):
            yield Button("◀ Previous", id="prev")
            yield Button("Next ▶", id="next")
            yield Label("", id="page")
            yield Button(
                "Verify chain",
                id="verify",
                variant="primary",
                disabled=not self.allowed(Action.VIEW_AUDIT),
            )
        yield ProgressBar(show_eta=False, id="verify-progress")
        yield StatusLine(id="status")

    def on_mount(self) -> None:
        self.query_one("#entries", DataTable).focus()
        self.query_one("#verify-progress", ProgressBar).display = False
        self.query_one("#entries", DataTable).add_columns(
            "#", "at", "actor", "action", "target", "details"
        )
        self.reload()

    def palette_commands(self) -> Iterable[SystemCommand]:
        yield SystemCommand(
            "Verify audit chain", "recompute the hash chain from entry #1", self.action_verify
        )

    @property
    def status(self) -> StatusLine:
        return self.query_one("#status", StatusLine)

    @shows_errors
    def reload(self) -> None:
        page = audit_page(
            self.ctx.engine,
            actor=self.query_one("#actor", Input).value,
            action=self.query_one("#action", Input).value,
            target=self.query_one("#target", Input).value,
            before=self.pager.before,
            size=self.pager.size,
        )
        self.pager.seen(page)
        table = self.query_one("#entries", DataTable)
        table.clear()
        for e in page.items:
            details = canonical_json(dict(e.details))
            table.add_row(
                str(e.id),
                when(e.at),
                e.actor,
                e.action,
                e.target,
                details if len(details) <= 80 else details[:79] + "…",
                key=str(e.id),
            )
        self.query_one("#page", Label).update(self.pager.label)

    def action_refresh(self) -> None:
        self.reload()

    def action_next_page(self) -> None:
        if self.pager.forward():
            self.reload()

    def action_previous_page(self) -> None:
        if self.pager.back():
            self.reload()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.pager.reset()
        self.reload()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        match event.button.id:
            case "filter":
                self.pager.reset()
                self.reload()
            case "prev":
                self.action_previous_page()
            case "next":
                self.action_next_page()
            case "verify":
                self.action_verify()

    def action_verify(self) -> None:
        if not self.allowed(Action.VIEW_AUDIT):
            self.status.error(
                f"{self.ctx.user.login} may not verify the audit log: that needs the role "
                "auditor or admin"
            )
            return
        self.query_one("#verify", Button).disabled = True
        bar = self.query_one("#verify-progress", ProgressBar)
        bar.update(total=None, progress=0)
        bar.display = True
        self.status.info("Verifying the audit chain from entry #1 …")
        self._verify()

    @work(thread=True, exclusive=True, group="verify")
    def _verify(self) -> None:
        def progress(checked: int, total: int) -> None:
            bar = self.query_one("#verify-progress", ProgressBar)
            self.app.call_from_thread(bar.update, total=max(total, 1), progress=checked)

        try:
            report = self.audit_log.verify(batch=_VERIFY_BATCH, progress=progress)
        except SQLAlchemyError as exc:  # the database went away: say so, never crash
            self.app.call_from_thread(self._verified, None, str(exc))
            return
        self.app.call_from_thread(self._verified, report, None)

    def _verified(self, report: ChainReport | None, error: str | None) -> None:
        self.query_one("#verify-progress", ProgressBar).display = False
        self.query_one("#verify", Button).disabled = False
        self.report = report
        if report is None:
            self.status.error(f"the audit log could not be read: {error}; check the database")
        elif report.ok:
            self.status.ok(str(report))
        else:
            self.status.error(
                f"{report}; entries up to #{report.last_id} are intact — keep the database "
                "as it is and tell the security officer"
            )
