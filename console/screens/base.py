"""The base of every console screen and how the app finds the screens a user may see.

A screen declares a stable ``KEY`` (used by the command palette and the key bindings),
a ``TITLE`` and the :class:`~prepaid.users.Action` s that make it useful (``ACTIONS``;
empty means anyone who may view). The app shows a screen to a user who may take at
least one of them; inside the screen, buttons for actions the user may not take are
disabled (see :meth:`ConsoleScreen.allowed`).

A screen yields only its own content in ``compose``: on mount the base adds the
frame every screen shares — the header (who is logged in), the navigation bar (the
screens this user may see; click one, or F2…F12) and the footer with the keys.
:meth:`ConsoleScreen.palette_commands` adds the screen's own actions to the command
palette (Ctrl+P).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from textual.app import SystemCommand
from textual.events import Mount
from textual.screen import Screen
from textual.widgets import Footer, Header

from prepaid.users import Action, Operator, may

from ..context import ConsoleContext

__all__ = ["ConsoleScreen"]


class ConsoleScreen(Screen[None]):
    """A top-level console screen bound to a :class:`ConsoleContext`."""

    KEY: ClassVar[str] = ""
    TITLE: ClassVar[str] = ""
    ACTIONS: ClassVar[frozenset[Action]] = frozenset()

    def __init__(self, ctx: ConsoleContext) -> None:
        super().__init__(name=self.KEY or None)
        self.ctx = ctx

    @classmethod
    def visible_to(cls, user: Operator) -> bool:
        """Whether ``user`` sees this screen at all."""
        if not cls.ACTIONS:
            return may(user, Action.VIEW)
        return any(may(user, action) for action in cls.ACTIONS)

    def allowed(self, action: Action) -> bool:
        """Whether the logged-in operator may take ``action`` (to enable its buttons)."""
        return self.ctx.may(action)

    def palette_commands(self) -> Iterable[SystemCommand]:
        """This screen's own entries in the command palette (none by default)."""
        return ()

    def _on_mount(self, event: Mount) -> None:
        # the shared frame (a subclass's own on_mount runs too); imported here so that
        # the widgets may import this module
        from ..widgets.navigation import NavigationBar

        # the header: "<screen title> — <who is logged in>"
        self.sub_title = self.app.sub_title or self.TITLE
        self.mount(Header(icon="≡"), NavigationBar(self.KEY), Footer())
