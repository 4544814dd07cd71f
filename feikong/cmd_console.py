"""``feikong console``: the operator console (操作台) in the terminal or in a browser."""

from __future__ import annotations

import typer

from .cmd_settings import db_option, open_db
from .output import console, fail


def register(app: typer.Typer) -> None:
    app.command("console")(console_command)


def console_command(
    db: str | None = db_option(),
    web: bool = typer.Option(
        False, "--web", help="Serve the console to a browser (textual-serve) instead."
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="With --web: the address to listen on."),
    port: int = typer.Option(8000, "--port", help="With --web: the TCP port to listen on."),
    public_url: str | None = typer.Option(
        None,
        "--public-url",
        help="With --web: the URL browsers use (default http://HOST:PORT); needed behind a "
        "proxy or with --host 0.0.0.0.",
    ),
) -> None:
    """The operator console: log in, then dashboard, customers, meters and the workflows.

    Keys: F1 help, F2…F12 screens, Ctrl+P command palette, Ctrl+L log out, Ctrl+Q quit.
    """
    engine = open_db(db)  # migrates the head-end and prepaid schemas
    if web:
        from console.web import serve

        if not 0 < port < 65536:
            fail(f"--port wants 1..65535, got {port}", 2)
        url = engine.url.render_as_string(hide_password=False)
        engine.dispose()
        console.print(f"operator console on http://{host}:{port} (Ctrl+C stops)", highlight=False)
        try:
            serve(url, host=host, port=port, public_url=public_url)
        except OSError as exc:
            fail(
                f"cannot serve the console on {host}:{port}: {exc.strerror or exc}; "
                "choose another --port (or stop what listens there)",
                2,
            )
        return
    from console.app import ConsoleApp

    ConsoleApp(engine).run()
