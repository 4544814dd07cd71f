"""The power-guarantee registry (保电登记): lines, areas and customers that are never
disconnected, and customers whose account record says so.

Add a line, area or customer (a reason is kept with the change) or remove the one under
the cursor; it is the ``power_guarantee`` setting at that level, set through the
settings store (the ``guarantee`` role, validation and the audit log there). A
disconnection request for a guaranteed customer is refused with the reason, also one
approved before the guarantee was set.
"""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.widgets import Button, DataTable, Input, Label, Select

from prepaid.settings import Level
from prepaid.users import Action

from ..context import ConsoleContext
from ..queries.settings import GUARANTEE, GuaranteeEntry, guarantee_registry, settings_store
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

__all__ = ["GuaranteeScreen"]

_LEVELS = (Level.LINE, Level.AREA, Level.CUSTOMER)


class GuaranteeScreen(RefreshOnResume, ConsoleScreen):
    """Who is under power guarantee, by line, area and customer; add and remove."""

    KEY = "guarantee"
    TITLE = "Power guarantee (保电)"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("r", "refresh", "Refresh")]
    DEFAULT_CSS = """
    GuaranteeScreen #registry { height: 1fr; }
    GuaranteeScreen .bar { height: auto; }
    GuaranteeScreen .bar Select { width: 26; }
    GuaranteeScreen #key { width: 24; }
    GuaranteeScreen #reason { width: 1fr; }
    """

    def __init__(self, ctx: ConsoleContext) -> None:
        super().__init__(ctx)
        self.store = settings_store(ctx)
        self.entries: dict[str, GuaranteeEntry] = {}

    def compose(self) -> ComposeResult:
        may = self.allowed(Action.GUARANTEE)
        yield Label(
            "Customers here are never disconnected: a request is refused with the reason.",
            id="title",
        )
        yield Table(id="registry", cursor_type="row", zebra_stripes=True)
        with Horizontal(classes="bar"):
            yield Select(
                [(f"{lv.value} ({lv.chinese})", lv.value) for lv in _LEVELS],
                value=Level.AREA.value,
                allow_blank=False,
                id="level",
                disabled=not may,
            )
            yield Input(placeholder="code", id="key", disabled=not may)
            yield Input(placeholder="reason (kept with the change)", id="reason", disabled=not may)
            yield Button("Add", id="add", variant="primary", disabled=not may)
            yield Button("Remove selected", id="remove", variant="warning", disabled=not may)
        yield StatusLine(id="status")

    def on_mount(self) -> None:
        self.query_one("#registry", DataTable).focus()
        self.query_one("#registry", DataTable).add_columns("level", "code", "set by", "since")
        self.reload()

    @property
    def status(self) -> StatusLine:
        return self.query_one("#status", StatusLine)

    @shows_errors
    def reload(self) -> None:
        table = self.query_one("#registry", DataTable)
        table.clear()
        self.entries = {}
        for e in guarantee_registry(self.store, self.ctx.engine):
            key = f"{e.level}:{e.key}"
            self.entries[key] = e
            level = "account (CIS record)" if e.level == "account" else e.level
            table.add_row(level, e.key, e.set_by, when(e.set_at), key=key)

    def action_refresh(self) -> None:
        self.reload()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "add":
            self.add_entry()
        elif event.button.id == "remove":
            self.remove_selected()

    def add_entry(self) -> None:
        level = Level(str(self.query_one("#level", Select).value))
        key = self.query_one("#key", Input).value.strip()
        reason = self.query_one("#reason", Input).value.strip()
        if not key:
            self.status.error(f"Type the {level.value}'s code to put under power guarantee.")
            return
        done = attempt(
            self.status,
            lambda: self.store.set(
                GUARANTEE, True, level=level, key=key, user=self.ctx.user, comment=reason
            ),
        )
        if done is None:
            return
        note = "" if done.changed else " (it was already)"
        self.status.ok(f"{level.value} {key} is under power guarantee{note}")
        self.query_one("#key", Input).value = ""
        self.reload()

    def remove_selected(self) -> None:
        chosen = selected_key(self.query_one("#registry", DataTable))
        entry = self.entries.get(chosen or "")
        if entry is None:
            self.status.error("Choose the entry to remove in the registry first.")
            return
        if not entry.removable:
            self.status.error(
                f"customer {entry.key} is guaranteed on its account record (from the CIS): "
                "change it there"
            )
            return
        reason = self.query_one("#reason", Input).value.strip()
        level = Level(entry.level)
        done = attempt(
            self.status,
            lambda: self.store.unset(
                GUARANTEE, level=level, key=entry.key, user=self.ctx.user, comment=reason
            ),
        )
        if done is not None:
            self.status.ok(f"{level.value} {entry.key}: power guarantee lifted")
            self.reload()
