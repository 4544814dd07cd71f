"""``feikong demo`` (grows with the system; see the README)."""

from __future__ import annotations

import typer


def demo() -> None:
    """Run the whole system on one machine with embedded defaults."""
    from .demo_protocol import run_protocol_demo

    run_protocol_demo()


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
