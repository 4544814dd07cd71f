"""Rating on a real PostgreSQL gives what it gives on SQLite (binary COPY both ways)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine, make_url

from prepaid.db import migrate, open_database
from prepaid.generate import GenerateOptions, generate
from prepaid.rating import rate_accounts, rate_day

from ..headend.test_postgres import pg_url
from .rating_helpers import migrated

__all__ = ["pg_url"]

START = date(2026, 1, 30)  # the rated days cross the end of January
OPTIONS = GenerateOptions(customers=700, days=5, seed=3, start=START, chunk=300)


@pytest.fixture
def pg(pg_url: str) -> Iterator[Engine]:
    admin = open_database(pg_url)
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.execute(text("DROP DATABASE IF EXISTS feikong_rating"))
        c.execute(text("CREATE DATABASE feikong_rating"))
    admin.dispose()
    url = make_url(pg_url).set(database="feikong_rating").render_as_string(hide_password=False)
    engine = open_database(url)
    migrate(engine)
    yield engine
    engine.dispose()


def table(engine: Engine, sql: str) -> list[tuple[object, ...]]:
    with engine.connect() as c:
        return [tuple(r) for r in c.execute(text(sql))]


STATE = (
    "SELECT account_id, reading_day, reading_ckwh, period_start, period_ckwh, prior_ckwh,"
    " charged_fen, balance_fen, avg_daily_ckwh, last_energy_ckwh, last_amount_fen,"
    " tariff_version, tier, outcome FROM prepaid_rating_state ORDER BY account_id"
)
CHARGES = "SELECT * FROM prepaid_charge ORDER BY day, account_id"
TOU = "SELECT * FROM prepaid_rating_tou ORDER BY account_id"
ANOMALIES = "SELECT day, account_id, kind, reading_ckwh, previous_ckwh FROM prepaid_anomaly"


def test_postgres_rates_exactly_as_sqlite(pg: Engine, tmp_path: Path) -> None:
    lite = migrated(tmp_path)
    for engine in (pg, lite):
        generate(engine, OPTIONS)

    class Killed(Exception):
        pass

    def kill(index: int) -> None:
        if index == 0:
            raise Killed

    for i in range(1, OPTIONS.days):
        day = START + timedelta(days=i)
        if i == 2:  # a PostgreSQL run killed after its first chunk, then run again
            with pytest.raises(Killed):
                rate_day(pg, day, chunk_size=200, pipeline=False, after_chunk=kill)
        on_pg = rate_day(pg, day, chunk_size=200, pipeline=False)
        on_lite = rate_day(lite, day, chunk_size=250, pipeline=False)
        assert on_pg.counts == on_lite.counts
        assert on_pg.rated + on_pg.already_rated == on_lite.rated
    for sql in (STATE, CHARGES, TOU):
        assert table(pg, sql) == table(lite, sql)
    assert sorted(table(pg, ANOMALIES)) == sorted(table(lite, ANOMALIES))

    report = rate_accounts(pg, [1, 2, 3], START + timedelta(days=OPTIONS.days - 1))
    assert report.already_rated + report.rated == 3 - sum(
        1 for r in report.results if r.reading_day != START + timedelta(days=OPTIONS.days - 1)
    )
