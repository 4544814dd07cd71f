"""The prepaid platform's rating on a real PostgreSQL: kill -9 inside a write
transaction, and a table locked by another writer (skipped without the server tools,
as ``tests/headend/test_postgres.py``; never skipped in CI).

The kill point is read from the server: ``pg_stat_activity`` shows the rating's
connection holding a transaction id (it has written rows of a chunk not yet
committed) while earlier chunks are committed. The server rolls the chunk back when
the connection drops; the rerun must then give, account by account, what an
uninterrupted run gives on a copy of the same database (``CREATE DATABASE …
TEMPLATE``).
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url

from prepaid.db import open_database
from prepaid.models import day_number
from tests.headend.test_postgres import pg_url  # noqa: F401  (the server fixture)

from .test_crash_prepaid import (
    ACCOUNTS,
    CHARGES_OF_DAY,
    CHUNK,
    DAY,
    FIRST,
    Ledger,
    Snapshot,
    assert_no_survivors,
    assert_same_rating,
    burst_file,
    feikong,
    kill9_when,
    snapshot,
    start,
)

#: Committed charges of the day, counted only while the rating's connection holds an
#: open transaction that has written (a transaction id): the kill lands inside it.
MID_TRANSACTION = (
    "SELECT CASE WHEN EXISTS (SELECT 1 FROM pg_stat_activity WHERE datname ="
    " current_database() AND pid <> pg_backend_pid() AND backend_xid IS NOT NULL)"
    " THEN (SELECT count(*) FROM prepaid_charge WHERE day = :day) ELSE 0 END"
)


def database(server: str, name: str) -> str:
    return make_url(server).set(database=name).render_as_string(hide_password=False)


def copy_database(server: str, source: str, target: str) -> str:
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{target}" WITH (FORCE)')
        connection.exec_driver_sql(f'CREATE DATABASE "{target}" TEMPLATE "{source}"')
    admin.dispose()
    return database(server, target)


@pytest.fixture(scope="module")
def pg_province(pg_url: str) -> str:  # noqa: F811
    """The province of test_crash_prepaid on PostgreSQL: generated, ledger, day 1 rated."""
    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql('CREATE DATABASE "province"')
    admin.dispose()
    url = database(pg_url, "province")
    feikong("generate", "--customers", str(ACCOUNTS), "--days", "5", "--db", url, "--seed", "7")
    feikong("cis", "sync", "--db", url)
    feikong("rate", "--date", FIRST.isoformat(), "--db", url)
    return url


@pytest.fixture(scope="module")
def pg_reference(pg_url: str, pg_province: str) -> tuple[Snapshot, dict[str, object]]:  # noqa: F811
    url = copy_database(pg_url, "province", "reference")
    report = json.loads(feikong("rate", "--date", DAY.isoformat(), "--db", url, "--json").stdout)
    engine = open_database(url)
    try:
        return snapshot(engine), report
    finally:
        engine.dispose()


@pytest.fixture
def pg_crash(pg_url: str, pg_province: str) -> Iterator[tuple[str, Engine]]:  # noqa: F811
    url = copy_database(pg_url, "province", "crash")
    engine = open_database(url)
    yield url, engine
    engine.dispose()


def test_rate_killed_inside_a_transaction_on_postgresql(
    pg_crash: tuple[str, Engine], pg_reference: tuple[Snapshot, dict[str, object]]
) -> None:
    url, engine = pg_crash
    want, want_report = pg_reference
    rated = int(str(want_report["rated"]))
    proc = start(
        "rate", "--date", DAY.isoformat(), "--db", url, "--chunk", str(CHUNK), "--no-pipeline"
    )
    seen, alive = kill9_when(
        proc, engine, MID_TRANSACTION, {"day": day_number(DAY)}, lambda n: n >= rated // 2
    )
    assert alive, f"the run ended before the kill ({seen} of {rated})"
    assert_no_survivors(proc.pid)
    left = snapshot(engine)
    partial = len(left.day_charges(DAY))
    # what was committed before the kill is there; the chunk being written is not
    assert seen <= partial < rated
    assert left.day_charges(DAY) == [
        r for r in want.day_charges(DAY) if r[1] in {c[1] for c in left.day_charges(DAY)}
    ]

    again = json.loads(feikong("rate", "--date", DAY.isoformat(), "--db", url, "--json").stdout)
    assert again["already_rated"] == partial
    assert again["rated"] + partial == rated
    assert_same_rating(snapshot(engine), want, DAY)


def wait_on_lock(engine: Engine, proc: subprocess.Popen[str]) -> None:
    """Poll until a connection of the database waits for a lock (or ``proc`` ended)."""
    waiting = (
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        " AND wait_event_type = 'Lock'"
    )
    seen = 0
    with engine.connect() as probe:
        for _ in range(10_000):
            seen = probe.execute(text(waiting)).scalar_one()
            probe.rollback()  # pg_stat_activity is a snapshot per transaction
            if seen or proc.poll() is not None:
                break
            time.sleep(0.002)
    assert seen and proc.poll() is None, "the command was not seen waiting for the lock"


def test_rate_waits_for_a_table_locked_by_another_writer_on_postgresql(
    pg_crash: tuple[str, Engine], pg_reference: tuple[Snapshot, dict[str, object]]
) -> None:
    """PostgreSQL waits for the lock (no busy timeout): the run finishes after it."""
    url, engine = pg_crash
    holder = engine.connect()
    transaction = holder.begin()
    holder.execute(text("LOCK TABLE prepaid_rating_state IN EXCLUSIVE MODE"))
    proc = start("rate", "--date", DAY.isoformat(), "--db", url, "--json")
    wait_on_lock(engine, proc)
    transaction.commit()
    holder.close()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, out + err
    report = json.loads(out)
    assert report["rated"] == pg_reference[1]["rated"]
    assert_same_rating(snapshot(engine), pg_reference[0], DAY)
    with engine.connect() as connection:
        charged = connection.execute(text(CHARGES_OF_DAY), {"day": day_number(DAY)}).scalar_one()
    assert charged == pg_reference[1]["rated"]


@pytest.mark.slow
def test_payments_wait_for_a_table_locked_by_another_writer_on_postgresql(
    pg_url: str,  # noqa: F811
    pg_crash: tuple[str, Engine],
    tmp_path: Path,
) -> None:
    """A burst of 6,000 payments while another writer locks the CIS balances: the
    import waits, then credits each payment once — as the same import unhindered."""
    url, engine = pg_crash
    csv = tmp_path / "burst.csv"
    amounts = burst_file(engine, csv)
    ref_url = copy_database(pg_url, "province", "paid")
    feikong("cis", "import", str(csv), "--db", ref_url)
    ref = open_database(ref_url)
    want = snapshot(ref)
    ref.dispose()

    holder = engine.connect()
    transaction = holder.begin()
    holder.execute(text("LOCK TABLE prepaid_cis_account IN EXCLUSIVE MODE"))
    proc = start("cis", "import", str(csv), "--db", url, "--json")
    wait_on_lock(engine, proc)
    transaction.commit()
    holder.close()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, out + err
    assert json.loads(out)["credited"] == len(amounts)
    ledger = Ledger.read(engine)
    assert ledger.movements == {op: [fen] for op, fen in amounts.items()}
    assert ledger.posted == amounts
    got = snapshot(engine)
    assert got.cis == want.cis and got.realtime == want.realtime
    assert got.states == want.states
