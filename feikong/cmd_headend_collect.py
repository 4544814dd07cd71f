"""``feikong headend collect``: collect a day's daily freezes (日冻结采集) or re-collect (补抄).

Reads every active meter of the archive over its channel (or only ``--meter``
ones), stores the readings and the collection status, and prints a summary::

    2026-03-02: collected 9998 of 10000 meter(s) (99.98%), 2 missing in 1.4 s
      timeout      2

``--missing-only`` reads only the meters not yet collected for the day (补抄),
``--rounds N`` repeats that up to N times, ``--interval S`` seconds apart.
``--json`` prints the report as JSON. Exit status: 0 when the round ran (even if
some meters are missing), 1 when meters were read and none answered, 2 for a
bad option, database or archive.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from ._gc import serving_gc
from .output import console, err_console, fail, print_json

if TYPE_CHECKING:
    from headend.collection import CollectionReport

__all__ = ["collect_command"]

_DB_HELP = (
    "Database URL: sqlite:///FILE or postgresql+psycopg://user:pass@host/db "
    "(default: $FEIKONG_DATA/feikong.db, ./data/feikong.db)."
)


def _day(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        fail(f"--date wants YYYY-MM-DD (e.g. 2026-03-02), got {text!r}", 2)


@contextlib.contextmanager
def _progress(enabled: bool, label: str) -> Iterator[Callable[[int, int], None] | None]:
    if not enabled:
        yield None
        return
    columns = (
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err_console, transient=True) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def collect_command(
    date: Annotated[str, typer.Option("--date", metavar="YYYY-MM-DD", help="The day to collect.")],
    db: Annotated[str | None, typer.Option("--db", envvar="FEIKONG_DB", help=_DB_HELP)] = None,
    missing_only: Annotated[
        bool, typer.Option("--missing-only", help="补抄: only meters not collected yet.")
    ] = False,
    meter: Annotated[
        list[str] | None,
        typer.Option("--meter", metavar="ADDRESS", help="Only this meter (repeatable)."),
    ] = None,
    rounds: Annotated[
        int, typer.Option("--rounds", min=1, help="With --missing-only: up to N rounds.")
    ] = 1,
    interval: Annotated[
        float, typer.Option("--interval", min=0.0, help="Seconds between rounds.")
    ] = 60.0,
    timeout: Annotated[
        float, typer.Option("--timeout", min=0.01, help="Response timeout per request, s.")
    ] = 2.0,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Collect the daily freeze of --date from every active meter (or re-collect the missing)."""
    from headend.channels import ChannelPool
    from headend.collection import collect_day, recollect_missing
    from headend.db import migrate, open_database
    from headend.errors import HeadendError
    from protocol.errors import ProtocolError

    day = _day(date)
    if meter and missing_only:
        fail("give --meter or --missing-only, not both", 2)
    if rounds > 1 and not missing_only:
        fail("--rounds repeats re-collection: use it with --missing-only", 2)
    try:
        engine = open_database(db)
        migrate(engine)
    except HeadendError as exc:
        fail(escape(str(exc)), 2)

    async def run() -> CollectionReport:
        pool = ChannelPool.from_archive(engine, timeout=timeout)
        try:
            label = f"补抄 {day}" if missing_only else f"collecting {day}"
            with _progress(console.is_terminal and not as_json, label) as progress:
                if missing_only:
                    return await recollect_missing(
                        engine, pool, day, progress=progress, rounds=rounds, interval_s=interval
                    )
                return await collect_day(engine, pool, day, meters=meter, progress=progress)
        finally:
            await pool.aclose()

    try:
        with serving_gc():
            report = asyncio.run(run())
    except (HeadendError, ProtocolError) as exc:
        fail(escape(str(exc)), 2)
    finally:
        engine.dispose()
    if as_json:
        print_json(report.to_dict())
    else:
        _summary(report)
    if report.meters and not report.collected:
        raise typer.Exit(1)


def _summary(report: CollectionReport) -> None:
    console.print(
        f"{report.day}: collected {report.collected} of {report.meters} meter(s) "
        f"({report.rate:.2%}), {report.missing} missing in {report.elapsed_s:.1f} s"
        + (f" over {report.rounds} round(s)" if report.rounds > 1 else ""),
        highlight=False,
    )
    if report.reasons:
        table = Table("missing because", "meters", box=None, show_header=False)
        for reason, count in sorted(report.reasons.items(), key=lambda kv: -kv[1]):
            table.add_row(f"  {reason}", str(count))
        console.print(table)
    if report.unknown_meters:
        shown = ", ".join(report.unknown_meters[:5])
        more = len(report.unknown_meters) - 5
        console.print(
            f"not in the archive: {shown}" + (f" and {more} more" if more > 0 else ""),
            highlight=False,
            markup=False,
        )
