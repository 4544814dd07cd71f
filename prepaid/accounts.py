"""Accounts and tariffs in the database (户档案, 电价): opening accounts, loading tariffs.

The repository functions used by the CLI, the generator and the other prepaid
modules. Opening an account also creates its rating state (:class:`RatingState`,
and :class:`RatingTou` for time-of-use tariffs), with the opening balance.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Final

from sqlalchemy import Connection, Table, insert, select
from sqlalchemy.engine import Engine

from .models import (
    Account,
    FeeControlMode,
    NotifyMode,
    RatingState,
    RatingTou,
    TariffRow,
    TariffVersionRow,
)
from .tariff import Tariff, TariffBook, TariffError

__all__ = [
    "AccountError",
    "NewAccount",
    "TariffCatalog",
    "load_catalog",
    "open_accounts",
    "phone_problem",
    "store_tariffs",
]

_MOBILE: Final = re.compile(r"1[3-9]\d{9}")
_LANDLINE: Final = re.compile(r"0\d{2,3}-?\d{7,8}")


class AccountError(ValueError):
    """Account data that cannot be stored; the message names the account and the fix."""


def phone_problem(phone: str) -> str | None:
    """What is wrong with a phone number for SMS and calls, or ``None`` when it is usable.

    Accepted: an 11-digit mobile number starting 13–19 (optionally ``+86``), or a
    landline with its area code (``0571-87654321``). Spaces are ignored.
    """
    text = phone.replace(" ", "")
    if text.startswith("+86"):
        text = text[3:]
    if not text:
        return "no phone number: record one so the customer can be notified"
    if not text.replace("-", "").isdigit():
        return f"phone {phone!r} has characters other than digits"
    if _MOBILE.fullmatch(text) or _LANDLINE.fullmatch(text):
        return None
    digits = text.replace("-", "")
    if text.startswith("1") and len(digits) < 11:
        return f"phone {phone!r} is too short: a mobile number has 11 digits"
    if text.startswith("1") and len(digits) > 11:
        return f"phone {phone!r} is too long: a mobile number has 11 digits"
    if text.startswith("1"):
        return f"phone {phone!r} has no valid mobile prefix (13x–19x)"
    if len(digits) < 10:
        return f"phone {phone!r} is too short: a landline needs its area code"
    return f"phone {phone!r} is neither a mobile (1xx) nor a landline (0xx-) number"


# -- tariffs --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TariffCatalog:
    """The tariffs in the database: the book of versions and the integer ids of the codes."""

    book: TariffBook
    ids: Mapping[str, int] = field(hash=False)

    @property
    def codes(self) -> dict[int, str]:
        return {v: k for k, v in self.ids.items()}

    def id_of(self, code: str) -> int:
        try:
            return self.ids[code]
        except KeyError:
            known = ", ".join(sorted(self.ids)) or "none"
            raise AccountError(
                f"no tariff {code!r} in the database (it has {known}): load it first"
            ) from None


def _table(model: Any) -> Table:
    table: Table = model.__table__
    return table


def store_tariffs(connection: Connection, tariffs: Iterable[Tariff]) -> dict[str, int]:
    """Store tariff versions (new codes and versions only; existing ones are kept).

    Returns the integer id of every code stored or already there.
    """
    t_tariff, t_version = _table(TariffRow), _table(TariffVersionRow)
    ids = {
        code: ident for ident, code in connection.execute(select(t_tariff.c.id, t_tariff.c.code))
    }
    have = {
        tuple(r) for r in connection.execute(select(t_version.c.tariff_id, t_version.c.version))
    }
    for tariff in tariffs:
        if tariff.id not in ids:
            result = connection.execute(
                insert(t_tariff).values(code=tariff.id, name=tariff.name).returning(t_tariff.c.id)
            )
            ids[tariff.id] = int(result.scalar_one())
        key = (ids[tariff.id], tariff.version)
        if key in have:
            continue
        connection.execute(
            insert(t_version).values(
                tariff_id=key[0],
                version=tariff.version,
                effective_from=tariff.effective_from,
                effective_to=tariff.effective_to,
                definition=tariff.to_dict(),
            )
        )
        have.add(key)
    return ids


def load_catalog(connection: Connection | Engine) -> TariffCatalog:
    """Every tariff version stored in the database, as a :class:`TariffBook`."""
    if isinstance(connection, Engine):
        with connection.connect() as c:
            return load_catalog(c)
    t_tariff, t_version = _table(TariffRow), _table(TariffVersionRow)
    ids = {
        code: ident for ident, code in connection.execute(select(t_tariff.c.id, t_tariff.c.code))
    }
    rows = [
        dict(row._mapping["definition"])
        for row in connection.execute(
            select(t_version.c.definition).order_by(t_version.c.tariff_id, t_version.c.version)
        )
    ]
    try:
        book = TariffBook.from_dicts(rows, source="prepaid_tariff_version")
    except TariffError as exc:
        raise AccountError(f"the stored tariffs cannot be used: {exc}") from exc
    return TariffCatalog(book, ids)


# -- accounts -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NewAccount:
    """An account to open (开户), with its opening balance in fen."""

    customer_no: str
    name: str
    meter_address: str
    tariff: str
    supply_unit_id: int
    opened_on: date
    phone: str = ""
    address: str = ""
    feeder_line_id: int | None = None
    transformer_area_id: int | None = None
    reading_segment_id: int | None = None
    household_size: int = 0
    notify_mode: NotifyMode = NotifyMode.SMS
    fee_control_mode: FeeControlMode = FeeControlMode.REMOTE
    power_guarantee: bool = False
    vulnerable: bool = False
    free_allowance: bool = False
    balance_fen: int = 0
    reminder_fen: int | None = None
    account_id: int | None = None


def open_accounts(connection: Connection, accounts: Sequence[NewAccount]) -> list[int]:
    """Insert accounts and their rating state; returns the account ids, in order.

    Runs in the caller's transaction. Raises :class:`AccountError` for an unknown
    tariff, a bad meter address or a negative household size.
    """
    catalog = load_catalog(connection)
    t_account, t_state, t_tou = _table(Account), _table(RatingState), _table(RatingTou)
    ids: list[int] = []
    for new in accounts:
        if len(new.meter_address) != 12 or not new.meter_address.isdigit():
            raise AccountError(
                f"account {new.customer_no}: meter address {new.meter_address!r} must be 12 digits"
            )
        if new.household_size < 0:
            raise AccountError(f"account {new.customer_no}: household size must be ≥ 0")
        tariff_id = catalog.id_of(new.tariff)
        values: dict[str, Any] = {
            "customer_no": new.customer_no,
            "name": new.name,
            "phone": new.phone,
            "address": new.address,
            "supply_unit_id": new.supply_unit_id,
            "feeder_line_id": new.feeder_line_id,
            "transformer_area_id": new.transformer_area_id,
            "reading_segment_id": new.reading_segment_id,
            "meter_address": new.meter_address,
            "tariff_id": tariff_id,
            "household_size": new.household_size,
            "notify_mode": NotifyMode(new.notify_mode).value,
            "fee_control_mode": FeeControlMode(new.fee_control_mode).value,
            "power_guarantee": new.power_guarantee,
            "vulnerable": new.vulnerable,
            "free_allowance": new.free_allowance,
            "active": True,
            "opened_on": new.opened_on,
        }
        if new.account_id is not None:
            values["id"] = new.account_id
        ident = int(
            connection.execute(
                insert(t_account).values(**values).returning(t_account.c.id)
            ).scalar_one()
        )
        connection.execute(
            insert(t_state).values(
                account_id=ident, balance_fen=new.balance_fen, reminder_fen=new.reminder_fen
            )
        )
        if any(t.tou for t in catalog.book.versions(new.tariff)):
            connection.execute(insert(t_tou).values(account_id=ident))
        ids.append(ident)
    return ids
