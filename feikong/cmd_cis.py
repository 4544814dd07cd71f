"""``feikong cis …``: payments, refunds, balances, settlement and timely rating.

The CIS here is the built-in ledger (:class:`prepaid.cis.LedgerCis`) in the platform's
database. A payment re-rates its account at once and prints the new real-time balance
(实时余额 = CIS balance − charges not yet settled in the CIS).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .output import console, err_console, fail, print_json

if TYPE_CHECKING:  # the database stack is imported only by the commands that use it
    from sqlalchemy.engine import Engine

    from prepaid.balance import RealtimeBalance
    from prepaid.cis.payments import PaymentOutcome, PaymentService

cis_app = typer.Typer(
    help="CIS (营销系统): payments, refunds, balances, settlement, timely rating (适时算费).",
    no_args_is_help=True,
)

_DB_HELP = (
    "Database URL: sqlite:///FILE or postgresql+psycopg://user:pass@host/db "
    "(default: $FEIKONG_DATA/feikong.db, ./data/feikong.db)."
)


def _db_option() -> Any:
    return typer.Option(None, "--db", envvar="FEIKONG_DB", help=_DB_HELP)


def _json_option() -> Any:
    return typer.Option(False, "--json", help="Machine-readable output.")


def _open(url: str | None) -> Engine:
    from prepaid.db import PrepaidDatabaseError, migrate, open_database

    try:
        engine = open_database(url)
        migrate(engine)
    except PrepaidDatabaseError as exc:
        fail(str(exc), 2)
    return engine


def _service(engine: Engine) -> PaymentService:
    from prepaid.cis import LedgerCis
    from prepaid.cis.payments import PaymentService

    return PaymentService(engine, LedgerCis(engine))


def _fen(text: str, option: str) -> int:
    from prepaid.cis import AmountError, parse_yuan

    try:
        return parse_yuan(text, what=option)
    except AmountError as exc:
        fail(str(exc), 2)


def _yuan(fen: int) -> str:
    from prepaid.cis import format_fen

    return format_fen(fen)


def _balance_line(balance: RealtimeBalance) -> str:
    return (
        f"real-time balance [bold]{_yuan(balance.realtime_fen)}[/] yuan "
        f"(CIS {_yuan(balance.cis_fen)} − unsettled {_yuan(balance.unsettled_fen)})"
    )


def _report_outcome(outcome: PaymentOutcome, verb: str, as_json: bool) -> None:
    if as_json:
        print_json(outcome.to_dict())
        return
    receipt = outcome.receipt
    if receipt.duplicate:
        console.print(
            f"{receipt.kind.value} {receipt.operation_id} was already {verb} "
            f"({_yuan(receipt.amount_fen)} yuan on {receipt.account_no}, "
            f"{receipt.occurred_at:%Y-%m-%d %H:%M}): nothing {verb} now",
            highlight=False,
        )
    else:
        console.print(
            f"{verb} {_yuan(receipt.amount_fen)} yuan "
            f"{'to' if verb == 'credited' else 'from'} {receipt.account_no} "
            f"({receipt.kind.value} {receipt.operation_id}); CIS balance "
            f"{_yuan(receipt.balance_fen)} yuan",
            highlight=False,
        )
    console.print(_balance_line(outcome.balance), highlight=False)
    if outcome.rerated:
        console.print(f"re-rated for {outcome.day} in {outcome.elapsed_s:.3f} s", highlight=False)
    if outcome.rating_error:
        err_console.print(f"[yellow]warning:[/] {outcome.rating_error}", highlight=False)


def pay_command(
    account: str = typer.Option(..., "--account", help="Customer number (户号)."),
    amount: str = typer.Option(..., "--amount", help="Yuan, e.g. 100.00."),
    payment_id: str = typer.Option(
        ..., "--payment-id", help="The CIS serial number (缴费流水号); credited once."
    ),
    source: str = typer.Option("cli", "--source", help="Where it was paid (counter, bank…)."),
    db: str | None = _db_option(),
    as_json: bool = _json_option(),
) -> None:
    """Credit a payment, re-rate the account at once and print the new real-time balance.

    The same payment id again credits nothing (exit 0, says so); the same id with
    another amount or account is refused (exit 2).
    """
    from prepaid.cis import CisError

    fen = _fen(amount, "--amount")
    engine = _open(db)
    try:
        outcome = _service(engine).pay(account, fen, payment_id, source=source)
    except CisError as exc:
        fail(str(exc), 2)
    _report_outcome(outcome, "credited", as_json)


def refund_command(
    account: str = typer.Option(..., "--account", help="Customer number (户号)."),
    amount: str = typer.Option(..., "--amount", help="Yuan, e.g. 20.00."),
    refund_id: str = typer.Option(..., "--refund-id", help="The refund's serial number."),
    source: str = typer.Option("cli", "--source", help="Who refunds (counter…)."),
    db: str | None = _db_option(),
    as_json: bool = _json_option(),
) -> None:
    """Pay money back: at most the real-time balance. A refusal exits 1 and says why."""
    from prepaid.cis import CisError, RefundRefusedError

    fen = _fen(amount, "--amount")
    engine = _open(db)
    try:
        outcome = _service(engine).refund(account, fen, refund_id, source=source)
    except RefundRefusedError as exc:
        fail(str(exc), 1)
    except CisError as exc:
        fail(str(exc), 2)
    _report_outcome(outcome, "refunded", as_json)


def import_command(
    file: Path = typer.Argument(
        ..., help="Payments CSV: payment_id,account_no,amount[,paid_at,source]."
    ),
    db: str | None = _db_option(),
    as_json: bool = _json_option(),
) -> None:
    """Credit a payments CSV; bad rows are listed by line, good rows still load.

    Importing the same file again credits nothing twice. Every credited account is
    re-rated at once. Exit status: 0 if any row was good, 1 if every row was bad,
    2 if the file cannot be read.
    """
    from prepaid.cis import CisError, CsvFormatError

    engine = _open(db)
    service = _service(engine)
    try:
        if console.is_terminal and not as_json:
            columns = (
                TextColumn("crediting"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
            )
            with Progress(*columns, console=err_console, transient=True) as bar:
                task = bar.add_task("import", total=None)

                def update(done: int, total: int) -> None:
                    bar.update(task, completed=done, total=total)

                outcome = service.import_csv(file, progress=update)
        else:
            outcome = service.import_csv(file)
    except CsvFormatError as exc:
        fail(str(exc), 2)
    except CisError as exc:
        fail(str(exc), 2)
    report = outcome.report
    if as_json:
        print_json(outcome.to_dict())
    else:
        console.print(
            f"{report.rows} row(s): credited {report.credited} payment(s), "
            f"{_yuan(report.credited_fen)} yuan to {len(report.accounts)} account(s); "
            f"{report.duplicates} already credited; {len(report.errors)} bad row(s)",
            highlight=False,
        )
        if outcome.rerated:
            console.print(f"re-rated {outcome.rerated} account(s)", highlight=False)
        if outcome.rating_error:
            err_console.print(f"[yellow]warning:[/] {outcome.rating_error}", highlight=False)
        if report.ignored_columns:
            console.print(
                f"ignored column(s): {', '.join(report.ignored_columns)}", highlight=False
            )
        for error in report.errors:
            console.print(str(error), highlight=False, soft_wrap=True, markup=False)
    good = report.credited + report.duplicates
    if report.errors and good == 0:
        raise typer.Exit(1)


def balance_command(
    account: str = typer.Argument(..., help="Customer number (户号)."),
    movements: int = typer.Option(5, "--movements", "-n", help="Show the last N movements."),
    db: str | None = _db_option(),
    as_json: bool = _json_option(),
) -> None:
    """An account's CIS balance, unsettled charges and real-time balance, and its ledger."""
    from prepaid.balance import BalanceError, realtime_balance
    from prepaid.cis import LedgerCis

    engine = _open(db)
    try:
        balance = realtime_balance(engine, account)
    except BalanceError as exc:
        fail(str(exc), 2)
    moved = LedgerCis(engine).movements(balance.customer_no, limit=max(0, movements))
    if as_json:
        print_json(
            {
                **balance.to_dict(),
                "stored_balance": None if balance.stored_fen is None else _yuan(balance.stored_fen),
                "movements": [m.to_dict() for m in moved],
            }
        )
        return
    table = Table(title=f"account {balance.customer_no}", show_header=False)
    table.add_column("what")
    table.add_column("yuan", justify="right")
    table.add_row("CIS balance", _yuan(balance.cis_fen))
    table.add_row("unsettled charges", _yuan(balance.unsettled_fen))
    table.add_row("[bold]real-time balance[/]", f"[bold]{_yuan(balance.realtime_fen)}[/]")
    console.print(table)
    if balance.stored_fen is not None and balance.stored_fen != balance.realtime_fen:
        err_console.print(
            f"[yellow]note:[/] the rating state holds {_yuan(balance.stored_fen)} yuan; "
            "the next payment or `feikong cis sync` brings it in step",
            highlight=False,
        )
    if moved:
        ledger = Table(title="movements (newest first)")
        for name in ("id", "when", "kind", "operation", "amount", "balance after"):
            ledger.add_column(
                name, justify="right" if name in ("amount", "balance after") else "left"
            )
        for m in moved:
            ledger.add_row(
                str(m.id),
                f"{m.occurred_at:%Y-%m-%d %H:%M}",
                m.kind.value,
                m.operation_id,
                _yuan(m.amount_fen),
                _yuan(m.balance_after_fen),
            )
        console.print(ledger)


def settle_command(
    through: str = typer.Option(
        ..., "--through", help="Settle charges up to this day, YYYY-MM-DD."
    ),
    db: str | None = _db_option(),
    as_json: bool = _json_option(),
) -> None:
    """Settle the platform's charges into the CIS through a closed day (电费结算).

    The real-time balances do not change; running it again settles nothing twice.
    """
    from prepaid.balance import BalanceError, settle_charges
    from prepaid.cis import CisError, LedgerCis

    try:
        day = date.fromisoformat(through.strip())
    except ValueError:
        fail(f"--through wants a date YYYY-MM-DD, got {through!r}", 2)
    engine = _open(db)
    try:
        report = settle_charges(engine, LedgerCis(engine), day)
    except (BalanceError, CisError) as exc:
        fail(str(exc), 2)
    if as_json:
        print_json({"through": day.isoformat(), **report.to_dict()})
        return
    console.print(
        f"settled through {day}: {report.applied} account(s), {_yuan(report.amount_fen)} yuan; "
        f"{report.already} already settled",
        highlight=False,
    )


def sync_command(
    db: str | None = _db_option(),
    as_json: bool = _json_option(),
) -> None:
    """Bring new accounts into the CIS ledger and every stored real-time balance in step.

    Accounts the ledger has never seen are opened with the balance their rating state
    holds (e.g. after ``feikong generate``); then every rating state's real-time balance
    is set to CIS − unsettled. Set-based and idempotent ("0 corrected" means everything
    was in step); run it while no rating is running, as it writes absolute values.
    """
    from prepaid.balance import adopt_opening_balances, sync_balances
    from prepaid.cis import LedgerCis

    engine = _open(db)
    opened = adopt_opening_balances(engine, LedgerCis(engine))
    changed = sync_balances(engine)
    if as_json:
        print_json({"opened": opened, "corrected": changed})
        return
    console.print(
        f"opened {opened} account(s) in the CIS ledger; {changed} real-time balance(s) corrected",
        highlight=False,
    )


def audit_command(db: str | None = _db_option(), as_json: bool = _json_option()) -> None:
    """Check that every CIS balance is the sum of its movements (exit 1 if not)."""
    from prepaid.cis import LedgerCis

    engine = _open(db)
    bad = LedgerCis(engine).audit()
    if as_json:
        print_json(
            [
                {
                    "account_no": b.account_no,
                    "balance": _yuan(b.balance_fen),
                    "movements": _yuan(b.movements_fen),
                }
                for b in bad
            ]
        )
    elif not bad:
        console.print("every CIS balance equals the sum of its movements", highlight=False)
    else:
        for b in bad:
            console.print(
                f"{b.account_no}: balance {_yuan(b.balance_fen)} ≠ "
                f"movements {_yuan(b.movements_fen)}",
                highlight=False,
            )
    if bad:
        raise typer.Exit(1)


def timely_command(
    rules_file: Path | None = typer.Option(
        None, "--rules", help="TOML file with a [timely] table (default rules otherwise)."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Select only; rate nothing."),
    db: str | None = _db_option(),
    as_json: bool = _json_option(),
) -> None:
    """Timely rating (适时算费): select the accounts to rate now by the rules, and rate them.

    Prints how many accounts each rule selected (days of credit left, balance below the
    threshold, a newer reading) and how long selection and rating took.
    """
    from prepaid.timely import (
        TimelyError,
        TimelyReport,
        TimelyRules,
        load_rules,
        run_timely,
        select_accounts,
    )
    from protocol.clock import RealClock

    try:
        rules = load_rules(rules_file) if rules_file is not None else TimelyRules()
    except TimelyError as exc:
        fail(str(exc), 2)
    engine = _open(db)
    clock = RealClock()
    if dry_run:
        report = TimelyReport(select_accounts(engine, rules, clock.now().date()))
    elif console.is_terminal and not as_json:
        columns = (TextColumn("rating"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=err_console, transient=True) as bar:
            task = bar.add_task("rate", total=None)

            def update(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            report = run_timely(engine, rules, clock=clock, progress=update)
    else:
        report = run_timely(engine, rules, clock=clock)
    if as_json:
        print_json({"rules": rules.to_dict(), **report.to_dict()})
        return
    selection = report.selection
    table = Table(title=f"timely rating {selection.day}")
    table.add_column("rule")
    table.add_column("accounts", justify="right")
    for label, count in selection.by_rule().items():
        table.add_row(label, str(count))
    table.add_section()
    table.add_row("selected", str(len(selection.account_ids)))
    console.print(table)
    if selection.candidates > len(selection.account_ids):
        console.print(
            f"{selection.candidates} matched; the {len(selection.account_ids)} most urgent kept "
            "(max_accounts)",
            highlight=False,
        )
    if dry_run:
        console.print("dry run: nothing rated", highlight=False)
    else:
        console.print(
            f"rated {report.rated} account(s) in {report.rate_s:.2f} s "
            f"(selection {report.select_s:.2f} s)",
            highlight=False,
        )


def bench_command(
    accounts: int = typer.Option(100_000, "--accounts", help="Accounts to generate."),
    days: int = typer.Option(8, "--days", help="Days of readings; all but the first rated."),
    payments: int = typer.Option(20, "--payments", help="Payments timed one by one."),
    db: str | None = typer.Option(
        None, "--db", help="Empty database URL (default: a temporary SQLite file)."
    ),
    as_json: bool = _json_option(),
) -> None:
    """Benchmark the CIS side at scale; prints key=value figures.

    Generates a population (``feikong generate``), rates ``days - 1`` days, then times:
    opening the ledger (adopt), the bulk real-time balance of every account, the sync
    check, the timely-rating selection, single payments (credit + re-rating) and the
    settlement of every account.
    """
    import resource
    import statistics
    import tempfile
    import time
    from datetime import datetime, timedelta

    from prepaid.balance import (
        adopt_opening_balances,
        iter_realtime_balances,
        settle_charges,
        sync_balances,
    )
    from prepaid.cis import LedgerCis
    from prepaid.cis.payments import PaymentService
    from prepaid.generate import GenerateError, GenerateOptions, generate
    from prepaid.rating import rate_day
    from prepaid.timely import TimelyRules, select_accounts
    from protocol.clock import SteppedClock

    if accounts < 1 or days < 2 or payments < 1:
        fail("--accounts ≥ 1, --days ≥ 2 and --payments ≥ 1, please", 2)
    workdir = None
    if db is None:
        workdir = tempfile.TemporaryDirectory(prefix="feikong-cis-bench-")
        db = f"sqlite:///{workdir.name}/bench.db"
    figures: dict[str, Any] = {"accounts": accounts, "days": days}

    def lap(name: str, started: float) -> float:
        figures[name] = round(time.perf_counter() - started, 3)
        if not as_json and err_console.is_terminal:
            err_console.print(f"{name}={figures[name]}", highlight=False)
        return float(figures[name])

    try:
        engine = _open(db)
        start = datetime(2026, 1, 1)
        t = time.perf_counter()
        try:
            generate(engine, GenerateOptions(customers=accounts, days=days, start=start.date()))
        except GenerateError as exc:
            fail(str(exc), 2)
        for d in range(1, days):
            rate_day(engine, start.date() + timedelta(days=d))
        lap("setup_s", t)
        ledger = LedgerCis(engine)
        t = time.perf_counter()
        adopt_opening_balances(engine, ledger)
        lap("adopt_s", t)
        t = time.perf_counter()
        with engine.connect() as connection:
            counted = sum(len(c) for c in iter_realtime_balances(connection))
        seconds = lap("bulk_realtime_s", t)
        figures["bulk_realtime_per_s"] = int(counted / max(seconds, 1e-9))
        t = time.perf_counter()
        figures["sync_corrected"] = sync_balances(engine)
        lap("sync_s", t)
        clock = SteppedClock(start + timedelta(days=days, hours=10))
        t = time.perf_counter()
        selection = select_accounts(engine, TimelyRules(), clock.now().date())
        lap("timely_select_s", t)
        figures["timely_selected"] = len(selection.account_ids)
        service = PaymentService(engine, ledger, clock=clock)
        step = max(1, accounts // payments)
        latencies = []
        for i in range(payments):
            number = f"33{1 + i * step:08d}"
            latencies.append(service.pay(number, 10_000, f"BENCH-{i}").elapsed_s)
        figures["pay_p50_ms"] = round(statistics.median(latencies) * 1000, 1)
        figures["pay_max_ms"] = round(max(latencies) * 1000, 1)
        t = time.perf_counter()
        settle_charges(engine, ledger, clock.now().date() - timedelta(days=1), clock=clock)
        lap("settle_s", t)
        figures["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        engine.dispose()
    finally:
        if workdir is not None:
            workdir.cleanup()
    if as_json:
        print_json(figures)
        return
    for key, value in figures.items():
        console.print(f"{key}={value}", highlight=False)


cis_app.command("pay")(pay_command)
cis_app.command("refund")(refund_command)
cis_app.command("import")(import_command)
cis_app.command("balance")(balance_command)
cis_app.command("settle")(settle_command)
cis_app.command("sync")(sync_command)
cis_app.command("audit")(audit_command)
cis_app.command("timely")(timely_command)
cis_app.command("bench")(bench_command)


def register(app: typer.Typer) -> None:
    app.add_typer(cis_app, name="cis")
