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
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from prepaid.balance import realtime_balances
from prepaid.cis import LedgerCis
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


def wait_for(
    engine: Engine,
    probe: str,
    params: dict[str, Any],
    ready: Callable[[int], bool],
    *,
    timeout: float = 60,
) -> int:
    """Poll ``probe`` (a count) until ``ready(count)``; returns the count."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with engine.connect() as connection:
            seen = int(connection.execute(text(probe), params).scalar_one())
        if ready(seen):
            return seen
        time.sleep(0.002)
    raise AssertionError(f"{probe} never got there")


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
        pytest.param(0.5, "--no-pipeline", id="middle", marks=pytest.mark.slow),
        pytest.param(0.97, "--no-pipeline", id="final-writes", marks=pytest.mark.slow),
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


# -- a burst of payments ---------------------------------------------------------------

PAYMENTS_PER_ACCOUNT = 3
CIS_PAYMENTS = "SELECT count(*) FROM prepaid_cis_movement WHERE kind = 'payment'"
POSTED = "SELECT count(*) FROM prepaid_cis_posted WHERE kind = 'payment'"


def burst_file(engine: Engine, path: Path) -> dict[str, int]:
    """A CIS payments file: 3 payments per account (6,000), amounts 0.01 … 99.99 yuan."""
    with engine.connect() as connection:
        numbers = [
            r[0]
            for r in connection.execute(text("SELECT customer_no FROM prepaid_account ORDER BY id"))
        ]
    amounts: dict[str, int] = {}
    lines = ["payment_id,account_no,amount,paid_at,source"]
    for k in range(PAYMENTS_PER_ACCOUNT):
        for n, number in enumerate(numbers):
            payment_id = f"2026010400{k}{n:05d}"
            fen = 1 + (n * 7919 + k * 104729) % 9999
            amounts[payment_id] = fen
            lines.append(
                f"{payment_id},{number},{fen // 100}.{fen % 100:02d},2026-01-04 09:{k:02d},bank"
            )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return amounts


@dataclass(frozen=True)
class Ledger:
    """The CIS side: each payment id's movements, each account's balance."""

    movements: dict[str, list[int]]
    posted: dict[str, int]

    @classmethod
    def read(cls, engine: Engine) -> Ledger:
        movements: dict[str, list[int]] = {}
        with engine.connect() as connection:
            for op, fen in connection.execute(
                text(
                    "SELECT operation_id, amount_fen FROM prepaid_cis_movement"
                    " WHERE kind = 'payment'"
                )
            ):
                movements.setdefault(op, []).append(int(fen))
            posted = {
                op: int(fen)
                for op, fen in connection.execute(
                    text(
                        "SELECT operation_id, amount_fen FROM prepaid_cis_posted"
                        " WHERE kind = 'payment'"
                    )
                )
            }
        return cls(movements, posted)


def without_today(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Anomalies but those of the day the payments were re-rated for (the real today)."""
    today = day_number(date.today())
    return [r for r in rows if r[0] < today]


@pytest.fixture(scope="module")
def paid_reference(
    province: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, int], Snapshot]:
    """The burst imported once, uninterrupted, on a copy of the province."""
    folder = tmp_path_factory.mktemp("paid")
    ref = copy_sqlite(province, folder / "ref.db")
    engine = open_database(sqlite_url(ref))
    try:
        amounts = burst_file(engine, folder / "burst.csv")
        done = feikong(
            "cis", "import", str(folder / "burst.csv"), "--db", sqlite_url(ref), "--json"
        )
        report = json.loads(done.stdout)
        assert report["credited"] == len(amounts) and report["rerated"] == ACCOUNTS
        return folder / "burst.csv", amounts, snapshot(engine)
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("probe", "ready", "where"),
    [
        pytest.param(
            CIS_PAYMENTS,
            lambda n: n >= 500,
            "crediting the CIS",
            id="mid-ledger",
            marks=pytest.mark.slow,
        ),
        pytest.param(
            CIS_PAYMENTS,
            lambda n: n >= ACCOUNTS * PAYMENTS_PER_ACCOUNT,
            "posting to the balances",
            id="after-ledger",
        ),
        pytest.param(
            POSTED,
            lambda n: n >= ACCOUNTS * PAYMENTS_PER_ACCOUNT,
            "re-rating",
            id="after-posting",
            marks=pytest.mark.slow,
        ),
    ],
)
def test_payment_burst_killed_then_delivered_again(
    crashed: tuple[Path, Engine],
    paid_reference: tuple[Path, dict[str, int], Snapshot],
    probe: str,
    ready: Callable[[int], bool],
    where: str,
) -> None:
    db, engine = crashed
    csv, amounts, want = paid_reference
    url = sqlite_url(db)

    proc = start("cis", "import", str(csv), "--db", url)
    seen, alive = kill9_when(proc, engine, probe, {}, ready)
    assert alive, f"the import ended before the kill ({where}: {seen})"
    assert_no_survivors(proc.pid)
    at_kill = Ledger.read(engine)
    # never more than once, even at the kill
    assert all(len(v) == 1 for v in at_kill.movements.values())
    # posted only what the CIS credited; the kill left work to do
    assert set(at_kill.posted) <= set(at_kill.movements)
    assert len(at_kill.posted) < len(amounts) or where == "re-rating"

    # the CIS delivers the same burst again (at least once)
    again = json.loads(feikong("cis", "import", str(csv), "--db", url, "--json").stdout)
    assert again["credited"] + again["duplicates"] == len(amounts)
    assert again["credited"] == len(amounts) - len(at_kill.movements)
    assert not again["errors"]

    after = Ledger.read(engine)
    assert {op: v for op, v in after.movements.items()} == {op: [f] for op, f in amounts.items()}, (
        "a payment lost or credited twice in the CIS"
    )
    assert after.posted == amounts, "a payment lost or posted twice to the real-time balance"
    got = snapshot(engine)
    assert sum(got.cis.values()) == sum(want.cis.values())
    assert got.cis == want.cis
    assert got.realtime == want.realtime
    assert got.states == want.states, "rating state (balance, outcome …) differs after re-rating"
    assert got.charges == want.charges
    assert without_today(got.anomalies) == without_today(want.anomalies)
    assert {int(r[0]): int(r[7]) for r in got.states} == got.realtime
    assert LedgerCis(engine).audit() == [], "a CIS balance is not the sum of its movements"


#: A cashier's counter (柜台收费): one payment after the other through
#: ``PaymentService.pay`` — what ``feikong cis pay`` and the console call — with the
#: built-in CIS ledger, as a process of its own. argv: URL, counter name, count.
COUNTER = """
import sys
from prepaid.cis import LedgerCis
from prepaid.cis.payments import PaymentService
from prepaid.db import open_database
from sqlalchemy import text

url, name, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
engine = open_database(url)
with engine.connect() as connection:
    numbers = [r[0] for r in connection.execute(
        text("SELECT customer_no FROM prepaid_account ORDER BY id LIMIT :n"), {"n": count})]
service = PaymentService(engine, LedgerCis(engine))
for n, number in enumerate(numbers):
    service.pay(number, 100 + n, f"{name}-{n:04d}", source=name)
print("done", flush=True)
"""


def counter(url: str, name: str, count: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", COUNTER, url, name, str(count)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
        start_new_session=True,
    )


@pytest.mark.slow
def test_two_counters_killed_mid_burst_then_delivered_again(
    crashed: tuple[Path, Engine], province: Path, tmp_path: Path
) -> None:
    """Two counters pay 300 accounts each at once (the same accounts, in the same
    order: they contend for the same rows); both killed with SIGKILL mid-burst, then
    every payment delivered again. Compared with the same 600 payments made once."""
    db, engine = crashed
    ref = copy_sqlite(province, tmp_path / "ref.db")
    count = 300
    for name in ("A", "B"):
        done = counter(sqlite_url(ref), name, count)
        _, err = done.communicate(timeout=300)
        assert done.returncode == 0, err
    ref_engine = open_database(sqlite_url(ref))
    want = snapshot(ref_engine)
    ref_engine.dispose()

    url = sqlite_url(db)
    a, b = counter(url, "A", count), counter(url, "B", count)
    _, alive = kill9_when(a, engine, CIS_PAYMENTS, {}, lambda n: n >= count // 2)
    b.send_signal(signal.SIGKILL)
    b.wait(timeout=30)
    assert alive and b.returncode == -signal.SIGKILL, "a counter ended before the kill"
    for proc in (a, b):
        assert_no_survivors(proc.pid)
    at_kill = Ledger.read(engine)
    assert count // 2 <= len(at_kill.movements) < 2 * count
    assert all(len(v) == 1 for v in at_kill.movements.values())

    for name in ("A", "B"):  # the whole burst again, at least once
        again = counter(url, name, count)
        _, err = again.communicate(timeout=300)
        assert again.returncode == 0, err
    after = Ledger.read(engine)
    expected = {f"{name}-{n:04d}": 100 + n for name in ("A", "B") for n in range(count)}
    assert after.movements == {op: [fen] for op, fen in expected.items()}
    assert after.posted == expected
    got = snapshot(engine)
    assert got.cis == want.cis and got.realtime == want.realtime
    assert got.states == want.states
    assert got.charges == want.charges
    assert {int(r[0]): int(r[7]) for r in got.states} == got.realtime
    assert LedgerCis(engine).audit() == []


# -- the fee-control workflows ---------------------------------------------------------

EPISODES = "SELECT count(*) FROM prepaid_disconnection"
TRIPPING = "SELECT count(*) FROM prepaid_disconnection WHERE state = 'tripping'"
NEVER_QUEUED = (
    "SELECT d.number FROM prepaid_disconnection d LEFT JOIN headend_job j ON j.id = d.job_id"
    " WHERE d.job_id IS NOT NULL AND j.id IS NULL"
)


@pytest.fixture(scope="module")
def notified(province: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every remote customer in arrears with a disconnection requested, approved at both
    levels by two other people and notified three days ago: each trip is due now.

    Protected hours are off (the tick runs on the real clock, any day and hour)."""
    from headend.service import QueuedHeadendService
    from prepaid.workflows import FeeControl, WorkflowConfig
    from protocol.clock import SteppedClock
    from tests.prepaid.security_helpers import add_staff, make_users

    db = copy_sqlite(province, tmp_path_factory.mktemp("workflows") / "notified.db")
    engine = open_database(sqlite_url(db))
    clock = SteppedClock(datetime.now().replace(microsecond=0) - timedelta(days=3))
    staff = add_staff(make_users(engine, clock))
    fc = FeeControl(
        engine,
        QueuedHeadendService(engine),
        clock=clock,
        config=WorkflowConfig(require_dunning=False),
    )
    try:
        for name, value in (
            ("protected_weekends", False),
            ("protected_holidays", False),
            ("protected_hours", "none"),
        ):
            fc.ctx.settings.set(name, value, level="default", user=staff["admin"])
        balances = realtime_balances(engine)
        with engine.connect() as connection:
            numbers: dict[int, str] = {
                int(ident): str(number)
                for ident, number in connection.execute(
                    text(
                        "SELECT id, customer_no FROM prepaid_account"
                        " WHERE fee_control_mode = 'remote'"
                    )
                )
            }
        for ident in sorted(i for i, b in balances.items() if b.realtime_fen < 0 and i in numbers):
            try:
                episode = fc.disconnection.request(numbers[ident], by=staff["operator"])
            except Exception:  # under power guarantee: refused, as it must be
                continue
            fc.disconnection.approve_l1(episode.number, by=staff["approver-l1"])
            fc.disconnection.approve_l2(episode.number, by=staff["approver-l2"])
    finally:
        fc.close()
        engine.dispose()
    return copy_sqlite(db, db.with_name("notified-copy.db"))


def episodes_of(engine: Engine) -> dict[str, dict[str, Any]]:
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT number, state, job_id, l1_by, l2_by, trips FROM prepaid_disconnection")
        ).mappings()
        episodes = {r["number"]: dict(r) for r in rows}
        for number, action, count in connection.execute(
            text(
                "SELECT d.number, e.action, count(*) FROM prepaid_disconnection_event e"
                " JOIN prepaid_disconnection d ON d.id = e.disconnection_id"
                " GROUP BY d.number, e.action"
            )
        ):
            episodes[number].setdefault("history", {})[action] = int(count)
        for ref, kind, count in connection.execute(
            text("SELECT episode, kind, count(*) FROM prepaid_message GROUP BY episode, kind")
        ):
            if ref in episodes:
                episodes[ref].setdefault("messages", {})[kind] = int(count)
        jobs: dict[str, list[str]] = {}
        for (job_id,) in connection.execute(
            text("SELECT id FROM headend_job WHERE id LIKE 'fk-TD%'")
        ):
            jobs.setdefault(job_id.split("-")[1], []).append(job_id)
    for number, episode in episodes.items():
        episode["jobs"] = sorted(jobs.get(number, []))
    return episodes


@pytest.mark.parametrize(
    "kill_at", [pytest.param(0.15, marks=pytest.mark.slow), 0.6], ids=["early", "late"]
)
def test_workflow_loop_killed_then_restarted_trips_each_episode_once(
    notified: Path, tmp_path: Path, kill_at: float
) -> None:
    db = copy_sqlite(notified, tmp_path / "wf.db")
    url = sqlite_url(db)
    engine = open_database(url)
    try:
        before = episodes_of(engine)
        total = len(before)
        assert total >= 30
        assert all(e["state"] == "notified" and e["jobs"] == [] for e in before.values())

        proc = start("disconnect", "run", "--every", "1", "--db", url)
        seen, alive = kill9_when(proc, engine, TRIPPING, {}, lambda n: n >= total * kill_at)
        assert alive, f"the loop had ended before the kill ({seen} tripping)"
        assert_no_survivors(proc.pid)
        with engine.connect() as connection:
            waiting = connection.execute(
                text("SELECT count(*) FROM prepaid_disconnection WHERE state = 'notified'")
            ).scalar_one()
        assert waiting > 0, "the loop had tripped everyone before the kill"
        # restart: the tick of `disconnect run` (an episode the kill caught between its
        # two steps — recorded, not queued — is queued by it too)
        first = json.loads(feikong("disconnect", "tick", "--db", url, "--json").stdout)

        after = episodes_of(engine)
        assert set(after) == set(before)
        for number, episode in after.items():
            # the trip asked of the head-end exactly once, under the episode's job id
            assert episode["state"] == "tripping", (number, episode)
            assert episode["jobs"] == [episode["job_id"]], (number, episode)
            assert episode["job_id"] == f"fk-{number}-trip1-1"
            # no approval lost, nothing recorded twice, one notice per episode
            assert episode["l1_by"] == before[number]["l1_by"] == "approver.l1"
            assert episode["l2_by"] == before[number]["l2_by"] == "approver.l2"
            assert episode["history"] == {
                "request": 1,
                "approve-l1": 1,
                "approve-l2": 1,
                "notify": 1,
                "trip": 1,
            }, number
            assert episode["messages"] == {"disconnection_notice": 1}, number
        # the restart tripped exactly those the killed loop had not reached
        assert len(first["trips"]) == waiting
        audit = feikong("audit", "verify", "--db", url, check=False)
        assert audit.returncode == 0, audit.stdout + audit.stderr
    finally:
        engine.dispose()


def test_trip_recorded_but_never_queued_is_queued_by_the_next_tick(
    notified: Path, tmp_path: Path
) -> None:
    """The state a kill between the two steps of a trip leaves (seen by the test above
    when the kill lands there): the episode says ``tripping`` with a job id, the
    head-end has no such job. The next tick (as ``feikong disconnect tick`` builds it)
    queues it under the same id, once."""
    from feikong.cmd_workflows import _fee_control

    db = copy_sqlite(notified, tmp_path / "wf.db")
    engine = open_database(sqlite_url(db))
    fc = _fee_control(engine)
    try:
        assert fc.step().trips
        victim = sorted(episodes_of(engine))[0]
        with engine.begin() as connection:
            connection.execute(
                text("DELETE FROM headend_job WHERE id = :id"), {"id": f"fk-{victim}-trip1-1"}
            )
            assert [r[0] for r in connection.execute(text(NEVER_QUEUED))] == [victim]
        fc.step()
        fc.step()
        episode = episodes_of(engine)[victim]
        assert episode["state"] == "tripping"
        assert episode["jobs"] == [f"fk-{victim}-trip1-1"]
        assert episode["history"]["trip"] == 1
        with engine.connect() as connection:
            assert list(connection.execute(text(NEVER_QUEUED))) == []
    finally:
        fc.close()
        engine.dispose()


def test_notice_stored_before_a_kill_is_not_sent_twice(notified: Path, tmp_path: Path) -> None:
    """A kill after the level-2 approval stored the notice but before the episode says
    ``notified`` leaves it ``approved``, its notice due now. The next tick notifies it:
    the outbox finds the stored notice (one message per episode), the approvals stay."""
    from feikong.cmd_workflows import _fee_control

    db = copy_sqlite(notified, tmp_path / "wf.db")
    engine = open_database(sqlite_url(db))
    victim = sorted(episodes_of(engine))[0]
    with engine.begin() as connection:  # as the kill leaves it
        ident = connection.execute(
            text("SELECT id FROM prepaid_disconnection WHERE number = :n"), {"n": victim}
        ).scalar_one()
        connection.execute(
            text(
                "UPDATE prepaid_disconnection SET state = 'approved', next_action = 'notice',"
                " notified_at = NULL, notice_message_id = NULL WHERE id = :id"
            ),
            {"id": ident},
        )
        connection.execute(
            text(
                "DELETE FROM prepaid_disconnection_event"
                " WHERE disconnection_id = :id AND action = 'notify'"
            ),
            {"id": ident},
        )
    assert episodes_of(engine)[victim]["messages"] == {"disconnection_notice": 1}
    fc = _fee_control(engine)
    try:
        report = fc.step()
        assert victim in report.notices
        fc.step()
        episode = episodes_of(engine)[victim]
        assert episode["messages"] == {"disconnection_notice": 1}
        assert episode["history"]["notify"] == 1
        assert episode["l1_by"] == "approver.l1" and episode["l2_by"] == "approver.l2"
        assert episode["state"] == "tripping" and episode["jobs"] == [f"fk-{victim}-trip1-1"]
    finally:
        fc.close()
        engine.dispose()


def test_permit_close_recorded_but_never_queued_is_queued_by_the_next_tick(
    notified: Path, tmp_path: Path
) -> None:
    """The same window in reconnection (复电): a customer tripped, then paid through
    another process; the tick records the permit-close as sent, and a kill before it is
    queued must not leave the customer without power. The next tick queues it."""
    from feikong.cmd_workflows import _fee_control
    from prepaid.cis.payments import PaymentService

    db = copy_sqlite(notified, tmp_path / "wf.db")
    engine = open_database(sqlite_url(db))
    fc = _fee_control(engine)
    try:
        assert fc.step().trips
        victim = sorted(episodes_of(engine))[0]
        with engine.begin() as connection:  # the head-end did the trip
            connection.execute(
                text("UPDATE headend_job SET state = 'succeeded', result = '{}' WHERE id = :id"),
                {"id": f"fk-{victim}-trip1-1"},
            )
        fc.step()
        assert episodes_of(engine)[victim]["state"] == "disconnected"
        with engine.connect() as connection:
            customer = connection.execute(
                text("SELECT customer_no FROM prepaid_disconnection WHERE number = :n"),
                {"n": victim},
            ).scalar_one()
        PaymentService(engine, LedgerCis(engine)).pay(customer, 1_000_00, "P-RECONNECT-1")
        fc.step()  # finds the payment, records the permit-close and queues it
        with engine.begin() as connection:
            number, job_id, state = connection.execute(
                text("SELECT number, job_id, state FROM prepaid_reconnection")
            ).one()
            assert state == "sent"
            deleted = connection.execute(
                text("DELETE FROM headend_job WHERE id = :id"), {"id": job_id}
            ).rowcount
            assert deleted == 1  # now as a kill between the two steps leaves it
        fc.step()
        fc.step()
        with engine.connect() as connection:
            jobs = connection.execute(
                text("SELECT id, kind FROM headend_job WHERE id LIKE :p"), {"p": f"fk-{number}%"}
            ).all()
            recons = connection.execute(text("SELECT count(*) FROM prepaid_reconnection")).scalar()
        assert [tuple(j) for j in jobs] == [(job_id, "permit-close")]
        assert recons == 1
    finally:
        fc.close()
        engine.dispose()


def test_guarantee_command_recorded_but_never_queued_is_sent_by_the_next_sync(
    notified: Path, tmp_path: Path
) -> None:
    """``feikong guarantee sync`` records a 3AH (保电) as sending, then queues it; a
    kill between the two left it ``sending`` forever and the meter never guaranteed
    (for 3BH: never released). The next sync sends it again; the others once."""
    from feikong.cmd_workflows import _fee_control
    from prepaid.users import Users

    db = copy_sqlite(notified, tmp_path / "wf.db")
    engine = open_database(sqlite_url(db))
    fc = _fee_control(engine)
    admin = Users(engine, clock=fc.clock).get("root")

    def jobs(kind: str) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        with engine.connect() as connection:
            for job_id, meter in connection.execute(
                text("SELECT id, meter_address FROM headend_job WHERE kind = :k"), {"k": kind}
            ):
                found.setdefault(meter, []).append(job_id)
        return found

    def lose_one(kind: str) -> str:
        """Remove one queued command: the state a kill between the two steps leaves."""
        meter, (job_id,) = sorted(jobs(kind).items())[0]
        with engine.begin() as connection:
            connection.execute(text("DELETE FROM headend_job WHERE id = :id"), {"id": job_id})
        return meter

    try:
        for name in ("power_guarantee", "guarantee_send_3ah"):
            fc.ctx.settings.set(name, True, level="area", key="TA0000001", user=admin)
        first = fc.guarantee.sync()
        assert len(first.sent_on) >= 100
        lost = lose_one("guarantee-on")
        again = fc.guarantee.sync()
        assert len(again.sent_on) == 1, "the lost 3AH was not sent again (or others twice)"
        on = jobs("guarantee-on")
        assert len(on[lost]) == 1 and len(on) == len(first.sent_on)
        assert all(len(v) == 1 for v in on.values())

        fc.ctx.settings.set("power_guarantee", False, level="area", key="TA0000001", user=admin)
        lifted = fc.guarantee.sync()
        assert len(lifted.sent_off) == len(first.sent_on)
        lost = lose_one("guarantee-off")
        assert len(fc.guarantee.sync().sent_off) == 1
        off = jobs("guarantee-off")
        assert len(off[lost]) == 1 and all(len(v) == 1 for v in off.values())
        assert fc.guarantee.sync().sent_off == []
    finally:
        fc.close()
        engine.dispose()


# -- a database locked by another writer -----------------------------------------------


class WriteLock:
    """Another writer on the SQLite file: ``BEGIN IMMEDIATE`` held until released."""

    def __init__(self, db: Path) -> None:
        self.connection = sqlite3.connect(
            db, timeout=30, isolation_level=None, check_same_thread=False
        )

    def take(self) -> None:
        self.connection.execute("BEGIN IMMEDIATE")  # waits for the writer's chunk to end

    def release(self) -> None:
        self.connection.execute("COMMIT")
        self.connection.close()


def run_under_lock(proc: subprocess.Popen[str], lock: WriteLock, hold_s: float | None) -> str:
    """Hold ``lock`` for ``hold_s`` seconds (``None``: until ``proc`` has ended)."""
    if hold_s is None:
        out, err = proc.communicate(timeout=120)
        lock.release()
    else:
        timer = threading.Timer(hold_s, lock.release)
        timer.start()
        out, err = proc.communicate(timeout=120)
        timer.join()
    return out + err


def test_rating_waits_for_a_writer_holding_the_database_briefly(
    crashed: tuple[Path, Engine], reference: tuple[Snapshot, dict[str, Any]]
) -> None:
    db, engine = crashed
    lock = WriteLock(db)
    lock.take()
    proc = start("rate", "--date", DAY.isoformat(), "--db", sqlite_url(db), "--json")
    output = run_under_lock(proc, lock, hold_s=3.0)  # the busy timeout is 5 s
    assert proc.returncode == 0, output
    assert_same_rating(snapshot(engine), reference[0], DAY)


def test_rating_locked_out_midway_fails_clearly_and_the_rerun_rates_the_rest(
    crashed: tuple[Path, Engine], reference: tuple[Snapshot, dict[str, Any]]
) -> None:
    db, engine = crashed
    want, want_report = reference
    url = sqlite_url(db)
    proc = start(
        "rate", "--date", DAY.isoformat(), "--db", url, "--chunk", str(CHUNK), "--no-pipeline"
    )
    lock = WriteLock(db)
    wait_for(engine, CHARGES_OF_DAY, {"day": day_number(DAY)}, lambda n: n >= 300)
    lock.take()  # between two chunks; held until the rating gives up
    output = run_under_lock(proc, lock, hold_s=None)
    assert proc.returncode == 1, output
    assert "database is locked" in output and "run it again to rate the rest" in output
    assert "Traceback" not in output
    partial = len(snapshot(engine).day_charges(DAY))
    assert 300 <= partial < want_report["rated"]

    again = json.loads(feikong("rate", "--date", DAY.isoformat(), "--db", url, "--json").stdout)
    assert again["already_rated"] == partial
    assert again["rated"] + partial == want_report["rated"]
    assert_same_rating(snapshot(engine), want, DAY)


@pytest.mark.slow
def test_payments_wait_for_a_writer_holding_the_database_briefly(
    crashed: tuple[Path, Engine], paid_reference: tuple[Path, dict[str, int], Snapshot]
) -> None:
    db, engine = crashed
    csv, amounts, want = paid_reference
    lock = WriteLock(db)
    lock.take()
    proc = start("cis", "import", str(csv), "--db", sqlite_url(db), "--json")
    output = run_under_lock(proc, lock, hold_s=3.0)
    assert proc.returncode == 0, output
    assert Ledger.read(engine).posted == amounts
    got = snapshot(engine)
    assert got.realtime == want.realtime and got.states == want.states


@pytest.mark.parametrize(
    "from_credit", [0, pytest.param(500, marks=pytest.mark.slow)], ids=["from-the-start", "midway"]
)
def test_payments_locked_out_fail_clearly_and_the_redelivery_credits_once(
    crashed: tuple[Path, Engine],
    paid_reference: tuple[Path, dict[str, int], Snapshot],
    from_credit: int,
) -> None:
    """Locked from the start, the import stops before the CIS (opening the ledger's
    accounts); locked after 500 payments, between two ledger batches."""
    db, engine = crashed
    csv, amounts, want = paid_reference
    url = sqlite_url(db)
    lock = WriteLock(db)
    if not from_credit:
        lock.take()
    proc = start("cis", "import", str(csv), "--db", url)
    if from_credit:
        wait_for(engine, CIS_PAYMENTS, {}, lambda n: n >= from_credit)
        lock.take()
    output = run_under_lock(proc, lock, hold_s=None)
    assert proc.returncode == 2, output
    assert "database is locked" in output and "payment ids make that safe" in output
    assert "Traceback" not in output
    credited = Ledger.read(engine).movements
    assert from_credit <= len(credited) < len(amounts)

    again = json.loads(feikong("cis", "import", str(csv), "--db", url, "--json").stdout)
    assert again["credited"] == len(amounts) - len(credited)
    after = Ledger.read(engine)
    assert after.movements == {op: [fen] for op, fen in amounts.items()}
    assert after.posted == amounts
    got = snapshot(engine)
    assert got.cis == want.cis and got.realtime == want.realtime
    assert got.states == want.states
