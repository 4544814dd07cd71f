"""The help screen (帮助, F1 or ?): keys, screens and what each role may do."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown

from prepaid.users import PERMISSIONS, Operator, Role

__all__ = ["HelpScreen", "help_text"]

KEYS = """\
| key | what it does |
| --- | --- |
| F1 or ? | this help |
| F2 … F12 | go to the screens in the order of the navigation bar |
| Ctrl+P | command palette: every screen and action by name |
| Tab / Shift+Tab | next / previous field or button |
| Enter | search, choose the row, press the button |
| Escape | close a dialog or a detail view |
| Ctrl+L | log out |
| Ctrl+Q | quit |

The mouse works too: click a tab, a row, a button; scroll tables with the wheel.
"""


def help_text(user: Operator | None, screens: Sequence[tuple[str, str]]) -> str:
    """The help as Markdown: keys, ``(key, title)`` of the screens, the user's actions."""
    parts = ["# feikong operator console (费控操作台)", "", KEYS]
    if screens:
        parts += ["## Screens", "", "| key | screen |", "| --- | --- |"]
        parts += [
            f"| F{n} | {title} |" if n <= 12 else f"| — | {title} |"
            for n, (_, title) in enumerate(screens, start=2)
        ]
        parts.append("")
    if user is not None:
        mine = sorted(a.value for a, roles in PERMISSIONS.items() if user.roles & roles)
        parts += [
            f"## You: {user.display_name} ({user.login})",
            "",
            f"Roles: {user.role_text}; supply unit: {user.supply_unit or 'every unit'}.",
            "",
            f"You may: {', '.join(mine) or 'nothing yet (ask an admin for a role)'}. "
            "Buttons for other actions are disabled, and screens you cannot use are hidden.",
            "",
        ]
    parts += ["## Roles", "", "| role | may |", "| --- | --- |"]
    for role in Role:
        actions = ", ".join(a.value for a, roles in PERMISSIONS.items() if role in roles)
        parts.append(f"| {role.value} | {actions} |")
    return "\n".join(parts) + "\n"


class HelpScreen(ModalScreen[None]):
    """Keys, screens and roles; Escape, F1 or q closes it."""

    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll {
        width: 90%; height: 90%; border: thick $primary; background: $surface; padding: 0 1;
    }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss", "Close"),
        Binding("f1", "dismiss", "Close", show=False),
        Binding("q", "dismiss", "Close", show=False),
    ]

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Markdown(self.text, id="help-text")
