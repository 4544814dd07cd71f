"""``feikong reminders | dunning | service | anomaly-orders``: the daily notification work.

- ``feikong reminders run | list`` — low-balance reminders, one per episode;
- ``feikong dunning run | batches | records | print | overdue`` — dunning batches per
  transformer area, paper notices, the manual-dunning list;
- ``feikong service bills | sms | campaigns | phones | tiers | after-rating`` —
  customer service (monthly bills, custom SMS, invalid phones, tier reminders) and the
  steps run after each daily rating;
- ``feikong anomaly-orders open | list | record | close`` — work orders for readings
  missing N days.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from .cmd_settings import db_option, login, open_db
from .output import console, err_console, fail, print_json

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from prepaid.service import Selection
    from prepaid.settings import SettingsStore
    from prepaid.users import Operator
    from protocol.clock import Clock

reminders_app = typer.Typer(
    help="Low-balance reminders (余额不足提醒): one message per episode.", no_args_is_help=True
)
dunning_app = typer.Typer(
    help="Dunning (催费): batches per transformer area, SMS, paper notices, manual list.",
    no_args_is_help=True,
)
service_app = typer.Typer(
    help="Customer service (客户服务): monthly bills, custom SMS, invalid phones, tiers.",
    no_args_is_help=True,
)
anomaly_app = typer.Typer(
    help="Anomaly work orders (异常工单) for readings missing N consecutive days.",
    no_args_is_help=True,
)

_JSON: Any = typer.Option(False, "--json", help="Machine-readable output.")
_AREA: Any = typer.Option(None, "--area", help="Transformer area code (台区); repeatable.")
_LINE: Any = typer.Option(None, "--line", help="Feeder line code (线路); repeatable.")
_UNIT: Any = typer.Option(None, "--unit", help="Supply unit code (供电单位); repeatable.")
_CUSTOMER: Any = typer.Option(None, "--customer", help="Customer number (户号); repeatable.")
_NOW: Any = typer.Option(
    None,
    "--now",
    help="Run as of this local time (2026-03-02T08:00) instead of the wall clock: "
    "replays and simulated days.",
)


# -- shared ----------------------------------------------------------------------------


def _clock(now: datetime | None) -> Clock:
    from protocol.clock import RealClock, SteppedClock

    return RealClock() if now is None else SteppedClock(now)


def _settings(engine: Engine, clock: Clock) -> SettingsStore:
    from prepaid.settings import AccountsDirectory, SettingsError, SettingsStore, load_defaults

    try:
        defaults = load_defaults()
    except SettingsError as exc:
        fail(str(exc), 2)
    return SettingsStore(
        engine, clock=clock, defaults=defaults, directory=AccountsDirectory(engine)
    )


def _selection(
    areas: list[str] | None,
    lines: list[str] | None,
    units: list[str] | None,
    customers: list[str] | None,
    customers_file: Path | None = None,
) -> Selection:
    from prepaid.service import Selection, SelectionError

    listed = list(customers or [])
    if customers_file is not None:
        try:
            text = customers_file.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            fail(f"cannot read the customer list {customers_file}: {exc}", 2)
        for ln in text.splitlines():
            first = ln.split(",")[0].strip()
            if first and first.lower() not in ("customer_no", "户号"):  # skip a header row
                listed.append(first)
    try:
        return Selection.of(
            areas=areas or [], lines=lines or [], supply_units=units or [], customers=listed
        )
    except SelectionError as exc:
        fail(str(exc), 2)


def _operator(engine: Engine, clock: Clock, user: str | None) -> Operator:
    from prepaid.users import Users

    return login(Users(engine, clock=clock), user)


@contextlib.contextmanager
def _progress(label: str, show: bool) -> Iterator[Callable[[int], None] | None]:
    """A spinner with a running count on a terminal; nothing otherwise."""
    if not show or not err_console.is_terminal:
        yield None
        return
    columns = (
        SpinnerColumn(),
        TextColumn(f"{label}: {{task.completed}}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err_console, transient=True) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int) -> None:
            bar.update(task, completed=done)

        yield update


def _yuan(fen: int) -> str:
    sign = "-" if fen < 0 else ""
    return f"{sign}{abs(fen) // 100}.{abs(fen) % 100:02d}"


def _kv(data: dict[str, Any]) -> str:
    return "  ".join(f"{k}={v}" for k, v in data.items() if not isinstance(v, list | dict))


def _service_error() -> tuple[type[Exception], ...]:
    from prepaid.messages import MessageError
    from prepaid.service import ServiceError
    from prepaid.users import PermissionDeniedError
    from prepaid.workorders import WorkOrderError

    return (ServiceError, PermissionDeniedError, WorkOrderError, MessageError)


# -- reminders -------------------------------------------------------------------------


def reminders_run_command(
    manual: bool = typer.Option(
        False, "--manual", help="An operator's run: ignore the areas' auto-reminder switch."
    ),
    area: list[str] | None = _AREA,
    line: list[str] | None = _LINE,
    unit: list[str] | None = _UNIT,
    customer: list[str] | None = _CUSTOMER,
    user: str | None = typer.Option(None, "--user", help="Your login (needed with --manual)."),
    now: datetime | None = _NOW,
    db: str | None = db_option(),
    as_json: bool = _JSON,
) -> None:
    """Close recovered episodes and remind every account newly below its reminder amount.

    Prints: closed=N opened=N sms=N paper=N invalid_phone=N skipped_auto_off=N.
    """
    from prepaid.reminders import run_reminders
    from prepaid.users import Action, require

    clock = _clock(now)
    engine = open_db(db)
    by = "system:reminders"
    if manual:
        operator = _operator(engine, clock, user)
        try:
            require(operator, Action.CREATE_DUNNING)
        except _service_error() as exc:
            from prepaid.audit import AuditLog

            AuditLog(engine, clock).record(
                operator, "reminders.run.refused", "reminders:run", {"reason": str(exc)}
            )
            fail(f"refused: {exc}", 1)
        by = operator.login
    with _progress("reminders", not as_json) as progress:
        try:
            report = run_reminders(
                engine,
                clock=clock,
                settings=_settings(engine, clock),
                auto=not manual,
                selection=_selection(area, line, unit, customer),
                by=by,
                progress=progress,
            )
        except _service_error() as exc:
            fail(str(exc), 1)
    if as_json:
        print_json(report.to_dict())
    else:
        console.print(_kv(report.to_dict()), highlight=False)


def reminders_list_command(
    open_only: bool = typer.Option(False, "--open", help="Only episodes still open."),
    customer: str | None = typer.Option(None, "--customer", help="One customer number."),
    area: str | None = typer.Option(None, "--area", help="One transformer area."),
    limit: int = typer.Option(50, "--limit", min=1, help="At most this many, newest first."),
    db: str | None = db_option(),
    as_json: bool = _JSON,
) -> None:
    """Low-balance episodes, newest first, with their message's status."""
    from prepaid.reminders import list_reminders

    episodes = list_reminders(
        open_db(db), open_only=open_only, customer_no=customer, area=area, limit=limit
    )
    if as_json:
        print_json([e.to_dict() for e in episodes])
        return
    table = Table(title=f"low-balance episodes ({len(episodes)})", title_justify="left")
    for col in ("customer", "area", "opened", "balance", "reminder", "channel", "message", "ended"):
        table.add_column(col)
    for e in episodes:
        table.add_row(
            e.customer_no,
            e.area,
            f"{e.opened_at:%Y-%m-%d %H:%M}",
            _yuan(e.balance_fen),
            _yuan(e.reminder_fen),
            e.channel.value,
            e.message_status or "-",
            f"{e.closed_at:%Y-%m-%d} ({_yuan(e.closed_balance_fen or 0)})"
            if e.closed_at
            else "open",
        )
    console.print(table)


# -- dunning ---------------------------------------------------------------------------


def dunning_run_command(
    auto: bool = typer.Option(
        False, "--auto", help="The run after rating: only areas with auto dunning on."
    ),
    area: list[str] | None = _AREA,
    line: list[str] | None = _LINE,
    unit: list[str] | None = _UNIT,
    customer: list[str] | None = _CUSTOMER,
    notices: Path | None = typer.Option(
        None, "--notices", help="Print each batch's paper notices into this directory."
    ),
    issuer: str = typer.Option("", "--issuer", help="Issuing office shown on paper notices."),
    user: str | None = typer.Option(None, "--user", help="Your login (create-dunning)."),
    now: datetime | None = _NOW,
    db: str | None = db_option(),
    as_json: bool = _JSON,
) -> None:
    """Dun every chosen account below its dunning threshold: one batch per area.

    Prints one line per batch (number, area, records, sms / paper / manual) and the
    notice files written.
    """
    from prepaid.dunning import SYSTEM_ACTOR, run_dunning

    clock = _clock(now)
    engine = open_db(db)
    by: Any = SYSTEM_ACTOR if auto else _operator(engine, clock, user)
    with _progress("dunning records", not as_json) as progress:
        try:
            report = run_dunning(
                engine,
                clock=clock,
                by=by,
                settings=_settings(engine, clock),
                auto=auto,
                selection=_selection(area, line, unit, customer),
                notices_dir=notices,
                issuer=issuer,
                progress=progress,
            )
        except _service_error() as exc:
            fail(str(exc), 1)
    if as_json:
        print_json(report.to_dict())
        return
    if report.batches:
        _batch_table(report.batches, f"dunning at {report.at:%Y-%m-%d %H:%M}")
    data = report.to_dict()
    console.print(_kv({k: data[k] for k in data if k not in ("at",)}), highlight=False)
    for f in report.files:
        console.print(f"notices: {f.html} ({f.count} pages), {f.text}", highlight=False)


def _batch_table(batches: list[Any], title: str) -> None:
    table = Table(title=title, title_justify="left")
    for col in ("batch", "area", "created", "by", "records", "sms", "paper", "manual", "printed"):
        table.add_column(
            col, justify="right" if col in ("records", "sms", "paper", "manual") else "left"
        )
    for b in batches:
        table.add_row(
            b.batch_no,
            b.area,
            f"{b.created_at:%Y-%m-%d %H:%M}",
            b.created_by,
            str(b.records),
            str(b.sms),
            str(b.paper),
            str(b.manual),
            f"{b.printed_at:%Y-%m-%d %H:%M}" if b.printed_at else "-",
        )
    console.print(table)


def dunning_batches_command(
    area: str | None = typer.Option(None, "--area", help="One transformer area."),
    limit: int = typer.Option(50, "--limit", min=1, help="At most this many, newest first."),
    db: str | None = db_option(),
    as_json: bool = _JSON,
) -> None:
    """Dunning batches, newest first."""
    from prepaid.dunning import list_batches

    batches = list_batches(open_db(db), area=area, limit=limit)
    if as_json:
        print_json([b.to_dict() for b in batches])
    else:
        _batch_table(batches, f"dunning batches ({len(batches)})")


def dunning_records_command(
    batch: str | None = typer.Argument(None, help="A batch number (default: every batch)."),
    manual: bool = typer.Option(
        False, "--manual", help="The manual-dunning list: open paper and manual records."
    ),
    area: str | None = typer.Option(None, "--area", help="One transformer area."),
    open_only: bool = typer.Option(False, "--open", help="Only records still open."),
    export: Path | None = typer.Option(None, "--export", help="Also write them as CSV."),
    db: str | None = db_option(),
    as_json: bool = _JSON,
) -> None:
    """Dunning records of a batch, or the manual-dunning list (人工催费清单) with --manual."""
    import csv

    from prepaid.dunning import list_records

    records = list_records(
        open_db(db),
        batch_no=batch,
        area=area,
        methods=("paper", "manual") if manual else None,
        open_only=open_only or manual,
    )
    if export is not None:
        try:
            with export.open("w", encoding="utf-8-sig", newline="") as handle:
                rows = [r.to_dict() for r in records]
                writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else ["id"])
                writer.writeheader()
                writer.writerows(rows)
        except OSError as exc:
            fail(f"cannot write {export}: {exc}", 2)
    if as_json:
        print_json([r.to_dict() for r in records])
        return
    title = "manual-dunning list" if manual else f"dunning records {batch or ''}".strip()
    table = Table(title=f"{title} ({len(records)})", title_justify="left")
    for col in (
        "batch",
        "customer",
        "name",
        "phone",
        "address",
        "balance",
        "due",
        "pay by",
        "method",
        "problem / message",
    ):
        table.add_column(col)
    for r in records:
        table.add_row(
            r.batch_no,
            r.customer_no,
            r.name,
            r.phone or "-",
            r.address,
            _yuan(r.balance_fen),
            _yuan(r.amount_due_fen),
            f"{r.pay_by:%m-%d %H:%M}",
            r.method + ("" if r.closed_at is None else " (closed)"),
            r.phone_problem or r.message_status or "-",
        )
    console.print(table)
    if export is not None:
        console.print(f"written: {export} ({len(records)} rows)", highlight=False)


def dunning_print_command(
    batch: str = typer.Argument(..., help="The batch number, e.g. DN20260302-A1-01."),
    out: Path = typer.Option(Path("notices"), "--out", help="Directory for the files."),
    page: str = typer.Option("A5", "--page", help="A5 or A4."),
    issuer: str = typer.Option("", "--issuer", help="Issuing office shown on each notice."),
    db: str | None = db_option(),
) -> None:
    """Print a batch's paper notices (paper and manual records): HTML and text files."""
    from prepaid.dunning import print_batch
    from prepaid.messages import PageSize

    try:
        size = PageSize(page.upper())
    except ValueError:
        fail(f"--page wants A5 or A4, got {page!r}", 2)
    try:
        files = print_batch(open_db(db), batch, out, clock=_clock(None), page=size, issuer=issuer)
    except _service_error() as exc:
        fail(str(exc), 1)
    console.print(f"{files.count} notices: {files.html}, {files.text}", highlight=False)


def dunning_overdue_command(
    now: datetime | None = _NOW,
    db: str | None = db_option(),
    as_json: bool = _JSON,
) -> None:
    """Open dunning records past their pay-by time (ready for the disconnection flow)."""
    from prepaid.dunning import overdue_records

    clock = _clock(now)
    records = overdue_records(open_db(db), clock.now())
    if as_json:
        print_json([r.to_dict() for r in records])
        return
    table = Table(title=f"overdue dunning ({len(records)})", title_justify="left")
    for col in ("batch", "customer", "name", "balance", "pay by", "method"):
        table.add_column(col)
    for r in records:
        table.add_row(
            r.batch_no,
            r.customer_no,
            r.name,
            _yuan(r.balance_fen),
            f"{r.pay_by:%Y-%m-%d %H:%M}",
            r.method,
        )
    console.print(table)


# -- customer service ------------------------------------------------------------------


def _month(text: str) -> date:
    try:
        return date.fromisoformat(text + "-01" if len(text) == 7 else text)
    except ValueError:
        fail(f"--month wants YYYY-MM (e.g. 2026-03), got {text!r}", 2)


def bills_command(
    month: str = typer.Option(..., "--month", help="The month billed: YYYY-MM."),
    area: list[str] | None = _AREA,
    line: list[str] | None = _LINE,
    unit: list[str] | None = _UNIT,
    customer: list[str] | None = _CUSTOMER,
    now: datetime | None = _NOW,
    db: str | None = db_option(),
    as_json: bool = _JSON,
) -> None:
    """Send the monthly bill (月度账单) of a month, once per customer.

    Prints: sent=N paper=N invalid_phone=N already_sent=N no_reading=N not_rated=N
    (accounts whose rating has not reached the month's end: rate first, then again).
    """
    from prepaid.service import send_monthly_bills

    clock = _clock(now)
    engine = open_db(db)
    with _progress("bills", not as_json) as progress:
        try:
            report = send_monthly_bills(
                engine,
                _month(month),
                clock=clock,
                settings=_settings(engine, clock),
                selection=_selection(area, line, unit, customer),
                progress=progress,
            )
        except _service_error() as exc:
            fail(str(exc), 1)
    if as_json:
        print_json(report.to_dict())
        return
    console.print(_kv(report.to_dict()), highlight=False)
    if report.missing:
        console.print(
            "no readings for: "
            + ", ".join(report.missing)
            + (" …" if report.no_reading > len(report.missing) else ""),
            highlight=False,
        )


def sms_command(
    text: str = typer.Option(..., "--text", help="What the customers read (≤ 300 chars)."),
    area: list[str] | None = _AREA,
    line: list[str] | None = _LINE,
    unit: list[str] | None = _UNIT,
    customer: list[str] | None = _CUSTOMER,
    customers_file: Path | None = typer.Option(
        None, "--customers-file", help="A file of customer numbers (one a line, or CSV)."
    ),
    everyone: bool = typer.Option(False, "--everyone", help="Send to every active customer."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Count the recipients, send nothing."),
    user: str | None = typer.Option(None, "--user", help="Your login (customer service)."),
    db: str | None = db_option(),
    as_json: bool = _JSON,
) -> None:
    """Custom SMS (自定义短信) to chosen customers; recorded as a campaign and audited."""
    from prepaid.service import send_custom_sms

    clock = _clock(None)
    engine = open_db(db)
    operator = _operator(engine, clock, user)
    with _progress("messages", not as_json) as progress:
        try:
            campaign = send_custom_sms(
                engine,
                text,
                by=operator,
                clock=clock,
                selection=_selection(area, line, unit, customer, customers_file),
                everyone=everyone,
                settings=_settings(engine, clock),
                dry_run=dry_run,
                progress=progress,
            )
        except _service_error() as exc:
            fail(str(exc), 1)
    if as_json:
        print_json(campaign.to_dict())
        return
    head = "dry run: would send to" if dry_run else f"campaign {campaign.id}:"
    console.print(
        f"{head} recipients={campaign.recipients} queued={campaign.queued} "
        f"invalid={campaign.invalid} skipped_paper={campaign.skipped_paper}",
        highlight=False,
    )


def campaigns_command(
    limit: int = typer.Option(20, "--limit", min=1, help="At most this many, newest first."),
    db: str | None = db_option(),
    as_json: bool = _JSON,
) -> None:
    """Custom SMS campaigns: who sent what to whom."""
    from prepaid.service import list_campaigns

    campaigns = list_campaigns(open_db(db), limit=limit)
    if as_json:
        print_json([c.to_dict() for c in campaigns])
        return
    table = Table(title=f"custom SMS campaigns ({len(campaigns)})", title_justify="left")
    for col in ("id", "at", "by", "to", "queued", "invalid", "paper", "text"):
        table.add_column(col)
    for c in campaigns:
        chosen = ", ".join(f"{k}:{len(v)}" for k, v in c.selection.items() if v) or "everyone"
        table.add_row(
            str(c.id),
            f"{c.created_at:%Y-%m-%d %H:%M}",
            c.created_by,
            chosen,
            str(c.queued),
            str(c.invalid),
            str(c.skipped_paper),
            c.text[:40],
        )
    console.print(table)


def phones_command(
    area: list[str] | None = _AREA,
    line: list[str] | None = _LINE,
    unit: list[str] | None = _UNIT,
    export: Path | None = typer.Option(None, "--export", help="Write the list as CSV (Excel)."),
    db: str | None = db_option(),
    as_json: bool = _JSON,
) -> None:
    """Invalid phone numbers (无效号码): empty, too short, letters, bad prefix …"""
    from prepaid.service import export_invalid_phones, invalid_phones, problem_counts

    engine = open_db(db)
    clock = _clock(None)
    found = list(
        invalid_phones(
            engine, settings=_settings(engine, clock), selection=_selection(area, line, unit, None)
        )
    )
    written = None
    if export is not None:
        try:
            written = export_invalid_phones(found, export)
        except _service_error() as exc:
            fail(str(exc), 2)
    if as_json:
        print_json({"counts": problem_counts(found), "invalid": [p.to_dict() for p in found]})
        return
    table = Table(title=f"invalid phone numbers ({len(found)})", title_justify="left")
    for col in ("customer", "name", "phone", "problem", "detail", "area"):
        table.add_column(col)
    for p in found[:200]:
        table.add_row(
            p.recipient.customer_no,
            p.recipient.name,
            repr(p.check.raw),
            p.check.problem.value if p.check.problem else "",
            p.check.detail,
            p.recipient.area,
        )
    console.print(table)
    if len(found) > 200:
        console.print(f"… {len(found) - 200} more (use --export FILE for all)", highlight=False)
    console.print(_kv(problem_counts(found)) or "none", highlight=False)
    if written is not None:
        console.print(f"written: {export} ({written} rows)", highlight=False)


def tiers_command(
    now: datetime | None = _NOW,
    db: str | None = db_option(),
    as_json: bool = _JSON,
) -> None:
    """Tier reminders (阶梯提醒) for accounts that entered a higher tier since the last run."""
    from prepaid.service import run_tier_reminders

    clock = _clock(now)
    engine = open_db(db)
    with _progress("tier reminders", not as_json) as progress:
        try:
            report = run_tier_reminders(
                engine, clock=clock, settings=_settings(engine, clock), progress=progress
            )
        except _service_error() as exc:
            fail(str(exc), 1)
    if as_json:
        print_json(report.to_dict())
    else:
        console.print(_kv(report.to_dict()), highlight=False)


def after_rating_command(
    day: str = typer.Option(..., "--day", help="The reading day just rated: YYYY-MM-DD."),
    notices: Path | None = typer.Option(
        None, "--notices", help="Print automatic dunning batches' notices here."
    ),
    now: datetime | None = _NOW,
    db: str | None = db_option(),
    as_json: bool = _JSON,
) -> None:
    """After the daily rating: reminders, auto dunning, tier reminders, anomaly orders."""
    from prepaid.service.daily import after_rating

    try:
        the_day = date.fromisoformat(day)
    except ValueError:
        fail(f"--day wants YYYY-MM-DD, got {day!r}", 2)
    clock = _clock(now)
    engine = open_db(db)
    try:
        report = after_rating(
            engine, the_day, clock=clock, settings=_settings(engine, clock), notices_dir=notices
        )
    except _service_error() as exc:
        fail(str(exc), 1)
    data = report.to_dict()
    if as_json:
        print_json(data)
        return
    for step, values in data.items():
        console.print(f"{step:10} {_kv(values)}", highlight=False)


# -- anomaly work orders ---------------------------------------------------------------


def anomaly_open_command(
    day: str = typer.Option(..., "--day", help="The last reading day checked: YYYY-MM-DD."),
    now: datetime | None = _NOW,
    db: str | None = db_option(),
    as_json: bool = _JSON,
) -> None:
    """Open a work order for each meter missing its readings N days up to --day."""
    from prepaid.anomaly_orders import open_anomaly_orders

    try:
        the_day = date.fromisoformat(day)
    except ValueError:
        fail(f"--day wants YYYY-MM-DD, got {day!r}", 2)
    clock = _clock(now)
    engine = open_db(db)
    try:
        report = open_anomaly_orders(
            engine, the_day, clock=clock, settings=_settings(engine, clock)
        )
    except _service_error() as exc:
        fail(str(exc), 1)
    if as_json:
        print_json(report.to_dict())
        return
    console.print(_kv(report.to_dict()) + f"  opened={len(report.opened)}", highlight=False)
    for number in report.opened:
        console.print(f"  {number}", highlight=False)


def anomaly_list_command(
    unfinished: bool = typer.Option(False, "--unfinished", help="Only those not closed."),
    customer: str | None = typer.Option(None, "--customer", help="One customer number."),
    limit: int = typer.Option(50, "--limit", min=1, help="At most this many, newest first."),
    db: str | None = db_option(),
    as_json: bool = _JSON,
) -> None:
    """Anomaly work orders for missing readings, and any reading that arrived since."""
    from prepaid.anomaly_orders import list_anomaly_orders

    orders = list_anomaly_orders(
        open_db(db), unfinished=unfinished, customer_no=customer, limit=limit
    )
    if as_json:
        print_json([o.to_dict() for o in orders])
        return
    table = Table(title=f"anomaly work orders ({len(orders)})", title_justify="left")
    for col in (
        "work order",
        "customer",
        "meter",
        "missing since",
        "days",
        "state",
        "assignee",
        "reading since",
        "result",
    ):
        table.add_column(col)
    for o in orders:
        table.add_row(
            o.work_order_no or "-",
            o.customer_no,
            o.meter_address,
            o.gap_start.isoformat(),
            str(o.missing_days),
            o.state or "-",
            o.assignee or "-",
            o.reading_since.isoformat() if o.reading_since else "-",
            (o.result or "")[:40],
        )
    console.print(table)


def anomaly_record_command(
    number: str = typer.Argument(..., help="The work order number (GD…)."),
    result: str = typer.Option(..., "--result", help="What was done on site."),
    outcome: str = typer.Option("done", "--outcome", help="done, not-done or not-needed."),
    user: str | None = typer.Option(None, "--user", help="Your login (the assignee)."),
    db: str | None = db_option(),
) -> None:
    """The handler records what was done (回单)."""
    from prepaid.anomaly_orders import record_anomaly_result

    clock = _clock(None)
    engine = open_db(db)
    operator = _operator(engine, clock, user)
    try:
        order = record_anomaly_result(
            engine, number, by=operator, result=result, outcome=outcome, clock=clock
        )
    except _service_error() as exc:
        fail(str(exc), 1)
    console.print(f"{order.number} {order.state.value}: {order.result}", highlight=False)


def anomaly_close_command(
    number: str = typer.Argument(..., help="The work order number (GD…)."),
    comment: str = typer.Option("", "--comment", help="A closing remark."),
    user: str | None = typer.Option(None, "--user", help="Your login."),
    db: str | None = db_option(),
) -> None:
    """Close an anomaly work order whose result is recorded."""
    from prepaid.anomaly_orders import close_anomaly_order

    clock = _clock(None)
    engine = open_db(db)
    operator = _operator(engine, clock, user)
    try:
        order = close_anomaly_order(engine, number, by=operator, clock=clock, comment=comment)
    except _service_error() as exc:
        fail(str(exc), 1)
    console.print(f"{order.number} {order.state.value}", highlight=False)


reminders_app.command("run")(reminders_run_command)
reminders_app.command("list")(reminders_list_command)
dunning_app.command("run")(dunning_run_command)
dunning_app.command("batches")(dunning_batches_command)
dunning_app.command("records")(dunning_records_command)
dunning_app.command("print")(dunning_print_command)
dunning_app.command("overdue")(dunning_overdue_command)
service_app.command("bills")(bills_command)
service_app.command("sms")(sms_command)
service_app.command("campaigns")(campaigns_command)
service_app.command("phones")(phones_command)
service_app.command("tiers")(tiers_command)
service_app.command("after-rating")(after_rating_command)
anomaly_app.command("open")(anomaly_open_command)
anomaly_app.command("list")(anomaly_list_command)
anomaly_app.command("record")(anomaly_record_command)
anomaly_app.command("close")(anomaly_close_command)


# -- bench -----------------------------------------------------------------------------


def bench_command(
    accounts: int = typer.Option(100_000, "--accounts", min=100, help="Accounts to generate."),
    days: int = typer.Option(14, "--days", min=2, max=27, help="Days of February rated first."),
    seed: int = typer.Option(1, "--seed", help="Population seed."),
    keep: bool = typer.Option(False, "--keep", help="Keep the temporary database."),
) -> None:
    """Time the notification runs over N generated accounts; prints key=value figures.

    ``feikong generate`` makes the population (readings from 1 February 2026, in a
    subprocess: generate_s=), the first --days days of February are rated
    (rate_s=); then, each timed on its own: reminders, dunning (every area, by a
    person), tier reminders, anomaly orders, the monthly bill of February (on 2 March)
    and the invalid-phone list. Every run is then repeated to show it sends nothing
    twice (…_again_s=, …_again=0).
    """
    import os
    import shutil
    import subprocess
    import sys
    import tempfile
    import time

    from prepaid.anomaly_orders import open_anomaly_orders
    from prepaid.db import open_database
    from prepaid.dunning import run_dunning
    from prepaid.rating import rate_day
    from prepaid.reminders import run_reminders
    from prepaid.service import invalid_phones, run_tier_reminders, send_monthly_bills
    from protocol.clock import SteppedClock

    folder = Path(tempfile.mkdtemp(prefix="feikong-bench-notify-"))
    url = f"sqlite:///{folder / 'bench.db'}"

    def say(key: str, value: object) -> None:
        console.print(f"{key}={value}", highlight=False)

    try:
        say("accounts", accounts)
        say("load_before", " ".join(f"{x:.2f}" for x in os.getloadavg()))
        started = time.perf_counter()
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "feikong",
                "generate",
                "--customers",
                str(accounts),
                "--days",
                "32",
                "--start",
                "2026-02-01",
                "--seed",
                str(seed),
                "--db",
                url,
                "--json",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            fail(f"feikong generate failed: {done.stderr.strip() or done.stdout.strip()}", 1)
        say("generate_s", f"{time.perf_counter() - started:.1f}")
        engine = open_database(url)
        started = time.perf_counter()
        for d in range(2, days + 2):
            rate_day(engine, date(2026, 2, d))
        say("rate_s", f"{time.perf_counter() - started:.1f}")
        clock = SteppedClock(datetime(2026, 2, days + 1, 7, 0))
        settings = _settings(engine, clock)

        def timed(name: str, run: Callable[[], int]) -> None:
            for suffix in ("", "_again"):
                t0 = time.perf_counter()
                n = run()
                say(f"{name}{suffix}_s", f"{time.perf_counter() - t0:.2f}")
                say(f"{name}{suffix}", n)

        timed("reminders", lambda: run_reminders(engine, clock=clock, settings=settings).opened)
        timed(
            "dunning",
            lambda: (
                run_dunning(
                    engine, clock=clock, by="system:bench", settings=settings, auto=False
                ).records
            ),
        )
        timed("tiers", lambda: run_tier_reminders(engine, clock=clock, settings=settings).sent)
        timed(
            "anomaly_orders",
            lambda: len(
                open_anomaly_orders(
                    engine, date(2026, 2, days + 1), clock=clock, settings=settings, assign=False
                ).opened
            ),
        )
        clock.set(datetime(2026, 3, 2, 9, 0))
        timed(
            "bills",
            lambda: (
                send_monthly_bills(engine, date(2026, 2, 1), clock=clock, settings=settings).sent
            ),
        )
        t0 = time.perf_counter()
        found = sum(1 for _ in invalid_phones(engine, settings=settings))
        say("phones_s", f"{time.perf_counter() - t0:.2f}")
        say("invalid_phones", found)
        say("load_after", " ".join(f"{x:.2f}" for x in os.getloadavg()))
        if keep:
            say("database", url)
    finally:
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)


def register(app: typer.Typer) -> None:
    """Add ``reminders``, ``dunning``, ``service`` and ``anomaly-orders`` to ``feikong``."""
    app.add_typer(reminders_app, name="reminders")
    app.add_typer(dunning_app, name="dunning")
    app.add_typer(service_app, name="service")
    app.add_typer(anomaly_app, name="anomaly-orders")


def register_bench(bench_app: typer.Typer) -> None:
    """Add ``notifications`` to the ``feikong bench`` group."""
    bench_app.command("notifications")(bench_command)
