"""kill -9 of the prepaid platform's daily rating, then run it again.

Real processes on a real SQLite file: a synthetic province of 2,000 accounts made by
``feikong generate``, its CIS ledger opened by ``feikong cis sync``, the first day
rated. Then ``feikong rate --date D`` is started and killed with SIGKILL at a
point read from the database itself — when the day's charges
(``prepaid_charge``) show that a tenth, a half, or nearly all of the accounts are
rated (the writer is then inside or between its chunk transactions) — and run
again to the end.

What must hold afterwards, compared with an uninterrupted run of the same command
on a copy of the same database:

- every account's rating state (balance, charged, period energy, outcome …), to
  the fen and the centi-kWh;
- every account's real-time balance (CIS balance − unsettled charges), and the sum
  of the day's charges, to the fen;
- the day's charges, anomalies and TOU registers row for row — one charge per
  (day, account): nobody charged twice;
- the killed run left only whole chunks (each a transaction) and the second run
  rated exactly the rest;
- a killed pipelined run leaves no reader process behind.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from prepaid.balance import realtime_balances
from prepaid.db import open_database
from prepaid.models import day_number

ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "300"}
ACCOUNTS = 2000
FIRST = date(2026, 1, 2)
DAY = date(2026, 1, 3)
CHUNK = 5  # 400 transactions: a kill lands inside the run, not before or after it


def feikong(
    *args: str, check: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "feikong", *args],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=timeout,
    )
    if check:
        assert done.returncode == 0, f"feikong {' '.join(args)}: {done.stdout}{done.stderr}"
    return done


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def copy_sqlite(source: Path, target: Path) -> Path:
    """A consistent copy of a SQLite database (its WAL checkpointed into one file)."""
    engine = open_database(sqlite_url(source))
    with engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    shutil.copyfile(source, target)
    return target


def start(*args: str) -> subprocess.Popen[str]:
    """``feikong ARGS`` in its own session (so its children can be found and killed)."""
    return subprocess.Popen(
        [sys.executable, "-m", "feikong", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
        start_new_session=True,
    )


def session_processes(sid: int) -> list[int]:
    """The live processes of session ``sid`` (zombies left out)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[3]) == sid and fields[0] != "Z":  # fields: state ppid pgrp session …
            found.append(int(entry.name))
    return found


def assert_no_survivors(sid: int) -> None:
    """No process of the killed command's session is alive a few seconds later."""
    deadline = time.monotonic() + 10
    while session_processes(sid) and time.monotonic() < deadline:
        time.sleep(0.05)
    survivors = session_processes(sid)
    for pid in survivors:  # do not leave them running after a failure
        os.kill(pid, signal.SIGKILL)
    assert survivors == [], f"processes of the killed run still alive: {survivors}"


def kill9_when(
    proc: subprocess.Popen[str],
    engine: Engine,
    probe: str,
    params: dict[str, Any],
    ready: Callable[[int], bool],
    *,
    timeout: float = 60,
) -> tuple[int, bool]:
    """Poll ``probe`` (a count) until ``ready(count)``, then SIGKILL ``proc``.

    Returns the count seen and whether the process was still running at the kill.
    """
    deadline = time.monotonic() + timeout
    seen = 0
    while time.monotonic() < deadline:
        with engine.connect() as connection:
            seen = int(connection.execute(text(probe), params).scalar_one())
        if ready(seen) or proc.poll() is not None:
            break
        time.sleep(0.002)
    alive = proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    for pipe in (proc.stdout, proc.stderr):  # a leftover child may hold the other end
        if pipe is not None:
            pipe.close()
    if alive:
        assert proc.returncode == -signal.SIGKILL
    return seen, alive


@dataclass(frozen=True)
class Snapshot:
    """What a rating leaves in the database, in comparable form."""

    states: list[tuple[Any, ...]]
    charges: list[tuple[Any, ...]]
    anomalies: list[tuple[Any, ...]]
    tou: list[tuple[Any, ...]]
    realtime: dict[int, int]
    cis: dict[int, int]

    @property
    def charged_fen(self) -> int:
        return sum(int(row[6]) for row in self.charges)  # amount_fen

    def day_charges(self, day: date) -> list[tuple[Any, ...]]:
        return [row for row in self.charges if row[0] == day_number(day)]


def snapshot(engine: Engine) -> Snapshot:
    with engine.connect() as connection:

        def rows(sql: str) -> list[tuple[Any, ...]]:
            return [tuple(r) for r in connection.execute(text(sql))]

        states = rows("SELECT * FROM prepaid_rating_state ORDER BY account_id")
        charges = rows(
            "SELECT day, account_id, period_start, reading_ckwh, energy_ckwh, period_ckwh,"
            " amount_fen, charged_fen, balance_fen, tariff_version, tier, outcome"
            " FROM prepaid_charge ORDER BY day, account_id"
        )
        anomalies = rows(
            "SELECT day, account_id, kind, reading_ckwh, previous_ckwh, detail"
            " FROM prepaid_anomaly ORDER BY day, account_id, kind"
        )
        tou = rows("SELECT * FROM prepaid_rating_tou ORDER BY 1")
        cis = {
            int(r[0]): int(r[1])
            for r in connection.execute(
                text(
                    "SELECT a.id, c.balance_fen FROM prepaid_cis_account c"
                    " JOIN prepaid_account a ON a.customer_no = c.account_no"
                )
            )
        }
    realtime = {i: b.realtime_fen for i, b in realtime_balances(engine).items()}
    return Snapshot(states, charges, anomalies, tou, realtime, cis)


def assert_same_rating(got: Snapshot, want: Snapshot, day: date) -> None:
    """Account by account, to the fen: the crashed-and-rerun database = the reference."""
    assert len(got.realtime) == ACCOUNTS
    assert got.charged_fen == want.charged_fen, "sum of all charges differs"
    assert sum(r[6] for r in got.day_charges(day)) == sum(r[6] for r in want.day_charges(day))
    day_accounts = [row[1] for row in got.day_charges(day)]
    assert len(day_accounts) == len(set(day_accounts)), "an account charged twice for the day"
    differing = [i for i in want.realtime if got.realtime.get(i) != want.realtime[i]]
    assert not differing, f"real-time balances differ for {len(differing)} accounts"
    assert got.cis == want.cis
    assert got.states == want.states
    assert got.charges == want.charges
    assert got.anomalies == want.anomalies
    assert got.tou == want.tou
    # the rating's copy of the real-time balance agrees with CIS − unsettled
    copy = {int(row[0]): int(row[7]) for row in got.states}  # balance_fen
    assert copy == got.realtime


@pytest.fixture(scope="module")
def province(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2,000 accounts, 5 days of readings, the CIS ledger opened, the first day rated."""
    base = tmp_path_factory.mktemp("province") / "base.db"
    url = sqlite_url(base)
    feikong("generate", "--customers", str(ACCOUNTS), "--days", "5", "--db", url, "--seed", "7")
    feikong("cis", "sync", "--db", url)
    feikong("rate", "--date", FIRST.isoformat(), "--db", url)
    return base


@pytest.fixture(scope="module")
def reference(
    province: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Snapshot, dict[str, Any]]:
    """``feikong rate --date DAY`` run once, uninterrupted, on a copy of the province."""
    ref = copy_sqlite(province, tmp_path_factory.mktemp("reference") / "ref.db")
    done = feikong("rate", "--date", DAY.isoformat(), "--db", sqlite_url(ref), "--json")
    report = json.loads(done.stdout)
    engine = open_database(sqlite_url(ref))
    try:
        return snapshot(engine), report
    finally:
        engine.dispose()


@pytest.fixture
def crashed(province: Path, tmp_path: Path) -> Iterator[tuple[Path, Engine]]:
    db = copy_sqlite(province, tmp_path / "crash.db")
    engine = open_database(sqlite_url(db))
    yield db, engine
    engine.dispose()


CHARGES_OF_DAY = "SELECT count(*) FROM prepaid_charge WHERE day = :day"


@pytest.mark.parametrize(
    ("share", "pipeline"),
    [
        pytest.param(0.1, "--pipeline", id="early-pipelined"),
        pytest.param(0.5, "--no-pipeline", id="middle"),
        pytest.param(0.97, "--no-pipeline", id="final-writes"),
    ],
)
def test_rate_killed_then_rerun_equals_uninterrupted(
    crashed: tuple[Path, Engine],
    reference: tuple[Snapshot, dict[str, Any]],
    share: float,
    pipeline: str,
) -> None:
    db, engine = crashed
    want, want_report = reference
    rated = want_report["rated"]
    assert rated > ACCOUNTS * 0.9  # the reference rated (almost) everyone

    proc = start(
        "rate", "--date", DAY.isoformat(), "--db", sqlite_url(db), "--chunk", str(CHUNK), pipeline
    )
    seen, alive = kill9_when(
        proc, engine, CHARGES_OF_DAY, {"day": day_number(DAY)}, lambda n: n >= rated * share
    )
    assert alive, f"the run ended before the kill point ({seen} of {rated} charged)"
    assert_no_survivors(proc.pid)

    left = snapshot(engine)
    partial = len(left.day_charges(DAY))
    assert 0 < partial < rated, f"the kill left {partial} of {rated}: not a partial run"
    # whole chunks only: a chunk (CHUNK consecutive ids, one transaction) is all or nothing
    first_id = min(row[0] for row in want.states)

    def chunks(rows: list[tuple[Any, ...]]) -> dict[int, set[int]]:
        out: dict[int, set[int]] = {}
        for row in rows:
            out.setdefault((row[1] - first_id) // CHUNK, set()).add(row[1])
        return out

    done, full = chunks(left.day_charges(DAY)), chunks(want.day_charges(DAY))
    assert all(done[k] == full[k] for k in done), "a chunk was left half-written"
    assert left.day_charges(DAY) == [
        r for r in want.day_charges(DAY) if r[1] in set().union(*done.values())
    ]

    again = json.loads(
        feikong("rate", "--date", DAY.isoformat(), "--db", sqlite_url(db), "--json").stdout
    )
    # the rerun rated exactly what the killed run had not: nothing twice, nothing left
    assert again["already_rated"] == partial
    assert again["rated"] + again["already_rated"] == rated
    assert again["outcomes"] == want_report["outcomes"]
    assert_same_rating(snapshot(engine), want, DAY)

    if share < 0.9:
        return
    # and a third run is a no-op
    third = json.loads(
        feikong("rate", "--date", DAY.isoformat(), "--db", sqlite_url(db), "--json").stdout
    )
    assert third["rated"] == 0 and third["already_rated"] == rated
    assert_same_rating(snapshot(engine), want, DAY)
