"""Messages (消息): the outbox with delivery status, the custom-SMS composer and the list of
invalid phone numbers with a CSV export.

- **Outbox** (发件箱): every stored message, newest first, a page at a time, by status.
- **Custom SMS** (自定义短信): a text (≤ 300 characters) to the customers of chosen
  areas, lines, supply units or customer numbers (a union). "Count" says who would get
  it; "Send" sends it through :func:`prepaid.service.send_custom_sms` (the
  ``send-custom-sms`` role, the campaign record and the audit log there) in the
  background with a progress bar.
- **Invalid numbers** (无效号码): customers whose number cannot get an SMS and why;
  "Export CSV" writes them all (a BOM for Excel).
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import (
    Button,
    DataTable,
    Input,
    Label,
    ProgressBar,
    Select,
    TabbedContent,
    TabPane,
    TextArea,
)

from prepaid.messages import MessageStatus, sms_length
from prepaid.service import MAX_TEXT, Campaign, Selection, send_custom_sms
from prepaid.service.phones import export_invalid_phones, invalid_phones
from prepaid.users import Action

from ..context import ConsoleContext
from ..queries._paging import Pager
from ..queries.messages import invalid_phone_list, outbox_counts, outbox_page, parse_selection
from ..queries.settings import settings_store
from ..widgets.table import Table
from ..widgets.workflow_common import (
    REFUSALS,
    RefreshOnResume,
    StatusLine,
    attempt,
    shows_errors,
    when,
)
from .base import ConsoleScreen

__all__ = ["MessagesScreen"]

_SHOWN_INVALID = 1000


class MessagesScreen(RefreshOnResume, ConsoleScreen):
    """Outbox, custom SMS composer and invalid numbers, in three tabs."""

    KEY = "messages"
    TITLE = "Messages (消息)"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "refresh", "Refresh"),
        Binding("n", "next_page", "Next page"),
        Binding("p", "previous_page", "Previous page"),
    ]
    DEFAULT_CSS = """
    MessagesScreen TabbedContent { height: 1fr; }
    MessagesScreen #outbox, MessagesScreen #invalid { height: 1fr; }
    MessagesScreen .bar { height: auto; }
    MessagesScreen .bar Select { width: 28; }
    MessagesScreen .bar Input { width: 1fr; }
    MessagesScreen #text { height: 6; }
    MessagesScreen #page, MessagesScreen #counts, MessagesScreen #length { padding: 1 1 0 1; }
    """

    def __init__(self, ctx: ConsoleContext, *, export_dir: Path | None = None) -> None:
        super().__init__(ctx)
        self.store = settings_store(ctx)
        self.pager = Pager()
        self.export_dir = export_dir or Path.cwd()
        self.campaign: Campaign | None = None

    def compose(self) -> ComposeResult:
        may_send = self.allowed(Action.SEND_CUSTOM_SMS)
        with TabbedContent(id="tabs"):
            with TabPane("Outbox (发件箱)", id="tab-outbox"):
                with Horizontal(classes="bar"):
                    yield Select(
                        [(s.value, s.value) for s in MessageStatus],
                        prompt="any status",
                        id="status-filter",
                    )
                    yield Input(placeholder="customer number", id="customer-filter")
                    yield Label("", id="counts")
                yield Table(id="outbox", cursor_type="row", zebra_stripes=True)
                with Horizontal(classes="bar"):
                    yield Button("◀ Previous", id="prev")
                    yield Button("Next ▶", id="next")
                    yield Label("", id="page")
            with TabPane("Custom SMS (自定义短信)", id="tab-compose"), Vertical():
                yield Label(f"Text (at most {MAX_TEXT} characters):")
                yield TextArea(id="text", disabled=not may_send)
                yield Label("", id="length")
                with Horizontal(classes="bar"):
                    yield Input(placeholder="areas: A1, A2", id="areas")
                    yield Input(placeholder="lines: L1", id="lines")
                    yield Input(placeholder="supply units", id="units")
                    yield Input(placeholder="customer numbers", id="customers")
                with Horizontal(classes="bar"):
                    yield Button("Count recipients", id="count", disabled=not may_send)
                    yield Button("Send", id="send", variant="primary", disabled=not may_send)
                yield ProgressBar(total=None, show_eta=False, id="send-progress")
            with TabPane("Invalid numbers (无效号码)", id="tab-invalid"):
                with Horizontal(classes="bar"):
                    yield Input(value=str(self.export_dir / "invalid-phones.csv"), id="export-path")
                    yield Button("Export CSV", id="export")
                    yield Button("Refresh", id="refresh-invalid")
                yield ProgressBar(total=None, show_eta=False, id="export-progress")
                yield Table(id="invalid", cursor_type="row", zebra_stripes=True)
        yield StatusLine(id="status")

    def on_mount(self) -> None:
        self.query_one("#send-progress", ProgressBar).display = False
        self.query_one("#export-progress", ProgressBar).display = False
        self.query_one("#outbox", DataTable).add_columns(
            "id", "created", "kind", "customer", "phone", "status", "tries", "error", "text"
        )
        self.query_one("#invalid", DataTable).add_columns(
            "customer", "name", "phone", "problem", "detail", "area", "line"
        )
        if not self.allowed(Action.SEND_CUSTOM_SMS):
            self.query_one("#length", Label).update(
                f"{self.ctx.user.login} may not send custom SMS: that needs the role "
                "customer-service"
            )
        self.reload_outbox(counts=True)
        self.reload_invalid()

    @property
    def status(self) -> StatusLine:
        return self.query_one("#status", StatusLine)

    # -- outbox ------------------------------------------------------------------------

    @shows_errors
    def reload_outbox(self, *, counts: bool = False) -> None:
        """Show the current page; ``counts``: also count the messages per status (a scan of
        the outbox, so only on opening, refreshing and after a send)."""
        value = self.query_one("#status-filter", Select).value
        customer = self.query_one("#customer-filter", Input).value.strip() or None
        page = outbox_page(
            self.ctx.engine,
            status=MessageStatus(value) if isinstance(value, str) else None,
            customer_no=customer,
            before=self.pager.before,
            size=self.pager.size,
        )
        self.pager.seen(page)
        table = self.query_one("#outbox", DataTable)
        table.clear()
        for m in page.items:
            table.add_row(
                str(m.id),
                when(m.created_at),
                m.kind,
                m.customer_no,
                m.phone or "-",
                m.status,
                str(m.attempts),
                m.error,
                m.text if len(m.text) <= 60 else m.text[:59] + "…",
                key=str(m.id),
            )
        self.query_one("#page", Label).update(self.pager.label)
        if counts:
            per_status = outbox_counts(self.ctx.engine)
            self.query_one("#counts", Label).update(
                "  ".join(f"{k} {v}" for k, v in sorted(per_status.items()))
                or "the outbox is empty"
            )

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "status-filter":
            self.pager.reset()
            self.reload_outbox()

    def action_next_page(self) -> None:
        if self.pager.forward():
            self.reload_outbox()

    def action_previous_page(self) -> None:
        if self.pager.back():
            self.reload_outbox()

    def action_refresh(self) -> None:
        self.reload_outbox(counts=True)
        self.reload_invalid()

    # -- invalid numbers ---------------------------------------------------------------

    @shows_errors
    def reload_invalid(self) -> None:
        table = self.query_one("#invalid", DataTable)
        table.clear()
        found = invalid_phone_list(self.ctx.engine, self.store, limit=_SHOWN_INVALID)
        for p in found:
            table.add_row(
                p.recipient.customer_no,
                p.recipient.name,
                p.check.raw or "",
                p.check.problem.value if p.check.problem else "",
                p.check.detail,
                p.recipient.area,
                p.line,
            )

    def export(self) -> None:
        path = Path(self.query_one("#export-path", Input).value.strip()).expanduser()
        self.query_one("#export", Button).disabled = True
        self.query_one("#export-progress", ProgressBar).display = True
        self.status.info(f"Writing the invalid numbers to {path} …")
        self._export(path)

    @work(thread=True, exclusive=True, group="export")
    def _export(self, path: Path) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            found = list(invalid_phones(self.ctx.engine, settings=self.store))
            count = export_invalid_phones(found, path)
        except OSError as exc:
            error = f"cannot write {path}: {exc.strerror or exc}; choose another file"
            self.app.call_from_thread(self._exported, path, None, error)
            return
        except REFUSALS as exc:
            self.app.call_from_thread(self._exported, path, None, str(exc))
            return
        self.app.call_from_thread(self._exported, path, count, None)

    def _exported(self, path: Path, count: int | None, error: str | None) -> None:
        self.query_one("#export-progress", ProgressBar).display = False
        self.query_one("#export", Button).disabled = False
        if count is None:
            self.status.error(f"not exported: {error}")
        else:
            self.status.ok(f"{count} invalid numbers written to {path}")

    # -- custom SMS --------------------------------------------------------------------

    def on_text_area_changed(self, event: TextArea.Changed) -> None:
        text = event.text_area.text.strip()
        segments = sms_length(text).segments if text else 0
        self.query_one("#length", Label).update(
            f"{len(text)} / {MAX_TEXT} characters, {segments} SMS segment(s)"
        )

    def selection(self) -> Selection | None:
        return attempt(
            self.status,
            lambda: parse_selection(
                areas=self.query_one("#areas", Input).value,
                lines=self.query_one("#lines", Input).value,
                units=self.query_one("#units", Input).value,
                customers=self.query_one("#customers", Input).value,
            ),
            refused="cannot use that choice",
        )

    def count(self) -> None:
        chosen = self.selection()
        if chosen is None:
            return
        text = self.query_one("#text", TextArea).text
        found = attempt(
            self.status,
            lambda: send_custom_sms(
                self.ctx.engine,
                text,
                by=self.ctx.user,
                clock=self.ctx.clock,
                selection=chosen,
                settings=self.store,
                dry_run=True,
            ),
        )
        if found is not None:
            self.status.ok(
                f"{found.recipients} customers would get it ({found.skipped_paper} notified on "
                f"paper are left out): {chosen}"
            )

    def send(self) -> None:
        chosen = self.selection()
        if chosen is None:
            return
        text = self.query_one("#text", TextArea).text
        self.query_one("#send", Button).disabled = True
        bar = self.query_one("#send-progress", ProgressBar)
        bar.update(total=None, progress=0)
        bar.display = True
        self.status.info(f"Sending to {chosen} …")
        self._send(text, chosen)

    @work(thread=True, exclusive=True, group="send")
    def _send(self, text: str, chosen: Selection) -> None:
        def progress(done: int) -> None:
            self.app.call_from_thread(
                self.query_one("#send-progress", ProgressBar).update, progress=done
            )

        try:
            campaign = send_custom_sms(
                self.ctx.engine,
                text,
                by=self.ctx.user,
                clock=self.ctx.clock,
                selection=chosen,
                settings=self.store,
                progress=progress,
            )
        except REFUSALS as exc:
            self.app.call_from_thread(self._sent, None, str(exc))
            return
        self.app.call_from_thread(self._sent, campaign, None)

    def _sent(self, campaign: Campaign | None, error: str | None) -> None:
        self.query_one("#send-progress", ProgressBar).display = False
        self.query_one("#send", Button).disabled = False
        if campaign is None:
            self.status.error(f"not sent: {error}")
            return
        self.campaign = campaign
        self.status.ok(
            f"campaign {campaign.id}: recipients {campaign.recipients}, "
            f"queued {campaign.queued}, invalid {campaign.invalid}, "
            f"left out (paper) {campaign.skipped_paper} — see the outbox"
        )
        self.query_one("#text", TextArea).text = ""
        self.pager.reset()
        self.reload_outbox(counts=True)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        match event.button.id:
            case "prev":
                self.action_previous_page()
            case "next":
                self.action_next_page()
            case "count":
                self.count()
            case "send":
                self.send()
            case "export":
                self.export()
            case "refresh-invalid":
                self.reload_invalid()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "customer-filter":
            self.pager.reset()
            self.reload_outbox()
