"""A confirmation dialog (确认对话框) for actions that change something real.

It says what will happen and to what, optionally asks for a reason (required when
``reason_required``), and returns a :class:`Confirmation` (or ``None`` when
cancelled) through :meth:`App.push_screen`'s callback.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

__all__ = ["ConfirmDialog", "Confirmation"]


@dataclass(frozen=True, slots=True)
class Confirmation:
    """The operator said yes; ``reason`` is what they typed (may be empty)."""

    reason: str = ""


class ConfirmDialog(ModalScreen[Confirmation | None]):
    """Ask "are you sure?"; Enter / the button confirms, Escape cancels."""

    DEFAULT_CSS = """
    ConfirmDialog { align: center middle; }
    ConfirmDialog > Vertical {
        width: 72; height: auto; border: thick $warning; background: $surface; padding: 1 2;
    }
    ConfirmDialog #confirm-title { text-style: bold; margin-bottom: 1; }
    ConfirmDialog #confirm-error { color: $error; height: auto; }
    ConfirmDialog Horizontal { height: auto; margin-top: 1; }
    ConfirmDialog Button { margin-right: 2; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(
        self,
        title: str,
        body: str,
        *,
        confirm_label: str = "Confirm",
        ask_reason: bool = False,
        reason_required: bool = False,
        reason_placeholder: str = "reason (kept in the audit log)",
    ) -> None:
        super().__init__()
        self.title_text = title
        self.body = body
        self.confirm_label = confirm_label
        self.ask_reason = ask_reason or reason_required
        self.reason_required = reason_required
        self.reason_placeholder = reason_placeholder

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.title_text, id="confirm-title")
            yield Static(self.body, id="confirm-body")
            if self.ask_reason:
                yield Input(placeholder=self.reason_placeholder, id="confirm-reason")
            yield Static("", id="confirm-error")
            with Horizontal():
                yield Button(self.confirm_label, variant="warning", id="confirm-yes")
                yield Button("Cancel", id="confirm-no")

    def on_mount(self) -> None:
        if self.ask_reason:
            self.query_one("#confirm-reason", Input).focus()
        else:
            self.query_one("#confirm-no", Button).focus()

    def _reason(self) -> str:
        return self.query_one("#confirm-reason", Input).value.strip() if self.ask_reason else ""

    @on(Button.Pressed, "#confirm-yes")
    @on(Input.Submitted, "#confirm-reason")
    def _confirm(self) -> None:
        reason = self._reason()
        if self.reason_required and not reason:
            self.query_one("#confirm-error", Static).update(
                "type a reason first: it is kept with the command and in the audit log"
            )
            return
        self.dismiss(Confirmation(reason))

    @on(Button.Pressed, "#confirm-no")
    def action_cancel(self) -> None:
        self.dismiss(None)
