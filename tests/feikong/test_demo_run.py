"""``feikong demo --days 5 --customers 200 --check``: the whole system, as CI runs it.

One run (about 30 s), then what a user would look at: the day lines, the processes'
logs, the database (readings, ratings, reminders, dunning, approvals by two different
people, trips, payments through the CIS, messages), the SMS file and the report.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    out = tmp_path_factory.mktemp("demo") / "out"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "feikong",
            "demo",
            "--days",
            "5",
            "--customers",
            "200",
            "--check",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=170,
        check=False,
        env={"COLUMNS": "250", "PATH": os.environ.get("PATH", "/usr/bin:/bin")},
    )
    return result, out


def _db(out: Path) -> sqlite3.Connection:
    return sqlite3.connect(out / "feikong-demo.db")


def _one(db: sqlite3.Connection, sql: str) -> int:
    return int(db.execute(sql).fetchone()[0])


def test_it_runs_every_day_and_the_invariants_hold(
    demo: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    result, _out = demo
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    days = [line for line in result.stdout.splitlines() if line.startswith("day ")]
    assert [line.split()[2] for line in days] == [
        "2026-03-02",
        "2026-03-03",
        "2026-03-04",
        "2026-03-05",
        "2026-03-06",
    ]
    # one meter of 200 is offline: every day the other 199 freezes are collected
    assert all("collected 199/200" in line for line in days), days
    assert "Traceback" not in result.stderr
    assert "violation" not in result.stdout or "invariants: all hold" in result.stdout


def test_the_parts_ran_as_their_own_processes(
    demo: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    _, out = demo
    logs = {p.name: p.read_text(encoding="utf-8") for p in (out / "logs").glob("*.log")}
    assert "breaker-sim: " in logs["breaker-sim-1.log"]  # `feikong breaker-sim` itself
    assert "fault none → fails_to_trip" in logs["breaker-sim-1.log"]  # injected over Modbus
    assert "meter-sim (bench)" in logs["meter-sim-bench.log"]
    assert "breakers modbus://127.0.0.1:" in logs["meter-sim-bench.log"]
    assert "head-end: 200 meters" in logs["headend.log"]
    assert "platform: done" in logs["platform.log"]


def test_the_daily_cycle_reached_the_database(
    demo: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    _, out = demo
    with _db(out) as db:
        # the opening reading plus five collected freezes, each of 199 meters
        per_day = dict(
            db.execute(
                "SELECT freeze_date, count(*) FROM headend_reading GROUP BY freeze_date"
            ).fetchall()
        )
        assert per_day == {
            "2026-03-01": 200,
            **{f"2026-03-0{d}": 199 for d in range(2, 7)},
        }
        # every account with a reading was rated on each day, once
        rated_days = _one(db, "SELECT count(DISTINCT day) FROM prepaid_charge")
        assert rated_days >= 4
        assert _one(db, "SELECT count(*) FROM prepaid_reminder") > 0
        assert _one(db, "SELECT count(*) FROM prepaid_dunning") > 0
        # approvals: level 1 and level 2 by the scenario's two different approvers
        approvals = db.execute(
            "SELECT DISTINCT l1_by, l2_by FROM prepaid_disconnection WHERE l2_by IS NOT NULL"
        ).fetchall()
        assert approvals == [("li.na", "wang.fang")]
        assert _one(db, "SELECT count(*) FROM prepaid_disconnection_event WHERE action = 'tripped'")
        # the trips ran on a working day between 08:00 and 18:00
        for (at,) in db.execute(
            "SELECT at FROM prepaid_disconnection_event WHERE action = 'tripped'"
        ).fetchall():
            assert "08:00" <= at[11:16] < "18:00", at
        # customers paid through the CIS ledger, once per payment id
        payments = _one(db, "SELECT count(*) FROM prepaid_cis_movement WHERE kind = 'payment'")
        assert payments > 0
        assert payments == _one(
            db,
            "SELECT count(DISTINCT operation_id) FROM prepaid_cis_movement WHERE kind = 'payment'",
        )
        statuses = dict(db.execute("SELECT status, count(*) FROM prepaid_message GROUP BY 1"))
        assert statuses.get("delivered", 0) > 0 and statuses.get("paper", 0) > 0


def test_sms_notices_and_report_are_in_the_output_directory(
    demo: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    _, out = demo
    sms = [json.loads(line) for line in (out / "sms.jsonl").read_text("utf-8").splitlines()]
    assert sms and all(len(m["to"]) == 11 for m in sms)
    summary = json.loads((out / "summary.json").read_text("utf-8"))
    assert summary["district"]["customers"] == 200
    assert len(summary["days"]) == 5
    assert summary["customers"]["payments"] > 0
    if (Path(__file__).parents[2] / "feikong" / "demo" / "report.py").exists():
        for name in ("report.txt", "report.json", "report.html"):
            assert (out / name).stat().st_size > 0, name
        assert list(out.glob("*.png"))
