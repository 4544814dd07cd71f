"""``feikong bench console``: the operator console's queries on a large database.

On a database made by ``feikong generate`` (``--customers`` accounts, generated here
into a temporary SQLite file unless ``--db`` names one already generated), it times
what an operator's keystrokes run (:mod:`console.queries`), ``--repeat`` times each on
customers picked at random:

- ``search_customer_no`` (a whole 户号), ``search_name`` (the first two characters of a
  name: a page of 50), ``search_name_next`` (the page after it, keyset),
  ``search_phone`` (the first 7 digits), ``search_meter`` (a whole 表号),
  ``search_area`` (a transformer area's code: its first 50 customers);
- ``detail``: what the customer detail loads (account, 31 days of readings, 60 of
  charges, messages, head-end commands, fee-control history);
- ``overview_refresh``: counting and storing the day's fee-control overview (what
  ``feikong rate`` does after the day's rating and ``r`` on the dashboard: a pass over
  every account), once;
- ``dashboard``: what the dashboard loads: that stored overview of every supply unit
  with the live counts (pending approvals, the day's trips), alarms and the 14-day
  trend.

The day is the newest day of readings, at 10:00 (after that day's rating).

Then it drives the real Textual app (:class:`console.app.ConsoleApp`, headless, with
Textual's Pilot) as an operator of the customer-service role: the dashboard first,
then one search and one customer's detail. It prints ``key=value`` lines: ``N_p50_ms``
and ``N_p99_ms`` per query, ``app_dashboard_ms`` (start to the dashboard drawn),
``app_search_ms`` (Enter to the first page of results), ``app_first_page_ms`` (start
to that page), ``app_detail_ms`` (Enter on the row to the detail drawn), the
database's size, ``peak_rss_mib`` and the load average.
"""

from __future__ import annotations

import asyncio
import math
import os
import random
import resource
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from .output import console, err_console, fail, print_json

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

__all__ = ["ConsoleBenchResult", "register", "run_console_bench"]

_START = date(2026, 1, 1)


@dataclass(slots=True)
class ConsoleBenchResult:
    customers: int
    db_bytes: int
    generate_s: float | None
    timings: dict[str, list[float]] = field(default_factory=dict)
    app: dict[str, float] = field(default_factory=dict)
    found: dict[str, int] = field(default_factory=dict)
    load_before: tuple[float, float, float] = (0.0, 0.0, 0.0)
    load_after: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def lines(self) -> list[tuple[str, Any]]:
        out: list[tuple[str, Any]] = [
            ("customers", self.customers),
            ("db_mib", round(self.db_bytes / 2**20)),
            ("generate_s", None if self.generate_s is None else round(self.generate_s, 1)),
        ]
        for name, values in self.timings.items():
            ordered = sorted(values)
            out.append((f"{name}_p50_ms", _pct(ordered, 0.50)))
            out.append((f"{name}_p99_ms", _pct(ordered, 0.99)))
        out += [(f"{name}_rows", n) for name, n in self.found.items()]
        out += [(name, round(ms, 1)) for name, ms in self.app.items()]
        out += [
            ("peak_rss_mib", round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)),
            ("load_1m", round(self.load_before[0], 2)),
            ("load_1m_after", round(self.load_after[0], 2)),
        ]
        return out


def _pct(ordered: list[float], fraction: float) -> float | None:
    if not ordered:
        return None
    return round(ordered[max(1, math.ceil(fraction * len(ordered))) - 1] * 1000, 2)


def register(bench_app: typer.Typer) -> None:
    """Add ``console`` to the ``feikong bench`` group."""
    bench_app.command("console")(console_command)


def console_command(
    customers: Annotated[
        int,
        typer.Option("--customers", min=1, help="Accounts to generate (ignored with --db)."),
    ] = 1_000_000,
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            help="A database made by `feikong generate` (default: generate one into a "
            "temporary SQLite file).",
        ),
    ] = None,
    days: Annotated[
        int, typer.Option("--days", min=1, max=366, help="Days of readings to generate.")
    ] = 2,
    repeat: Annotated[int, typer.Option("--repeat", min=1, help="Runs of each query.")] = 50,
    app: Annotated[
        bool, typer.Option("--app/--no-app", help="Also drive the Textual app with Pilot.")
    ] = True,
    seed: Annotated[int, typer.Option("--seed", help="Random seed of the picks.")] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Time the console's searches, customer detail and dashboard on a large database."""
    from prepaid.generate import GenerateError

    try:
        result = run_console_bench(
            customers=customers,
            db=db,
            days=days,
            repeat=repeat,
            app=app,
            seed=seed,
            progress=not as_json and err_console.is_terminal,
        )
    except (GenerateError, LookupError) as exc:
        fail(escape(str(exc)), 2)
    if as_json:
        print_json(dict(result.lines()))
        return
    for key, value in result.lines():
        console.print(f"{key}={value}", highlight=False)


# --------------------------------------------------------------------------- the run


@dataclass(frozen=True, slots=True)
class _Pick:
    id: int
    customer_no: str
    name: str
    phone: str
    meter: str
    area: str


def _picks(engine: Engine, count: int, seed: int) -> list[_Pick]:
    """``count`` customers at random (by id: the generator numbers them densely)."""
    import sqlalchemy as sa

    with engine.connect() as c:
        low, high = c.execute(sa.text("SELECT min(id), max(id) FROM prepaid_account")).one()
        if low is None:
            raise LookupError(
                "the database has no accounts: give --db a database made by `feikong generate`"
            )
        rng = random.Random(seed)
        out: list[_Pick] = []
        query = sa.text(
            "SELECT a.id, a.customer_no, a.name, a.phone, a.meter_address, t.code "
            "FROM prepaid_account a JOIN prepaid_transformer_area t "
            "ON t.id = a.transformer_area_id WHERE a.id >= :i ORDER BY a.id LIMIT 1"
        )
        while len(out) < count:
            row = c.execute(query, {"i": rng.randint(low, high)}).first()
            if row is not None:
                out.append(_Pick(*row))
    return out


def _last_day(engine: Engine, meter: str) -> date:
    """The newest daily reading of ``meter`` (a key seek; the generator reads every day)."""
    import sqlalchemy as sa

    with engine.connect() as c:
        day = c.execute(
            sa.text("SELECT max(freeze_date) FROM headend_reading WHERE meter_address = :m"),
            {"m": meter},
        ).scalar()
    if day is None:
        return _START
    return day if isinstance(day, date) else date.fromisoformat(str(day)[:10])


def _timed(result: ConsoleBenchResult, name: str, run: Callable[[], int]) -> None:
    started = time.perf_counter()
    rows = run()
    result.timings.setdefault(name, []).append(time.perf_counter() - started)
    result.found[name] = result.found.get(name, 0) + rows


def _detail(engine: Engine, account_id: int, until: date) -> int:
    """What the customer detail screen loads; the number of rows it got."""
    from console.queries import customers as q

    detail = q.account_detail(engine, account_id)
    if detail is None:
        return 0
    return (
        1
        + len(q.readings(engine, detail.meter_address))
        + len(q.charges(engine, detail.id, until=until))
        + len(q.messages(engine, detail.customer_no))
        + len(q.jobs(engine, detail.meter_address))
        + len(q.history(engine, detail.id))
    )


def _time_pick(result: ConsoleBenchResult, engine: Engine, p: _Pick, last: date) -> None:
    """Every search and the detail, for one picked customer."""
    from console.queries import customers as q

    def search(text: str, by: q.SearchField, after: tuple[Any, ...] | None = None) -> int:
        return len(q.search(engine, text, by, after=after).rows)

    _timed(result, "search_customer_no", lambda: search(p.customer_no, q.SearchField.CUSTOMER_NO))
    _timed(result, "search_name", lambda: search(p.name[:1], q.SearchField.NAME))
    cursor = q.search(engine, p.name[:1], q.SearchField.NAME).next_cursor
    if cursor is not None:
        _timed(result, "search_name_next", lambda: search(p.name[:1], q.SearchField.NAME, cursor))
    _timed(result, "search_phone", lambda: search(p.phone[:7], q.SearchField.PHONE))
    _timed(result, "search_meter", lambda: search(p.meter, q.SearchField.METER))
    _timed(result, "search_area", lambda: search(p.area, q.SearchField.AREA))
    _timed(result, "detail", lambda: _detail(engine, p.id, last))


def run_console_bench(
    *,
    customers: int = 1_000_000,
    db: str | None = None,
    days: int = 2,
    repeat: int = 50,
    app: bool = True,
    seed: int = 1,
    progress: bool = False,
) -> ConsoleBenchResult:
    """Run the benchmark (see the module docstring)."""
    from console.queries.dashboard import dashboard_data
    from prepaid.db import migrate, open_database
    from prepaid.generate import GenerateOptions, generate
    from prepaid.statistics import refresh_overview
    from protocol.clock import SteppedClock

    load_before = os.getloadavg()
    tmp: tempfile.TemporaryDirectory[str] | None = None
    generate_s: float | None = None
    try:
        if db is None:
            tmp = tempfile.TemporaryDirectory(prefix="feikong-bench-console-")
            db = f"sqlite:///{tmp.name}/console.db"
            engine = open_database(db)
            migrate(engine)
            if progress:
                err_console.print(f"generating {customers} accounts …", highlight=False)
            started = time.perf_counter()
            generate(engine, GenerateOptions(customers=customers, days=days, start=_START))
            generate_s = time.perf_counter() - started
        else:
            engine = open_database(db)
            migrate(engine)
        import sqlalchemy as sa

        with engine.connect() as c:
            count = int(c.execute(sa.text("SELECT count(*) FROM prepaid_account")).scalar_one())
        db_bytes = _size(engine)
        result = ConsoleBenchResult(count, db_bytes, generate_s, load_before=load_before)
        picks = _picks(engine, repeat, seed)
        last = _last_day(engine, picks[0].meter)
        now = datetime.combine(last, datetime.min.time()) + timedelta(hours=10)
        if progress:
            err_console.print(f"{count} accounts; {repeat} runs of each query …")
        for p in picks:
            _time_pick(result, engine, p, last)
        if progress:
            err_console.print("counting the day's overview (a pass over every account) …")
        clock = SteppedClock(now)
        _timed(
            result,
            "overview_refresh",
            lambda: len(refresh_overview(engine, last, clock=clock).units),
        )
        for _ in range(repeat):
            _timed(result, "dashboard", lambda: len(dashboard_data(engine, now).units))
        if app:
            if progress:
                err_console.print("driving the console app …")
            result.app = asyncio.run(_drive_app(engine, now, picks[0]))
        result.load_after = os.getloadavg()
        engine.dispose()
    finally:
        if tmp is not None:
            tmp.cleanup()
    return result


def _size(engine: Engine) -> int:
    database = engine.url.database
    if engine.dialect.name == "sqlite" and database:
        return sum(
            Path(database + suffix).stat().st_size
            for suffix in ("", "-wal")
            if Path(database + suffix).exists()
        )
    import sqlalchemy as sa

    with engine.connect() as c:
        return int(c.execute(sa.text("SELECT pg_database_size(current_database())")).scalar_one())


async def _until(pilot: Any, ready: Callable[[], bool], what: str, timeout: float) -> None:
    """Let the app run until ``ready()``; LookupError after ``timeout`` real seconds."""
    deadline = time.perf_counter() + timeout
    while not ready():
        if time.perf_counter() > deadline:
            raise LookupError(f"the console did not {what} within {timeout:g} s")
        await pilot.pause(0.005)


async def _drive_app(engine: Engine, now: datetime, pick: _Pick) -> dict[str, float]:
    """The real app, headless: it opens on the dashboard (whose overview loads in the
    background); at once the operator goes to Customers, searches a name and opens the
    first customer."""
    from textual.widgets import Input, Select, Static

    from console.app import ConsoleApp
    from console.queries.customers import SearchField
    from console.screens.customers import CustomerDetailScreen, CustomersScreen
    from console.screens.dashboard import DashboardScreen
    from console.widgets.paged_table import PagedTable
    from prepaid.users import Operator, Role
    from protocol.clock import SteppedClock

    operator = Operator("bench.console", "bench", frozenset({Role.CUSTOMER_SERVICE}))
    app = ConsoleApp(engine, clock=SteppedClock(now), user=operator)
    figures: dict[str, float] = {}
    started = time.perf_counter()
    async with app.run_test(size=(150, 46)) as pilot:
        await _until(pilot, lambda: isinstance(app.screen, DashboardScreen), "open", 120)
        figures["app_open_ms"] = 1000 * (time.perf_counter() - started)
        app.go("customers")
        await _until(pilot, lambda: isinstance(app.screen, CustomersScreen), "show Customers", 60)
        screen = app.screen
        assert isinstance(screen, CustomersScreen)
        screen.query_one("#customer-field", Select).value = SearchField.NAME.value
        query = screen.query_one("#customer-query", Input)
        query.value = pick.name[:1]
        query.focus()
        await pilot.pause()
        table = screen.query_one(PagedTable).table
        t = time.perf_counter()
        await pilot.press("enter")
        await _until(pilot, lambda: table.row_count > 0, "show a page of results", 60)
        figures["app_search_ms"] = 1000 * (time.perf_counter() - t)
        figures["app_first_page_ms"] = 1000 * (time.perf_counter() - started)
        figures["app_search_rows"] = table.row_count
        table.focus()
        await pilot.pause()
        t = time.perf_counter()
        await pilot.press("enter")

        def drawn() -> bool:
            detail = app.screen
            if not isinstance(detail, CustomerDetailScreen):
                return False
            title = detail.query("#detail-title").first(Static)
            return "balance" in str(title.render())

        await _until(pilot, drawn, "draw the customer detail", 60)
        figures["app_detail_ms"] = 1000 * (time.perf_counter() - t)
        await app.workers.wait_for_complete()  # the dashboard's overview, too
        figures["app_all_loaded_ms"] = 1000 * (time.perf_counter() - started)
    return figures
