"""The operator console (操作台): a Textual app over the prepaid database.

``ConsoleApp(engine)`` starts at the login screen; after a login it shows the
screens of :data:`console.screens.SCREEN_PATHS` that the operator's roles may use,
in that order, in the navigation bar (F2…F12), the command palette (Ctrl+P) and the
help (F1 or ?). Screens are imported when the app starts and built on first use; a
screen whose module cannot be imported is left out and reported in the log and on
screen (the console still runs).

``feikong console [--db URL]`` runs it in the terminal, ``feikong console --web``
serves it to a browser (:mod:`console.web`).
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterable, Sequence
from functools import partial
from typing import Any, ClassVar

from sqlalchemy.engine import Engine
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.screen import ModalScreen, Screen

from prepaid.audit import AuditLog
from prepaid.users import Operator, Users
from protocol.clock import Clock, RealClock

from .context import ConsoleContext
from .screens import SCREEN_PATHS
from .screens.base import ConsoleScreen
from .screens.login import LoginScreen
from .widgets.help import HelpScreen, help_text

__all__ = ["ConsoleApp", "ScreenLoadError", "load_screens"]

log = logging.getLogger(__name__)


class ScreenLoadError(Exception):
    """A ``module:Class`` of SCREEN_PATHS that is not a console screen."""


def load_screens(
    paths: Sequence[str],
) -> tuple[list[type[ConsoleScreen]], list[str]]:
    """Import the screens of ``paths``; returns the classes and a message per failure."""
    screens: list[type[ConsoleScreen]] = []
    problems: list[str] = []
    for path in paths:
        module_name, _, class_name = path.partition(":")
        try:
            module = importlib.import_module(module_name)
            cls = getattr(module, class_name)
            if not (isinstance(cls, type) and issubclass(cls, ConsoleScreen)) or not cls.KEY:
                raise ScreenLoadError(f"{path} is not a ConsoleScreen with a KEY")
        except Exception as exc:  # one broken screen must not take the console down
            log.exception("console screen %s cannot be loaded", path)
            problems.append(f"screen {path} is left out: {exc}")
            continue
        screens.append(cls)
    return screens, problems


class ConsoleApp(App[None]):
    """The console; ``user`` skips the login (an operator already authenticated)."""

    TITLE = "feikong 费控"
    CSS = """
    Screen { layers: base overlay; }
    .hint { color: $text-muted; padding: 0 1; }
    .error { color: $error; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f1", "help", "Help"),
        Binding("question_mark", "help", "Help", show=False),
        Binding("ctrl+l", "logout", "Log out"),
        *(
            Binding(f"f{n}", f"goto_index({n - 2})", f"screen {n - 1}", show=False)
            for n in range(2, 13)
        ),
    ]

    def __init__(
        self,
        engine: Engine,
        *,
        clock: Clock | None = None,
        users: Users | None = None,
        user: Operator | None = None,
        screen_paths: Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        self.engine = engine
        self.clock: Clock = clock or RealClock()
        self.users = users or Users(engine, clock=self.clock)
        self.audit = AuditLog(engine, self.clock)
        self._preset_user = user
        self.screen_classes, self.load_problems = load_screens(
            SCREEN_PATHS if screen_paths is None else screen_paths
        )
        self.ctx: ConsoleContext | None = None
        self._installed: set[str] = set()

    # -- session --------------------------------------------------------------------

    def on_mount(self) -> None:
        for problem in self.load_problems:
            self.notify(problem, severity="error", timeout=10)
        self.push_screen(LoginScreen(self.users))
        if self._preset_user is not None:
            self.login(self._preset_user)

    @property
    def user(self) -> Operator | None:
        return self.ctx.user if self.ctx else None

    def visible_screens(self) -> list[type[ConsoleScreen]]:
        """The screens the logged-in operator may see, in navigation order."""
        if self.ctx is None:
            return []
        return [cls for cls in self.screen_classes if cls.visible_to(self.ctx.user)]

    def login(self, user: Operator) -> None:
        """Open the main view for ``user`` (already authenticated)."""
        self.ctx = ConsoleContext(engine=self.engine, clock=self.clock, user=user)
        units = user.supply_unit or "every unit"
        self.sub_title = f"{user.display_name} ({user.login}; {user.role_text}; {units})"
        screens = self.visible_screens()
        if not screens:
            self.ctx = None
            self.sub_title = ""
            self.notify(
                f"{user.login} has no role that opens a screen; ask an admin for one",
                severity="error",
            )
            return
        self.go(screens[0].KEY)

    def action_logout(self) -> None:
        """Back to the login screen; every screen of the session is dropped."""
        self.run_worker(self._logout(), exclusive=True, group="navigation")

    async def _logout(self) -> None:
        if self.ctx is None:
            return
        user = self.ctx.user
        self.ctx = None
        self.sub_title = ""
        while len(self.screen_stack) > 2:  # dialogs and details over the current screen
            await self.pop_screen()
        await self.switch_screen(LoginScreen(self.users))
        for key in list(self._installed):
            self.uninstall_screen(key)
        self._installed.clear()
        try:
            self.audit.record(user, "logout", f"operator:{user.login}", {"via": "console"})
        except Exception:  # the audit log is down: the logout itself still happens
            log.exception("could not record the logout of %s", user.login)

    # -- navigation -----------------------------------------------------------------

    async def show_screen(self, key: str) -> None:
        """Switch to the screen ``key`` (built on first use) if the operator may see it."""
        if self.ctx is None:
            return
        by_key = {cls.KEY: cls for cls in self.visible_screens()}
        cls = by_key.get(key)
        if cls is None:
            self.notify(f"no screen {key!r} for {self.ctx.user.login}", severity="warning")
            return
        if key not in self._installed:
            try:
                screen = cls(self.ctx)
            except Exception as exc:  # a broken screen must not end the session
                log.exception("console screen %s cannot be built", key)
                self.notify(f"the {cls.TITLE} screen cannot be opened: {exc}", severity="error")
                return
            self.install_screen(screen, name=key)
            self._installed.add(key)
        if self.screen.name == key:
            return
        await self.switch_screen(key)

    def open_meter(self, address: str) -> None:
        """Show meter ``address`` on the Meters screen (e.g. from a customer's detail)."""
        self.run_worker(self._open_meter(address), exclusive=True, group="navigation")

    async def _open_meter(self, address: str) -> None:
        if isinstance(self.screen, ModalScreen) or not isinstance(self.screen, ConsoleScreen):
            self.pop_screen()
        await self.show_screen("meters")
        screen = self.screen
        if hasattr(screen, "show_meter"):
            screen.show_meter(address)

    def action_goto_index(self, index: int) -> None:
        screens = self.visible_screens()
        if 0 <= index < len(screens):
            self.go(screens[index].KEY)

    def action_goto(self, key: str) -> None:
        self.go(key)

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            return
        screens = [(cls.KEY, cls.TITLE) for cls in self.visible_screens()]
        self.push_screen(HelpScreen(help_text(self.user, screens)))

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        for cls in self.visible_screens():
            yield SystemCommand(
                f"Go to {cls.TITLE}", f"open the {cls.TITLE} screen", partial(self.go, cls.KEY)
            )
        if isinstance(screen, ConsoleScreen):
            yield from screen.palette_commands()
        yield SystemCommand("Help", "keys, screens and roles (F1)", self.action_help)
        if self.ctx is not None:
            yield SystemCommand("Log out", "back to the login screen (Ctrl+L)", self.action_logout)
        yield from super().get_system_commands(screen)

    def go(self, key: str) -> None:
        """Switch to screen ``key`` (in a worker: never awaited inside a screen's handler,
        which may be the screen being replaced)."""
        self.run_worker(self.show_screen(key), exclusive=True, group="navigation")
