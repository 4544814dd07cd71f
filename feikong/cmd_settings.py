"""``feikong settings …``: the fee-control settings hierarchy (show, set, unset, history)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table

from .output import console, fail, print_json

if TYPE_CHECKING:  # the database stack is imported only by the commands that use it
    from sqlalchemy.engine import Engine

    from prepaid.settings import SettingsStore
    from prepaid.users import Operator, Users

settings_app = typer.Typer(
    help="Fee-control settings (费控参数): default → line → area → customer.",
    no_args_is_help=True,
)

_DB_HELP = (
    "Database URL: sqlite:///FILE or postgresql+psycopg://user:pass@host/db "
    "(default: $FEIKONG_DATA/feikong.db, ./data/feikong.db)."
)
PASSWORD_ENV = "FEIKONG_PASSWORD"


def db_option() -> Any:
    return typer.Option(None, "--db", envvar="FEIKONG_DB", help=_DB_HELP)


def open_db(url: str | None) -> Engine:
    """The prepaid database at ``url``, migrated; exit 2 with the reason if it cannot be."""
    from prepaid.db import PrepaidDatabaseError, migrate, open_database

    try:
        engine = open_database(url)
        migrate(engine)
    except PrepaidDatabaseError as exc:
        fail(str(exc), 2)
    return engine


def login(users: Users, name: str | None) -> Operator:
    """Authenticate ``--user`` (password from ``$FEIKONG_PASSWORD`` or a hidden prompt)."""
    from prepaid.users import AuthenticationError

    if not name:
        fail("this changes data: give your login with --user", 2)
    password = os.environ.get(PASSWORD_ENV)
    if password is None:
        password = typer.prompt(f"password for {name}", hide_input=True)
    try:
        return users.authenticate(name, password)
    except AuthenticationError as exc:
        fail(f"login refused: {exc}", 1)


def _store(engine: Engine, defaults: Path | None, any_key: bool) -> SettingsStore:
    from prepaid.settings import (
        AccountsDirectory,
        OpenDirectory,
        SettingsError,
        SettingsStore,
        load_defaults,
    )
    from protocol.clock import RealClock

    try:
        loaded = load_defaults(*([defaults] if defaults else []))
    except SettingsError as exc:
        fail(str(exc), 2)
    directory = OpenDirectory() if any_key else AccountsDirectory(engine)
    return SettingsStore(engine, clock=RealClock(), defaults=loaded, directory=directory)


_DEFAULTS_OPTION: Any = typer.Option(
    None, "--defaults", help="A site defaults file read after the built-in one (TOML)."
)
_ANY_KEY_OPTION: Any = typer.Option(
    False, "--any-key", help="Accept line/area/customer codes the accounts do not know (yet)."
)


def show_command(
    line: str | None = typer.Option(None, "--line", help="Feeder line code (线路)."),
    area: str | None = typer.Option(None, "--area", help="Transformer area code (台区)."),
    customer: str | None = typer.Option(None, "--customer", help="Customer number (户号)."),
    db: str | None = db_option(),
    defaults: Path | None = _DEFAULTS_OPTION,
    any_key: bool = _ANY_KEY_OPTION,
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Every setting in force at a scope, and where each value comes from.

    A customer's line and area are looked up in the accounts unless given.
    """
    from prepaid.settings import Scope, SettingsError

    store = _store(open_db(db), defaults, any_key)
    try:
        effective = store.resolve(Scope(line=line, area=area, customer=customer))
    except SettingsError as exc:
        fail(str(exc), 2)
    if as_json:
        print_json(effective.to_dict())
        return
    table = Table(title=f"settings in force at {effective.scope}", title_justify="left")
    table.add_column("setting")
    table.add_column("中文")
    table.add_column("value", justify="right")
    table.add_column("from")
    for item in effective.resolved():
        inherited = item.source.level.value == "default"
        table.add_row(
            item.spec.name,
            item.spec.chinese,
            item.text,
            f"[dim]{item.source}[/]" if inherited else f"[bold]{item.source}[/]",
        )
    console.print(table)


def set_command(
    name: str = typer.Argument(..., help="Setting name, e.g. reminder_amount."),
    value: str = typer.Argument(..., help="New value: 20.50, 1d, 18:00-08:00, true, sms…"),
    level: str = typer.Option(..., "--level", help="default, line, area or customer."),
    key: str | None = typer.Option(None, "--key", help="The line / area / customer code."),
    user: str | None = typer.Option(None, "--user", help="Your login (the change is audited)."),
    comment: str = typer.Option("", "--comment", help="Why (kept in the history)."),
    line: str | None = typer.Option(None, "--line", help="The area's/customer's line."),
    area: str | None = typer.Option(None, "--area", help="The customer's area."),
    db: str | None = db_option(),
    defaults: Path | None = _DEFAULTS_OPTION,
    any_key: bool = _ANY_KEY_OPTION,
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Set a value at one level (validated, recorded in the history, audited)."""
    _change(name, value, level, key, user, comment, line, area, db, defaults, any_key, as_json)


def unset_command(
    name: str = typer.Argument(..., help="Setting name."),
    level: str = typer.Option(..., "--level", help="default, line, area or customer."),
    key: str | None = typer.Option(None, "--key", help="The line / area / customer code."),
    user: str | None = typer.Option(None, "--user", help="Your login (the change is audited)."),
    comment: str = typer.Option("", "--comment", help="Why (kept in the history)."),
    line: str | None = typer.Option(None, "--line", help="The area's/customer's line."),
    area: str | None = typer.Option(None, "--area", help="The customer's area."),
    db: str | None = db_option(),
    defaults: Path | None = _DEFAULTS_OPTION,
    any_key: bool = _ANY_KEY_OPTION,
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Remove the value set at one level: the scope inherits again."""
    _change(name, None, level, key, user, comment, line, area, db, defaults, any_key, as_json)


def _change(
    name: str,
    value: str | None,
    level_text: str,
    key: str | None,
    user: str | None,
    comment: str,
    line: str | None,
    area: str | None,
    db: str | None,
    defaults: Path | None,
    any_key: bool,
    as_json: bool,
) -> None:
    from prepaid.settings import ABSENT, Level, Scope, SettingsError, spec_of
    from prepaid.users import PermissionDeniedError, Users

    try:
        level = Level(level_text.strip().lower())
    except ValueError:
        fail(f"--level wants default, line, area or customer, got {level_text!r}", 2)
    try:
        spec = spec_of(name)
    except SettingsError as exc:
        fail(str(exc), 2)
    engine = open_db(db)
    store = _store(engine, defaults, any_key)
    operator = login(Users(engine, clock=store.clock, audit=store.audit), user)
    parents = Scope(line=line, area=area) if (line or area) else None
    try:
        if value is None:
            change = store.unset(
                spec.name, level=level, key=key, user=operator, comment=comment, parents=parents
            )
        else:
            change = store.set(
                spec.name,
                value,
                level=level,
                key=key,
                user=operator,
                comment=comment,
                parents=parents,
            )
    except SettingsError as exc:
        fail(str(exc), 2)
    except PermissionDeniedError as exc:
        fail(f"refused: {exc}", 1)
    if as_json:
        print_json(change.to_dict())
        return
    old = "not set" if change.old is ABSENT else spec.kind.show(change.old)
    if not change.changed:
        console.print(f"{spec.name} at {change.where}: unchanged ({old})", highlight=False)
    elif change.new is ABSENT:
        console.print(
            f"{spec.name} at {change.where}: removed (was {old}); the value is inherited again",
            highlight=False,
        )
    else:
        console.print(
            f"{spec.name} at {change.where}: {spec.kind.show(change.new)} (was {old})",
            highlight=False,
        )


def history_command(
    name: str | None = typer.Argument(None, help="Only this setting."),
    level: str | None = typer.Option(None, "--level", help="Only this level."),
    key: str | None = typer.Option(None, "--key", help="Only this line / area / customer."),
    limit: int = typer.Option(50, "--limit", min=1, help="At most this many, newest first."),
    db: str | None = db_option(),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Past changes of settings, newest first: who, when, old → new."""
    from prepaid.settings import Level, SettingsError, SettingsStore

    lvl = None
    if level:
        try:
            lvl = Level(level.strip().lower())
        except ValueError:
            fail(f"--level wants default, line, area or customer, got {level!r}", 2)
    engine = open_db(db)
    from protocol.clock import RealClock

    store = SettingsStore(engine, clock=RealClock())
    try:
        changes = store.history(name=name, level=lvl, key=key, limit=limit)
    except SettingsError as exc:
        fail(str(exc), 2)
    if as_json:
        print_json([c.to_dict() for c in changes])
        return
    table = Table(title=f"{len(changes)} change(s), newest first", title_justify="left")
    for column in ("when", "who", "setting", "at", "old", "new", "comment"):
        table.add_column(column)
    for c in changes:
        d = c.to_dict()
        table.add_row(
            f"{c.at:%Y-%m-%d %H:%M:%S}",
            c.by,
            c.spec.name,
            c.where,
            d["old"] or "-",
            d["new"] or "(removed)",
            c.comment,
        )
    console.print(table)


settings_app.command("show")(show_command)
# a negative amount ("-10") is a value, not an unknown option
settings_app.command("set", context_settings={"ignore_unknown_options": True})(set_command)
settings_app.command("unset")(unset_command)
settings_app.command("history")(history_command)


def bench_command(
    accounts: int = typer.Option(1_000_000, "--accounts", min=1, help="Accounts to resolve."),
    lines: int = typer.Option(2_000, "--lines", min=1, help="Feeder lines."),
    areas: int = typer.Option(60_000, "--areas", min=1, help="Transformer areas."),
    customer_overrides: int = typer.Option(
        20_000, "--customer-overrides", min=0, help="Customers with a value of their own."
    ),
    sql: bool = typer.Option(True, "--sql/--no-sql", help="Also time the SQL resolution."),
) -> None:
    """Resolve the reminder amount of many accounts at once (snapshot, and SQL on SQLite).

    A third of the areas and half of the lines have a value of their own. Prints
    key=value figures and the time 15 million accounts would take at that rate.
    """
    import random
    import tempfile
    import time
    from datetime import datetime

    import sqlalchemy as sa

    from prepaid.db import open_database
    from prepaid.settings import Level, SettingsSnapshot, SettingsStore, load_defaults
    from prepaid.settings.tables import setting
    from protocol.clock import SteppedClock

    rng = random.Random(645)
    line_codes = [f"L{i:05d}" for i in range(lines)]
    area_line = [line_codes[rng.randrange(lines)] for _ in range(areas)]
    area_codes = [f"A{i:06d}" for i in range(areas)]
    picks = [rng.randrange(areas) for _ in range(accounts)]
    col_area = [area_codes[i] for i in picks]
    col_line = [area_line[i] for i in picks]
    col_customer = [f"C{i:09d}" for i in range(accounts)]
    overrides: list[tuple[Level, str, str, object]] = []
    overrides += [(Level.LINE, c, "reminder_amount", 1500) for c in line_codes[::2]]
    overrides += [
        (Level.AREA, c, "reminder_amount", 1000 + i % 900) for i, c in enumerate(area_codes[::3])
    ]
    overrides += [
        (Level.CUSTOMER, col_customer[i], "reminder_amount", 500)
        for i in rng.sample(range(accounts), min(customer_overrides, accounts))
    ]
    defaults = load_defaults()
    started = time.perf_counter()
    snapshot = SettingsSnapshot(defaults, overrides)
    values = snapshot.resolve_column("reminder_amount", col_line, col_area, col_customer)
    elapsed = time.perf_counter() - started
    rate = accounts / elapsed
    console.print(f"accounts={accounts}", highlight=False)
    console.print(f"snapshot_resolve_s={elapsed:.3f}", highlight=False)
    console.print(f"snapshot_accounts_per_s={rate:.0f}", highlight=False)
    console.print(f"snapshot_15m_accounts_s={15_000_000 / rate:.1f}", highlight=False)
    if not sql:
        return
    with tempfile.TemporaryDirectory(prefix="feikong-bench-") as folder:
        engine = open_database(f"sqlite:///{folder}/bench.db")
        meta = sa.MetaData()
        people = sa.Table(
            "bench_account",
            meta,
            sa.Column("customer_no", sa.String(20), primary_key=True),
            sa.Column("line", sa.String(24)),
            sa.Column("area", sa.String(24)),
        )
        meta.create_all(engine)
        setting.create(engine)
        now = datetime(2026, 1, 1)
        with engine.begin() as conn:
            conn.execute(
                sa.insert(people),
                [
                    {"customer_no": c, "line": ln, "area": a}
                    for c, ln, a in zip(col_customer, col_line, col_area, strict=True)
                ],
            )
            conn.execute(
                sa.insert(setting),
                [
                    {
                        "level": lv.value,
                        "scope_key": k,
                        "name": n,
                        "value": str(v),
                        "updated_at": now,
                        "updated_by": "bench",
                    }
                    for lv, k, n, v in overrides
                ],
            )
        store = SettingsStore(engine, clock=SteppedClock(now), defaults=defaults)
        column = store.sql_fen(
            "reminder_amount",
            line=people.c.line,
            area=people.c.area,
            customer=people.c.customer_no,
        )
        started = time.perf_counter()
        with engine.connect() as conn:
            got = [
                fen
                for _, fen in conn.execute(
                    sa.select(people.c.customer_no, column).order_by(people.c.customer_no)
                )
            ]
        elapsed = time.perf_counter() - started
        engine.dispose()
    if got != values:
        fail("the SQL resolution differs from the snapshot's: please report this", 1)
    rate = accounts / elapsed
    console.print(f"sql_resolve_s={elapsed:.3f}", highlight=False)
    console.print(f"sql_accounts_per_s={rate:.0f}", highlight=False)
    console.print(f"sql_15m_accounts_s={15_000_000 / rate:.1f}", highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(settings_app, name="settings")


def register_bench(bench_app: typer.Typer) -> None:
    bench_app.command("settings")(bench_command)
