"""Settings (费控参数): the hierarchy editor — default → feeder line → transformer area →
customer — showing every value in force at a scope and where it comes from.

Choose a level and a code, see the settings in force there (the "from" column names
the level that set each value, or the defaults file), pick one, type a new value and
set it at that level, or unset it so the scope inherits again. The settings store
validates (a bad value, or one that would put the reminder below the dunning
threshold, is refused with its message), checks the role and writes the audit log.
"""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.widgets import Button, DataTable, Input, Label, Select

from prepaid.settings import ABSENT, Level, Resolved, Scope
from prepaid.users import Action

from ..context import ConsoleContext
from ..queries.settings import resolved_at, scope_of, settings_store
from ..widgets.table import Table
from ..widgets.workflow_common import (
    REFUSALS,
    RefreshOnResume,
    StatusLine,
    attempt,
    keep_cursor,
    selected_key,
    shows_errors,
    when,
)
from .base import ConsoleScreen

__all__ = ["SettingsScreen"]


class SettingsScreen(RefreshOnResume, ConsoleScreen):
    """The settings in force at one scope, with their sources; set or unset one."""

    KEY = "settings"
    TITLE = "Settings (费控参数)"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("r", "refresh", "Refresh")]
    DEFAULT_CSS = """
    SettingsScreen #settings { height: 1fr; }
    SettingsScreen #changes { height: 7; }
    SettingsScreen .bar { height: auto; }
    SettingsScreen .bar Select { width: 26; }
    SettingsScreen #key { width: 24; }
    SettingsScreen #value { width: 24; }
    SettingsScreen #comment { width: 1fr; }
    SettingsScreen #editing, SettingsScreen #scope { padding: 1 1 0 1; }
    """

    def __init__(self, ctx: ConsoleContext) -> None:
        super().__init__(ctx)
        self.store = settings_store(ctx)
        self.level = Level.DEFAULT
        self.key = ""
        self.resolved: dict[str, Resolved] = {}

    def compose(self) -> ComposeResult:
        may_edit = self.allowed(Action.EDIT_SETTINGS) or self.allowed(Action.GUARANTEE)
        yield Label(
            'Customer over area (台区) over line (线路) over the default; "from" says which.',
            id="title",
        )
        with Horizontal(classes="bar"):
            yield Select(
                [(f"{lv.value} ({lv.chinese})", lv.value) for lv in Level],
                value=Level.DEFAULT.value,
                allow_blank=False,
                id="level",
            )
            yield Input(placeholder="code (line, area or customer)", id="key")
            yield Button("Show", id="show")
            yield Label("", id="scope")
        yield Table(id="settings", cursor_type="row", zebra_stripes=True)
        with Horizontal(classes="bar"):
            yield Label("", id="editing")
            yield Input(placeholder="new value", id="value", disabled=not may_edit)
            yield Input(placeholder="comment (kept with the change)", id="comment")
            yield Button("Set here", id="set", variant="primary", disabled=not may_edit)
            yield Button("Unset here", id="unset", disabled=not may_edit)
        yield StatusLine(id="status")
        yield Label("Changes at this scope")
        yield Table(id="changes", cursor_type="none")

    def on_mount(self) -> None:
        self.query_one("#settings", DataTable).focus()
        self.query_one("#settings", DataTable).add_columns("setting", "中文", "value", "from")
        self.query_one("#changes", DataTable).add_columns(
            "at", "by", "setting", "old", "new", "comment"
        )
        self.show_scope()

    @property
    def status(self) -> StatusLine:
        return self.query_one("#status", StatusLine)

    @property
    def where(self) -> str:
        return self.level.value if self.level is Level.DEFAULT else f"{self.level.value} {self.key}"

    def show_scope(self) -> bool:
        """Read the level and code typed and show the settings in force there."""
        level = Level(str(self.query_one("#level", Select).value))
        key = self.query_one("#key", Input).value.strip()
        try:
            scope = scope_of(level, key)
            shown, rows = resolved_at(self.store, scope)
        except REFUSALS as exc:  # an unknown code, a missing one: say so, keep the old view
            self.status.error(f"{exc}")
            return False
        self.level, self.key = level, key
        self.render_rows(shown, rows)
        return True

    def render_rows(self, scope: Scope, rows: list[Resolved]) -> None:
        table = self.query_one("#settings", DataTable)
        keep = selected_key(table)
        table.clear()
        self.resolved = {r.spec.name: r for r in rows}
        for r in rows:
            table.add_row(r.spec.name, r.spec.chinese, r.text, str(r.source), key=r.spec.name)
        keep_cursor(table, keep)
        self.query_one("#scope", Label).update(f"in force at {scope}")
        self.show_changes()
        self.show_editing()

    @shows_errors
    def show_changes(self) -> None:
        table = self.query_one("#changes", DataTable)
        table.clear()
        key = None if self.level is Level.DEFAULT else self.key
        for c in self.store.history(level=self.level, key=key if key is not None else "", limit=50):
            table.add_row(
                when(c.at),
                c.by,
                c.spec.name,
                "-" if c.old is ABSENT else c.spec.kind.show(c.old),
                "-" if c.new is ABSENT else c.spec.kind.show(c.new),
                c.comment,
            )

    @property
    def selected(self) -> Resolved | None:
        name = selected_key(self.query_one("#settings", DataTable))
        return None if name is None else self.resolved.get(name)

    def show_editing(self) -> None:
        chosen = self.selected
        label = self.query_one("#editing", Label)
        if chosen is None:
            label.update("")
            return
        label.update(f"{chosen.spec.name} at {self.where}:")
        self.query_one("#value", Input).value = chosen.text

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == "settings":
            self.show_editing()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "key":
            self.show_scope()

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "level" and event.value == Level.DEFAULT.value:
            self.show_scope()

    def action_refresh(self) -> None:
        self.show_scope()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        match event.button.id:
            case "show":
                self.show_scope()
            case "set":
                self.change(unset=False)
            case "unset":
                self.change(unset=True)

    def change(self, *, unset: bool) -> None:
        level = Level(str(self.query_one("#level", Select).value))
        key = self.query_one("#key", Input).value.strip()
        if (level, key) != (self.level, self.key) and not self.show_scope():
            return
        chosen = self.selected
        if chosen is None:
            self.status.error("Choose the setting to change in the table first.")
            return
        name = chosen.spec.name
        comment = self.query_one("#comment", Input).value.strip()
        key_arg = None if self.level is Level.DEFAULT else self.key
        if unset:
            done = attempt(
                self.status,
                lambda: self.store.unset(
                    name, level=self.level, key=key_arg, user=self.ctx.user, comment=comment
                ),
            )
        else:
            value = self.query_one("#value", Input).value.strip()
            done = attempt(
                self.status,
                lambda: self.store.set(
                    name,
                    value,
                    level=self.level,
                    key=key_arg,
                    user=self.ctx.user,
                    comment=comment,
                ),
            )
        if done is None:
            return
        old = "not set" if done.old is ABSENT else done.spec.kind.show(done.old)
        new = "unset" if done.new is ABSENT else done.spec.kind.show(done.new)
        note = "" if done.changed else " (no change)"
        self.status.ok(f"{name} at {self.where}: {new} (was {old}){note}")
        self.query_one("#comment", Input).value = ""
        self.show_scope()
