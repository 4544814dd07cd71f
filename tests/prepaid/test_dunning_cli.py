"""``feikong reminders | dunning | service | anomaly-orders`` on a real SQLite file."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from feikong.cli import app
from prepaid.users import Users

from .dunning_rig import ADMIN, Rig, make_rig

runner = CliRunner()
PASSWORD = "secret-pass-1"


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    rig = make_rig(tmp_path)
    rig.add("S1", balance=-500)
    rig.add("P1", balance=-200, paper=True)
    rig.add("M1", balance=-300, phone="138001")
    rig.add("OK", balance=1_000, area="A2")
    users = Users(rig.engine, clock=rig.clock, work_factor=2**10)
    users.add("admin", display_name="Admin", password=PASSWORD, roles=["admin"], by=None)
    users.add("op", display_name="Operator", password=PASSWORD, roles=["operator"], by=ADMIN)
    users.add("cs", display_name="Clerk", password=PASSWORD, roles=["customer-service"], by=ADMIN)
    return rig


def _run(rig: Rig, *args: str) -> str:
    env = {"FEIKONG_DB": str(rig.engine.url), "FEIKONG_PASSWORD": PASSWORD, "COLUMNS": "200"}
    result = runner.invoke(app, list(args), env=env)
    assert result.exit_code == 0, result.output
    return result.output


def test_dunning_run_print_and_the_manual_list(rig: Rig, tmp_path: Path) -> None:
    out = _run(
        rig,
        "dunning",
        "run",
        "--user",
        "op",
        "--notices",
        str(tmp_path / "n"),
        "--now",
        "2026-03-02T08:00",
    )
    assert "DN20260302-A1-01" in out and "records=3  sms=1  paper=1  manual=1" in out
    assert (tmp_path / "n" / "DN20260302-A1-01.html").read_text(encoding="utf-8").count(
        "<section"
    ) == 2
    again = json.loads(_run(rig, "dunning", "run", "--user", "op", "--json"))
    assert again["records"] == 0
    export = tmp_path / "manual.csv"
    listing = _run(rig, "dunning", "records", "--manual", "--export", str(export))
    assert "manual-dunning list (2)" in listing
    rows = list(csv.DictReader(export.read_text(encoding="utf-8-sig").splitlines()))
    assert [(r["customer_no"], r["method"]) for r in rows] == [("P1", "paper"), ("M1", "manual")]
    assert "too-short" in rows[1]["phone_problem"]


def test_a_person_without_the_role_is_refused_with_the_reason(rig: Rig) -> None:
    env = {"FEIKONG_DB": str(rig.engine.url), "FEIKONG_PASSWORD": PASSWORD}
    result = runner.invoke(
        app, ["service", "sms", "--text", "hi", "--area", "A1", "--user", "op"], env=env
    )
    assert result.exit_code == 1
    assert "send-custom-sms" in result.output


def test_reminders_phones_and_custom_sms(rig: Rig, tmp_path: Path) -> None:
    report = json.loads(_run(rig, "reminders", "run", "--json", "--now", "2026-03-02T08:00"))
    # OK (10.00 yuan) is below the 20.00 reminder amount too
    assert (report["opened"], report["sms"], report["paper"], report["invalid_phone"]) == (
        4,
        2,
        1,
        1,
    )
    assert "open" in _run(rig, "reminders", "list", "--open")
    export = tmp_path / "phones.csv"
    out = _run(rig, "service", "phones", "--export", str(export))
    assert "too-short=1" in out and "written:" in out
    assert "M1" in export.read_text(encoding="utf-8-sig")
    dry = _run(
        rig, "service", "sms", "--text", "春节快乐", "--area", "A1", "--dry-run", "--user", "cs"
    )
    assert "dry run: would send to recipients=2" in dry  # P1 is on paper
    sent = json.loads(
        _run(rig, "service", "sms", "--text", "春节快乐", "--area", "A1", "--user", "cs", "--json")
    )
    assert (sent["queued"], sent["invalid"]) == (1, 1)
