"""The demo report over the run of ``test_demo_invariants`` (the workflows rig, stepped
clock), with every figure counted by hand from that run:

- 3 remote customers, 5.00 yuan each; 1 March: the opening rating, 0.00 for each (3
  charge rows); 2 March: 3300000001 and 3300000002 re-rated at their disconnection
  requests, 20 kWh × 0.52 = 10.40 yuan each → 5 charges, 20.80 yuan, 40.00 kWh;
- payments: PAY-1 100.00 (3 March), PAY-2 20.00 (4 March) → 2, 120.00 yuan;
- balances: 5.00 − 10.40 + 100.00 = 94.60; 5.00 − 10.40 = −5.40; 5.00 + 20.00 = 25.00
  → total 114.20, one in arrears, one each in the bands −100–0, 20–50 and 50–100;
- 2 March 09:00: 3 low-balance reminders (all below 20.00), 1 dunning batch (area A1)
  with 2 SMS records (the two below 0.00), 2 disconnection notices;
- 3 March: 1 trip (3300000001), 1 failed disconnection (3300000002, one attempt) with its
  work order and the handler's SMS, 1 reconnection (done) and its message;
- messages: low_balance 3, dunning 2, disconnection_notice 2 (7 on 2 March), then
  disconnected, disconnection_failure, reconnected (3 on 3 March) → 10;
- readings (daily freezes) of all 3 meters on 1 and 2 March, none after → collection
  100 %, 100 %, 0 %, 0 % and 6 / 12 = 50.00 % over the four days.
"""

from __future__ import annotations

import dataclasses
import json
import struct
from datetime import date
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from feikong.cli import app
from feikong.demo.charts import CHART_FILES
from feikong.demo.invariants import Violation, check_invariants
from feikong.demo.report import DemoReport, build_report, run_period

from .test_demo_invariants import engine, flow_database

__all__ = ["engine"]  # the fixture: a copy of the run's database

START = date(2026, 3, 1)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def report(engine: Engine) -> DemoReport:
    return build_report(engine, start=START, days=4, violations=check_invariants(engine))


def test_the_text_has_the_hand_counted_figures(report: DemoReport) -> None:
    text = report.to_text()
    lines = [" ".join(line.split()) for line in text.splitlines()]
    assert lines[0] == "feikong demo report: 2026-03-01 to 2026-03-04 (4 day(s))"
    for expected in (
        "accounts 3",
        "active 3",
        "remote meters 3",
        "card meters 0",
        "power guarantee 0",
        "payments 2 sum 120.00",
        "refunds 0 sum 0.00",
        "charges 5 sum 20.80 energy 40.00 kWh",
        "balances total 114.20, lowest -5.40, highest 94.60, in arrears 1",
        "< -100 0",
        "-100 to 0 1",
        "0 to 20 0",
        "20 to 50 1",
        "50 to 100 1",
        ">= 500 0",
        "reminders 3",
        "dunning batches 1",
        "dunning records 2 (sms 2)",
        "disconnections 2 (ended 1, failed 1)",
        "notices 2",
        "trips 1",
        "trip failures 1",
        "failed disconn. 1",
        "reconnections 1 (done 1)",
        "work orders 1 (disconnection-failure 1)",
        "messages 10",
        "low_balance 3",
        "dunning 2",
        "disconnection_notice 2",
        "disconnected 1",
        "disconnection_failure 1",
        "reconnected 1",
        "per day (collection rate over the run 50.00%)",
        "2026-03-01 3/3 100.00% 0 0.00 0.00 0 0 0",
        "2026-03-02 3/3 100.00% 0 0.00 20.80 0 0 7",
        "2026-03-03 0/3 0.00% 1 100.00 0.00 1 1 3",
        "2026-03-04 0/3 0.00% 1 20.00 0.00 0 0 0",
        "invariants: all 5 hold",
    ):
        assert expected in lines, expected


def test_the_json_parses_and_matches(report: DemoReport) -> None:
    data = json.loads(json.dumps(report.to_dict()))
    assert data["period"] == {"start": "2026-03-01", "end": "2026-03-04", "days": 4}
    assert data["customers"]["accounts"] == 3
    assert data["payments"] == {"count": 2, "sum_yuan": "120.00"}
    assert data["charges"] == {"count": 5, "sum_yuan": "20.80", "energy_kwh": "40.00"}
    balances = data["balances"]
    assert (balances["total_yuan"], balances["lowest_yuan"], balances["highest_yuan"]) == (
        "114.20",
        "-5.40",
        "94.60",
    )
    assert [b["accounts"] for b in balances["distribution"]] == [0, 1, 0, 1, 1, 0, 0, 0]
    assert balances["distribution"][1] == {
        "band": "-100 to 0",
        "low_yuan": "-100.00",
        "high_yuan": "0.00",
        "accounts": 1,
    }
    flows = data["workflows"]
    assert (flows["reminders"], flows["notices"], flows["trips"], flows["trip_failures"]) == (
        3,
        2,
        1,
        1,
    )
    assert flows["work_orders"] == {"disconnection-failure": 1}
    assert data["messages"]["by_kind"] == {
        "disconnected": 1,
        "disconnection_failure": 1,
        "disconnection_notice": 2,
        "dunning": 2,
        "low_balance": 3,
        "reconnected": 1,
    }
    assert data["collection_rate"] == "0.5000"
    assert [(d["day"], d["collection_rate"], d["paid_yuan"]) for d in data["daily"]] == [
        ("2026-03-01", "1.0000", "0.00"),
        ("2026-03-02", "1.0000", "0.00"),
        ("2026-03-03", "0.0000", "100.00"),
        ("2026-03-04", "0.0000", "20.00"),
    ]
    assert data["invariants"]["ok"] is True and data["invariants"]["violations"] == []

    def no_float(value: object) -> None:
        assert not isinstance(value, float), value
        if isinstance(value, dict):
            for v in value.values():
                no_float(v)
        if isinstance(value, list):
            for v in value:
                no_float(v)

    no_float(data)


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == PNG_SIGNATURE and head[12:16] == b"IHDR", path
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def test_the_files_charts_and_page(report: DemoReport, tmp_path: Path) -> None:
    out = tmp_path / "report"
    paths = report.write(out)
    names = [p.name for p in paths]
    assert names == ["report.txt", "report.json", *CHART_FILES, "report.html"]
    assert (out / "report.txt").read_text(encoding="utf-8") == report.to_text()
    assert json.loads((out / "report.json").read_text(encoding="utf-8")) == report.to_dict()
    for name in CHART_FILES:
        png = out / name
        assert _png_size(png) == (800, 400)  # 8 × 4 inches at 100 dpi
        assert 8_000 < png.stat().st_size < 500_000, (name, png.stat().st_size)
    page = (out / "report.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    for name in CHART_FILES:
        assert f'<img src="{name}"' in page
    assert "http" not in page  # nothing fetched from elsewhere
    assert "invariants: all hold" in page and "2026-03-03" in page


def test_a_broken_invariant_shows_in_the_report(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE prepaid_rating_state SET balance_fen = balance_fen - 1"))
    report = build_report(engine, start=START, days=4, violations=check_invariants(engine))
    text = report.to_text()
    assert "invariants: 3 violation(s)" in text
    assert "BROKEN money-conserved: account 3300000003:" in " ".join(text.split())
    data = report.to_dict()["invariants"]
    assert isinstance(data, dict) and data["ok"] is False and len(data["violations"]) == 3


def test_the_period_is_found_from_the_daily_freezes(engine: Engine) -> None:
    # freezes on 1 and 2 March: the run is the day from the first to the last
    assert run_period(engine) == (START, 1)


def test_feikong_demo_report(tmp_path: Path) -> None:
    url = f"sqlite:///{flow_database()}"
    runner = CliRunner()
    out = tmp_path / "out"
    result = runner.invoke(
        app,
        ["demo-report", "--db", url, "--start", "2026-03-01", "--days", "4", "--out", str(out)],
    )
    assert result.exit_code == 0, result.output
    assert "charges                        5" in result.output.replace("   sum", "")
    assert "invariants: all 5 hold" in result.output
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["report.txt", "report.json", *CHART_FILES, "report.html"]
    )
    result = runner.invoke(app, ["demo-report", "--db", url, "--check", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["period"] == {"start": "2026-03-01", "end": "2026-03-01", "days": 1}


def test_feikong_demo_report_check_fails_on_a_broken_run(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE prepaid_disconnection SET l1_by = NULL"))
    url = engine.url.render_as_string(hide_password=False)
    runner = CliRunner()
    assert runner.invoke(app, ["demo-report", "--db", url]).exit_code == 0
    result = runner.invoke(app, ["demo-report", "--db", url, "--check"])
    assert result.exit_code == 1
    assert "BROKEN  two-approvals: disconnection TD20260302000001:" in result.output
    assert "2 invariant violation(s)" in result.output


def test_feikong_demo_report_refuses_what_is_not_a_demo_database(tmp_path: Path) -> None:
    runner = CliRunner()
    missing = tmp_path / "nothing.db"
    result = runner.invoke(app, ["demo-report", "--db", f"sqlite:///{missing}"])
    assert result.exit_code == 2 and "no such database file" in result.output
    assert not missing.exists()
    empty = tmp_path / "empty.db"
    empty.touch()
    result = runner.invoke(app, ["demo-report", "--db", f"sqlite:///{empty}"])
    assert result.exit_code == 2 and "not a migrated feikong database" in result.output


def test_the_text_lists_50_violations_and_the_json_all(report: DemoReport) -> None:
    many = tuple(
        Violation("money-conserved", f"account {n:010d}", "1.00 yuan off") for n in range(60)
    )
    broken = dataclasses.replace(report, violations=many)
    text = broken.to_text()
    assert "invariants: 60 violation(s)" in text
    assert text.count("BROKEN") == 50 and "… and 10 more (every one is in report.json)" in text
    data = broken.to_dict()["invariants"]
    assert isinstance(data, dict) and len(data["violations"]) == 60
