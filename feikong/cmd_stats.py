"""``feikong stats …``: queries and statistics (查询统计) of the fee-control platform."""

from __future__ import annotations

import time
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from .cmd_settings import db_option, open_db
from .output import console, err_console, fail, print_json

if TYPE_CHECKING:  # the database stack is imported only by the commands that use it
    from prepaid.statistics import UnitOverview

stats_app = typer.Typer(help="Queries and statistics (查询统计).", no_args_is_help=True)


def _day(text: str | None) -> date:
    if text is None:
        return date.today()
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        fail(f"--date wants a day as YYYY-MM-DD (e.g. 2026-03-03), got {text!r}", 2)


def _rate(row: UnitOverview) -> str:
    if row.collection_rate is None:
        return "-"
    return f"{row.collection_rate * 100:.2f}%"


def _table(day: date, rows: list[UnitOverview], total: UnitOverview) -> Table:
    table = Table(
        title=f"fee-control overview {day.isoformat()} (费控概况)",
        title_justify="left",
        show_footer=True,
    )
    table.add_column("supply unit", footer=total.supply_unit)
    table.add_column("name", footer=total.name)
    for header, attr in (
        ("customers", "customers"),
        ("warning", "in_warning"),
        ("arrears", "in_arrears"),
        ("pending approval", "pending_approvals"),
        ("trips", "trips_today"),
        ("trip failures", "trip_failures"),
    ):
        table.add_column(header, justify="right", footer=str(getattr(total, attr)))
    table.add_column("collection", justify="right", footer=_rate(total))
    for r in rows:
        table.add_row(
            r.supply_unit,
            r.name,
            str(r.customers),
            str(r.in_warning),
            str(r.in_arrears),
            str(r.pending_approvals),
            str(r.trips_today),
            str(r.trip_failures),
            _rate(r),
        )
    return table


@stats_app.command("overview")
def overview_command(
    day: str | None = typer.Option(
        None, "--date", help="The day of trips and readings, YYYY-MM-DD (default: today)."
    ),
    db: str | None = db_option(),
    csv_path: Path | None = typer.Option(
        None, "--csv", help="Also write the rows and the total row to this CSV file."
    ),
    refresh: bool = typer.Option(
        False,
        "--refresh",
        help="Count the customers, balances and readings again now and store them "
        "(a pass over every account) instead of showing the stored counts.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Per supply unit: customers, in warning, in arrears, pending approvals, the day's
    trips and failed trips, and the collection rate (meters read that day / meters).

    Customers, warning, arrears and the collection rate are the counts stored by the
    day's rating (``feikong rate``) or the last ``--refresh``, and the output says as
    of when; a day never counted is counted now (and stored). Pending approvals and the
    day's trips are always counted now.
    """
    from sqlalchemy.exc import SQLAlchemyError

    from prepaid.statistics import (
        overview_total,
        refresh_overview,
        stored_overview,
        write_overview_csv,
    )

    the_day = _day(day)
    engine = open_db(db)
    started = time.perf_counter()
    try:
        stored = None if refresh else stored_overview(engine, the_day)
        counted = stored is None
        if stored is None:
            stored = refresh_overview(engine, the_day)
    except SQLAlchemyError as exc:
        fail(f"the overview could not be read from the database: {exc.__class__.__name__}: {exc}")
    finally:
        engine.dispose()
    elapsed = time.perf_counter() - started
    rows = list(stored.units)
    total = overview_total(rows)
    if csv_path is not None:
        try:
            write_overview_csv([*rows, total], csv_path)
        except OSError as exc:
            fail(f"cannot write {csv_path}: {exc.strerror or exc}; choose another --csv path")
    age = _age(stored.computed_at)
    if as_json:
        print_json(
            {
                "day": the_day.isoformat(),
                "units": [r.to_dict() for r in rows],
                "total": total.to_dict(),
                "computed_at": stored.computed_at.isoformat(timespec="seconds"),
                "source": stored.source.value,
                "counted_now": counted,
                "age_seconds": round(age),
                "seconds": round(elapsed, 3),
            }
        )
        return
    console.print(_table(the_day, rows, total))
    note = "counted now" if counted else f"{stored.as_of()} ({_age_text(age)} ago)"
    console.print(
        f"customers, warning, arrears and collection: {note}"
        + ("" if counted else "; --refresh counts them again")
        + "; pending approvals and trips: now",
        highlight=False,
    )
    if csv_path is not None:
        err_console.print(f"wrote {len(rows) + 1} rows to {csv_path}")


def _age(at: datetime) -> float:
    from protocol.clock import RealClock

    return max(0.0, (RealClock().now() - at).total_seconds())


def _age_text(seconds: float) -> str:
    minutes = int(seconds // 60)
    if minutes < 1:
        return "less than a minute"
    if minutes < 120:
        return f"{minutes} min"
    hours = minutes // 60
    if hours < 48:
        return f"{hours} h {minutes % 60} min"
    return f"{hours // 24} days"


def register(app: typer.Typer) -> None:
    """Add ``stats`` to ``feikong``."""
    app.add_typer(stats_app, name="stats")
