"""Shared set-up for the account and rating tests: a migrated SQLite database."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from pathlib import Path

from sqlalchemy import Connection, insert
from sqlalchemy.engine import Engine

from prepaid.accounts import NewAccount, open_accounts, store_tariffs
from prepaid.db import migrate, open_database
from prepaid.models import SupplyUnit
from prepaid.tariff import example_paths, load_book


def migrated(tmp_path: Path, name: str = "prepaid.db") -> Engine:
    engine = open_database(f"sqlite:///{tmp_path / name}")
    migrate(engine)
    return engine


def with_tariffs_and_unit(connection: Connection) -> int:
    """Every shipped example tariff and one supply unit; returns the unit's id."""
    for path in example_paths():
        store_tariffs(connection, load_book(path))
    table = SupplyUnit.__table__  # type: ignore[attr-defined]
    result = connection.execute(
        insert(table).values(code="3301", name="杭州供电公司").returning(table.c.id)
    )
    return int(result.scalar_one())


def account(n: int, unit: int, tariff: str = "res-monthly", **kwargs: object) -> NewAccount:
    return NewAccount(
        customer_no=f"33{n:08d}",
        name=f"户{n}",
        meter_address=f"{n:012d}",
        tariff=tariff,
        supply_unit_id=unit,
        opened_on=date(2024, 1, 1),
        **kwargs,  # type: ignore[arg-type]
    )


def open_some(engine: Engine, accounts: Sequence[NewAccount]) -> list[int]:
    with engine.begin() as c:
        return open_accounts(c, accounts)
