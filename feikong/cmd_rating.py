"""Rating commands: ``feikong generate``, ``feikong rate``, ``feikong anomalies`` and
``feikong bench rating``."""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from .output import console, err_console, fail, print_json

if TYPE_CHECKING:  # the database stack is imported only by the commands that use it
    from sqlalchemy.engine import Engine

    from prepaid.generate import GenerateReport
    from prepaid.rating import RatingReport

__all__ = ["register", "register_bench"]

_DB_HELP = (
    "Database URL: sqlite:///FILE or postgresql+psycopg://user:pass@host/db "
    "(default: $FEIKONG_DATA/feikong.db, ./data/feikong.db)."
)

DbOption = Annotated[str | None, typer.Option("--db", envvar="FEIKONG_DB", help=_DB_HELP)]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def _open(url: str | None) -> Engine:
    from prepaid.db import PrepaidDatabaseError, migrate, open_database

    try:
        engine = open_database(url)
        migrate(engine)
    except PrepaidDatabaseError as exc:
        fail(str(exc), 2)
    return engine


def _day(text: str, option: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        fail(f"{option} wants a date YYYY-MM-DD, got {text!r}", 2)


def _bar(label: str) -> Progress:
    return Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
    )


# -- generate --------------------------------------------------------------------------


def generate_command(
    customers: Annotated[int, typer.Option("--customers", min=1, help="Accounts to make.")],
    db: DbOption = None,
    days: Annotated[
        int, typer.Option("--days", min=1, max=366, help="Daily readings per meter.")
    ] = 30,
    seed: Annotated[int, typer.Option("--seed", help="Random seed (same seed, same data).")] = 1,
    start: Annotated[
        str, typer.Option("--start", help="Date of the first reading, YYYY-MM-DD.")
    ] = "2026-01-01",
    chunk: Annotated[
        int, typer.Option("--chunk", min=1000, help="Accounts per transaction.")
    ] = 100_000,
    as_json: JsonOption = False,
) -> None:
    """Make a synthetic population: organisation, accounts, meters and daily readings.

    Fills an empty database (SQLite file or PostgreSQL) with supply units, feeder lines,
    transformer areas, reading segments, accounts (Chinese names, phones — some
    unusable —, tariffs, household sizes, remote/local fee control, power-guarantee
    and vulnerable customers), the head-end's channels, meters and daily readings from
    --start, and each account's rating state at its first reading. Then rate the next
    days with ``feikong rate --date``.
    """
    from prepaid.generate import GenerateError, GenerateOptions, generate

    first = _day(start, "--start")
    try:
        options = GenerateOptions(
            customers=customers, days=days, seed=seed, start=first, chunk=chunk
        )
    except GenerateError as exc:
        fail(str(exc), 2)
    engine = _open(db)
    try:
        if console.is_terminal and not as_json:
            with _bar("generating") as bar:
                task = bar.add_task("generate", total=customers)
                report = generate(
                    engine, options, progress=lambda done, _t: bar.update(task, completed=done)
                )
        else:
            report = generate(engine, options)
    except GenerateError as exc:
        fail(str(exc), 2)
    if as_json:
        print_json(report.to_dict())
        return
    _print_generated(report)


def _print_generated(report: GenerateReport) -> None:
    table = Table(title="generated", show_header=False)
    rows = [
        ("accounts", report.customers),
        ("supply units", report.supply_units),
        ("feeder lines", report.feeder_lines),
        ("transformer areas", report.transformer_areas),
        ("reading segments", report.reading_segments),
        ("channels", report.channels),
        ("readings", report.readings),
        ("missing readings", report.missing_readings),
        ("unusable phones", report.invalid_phones),
        ("days", f"{report.first_day} .. {report.last_day}"),
    ]
    for name, value in rows:
        table.add_row(name, str(value))
    for code, n in sorted(report.tariffs.items()):
        table.add_row(f"tariff {code}", str(n))
    console.print(table)
    console.print(f"seconds={report.seconds:.1f}", highlight=False)


# -- rate ------------------------------------------------------------------------------


def _peak_rss_mib() -> float:
    """Peak resident memory of this process plus its largest child (the reader), MiB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return (own + children) / 1024


def rate_command(
    day_text: Annotated[str, typer.Option("--date", help="Date of the daily reading, YYYY-MM-DD.")],
    db: DbOption = None,
    chunk: Annotated[
        int, typer.Option("--chunk", min=1, help="Accounts per transaction.")
    ] = 100_000,
    pipeline: Annotated[
        bool,
        typer.Option("--pipeline/--no-pipeline", help="Read the next chunks in a second process."),
    ] = True,
    reminder: Annotated[
        str, typer.Option("--reminder", help="Default reminder amount, yuan (提醒金额).")
    ] = "20.00",
    jump_factor: Annotated[
        int,
        typer.Option("--jump-factor", min=1, help="Energy over this × the daily average: jump."),
    ] = 10,
    overview: Annotated[
        bool,
        typer.Option(
            "--overview/--no-overview",
            help="Then store the day's fee-control overview (the dashboard's figures).",
        ),
    ] = True,
    as_json: JsonOption = False,
) -> None:
    """Rate every active account for the daily frozen reading of --date (日算费).

    Cumulative: each account is charged its period-to-date charge minus what it was
    charged already. Idempotent: an account is rated once per day, so running it
    again (after a crash, or by mistake) charges nothing twice. Prints the day's count
    per outcome: normal, below the reminder amount, negative balance, missing
    reading, anomaly. Then, as a separate step (overview_s=, not part of seconds=),
    it counts and stores the day's fee-control overview per supply unit, which the
    console's dashboard and ``feikong stats overview`` show "as of the rating".
    """
    from prepaid.rating import RatingOptions, RatingRunError, rate_day
    from prepaid.tariff import TariffError, yuan_to_e4

    day = _day(day_text, "--date")
    try:
        reminder_fen = yuan_to_e4(reminder.strip(), key="--reminder") // 100
    except TariffError:
        fail(f"--reminder wants yuan with at most 2 decimals (e.g. 20.00), got {reminder!r}", 2)
    engine = _open(db)
    options = RatingOptions(reminder_fen=reminder_fen, jump_factor=jump_factor)
    try:
        if console.is_terminal and not as_json:
            with _bar(f"rating {day}") as bar:
                task = bar.add_task("rate", total=None)

                def update(done: int, total: int) -> None:
                    bar.update(task, completed=done, total=total)

                report = rate_day(
                    engine,
                    day,
                    options=options,
                    chunk_size=chunk,
                    pipeline=pipeline,
                    progress=update,
                )
        else:
            report = rate_day(engine, day, options=options, chunk_size=chunk, pipeline=pipeline)
    except RatingRunError as exc:
        fail(str(exc), 1)
    overview_s = None
    if overview and console.is_terminal and not as_json:
        with err_console.status(f"storing the overview of {day} (a pass over every account) …"):
            overview_s = _store_overview(engine, day)
    elif overview:
        overview_s = _store_overview(engine, day)
    peak = _peak_rss_mib()
    if as_json:
        extra = {} if overview_s is None else {"overview_seconds": round(overview_s, 3)}
        print_json({**report.to_dict(), "peak_rss_mib": round(peak, 1), **extra})
        return
    _print_rated(report, peak)
    if overview_s is not None:
        console.print(f"overview_s={overview_s:.2f}", highlight=False)


def _store_overview(engine: Engine, day: date) -> float | None:
    """Count and store the day's overview after the rating; seconds taken, ``None`` if it
    failed (the rating stands: the message says how to count it again)."""
    from sqlalchemy.exc import SQLAlchemyError

    from prepaid.statistics import SnapshotSource, refresh_overview

    started = time.perf_counter()
    try:
        refresh_overview(engine, day, source=SnapshotSource.RATING)
    except SQLAlchemyError as exc:
        err_console.print(
            f"the rating of {day} is done, but its overview could not be stored "
            f"({exc.__class__.__name__}: {exc}); count it with "
            f"`feikong stats overview --date {day} --refresh`",
            highlight=False,
        )
        return None
    return time.perf_counter() - started


def _print_rated(report: RatingReport, peak: float) -> None:
    from prepaid.models import Outcome

    table = Table(title=f"rating {report.day}")
    table.add_column("outcome")
    table.add_column("accounts", justify="right")
    for outcome in Outcome:
        table.add_row(outcome.label, str(report.counts.get(outcome, 0)))
    console.print(table)
    console.print(
        f"accounts={report.accounts} rated={report.rated} already_rated={report.already_rated}"
        f" closing_charges={report.closing_charges} seconds={report.seconds:.2f}"
        f" accounts_per_s={report.accounts_per_second:.0f} peak_rss_mib={peak:.0f}",
        highlight=False,
    )


# -- anomalies -------------------------------------------------------------------------


def anomalies_command(
    first_text: Annotated[str, typer.Option("--from", help="First day, YYYY-MM-DD.")],
    last_text: Annotated[
        str | None, typer.Option("--to", help="Last day (default: --from).")
    ] = None,
    unit: Annotated[
        str | None, typer.Option("--unit", help="Only this supply unit (code).")
    ] = None,
    kind: Annotated[
        str | None,
        typer.Option("--kind", help="Only this kind: missing-reading, negative-consumption, jump…"),
    ] = None,
    streak: Annotated[
        int | None,
        typer.Option(
            "--missing-days",
            min=1,
            help="Instead: accounts without a reading for N days to --from.",
        ),
    ] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Rating anomalies by supply unit, day and reading segment (算费异常统计)."""
    from prepaid.anomalies import anomaly_counts, missing_streaks
    from prepaid.models import AnomalyKind

    first = _day(first_text, "--from")
    last = _day(last_text, "--to") if last_text else first
    kinds = None
    if kind is not None:
        try:
            kinds = (AnomalyKind(kind.strip()),)
        except ValueError:
            fail(f"--kind wants one of {', '.join(k.value for k in AnomalyKind)}, got {kind!r}", 2)
    engine = _open(db)
    if streak is not None:
        streaks = missing_streaks(engine, first, streak)
        if as_json:
            print_json(
                [
                    {
                        "account_id": s.account_id,
                        "customer_no": s.customer_no,
                        "supply_unit": s.supply_unit,
                        "reading_segment": s.reading_segment,
                        "last_reading": s.last_reading,
                        "days": s.days,
                    }
                    for s in streaks
                ]
            )
            return
        table = Table(title=f"no reading for {streak}+ days through {first}")
        for name in ("account", "customer no", "unit", "segment", "last reading", "days"):
            table.add_column(name)
        for s in streaks[:200]:
            table.add_row(
                str(s.account_id),
                s.customer_no,
                s.supply_unit,
                s.reading_segment,
                str(s.last_reading or "-"),
                str(s.days),
            )
        console.print(table)
        console.print(f"accounts={len(streaks)}", highlight=False)
        return
    counts = anomaly_counts(engine, first, last, kinds=kinds, supply_unit=unit)
    if as_json:
        print_json([c.to_dict() for c in counts])
        return
    table = Table(title=f"rating anomalies {first}..{last}")
    for name in ("supply unit", "date", "segment", "kind", "accounts"):
        table.add_column(name, justify="right" if name == "accounts" else "left")
    for c in counts:
        table.add_row(c.supply_unit, str(c.day), c.reading_segment, c.kind.value, str(c.accounts))
    console.print(table)
    console.print(f"accounts={sum(c.accounts for c in counts)}", highlight=False)


# -- bench rating ----------------------------------------------------------------------


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def _run_json(args: list[str]) -> tuple[dict[str, Any], float]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "feikong", *args, "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        fail(f"feikong {args[0]} failed: {done.stderr.strip() or done.stdout.strip()}", 1)
    data: dict[str, Any] = json.loads(done.stdout)
    return data, elapsed


def bench_rating_command(
    accounts: Annotated[
        int, typer.Option("--accounts", min=1, help="Accounts to rate.")
    ] = 1_000_000,
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            help="An empty database to fill (default: a temporary SQLite file, removed after).",
        ),
    ] = None,
    chunk: Annotated[int, typer.Option("--chunk", min=1000, help="Accounts per chunk.")] = 100_000,
    pipeline: Annotated[
        bool, typer.Option("--pipeline/--no-pipeline", help="Reader in a second process.")
    ] = True,
    seed: Annotated[int, typer.Option("--seed", help="Population seed.")] = 1,
    keep: Annotated[bool, typer.Option("--keep", help="Keep the temporary database.")] = False,
) -> None:
    """Rate one day of N generated accounts; prints accounts_per_s= and peak_rss_mib=.

    The population (2 days of readings: the opening one and the day rated) is made
    by ``feikong generate`` in a subprocess first (generate_s=, not part of the
    figure); then ``feikong rate`` rates the second day in another subprocess, whose
    peak memory (its own plus its reader process) is peak_rss_mib=; overview_s= is the
    day's overview it stores after the rating (not part of rate_s=).
    """
    folder: Path | None = None
    url = db
    if url is None:
        folder = Path(tempfile.mkdtemp(prefix="feikong-bench-rating-"))
        url = f"sqlite:///{folder / 'bench.db'}"
    try:
        console.print(f"accounts={accounts}", highlight=False)
        console.print(f"load_before={_load()}", highlight=False)
        generated, gen_s = _run_json(
            [
                "generate",
                "--customers",
                str(accounts),
                "--days",
                "2",
                "--seed",
                str(seed),
                "--chunk",
                str(chunk),
                "--db",
                url,
            ]
        )
        console.print(f"generate_s={gen_s:.1f}", highlight=False)
        day = generated["last_day"]
        args = ["rate", "--date", day, "--db", url, "--chunk", str(chunk)]
        if not pipeline:
            args.append("--no-pipeline")
        rated, _ = _run_json(args)
        seconds = float(rated["seconds"])
        console.print(f"rate_s={seconds:.2f}", highlight=False)
        console.print(
            f"accounts_per_s={rated['accounts'] / seconds if seconds else 0:.0f}", highlight=False
        )
        console.print(f"peak_rss_mib={rated['peak_rss_mib']:.0f}", highlight=False)
        phases = " ".join(f"{k}_s={v:.1f}" for k, v in sorted(rated.get("timings", {}).items()))
        console.print(phases, highlight=False)
        if "overview_seconds" in rated:  # after the rating, not part of rate_s
            console.print(f"overview_s={rated['overview_seconds']:.2f}", highlight=False)
        console.print(f"load_after={_load()}", highlight=False)
        outcomes = " ".join(f"{k}={v}" for k, v in rated["outcomes"].items())
        console.print(outcomes, highlight=False)
        if folder is not None and keep:
            console.print(f"database={url}", highlight=False)
    finally:
        if folder is not None and not keep:
            shutil.rmtree(folder, ignore_errors=True)


def register(app: typer.Typer) -> None:
    """Add ``generate``, ``rate`` and ``anomalies`` to the ``feikong`` command."""
    app.command("generate")(generate_command)
    app.command("rate")(rate_command)
    app.command("anomalies")(anomalies_command)


def register_bench(bench_app: typer.Typer) -> None:
    """Add ``rating`` to the ``feikong bench`` group."""
    bench_app.command("rating")(bench_rating_command)
