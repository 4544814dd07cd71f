"""Shared set-up for the account and rating tests: a migrated SQLite database."""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from pathlib import Path

from sqlalchemy import Connection, insert, text
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


ARCHIVE_HEAD = "record,name,kind,host,port,address,meter_number,channel,breaker_type\n"


def add_meters(engine: Engine, numbers: Sequence[int]) -> None:
    """Meters ``{n:012d}`` in the head-end archive, on one TCP channel."""
    from headend.archive import import_archive

    lines = [ARCHIVE_HEAD, "channel,gw,tcp,127.0.0.1,6455,,,,\n"]
    lines += [f"meter,,remote,,,{n:012d},M{n},gw,internal\n" for n in numbers]
    import_archive(engine, io.StringIO("".join(lines)))


def read(engine: Engine, day: date, registers: dict[int, int | str]) -> None:
    """Store daily readings dated ``day``: meter number → register (0.01 kWh) or value text.

    A text value is the daily freeze block ``"total,sharp,peak,flat,valley"`` in kWh.
    """
    from headend.readings import NewReading, store_readings
    from prepaid.rating import DAILY_FORWARD_DI

    rows = []
    for n, value in registers.items():
        if isinstance(value, str):
            total = int(Decimal(value.split(",")[0]) * 100)
            rows.append(NewReading(f"{n:012d}", DAILY_FORWARD_DI, day, value, total))
        else:
            rows.append(NewReading(f"{n:012d}", DAILY_FORWARD_DI, day, Decimal(value) / 100, value))
    store_readings(engine, rows)


def state(engine: Engine, account_id: int) -> dict[str, object]:
    with engine.connect() as c:
        row = c.execute(
            text("SELECT * FROM prepaid_rating_state WHERE account_id = :a"), {"a": account_id}
        ).one()
        return dict(row._mapping)


def charges(engine: Engine, account_id: int | None = None) -> list[dict[str, object]]:
    where = "" if account_id is None else " WHERE account_id = :a"
    with engine.connect() as c:
        rows = c.execute(
            text(f"SELECT * FROM prepaid_charge{where} ORDER BY account_id, day"),
            {"a": account_id},
        )
        return [dict(r._mapping) for r in rows]
