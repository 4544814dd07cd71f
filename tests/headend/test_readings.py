"""Readings are stored once per (meter, DI, freeze date)."""

from __future__ import annotations

import io
from datetime import date
from decimal import Decimal

from sqlalchemy import text
from sqlalchemy.engine import Engine

from headend.archive import import_archive
from headend.readings import NewReading, store_readings

ARCHIVE = """\
record,name,kind,host,port,address,meter_number,channel,breaker_type
channel,gw,tcp,127.0.0.1,6455,,,,
meter,,remote,,,000000000001,M1,gw,internal
meter,,remote,,,000000000002,M2,gw,internal
"""
DAY1, DAY2 = date(2026, 3, 1), date(2026, 3, 2)
TOTAL = 0x00010000


def rows(engine: Engine) -> list[tuple[object, ...]]:
    with engine.connect() as c:
        result = c.execute(
            text(
                "SELECT meter_address, di, freeze_date, value, energy_ckwh FROM headend_reading "
                "ORDER BY meter_address, di, freeze_date"
            )
        )
        return [tuple(r) for r in result]


def test_readings_stored_twice_are_stored_once(engine: Engine) -> None:
    import_archive(engine, io.StringIO(ARCHIVE))
    batch = [
        NewReading("000000000001", TOTAL, DAY1, Decimal("123.45"), 12345),
        NewReading("000000000001", TOTAL, DAY2, Decimal("130.00"), 13000),
        NewReading("000000000002", TOTAL, DAY1, b"\x12\x34"),
        NewReading("000000000002", TOTAL, DAY1, b"\x99\x99"),  # same key in one batch
    ]
    first = store_readings(engine, batch)
    assert (first.given, first.written, first.duplicates) == (4, 3, 1)
    again = store_readings(engine, batch)
    assert (again.written, again.duplicates) == (0, 4)
    assert rows(engine) == [
        ("000000000001", TOTAL, "2026-03-01", "123.45", 12345),
        ("000000000001", TOTAL, "2026-03-02", "130.00", 13000),
        ("000000000002", TOTAL, "2026-03-01", "1234", None),
    ]


def test_replace_overwrites_the_value(engine: Engine) -> None:
    import_archive(engine, io.StringIO(ARCHIVE))
    store_readings(engine, [NewReading("000000000001", TOTAL, DAY1, "1.00", 100)])
    result = store_readings(
        engine, [NewReading("000000000001", TOTAL, DAY1, "2.00", 200)], replace=True
    )
    assert result.written == 1
    assert rows(engine) == [("000000000001", TOTAL, "2026-03-01", "2.00", 200)]


def test_unknown_meters_are_reported_not_stored(engine: Engine) -> None:
    import_archive(engine, io.StringIO(ARCHIVE))
    result = store_readings(
        engine,
        [
            NewReading("000000000001", TOTAL, DAY1, "1.00"),
            NewReading("999999999998", TOTAL, DAY1, "1.00"),
        ],
    )
    assert result.written == 1
    assert result.rejected == 1
    assert result.unknown_meters == ["999999999998"]
    assert len(rows(engine)) == 1
