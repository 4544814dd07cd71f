"""Card commands (the vending office, 售电营业厅): ``feikong card write`` and ``card show``.

``card write`` writes a customer card file (open-account, purchase or replacement)
signed with the office's encryption machine; a local meter takes it with
:meth:`meter_sim.local.LocalMeter.insert_card_file`. ``card show`` prints a card,
the meter's return-write (返写) and whether the MAC is valid under the key.

Amounts are yuan with at most 2 decimals, converted to fen exactly. Without
``--key-file`` the well-known lab test key is used, with a warning.
"""

from __future__ import annotations

import hmac
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from meter_sim.wallet import MAX_AMOUNT_FEN
from protocol.card import Card, CardError, CardType, read_card, write_card
from protocol.errors import SecurityError
from protocol.security import SimulatedEncryptionMachine, check_sm4_support, load_master_key

from .output import console, err_console, fail, print_json

__all__ = ["register"]

card_app = typer.Typer(
    help="Customer cards (用户卡) for local prepay meters: write and show card files.",
    no_args_is_help=True,
)

_LIMIT_OPTIONS = (
    ("alarm1_fen", "--alarm1"),
    ("alarm2_fen", "--alarm2"),
    ("overdraft_limit_fen", "--overdraft-limit"),
    ("hoarding_limit_fen", "--hoarding-limit"),
    ("close_permit_fen", "--close-permit"),
)


def register(app: typer.Typer) -> None:
    app.add_typer(card_app, name="card")


def _fen(text: str, option: str) -> int:
    """Yuan with at most 2 decimals → fen, exactly; exit 2 otherwise."""
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        value = Decimal("NaN")
    exponent = value.as_tuple().exponent
    if (
        not value.is_finite()
        or value < 0
        or not isinstance(exponent, int)
        or exponent < -2
        or value * 100 > MAX_AMOUNT_FEN
    ):
        fail(
            f"{option} wants yuan 0..999999.99 with at most 2 decimals (e.g. 100.50), got {text!r}",
            2,
        )
    return int(value * 100)


def _machine(key_file: str | None) -> SimulatedEncryptionMachine:
    try:
        key, is_test_key = load_master_key(key_file)
    except SecurityError as exc:
        fail(f"--key-file: {escape(str(exc))}", 2)
    if is_test_key:
        err_console.print(
            "[yellow]warning:[/] using the well-known lab test key (simulation crypto, "
            "not SGCC-compatible); give --key-file outside a lab",
            highlight=False,
        )
    try:
        check_sm4_support()
        return SimulatedEncryptionMachine(key)
    except SecurityError as exc:
        fail(escape(str(exc)))


_KEY_FILE = typer.Option(
    "--key-file", metavar="F", help="Lab master key (32 hex digits) [default: the test key]."
)


@card_app.command("write")
def write(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="Card file to write.")],
    customer: Annotated[
        str, typer.Option("--customer", metavar="N", help="Customer number (客户编号), 12 digits.")
    ],
    amount: Annotated[str, typer.Option("--amount", metavar="YUAN", help="Purchase amount.")],
    count: Annotated[
        int, typer.Option("--count", metavar="N", help="Purchase count after this purchase.")
    ],
    card_type: Annotated[
        str, typer.Option("--type", metavar="T", help="open, purchase or replacement.")
    ] = "purchase",
    serial: Annotated[
        str | None,
        typer.Option("--serial", metavar="S", help="Card serial [default: CUSTOMER-COUNT]."),
    ] = None,
    alarm1: Annotated[
        str | None, typer.Option("--alarm1", metavar="YUAN", help="Alarm amount 1 (04001001).")
    ] = None,
    alarm2: Annotated[
        str | None, typer.Option("--alarm2", metavar="YUAN", help="Alarm amount 2 (04001002).")
    ] = None,
    overdraft_limit: Annotated[
        str | None,
        typer.Option("--overdraft-limit", metavar="YUAN", help="Overdraft limit (04001003)."),
    ] = None,
    hoarding_limit: Annotated[
        str | None,
        typer.Option("--hoarding-limit", metavar="YUAN", help="Hoarding limit (04001004)."),
    ] = None,
    close_permit: Annotated[
        str | None,
        typer.Option("--close-permit", metavar="YUAN", help="Close-permit amount (04001005)."),
    ] = None,
    key_file: Annotated[str | None, _KEY_FILE] = None,
) -> None:
    """Write a customer card (open-account, purchase or replacement), signed with the key."""
    number = customer.strip()
    if len(number) != 12 or not number.isdigit():
        fail(f"--customer must be 12 digits (客户编号), got {customer!r}", 2)
    fen = _fen(amount, "--amount")
    if not 1 <= count <= 0xFFFFFFFF:
        fail(
            f"--count must be 1..4294967295 (the purchase count after this purchase), got {count}",
            2,
        )
    try:
        kind = CardType(card_type.strip().lower())
    except ValueError:
        fail(f"--type must be one of open, purchase, replacement; got {card_type!r}", 2)
    given = (alarm1, alarm2, overdraft_limit, hoarding_limit, close_permit)
    parameters = {
        name: _fen(text, option)
        for (name, option), text in zip(_LIMIT_OPTIONS, given, strict=True)
        if text is not None
    }
    if parameters.get("alarm2_fen", 0) > parameters.get("alarm1_fen", MAX_AMOUNT_FEN):
        fail("--alarm2 must not exceed --alarm1", 2)
    card_serial = serial.strip() if serial is not None else f"{number}-{count}"
    if not card_serial:
        fail("--serial must not be empty", 2)
    machine = _machine(key_file)
    card = Card(kind, number, card_serial, fen, count, parameters).signed(machine)
    try:
        write_card(file, card)
    except OSError as exc:
        fail(f"cannot write card file {escape(str(file))}: {escape(exc.strerror or str(exc))}")
    console.print(
        f"card {escape(str(file))}: {kind} card {escape(card_serial)} for customer {number}, "
        f"{Decimal(fen).scaleb(-2)} yuan, purchase {count}",
        highlight=False,
        soft_wrap=True,
    )


def _card_json(card: Card, mac_valid: bool) -> dict[str, Any]:
    data = card.to_json()
    data["amount"] = str(Decimal(card.amount_fen).scaleb(-2))
    data["mac_valid"] = mac_valid
    return data


@card_app.command("show")
def show(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="Card file to show.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    key_file: Annotated[str | None, _KEY_FILE] = None,
) -> None:
    """Show a card file, the meter's return-write and whether its MAC is valid."""
    try:
        card = read_card(file)
    except CardError as exc:
        fail(escape(str(exc)), 2)
    machine = _machine(key_file)
    try:
        expected = machine.card_mac(card.customer_number, card.signed_bytes())
        mac_valid = hmac.compare_digest(expected.hex(), card.mac.lower())
    except SecurityError:
        mac_valid = False
    if as_json:
        print_json(_card_json(card, mac_valid))
        return
    yuan = Decimal(card.amount_fen).scaleb(-2)
    lines = [
        f"card        {escape(str(file))}",
        f"type        {card.type}",
        f"customer    {card.customer_number}",
        f"serial      {escape(card.serial)}",
        f"amount      {yuan} yuan",
        f"count       {card.purchase_count}",
    ]
    for name, option in _LIMIT_OPTIONS:
        if name in card.parameters:
            value = Decimal(card.parameters[name]).scaleb(-2)
            lines.append(f"{option[2:]:<12}{value} yuan")
    lines.append("MAC         " + ("valid" if mac_valid else "INVALID (altered or another key)"))
    back = card.returned
    if back is None:
        lines.append("return      (not inserted yet)")
    else:
        lines += [
            f"return      meter {back.meter_address} at {escape(back.time)}",
            f"  remaining {Decimal(back.remaining_fen).scaleb(-2)} yuan",
            f"  overdraft {Decimal(back.overdraft_fen).scaleb(-2)} yuan",
            f"  count     {back.purchase_count}",
            f"  illegal   {back.illegal_inserts} inserts",
        ]
    for line in lines:
        console.print(line, highlight=False, soft_wrap=True)
