"""Small pieces the workflow screens share: the status line that says what happened (or
what to do), a dialog asking for a comment, and formatting of times and money."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Concatenate, ParamSpec, Protocol, TypeVar

from sqlalchemy.exc import SQLAlchemyError
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, Input, Label, Static

from prepaid.audit import AuditError
from prepaid.messages import MessageError
from prepaid.service import ServiceError
from prepaid.settings import SettingsError
from prepaid.users import UserError
from prepaid.workflows import WorkflowError
from prepaid.workorders import WorkOrderError

__all__ = [
    "REFUSALS",
    "CommentDialog",
    "RefreshOnResume",
    "StatusLine",
    "attempt",
    "keep_cursor",
    "selected_key",
    "shows_errors",
    "when",
    "yuan",
]

T = TypeVar("T")
P = ParamSpec("P")

log = logging.getLogger(__name__)

REFUSALS: tuple[type[Exception], ...] = (
    WorkflowError,
    WorkOrderError,
    UserError,
    SettingsError,
    ServiceError,
    MessageError,
    AuditError,
    ValueError,
)
"""What the services raise on purpose: their messages say what is wrong and what to do."""


def when(value: datetime | None) -> str:
    return f"{value:%Y-%m-%d %H:%M}" if value else "-"


def yuan(fen: int) -> str:
    sign = "-" if fen < 0 else ""
    return f"{sign}{abs(fen) // 100}.{abs(fen) % 100:02d}"


class StatusLine(Static):
    """One line under a screen's actions: what was done, or why not and what to do."""

    DEFAULT_CSS = """
    StatusLine { height: auto; min-height: 1; padding: 0 1; }
    StatusLine.-error { color: $error; text-style: bold; }
    StatusLine.-ok { color: $success; }
    """

    def ok(self, text: str) -> None:
        self.remove_class("-error")
        self.add_class("-ok")
        self.update(text)

    def error(self, text: str) -> None:
        self.remove_class("-ok")
        self.add_class("-error")
        self.update(text)

    def info(self, text: str) -> None:
        self.remove_class("-ok", "-error")
        self.update(text)

    @property
    def text(self) -> str:
        return str(self.render())


class _HasStatus(Protocol):
    @property
    def status(self) -> StatusLine: ...


S = TypeVar("S", bound=_HasStatus)


def shows_errors(
    method: Callable[Concatenate[S, P], None],
) -> Callable[Concatenate[S, P], None]:
    """Decorate a screen's loading method: a database that cannot be read (gone, not
    migrated, locked) is said on the status line instead of ending the console."""

    def guarded(self: S, /, *args: P.args, **kwargs: P.kwargs) -> None:
        try:
            method(self, *args, **kwargs)
        except SQLAlchemyError as exc:
            log.exception("a console screen could not read the database")
            orig = getattr(exc, "orig", None)
            reason = str(orig if orig is not None else exc) or type(exc).__name__
            self.status.error(
                f"the database could not be read ({reason.splitlines()[0]}); check that it is "
                "reachable (feikong console --db URL), then press r to retry"
            )
        except REFUSALS as exc:
            self.status.error(str(exc))

    functools.update_wrapper(guarded, method)
    return guarded


def attempt(status: StatusLine, step: Callable[[], T], *, refused: str = "refused") -> T | None:
    """Run a service call; a refusal is shown on ``status`` (its message says what to do)
    and ``None`` returned."""
    try:
        return step()
    except REFUSALS as exc:
        status.error(f"{refused}: {exc}")
        return None


def selected_key(table: DataTable[object]) -> str | None:
    """The key of the row under the cursor (``None`` for an empty table)."""
    if table.row_count == 0:
        return None
    try:
        row_key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
    except Exception:  # the cursor is outside the rows (the table was just cleared)
        return None
    return None if row_key.value is None else str(row_key.value)


class RefreshOnResume:
    """Mixin for a console screen: coming back to it (the app keeps each screen once it is
    built) shows the data as it is now, by calling the screen's ``action_refresh``."""

    _resumes: int = 0

    def on_screen_resume(self) -> None:
        self._resumes += 1
        if self._resumes > 1:  # the first is the screen being shown for the first time
            refresh: Callable[[], None] | None = getattr(self, "action_refresh", None)
            if refresh is not None:
                refresh()


def keep_cursor(table: DataTable[object], key: str | None) -> None:
    """Put the cursor back on the row ``key`` after the table was reloaded (if still there)."""
    if key is None:
        return
    try:
        table.move_cursor(row=table.get_row_index(key))
    except Exception:  # the row is gone (closed, filtered out): stay where we are
        return


class CommentDialog(ModalScreen[str | None]):
    """Ask for a comment or reason before an action; ``None`` when cancelled."""

    DEFAULT_CSS = """
    CommentDialog { align: center middle; }
    CommentDialog > Vertical { width: 70; height: auto; border: thick $primary; padding: 1 2;
                               background: $surface; }
    CommentDialog Horizontal { height: auto; margin-top: 1; }
    """

    def __init__(self, question: str, *, required: bool = False, placeholder: str = "") -> None:
        super().__init__()
        self.question = question
        self.required = required
        self.placeholder = placeholder

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.question)
            yield Input(placeholder=self.placeholder, id="dialog-comment")
            yield StatusLine(id="dialog-status")
            with Horizontal():
                yield Button("OK", variant="primary", id="dialog-ok")
                yield Button("Cancel", id="dialog-cancel")

    def on_mount(self) -> None:
        self.query_one("#dialog-comment", Input).focus()

    def _done(self) -> None:
        text = self.query_one("#dialog-comment", Input).value.strip()
        if self.required and not text:
            self.query_one("#dialog-status", StatusLine).error("type the reason first")
            return
        self.dismiss(text)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._done()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "dialog-ok":
            self._done()
        else:
            self.dismiss(None)
