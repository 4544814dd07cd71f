"""``feikong vend …``: local fee control (本地费控) — card sales, history, reconciliation.

``vend sell`` credits a card meter customer (once per ``--sale-id``) and writes the card
file the meter takes; ``vend history`` lists a customer's sales; ``vend reconcile``
compares the meters' remaining amounts, as the head-end last read them, with the ledger.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape
from rich.table import Table

from .cmd_settings import db_option, login, open_db
from .output import console, err_console, fail, print_json

if TYPE_CHECKING:  # the database stack is imported only by the commands that use it
    from sqlalchemy.engine import Engine

    from prepaid.vending import Vending

__all__ = ["register"]

vend_app = typer.Typer(
    help="Local fee control (本地费控): sell credit on cards, history, reconciliation.",
    no_args_is_help=True,
)


def _fen(text: str, option: str) -> int:
    from prepaid.cis import AmountError, parse_yuan

    try:
        return parse_yuan(text, what=option)
    except AmountError as exc:
        fail(str(exc), 2)


def _tolerance(text: str) -> int:
    from decimal import Decimal, InvalidOperation

    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        value = Decimal("NaN")
    if not value.is_finite() or value < 0 or value != value.quantize(Decimal("0.01")):
        fail(f"--tolerance wants yuan >= 0 with at most 2 decimals (e.g. 5.00), got {text!r}", 2)
    return int(value * 100)


def _yuan(fen: int | None) -> str:
    if fen is None:
        return "-"
    sign = "-" if fen < 0 else ""
    return f"{sign}{abs(fen) // 100}.{abs(fen) % 100:02d}"


def _vending(engine: Engine, key_file: str | None) -> Vending:
    from prepaid.cis import LedgerCis
    from prepaid.cis.payments import PaymentService
    from prepaid.vending import Vending
    from protocol.errors import SecurityError
    from protocol.security import SimulatedEncryptionMachine, load_master_key

    try:
        key, is_test_key = load_master_key(key_file)
    except SecurityError as exc:
        fail(f"--key-file: {escape(str(exc))}", 2)
    if is_test_key:
        err_console.print(
            "[yellow]warning:[/] cards signed with the well-known lab test key; give "
            "--key-file outside a lab",
            highlight=False,
        )
    return Vending(
        engine, PaymentService(engine, LedgerCis(engine)), SimulatedEncryptionMachine(key)
    )


@vend_app.command("sell")
def sell_command(
    customer: str = typer.Argument(..., help="Customer number (户号) on local fee control."),
    amount: str = typer.Argument(..., help="Yuan, e.g. 100.00."),
    sale_id: str = typer.Option(
        ..., "--sale-id", help="The office's operation number: a sale is made once per id."
    ),
    card: Path | None = typer.Option(None, "--card", help="Write the card file here."),
    key_file: str | None = typer.Option(
        None, "--key-file", help="Lab master key file (32 hex digits); default: the test key."
    ),
    user: str | None = typer.Option(None, "--user", help="Your login (role with 'vend')."),
    db: str | None = db_option(),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Sell credit: credit the customer (CIS, re-rated) and write the card the meter takes.

    The same --sale-id again sells nothing and writes the same card (exit 0, says so);
    the same id with another customer or amount is refused (exit 2).
    """
    from prepaid.cis import CisError
    from prepaid.users import PermissionDeniedError, Users
    from prepaid.vending import VendingError
    from protocol.card import CardError

    fen = _fen(amount, "amount")
    engine = open_db(db)
    vending = _vending(engine, key_file)
    operator = login(Users(engine, clock=vending.clock, audit=vending.audit), user)
    try:
        result = vending.sell(customer, fen, sale_id, by=operator, card_path=card)
    except PermissionDeniedError as exc:
        fail(f"refused: {exc}", 1)
    except (VendingError, CisError, CardError) as exc:
        fail(str(exc), 2)
    except OSError as exc:
        fail(f"cannot write the card file {card}: {exc.strerror or exc}; choose another --card")
    if as_json:
        print_json(result.to_dict())
        return
    sale = result.sale
    what = "sold" if result.new else "already sold (nothing credited again)"
    console.print(
        f"{what}: {_yuan(sale.amount_fen)} yuan to {sale.customer_no} as sale {sale.sale_id}, "
        f"{sale.card_type.value} card {sale.purchase_count} (serial {sale.serial}); "
        f"real-time balance {_yuan(sale.balance_fen)} yuan",
        highlight=False,
    )
    if card is not None:
        console.print(f"card written to {card}", highlight=False)


@vend_app.command("reissue")
def reissue_command(
    sale_id: str = typer.Argument(..., help="The sale whose card was lost."),
    card: Path = typer.Option(..., "--card", help="Write the replacement card file here."),
    key_file: str | None = typer.Option(
        None, "--key-file", help="Lab master key file (32 hex digits); default: the test key."
    ),
    user: str | None = typer.Option(None, "--user", help="Your login (role with 'vend')."),
    db: str | None = db_option(),
) -> None:
    """Write a replacement card (补卡) for a lost one: the same purchase, so the meter
    credits it at most once."""
    from prepaid.users import PermissionDeniedError, Users
    from prepaid.vending import VendingError

    engine = open_db(db)
    vending = _vending(engine, key_file)
    operator = login(Users(engine, clock=vending.clock, audit=vending.audit), user)
    try:
        written = vending.reissue(sale_id, by=operator, card_path=card)
    except PermissionDeniedError as exc:
        fail(f"refused: {exc}", 1)
    except VendingError as exc:
        fail(str(exc), 2)
    except OSError as exc:
        fail(f"cannot write the card file {card}: {exc.strerror or exc}; choose another --card")
    console.print(
        f"{written.type.value} card {written.purchase_count} of {sale_id} "
        f"({_yuan(written.amount_fen)} yuan, serial {written.serial}) written to {card}",
        highlight=False,
    )


@vend_app.command("history")
def history_command(
    customer: str = typer.Argument(..., help="Customer number (户号)."),
    limit: int = typer.Option(50, "--limit", min=1, help="At most this many, latest first."),
    db: str | None = db_option(),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """A customer's card sales (购电记录), latest first."""
    from prepaid.vending import VendingError

    engine = open_db(db)
    try:
        sales = _reader(engine).history(customer, limit=limit)
    except VendingError as exc:
        fail(str(exc), 2)
    if as_json:
        print_json([s.to_dict() for s in sales])
        return
    table = Table(title=f"card sales of {customer} ({len(sales)})", title_justify="left")
    for column in ("count", "sale id", "card", "amount", "sold at", "by", "credited", "balance"):
        table.add_column(column, justify="right" if column in ("amount", "balance") else "left")
    for s in sales:
        table.add_row(
            str(s.purchase_count),
            s.sale_id,
            s.card_type.value,
            _yuan(s.amount_fen),
            f"{s.sold_at:%Y-%m-%d %H:%M}",
            s.sold_by,
            "yes" if s.credited_at else "[red]no[/]",
            _yuan(s.balance_fen),
        )
    console.print(table)


def _reader(engine: Engine) -> Vending:
    """A Vending that only reads (no key, no payments needed)."""
    from prepaid.cis import LedgerCis
    from prepaid.cis.payments import PaymentService
    from prepaid.vending import Vending
    from protocol.security import TEST_MASTER_KEY, SimulatedEncryptionMachine

    payments = PaymentService(engine, LedgerCis(engine))
    return Vending(engine, payments, SimulatedEncryptionMachine(TEST_MASTER_KEY))


@vend_app.command("reconcile")
def reconcile_command(
    customers: list[str] = typer.Option(
        [], "--customer", help="Only these customers (repeatable); default: every card meter."
    ),
    tolerance: str = typer.Option(
        "5.00", "--tolerance", help="Yuan a meter may differ from the ledger (a day's usage)."
    ),
    all_rows: bool = typer.Option(False, "--all", help="List the matching meters too."),
    csv_path: Path | None = typer.Option(None, "--csv", help="Write every row to this CSV."),
    read: bool = typer.Option(
        False,
        "--read",
        help="Queue a remaining-amount read of each card meter first (a running "
        "`feikong headend run` carries them out; reconcile again once they are done).",
    ),
    db: str | None = db_option(),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Each card meter's remaining amount (as the head-end last read it) against the
    ledger: match, card-not-inserted, mismatch or not-read; lists all but the matches."""
    from prepaid.vending import VendingError

    tol = _tolerance(tolerance)
    engine = open_db(db)
    if read:
        from headend.errors import HeadendError
        from headend.service import QueuedHeadendService

        try:
            jobs = _reader(engine).request_remaining(
                QueuedHeadendService(engine), customers or None
            )
        except (HeadendError, VendingError) as exc:
            fail(f"cannot queue the remaining-amount reads: {exc}", 2)
        console.print(
            f"queued {len(jobs)} remaining-amount read(s) for `feikong headend run`; "
            "the table below is the last reads until they are done",
            highlight=False,
            markup=False,
        )
    try:
        report = _reader(engine).reconcile(customers or None, tolerance_fen=tol)
    except VendingError as exc:
        fail(str(exc), 2)
    if csv_path is not None:
        rows = [r.to_dict() for r in report.rows]
        fields = list(rows[0]) if rows else ["customer_no"]
        try:
            with csv_path.open("w", encoding="utf-8-sig", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=fields)
                writer.writeheader()
                for row in rows:
                    writer.writerow({**row, "not_inserted": " ".join(row["not_inserted"])})
        except OSError as exc:
            fail(f"cannot write {csv_path}: {exc.strerror or exc}; choose another --csv path")
    if as_json:
        print_json(report.to_dict())
        return
    shown = report.rows if all_rows else report.mismatches
    table = Table(
        title=f"card meters against the ledger (tolerance {_yuan(tol)} yuan)",
        title_justify="left",
    )
    for column in ("customer", "meter", "state", "meter yuan", "ledger yuan", "diff", "read at"):
        table.add_column(
            column, justify="right" if "yuan" in column or column == "diff" else "left"
        )
    table.add_column("cards not inserted")
    for r in shown:
        style = {"match": "green", "mismatch": "red"}.get(r.state.value, "yellow")
        table.add_row(
            r.customer_no,
            r.meter_address,
            f"[{style}]{r.state.value}[/]",
            _yuan(r.meter_fen),
            _yuan(r.ledger_fen),
            _yuan(r.difference_fen),
            f"{r.read_at:%Y-%m-%d %H:%M}" if r.read_at else "-",
            " ".join(r.not_inserted),
        )
    console.print(table)
    counts: dict[str, Any] = report.to_dict()
    console.print(
        "  ".join(
            f"{k}={counts[k]}" for k in ("match", "card-not-inserted", "mismatch", "not-read")
        ),
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    """Add ``vend`` to ``feikong``."""
    app.add_typer(vend_app, name="vend")
