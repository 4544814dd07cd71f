"""Storing collected readings (采集数据) idempotently.

A reading is identified by (meter, DI, freeze date): storing the same one twice,
e.g. after a retry or a crash and re-run, leaves one row. By default the first
stored value is kept (frozen data does not change); ``replace=True`` overwrites it
(for current values re-read the same day).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Final

from sqlalchemy import Connection, Insert, Table, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from .errors import HeadendError
from .models import Meter, Reading, utcnow

__all__ = ["NewReading", "StoreResult", "store_readings"]

log = logging.getLogger(__name__)

_BATCH: Final = 5000
_LOOKUP_BATCH: Final = 900
_KEY: Final = ("meter_address", "di", "freeze_date")


@dataclass(frozen=True, slots=True)
class NewReading:
    """A value collected from a meter, ready to be stored.

    ``value`` is a decoded number (stored as its exact decimal text), text, or the
    raw data field as bytes (stored as upper-case hex). ``energy_ckwh`` is an energy
    register in 0.01 kWh when the DI is one.
    """

    meter: str
    di: int
    freeze_date: date
    value: Decimal | str | bytes
    energy_ckwh: int | None = None
    collected_at: datetime | None = None

    def to_row(self, now: datetime) -> dict[str, Any]:
        text = self.value.hex().upper() if isinstance(self.value, bytes) else str(self.value)
        return {
            "meter_address": self.meter,
            "di": self.di,
            "freeze_date": self.freeze_date,
            "value": text,
            "energy_ckwh": self.energy_ckwh,
            "collected_at": self.collected_at or now,
        }


@dataclass(slots=True)
class StoreResult:
    """What :func:`store_readings` did.

    ``given``: readings passed in; ``written``: rows inserted (or replaced);
    ``rejected``: readings of ``unknown_meters`` (not in the archive), not stored.
    """

    given: int = 0
    written: int = 0
    rejected: int = 0
    unknown_meters: list[str] = field(default_factory=list)

    @property
    def duplicates(self) -> int:
        """Readings already stored (kept as they were unless ``replace``)."""
        return self.given - self.written - self.rejected


def _statement(connection: Connection, table: Table, replace: bool) -> Insert:
    name = connection.dialect.name
    if name == "postgresql":
        pg = postgresql.insert(table)
        if replace:
            columns = {c: pg.excluded[c] for c in ("value", "energy_ckwh", "collected_at")}
            return pg.on_conflict_do_update(index_elements=list(_KEY), set_=columns)
        return pg.on_conflict_do_nothing(index_elements=list(_KEY))
    if name == "sqlite":
        lite = sqlite.insert(table)
        if replace:
            columns = {c: lite.excluded[c] for c in ("value", "energy_ckwh", "collected_at")}
            return lite.on_conflict_do_update(index_elements=list(_KEY), set_=columns)
        return lite.on_conflict_do_nothing(index_elements=list(_KEY))
    raise HeadendError(
        f"readings cannot be stored in a {name!r} database; use SQLite or PostgreSQL"
    )


def store_readings(
    engine: Engine, readings: Iterable[NewReading], *, replace: bool = False
) -> StoreResult:
    """Bulk-store ``readings`` once per (meter, DI, freeze date), in one transaction.

    Readings for meters not in the archive are not stored; their addresses are
    listed in the result (and logged) so the caller can report them.
    """
    now = utcnow()
    rows: dict[tuple[str, int, date], dict[str, Any]] = {}
    given = 0
    for reading in readings:
        given += 1
        row = reading.to_row(now)
        key = (row["meter_address"], row["di"], row["freeze_date"])
        if replace or key not in rows:
            rows[key] = row
    result = StoreResult(given=given)
    if not rows:
        return result
    table: Table = Reading.__table__  # type: ignore[attr-defined]
    meter_table: Table = Meter.__table__  # type: ignore[attr-defined]
    with engine.begin() as connection:
        addresses = sorted({k[0] for k in rows})
        known: set[str] = set()
        for start in range(0, len(addresses), _LOOKUP_BATCH):
            chunk = addresses[start : start + _LOOKUP_BATCH]
            query = select(meter_table.c.address).where(meter_table.c.address.in_(chunk))
            known.update(connection.execute(query).scalars())
        result.unknown_meters = [a for a in addresses if a not in known]
        if result.unknown_meters:
            log.warning(
                "readings for %d unknown meter(s) not stored, e.g. %s",
                len(result.unknown_meters),
                result.unknown_meters[0],
            )
        good = [r for r in rows.values() if r["meter_address"] in known]
        result.rejected = sum(1 for r in rows.values() if r["meter_address"] not in known)
        statement = _statement(connection, table, replace).returning(table.c.di)
        for start in range(0, len(good), _BATCH):
            # RETURNING counts the rows really written on every driver (executemany
            # rowcounts are not reliable with psycopg's batched inserts).
            written = connection.execute(statement, good[start : start + _BATCH])
            result.written += len(written.all())
    return result
