"""The navigation bar (导航栏): a tab per screen the logged-in operator may see."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual.widgets import Tab, Tabs

if TYPE_CHECKING:
    from ..app import ConsoleApp

__all__ = ["NavigationBar"]


class NavigationBar(Tabs):
    """Tabs for the screens of :meth:`ConsoleApp.visible_screens`; a click switches."""

    DEFAULT_CSS = """
    NavigationBar { dock: top; margin-top: 1; }
    """

    def __init__(self, current: str) -> None:
        app = cast("ConsoleApp", self.app)
        visible = app.visible_screens() if hasattr(app, "visible_screens") else []
        tabs = [
            Tab(f"{screen.TITLE} [dim]F{n}[/]" if n <= 12 else screen.TITLE, id=f"nav-{screen.KEY}")
            for n, screen in enumerate(visible, start=2)
        ]
        super().__init__(*tabs, active=f"nav-{current}" if current else None)
        self.current = current

    def on_tabs_tab_activated(self, event: Tabs.TabActivated) -> None:
        event.stop()
        key = (event.tab.id or "").removeprefix("nav-")
        if key and key != self.current and hasattr(self.app, "go"):
            cast("ConsoleApp", self.app).go(key)
