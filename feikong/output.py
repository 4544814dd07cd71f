"""Output helpers shared by the CLI commands: one place for errors and JSON."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from typing import Any, NoReturn

import typer
from rich.console import Console

console = Console()
err_console = Console(stderr=True)


def fail(message: str, code: int = 1) -> NoReturn:
    """Print one clear error line and exit with ``code``."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")


def print_figures(lines: Iterable[tuple[str, Any]], as_json: bool) -> None:
    """A benchmark's figures: ``key=value`` a line (what scripts grep), or one JSON object."""
    if as_json:
        print_json(dict(lines))
        return
    for key, value in lines:
        console.print(f"{key}={value}", highlight=False)


def parse_host_port(text: str, option: str) -> tuple[str, int]:
    """``HOST:PORT`` → (host, port); exits with code 2 and a clear line otherwise."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        fail(f"{option} wants HOST:PORT (e.g. 127.0.0.1:6455), got {text!r}", 2)
    return host.strip("[]"), int(port)
