"""``feikong headend …``: the head-end's database and meter archive."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from headend.errors import ArchiveFormatError, HeadendError

from .output import console, err_console, fail, print_json

if TYPE_CHECKING:  # the database stack is imported only by the commands that use it
    from sqlalchemy.engine import Engine

    from headend.archive import ImportReport

headend_app = typer.Typer(
    help="Head-end (主站): database, meter archive and channels.", no_args_is_help=True
)

_DB_HELP = (
    "Database URL: sqlite:///FILE or postgresql+psycopg://user:pass@host/db "
    "(default: $FEIKONG_DATA/feikong.db, ./data/feikong.db)."
)


def _db_option() -> Any:
    return typer.Option(None, "--db", envvar="FEIKONG_DB", help=_DB_HELP)


def _open(url: str | None) -> Engine:
    from headend.db import migrate, open_database

    try:
        engine = open_database(url)
        migrate(engine)
    except HeadendError as exc:
        fail(str(exc), 2)
    return engine


def migrate_command(db: str | None = _db_option()) -> None:
    from headend.db import migrate, open_database

    """Create or upgrade the head-end tables (Alembic); safe to run any number of times."""
    try:
        engine = open_database(db)
        revision = migrate(engine)
    except HeadendError as exc:
        fail(str(exc), 2)
    console.print(
        f"database {engine.url.render_as_string()} is at revision {revision}", highlight=False
    )


def _import_with_progress(engine: Engine, file: Path) -> ImportReport:
    from headend.archive import import_archive

    if not console.is_terminal:
        return import_archive(engine, file)
    columns = (
        TextColumn("importing"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err_console, transient=True) as bar:
        task = bar.add_task("import", total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        return import_archive(engine, file, progress=update)


def import_archive_command(
    file: Path = typer.Argument(..., help="Archive CSV (channels and/or meters)."),
    db: str | None = _db_option(),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Load channels and meters from CSV; bad rows are listed, good rows still load.

    Exit status: 0 if anything loaded, 1 if every row was bad, 2 if the file cannot
    be read.
    """
    engine = _open(db)
    try:
        report = _import_with_progress(engine, file)
    except ArchiveFormatError as exc:
        fail(str(exc), 2)
    except HeadendError as exc:
        fail(str(exc), 2)
    if as_json:
        print_json(report.to_dict())
    else:
        console.print(
            f"loaded {report.loaded} row(s): {report.channels_loaded} channel(s), "
            f"{report.meters_loaded} meter(s); {report.updated} updated, "
            f"{report.inserted} new; {len(report.errors)} bad row(s)",
            highlight=False,
        )
        for error in report.errors:
            console.print(str(error), highlight=False, soft_wrap=True, markup=False)
    if report.errors and report.loaded == 0:
        raise typer.Exit(1)


def export_archive_command(
    file: Path = typer.Argument(..., help="CSV file to write (the combined format)."),
    db: str | None = _db_option(),
) -> None:
    """Write every channel and meter to CSV; the file imports back unchanged."""
    from headend.archive import export_archive

    engine = _open(db)
    try:
        channels, meters = export_archive(engine, file)
    except HeadendError as exc:
        fail(str(exc), 2)
    console.print(f"exported {channels} channel(s) and {meters} meter(s) to {file}", markup=False)


headend_app.command("migrate")(migrate_command)
headend_app.command("import-archive")(import_archive_command)
headend_app.command("export-archive")(export_archive_command)


def register(app: typer.Typer) -> None:
    app.add_typer(headend_app, name="headend")
