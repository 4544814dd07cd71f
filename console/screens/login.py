"""The login screen (登录): login name and password, checked by :class:`prepaid.users.Users`.

A refusal (unknown login, wrong password, disabled account) is shown as the
message :mod:`prepaid.users` gives — it says what to do — and is in the audit log.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, cast

from textual import on
from textual.app import ComposeResult
from textual.containers import Center, Vertical
from textual.screen import Screen
from textual.widgets import Button, Footer, Input, Label, Static

from prepaid.users import AuthenticationError, Operator, Users

if TYPE_CHECKING:
    from ..app import ConsoleApp

__all__ = ["LoginScreen"]


class LoginScreen(Screen[None]):
    """Ask for the login and the password; on success the app opens the main view."""

    DEFAULT_CSS = """
    LoginScreen { align: center middle; }
    LoginScreen Vertical {
        width: 64; height: auto; border: thick $primary; padding: 1 2; background: $surface;
    }
    LoginScreen #login-title { text-style: bold; margin-bottom: 1; }
    LoginScreen Input { margin-bottom: 1; }
    LoginScreen #login-message { height: auto; min-height: 1; }
    LoginScreen .error { color: $error; }
    """

    def __init__(self, users: Users) -> None:
        super().__init__(name="login")
        self.users = users

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("feikong 费控 — operator console: log in", id="login-title")
            yield Input(placeholder="login name", id="login-name")
            yield Input(placeholder="password", password=True, id="login-password")
            with Center():
                yield Button("Log in", variant="primary", id="login-button")
            yield Static("", id="login-message")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#login-name", Input).focus()
        try:
            nobody = self.users.count() == 0
        except Exception:  # the database will say what is wrong at the first login
            nobody = False
        if nobody:
            self._message(
                "there are no operators yet: create the first admin with "
                "feikong users add LOGIN --name NAME --role admin",
                error=True,
            )

    def _message(self, text: str, *, error: bool) -> None:
        message = self.query_one("#login-message", Static)
        message.set_class(error, "error")
        message.update(text)

    @on(Input.Submitted, "#login-name")
    def _to_password(self) -> None:
        self.query_one("#login-password", Input).focus()

    @on(Input.Submitted, "#login-password")
    @on(Button.Pressed, "#login-button")
    async def _submit(self) -> None:
        login = self.query_one("#login-name", Input).value.strip()
        password = self.query_one("#login-password", Input).value
        if not login or not password:
            self._message("type your login name and your password", error=True)
            return
        self._message("checking…", error=False)
        button = self.query_one("#login-button", Button)
        button.disabled = True
        try:
            # scrypt takes a tenth of a second: off the event loop
            user: Operator = await asyncio.to_thread(self.users.authenticate, login, password)
        except AuthenticationError as exc:
            self.query_one("#login-password", Input).value = ""
            self.query_one("#login-password", Input).focus()
            self._message(f"login refused: {exc}", error=True)
            return
        finally:
            button.disabled = False
        cast("ConsoleApp", self.app).login(user)
