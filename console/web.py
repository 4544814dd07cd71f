"""The console in a browser (网页版操作台): :mod:`textual_serve` runs one console per tab.

:func:`serve` starts a small web server; each browser tab that opens the page gets
its own ``feikong console`` process (the same app, rendered in the page), which asks
for a login like the terminal console. The database URL travels in the child's
environment (``FEIKONG_DB``), never on a command line other users could list.
"""

from __future__ import annotations

import os
import shlex
import sys

from textual_serve.server import Server

__all__ = ["console_command", "make_server", "serve"]


def console_command(python: str = sys.executable) -> str:
    """The shell command the server runs per browser tab."""
    return f"{shlex.quote(python)} -m feikong console"


def make_server(
    db_url: str,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    public_url: str | None = None,
) -> Server:
    """A :class:`textual_serve.server.Server` for the console of ``db_url``."""
    os.environ["FEIKONG_DB"] = db_url  # inherited by every console the server starts
    return Server(
        console_command(),
        host=host,
        port=port,
        title="feikong 费控 operator console",
        public_url=public_url,
    )


def serve(
    db_url: str, *, host: str = "127.0.0.1", port: int = 8000, public_url: str | None = None
) -> None:
    """Serve the console until Ctrl+C (or SIGTERM)."""
    make_server(db_url, host=host, port=port, public_url=public_url).serve()
