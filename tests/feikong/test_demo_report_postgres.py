"""The demo report and the invariant checks on a real PostgreSQL (skipped without initdb
or psycopg, like the head-end's PostgreSQL tests): the run of ``test_demo_invariants``
gives the same report as on SQLite, keeps every invariant, and a trip moved to 20:00
is found."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from feikong.demo.invariants import check_invariants
from feikong.demo.report import build_report
from headend.jobs import to_db_time
from prepaid.db import open_database

from ..headend.test_postgres import pg_url
from .test_demo_invariants import flow_database, run_flow

_ = pg_url
_names = itertools.count()


@pytest.fixture
def database(pg_url: str) -> Iterator[str]:
    name = f"feikong_demo_report_{next(_names)}"
    admin = open_database(pg_url)
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.execute(text(f"CREATE DATABASE {name}"))
    yield make_url(pg_url).set(database=name).render_as_string(hide_password=False)
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.execute(text(f"DROP DATABASE {name} WITH (FORCE)"))
    admin.dispose()


@pytest.fixture
def sqlite_run() -> Path:
    """The same run on SQLite (built outside the test's event loop)."""
    return flow_database()


async def test_report_and_checks_on_postgresql(
    tmp_path: Path, database: str, sqlite_run: Path
) -> None:
    await run_flow(tmp_path, db_url=database)
    engine = open_database(database)
    sqlite = open_database(f"sqlite:///{sqlite_run}")
    try:
        assert check_invariants(engine) == []
        on_pg = build_report(engine, start=date(2026, 3, 1), days=4)
        on_sqlite = build_report(sqlite, start=date(2026, 3, 1), days=4)
        assert on_pg.to_dict() == on_sqlite.to_dict()
        assert on_pg.payments == 2 and on_pg.paid_fen == 12_000 and on_pg.trips == 1

        with engine.begin() as conn:
            conn.execute(
                text(
                    "UPDATE headend_job_attempt SET started_at = :t WHERE job_id = "
                    "(SELECT id FROM headend_job WHERE kind = 'trip' AND state = 'succeeded')"
                ),
                {"t": to_db_time(datetime(2026, 3, 3, 20, 0))},
            )
        (found,) = check_invariants(engine)
        assert found.invariant == "no-trip-in-protected-hours"
        assert "2026-03-03 20:00:00 (Tuesday)" in found.detail
    finally:
        engine.dispose()
        sqlite.dispose()
