"""``feikong cis pay | refund | import | balance | settle | sync | audit | timely``."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from feikong.cli import app
from prepaid.db import migrate, open_database

from .rating_helpers import account, open_some, with_tariffs_and_unit
from .test_balance import _charges

runner = CliRunner()


@pytest.fixture
def db(tmp_path: Path) -> str:
    """A database with three accounts (opening balances 10.00, 20.00, 30.00)."""
    url = f"sqlite:///{tmp_path / 'feikong.db'}"
    engine: Engine = open_database(url)
    migrate(engine)
    with engine.begin() as c:
        unit = with_tariffs_and_unit(c)
    ids = open_some(engine, [account(n, unit, balance_fen=1_000 * n) for n in (1, 2, 3)])
    yesterday = date.today() - timedelta(days=1)
    _charges(engine, [(yesterday, ids[0], 250)])
    engine.dispose()
    result = runner.invoke(app, ["cis", "sync", "--db", url])
    assert result.exit_code == 0, result.output
    assert "opened 3 account(s)" in result.output
    return url


def test_balance_shows_cis_unsettled_and_realtime(db: str) -> None:
    result = runner.invoke(app, ["cis", "balance", "3300000001", "--db", db, "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    # the rating state held 10.00 after the 2.50 charge: the CIS opening is 12.50
    assert (data["cis_balance"], data["unsettled_charges"], data["realtime_balance"]) == (
        "12.50",
        "2.50",
        "10.00",
    )
    text = runner.invoke(app, ["cis", "balance", "3300000001", "--db", db]).output
    assert "real-time balance" in text and "10.00" in text and "opening" in text


def test_pay_credits_once_and_says_so_the_second_time(db: str) -> None:
    args = ["cis", "pay", "--account", "3300000002", "--amount", "100.00", "--payment-id", "P1"]
    first = runner.invoke(app, [*args, "--db", db, "--json"])
    assert first.exit_code == 0, first.output
    data = json.loads(first.output)
    assert (data["cis_balance"], data["realtime_balance"], data["duplicate"]) == (
        "120.00",
        "120.00",
        False,
    )
    second = runner.invoke(app, [*args, "--db", db])
    assert second.exit_code == 0, second.output
    assert "payment P1 was already credited" in second.output
    assert "nothing credited now" in second.output
    clash = runner.invoke(
        app,
        [
            "cis",
            "pay",
            "--account",
            "3300000002",
            "--amount",
            "99.00",
            "--payment-id",
            "P1",
            "--db",
            db,
        ],
    )
    assert clash.exit_code == 2
    assert "already applied as 100.00 yuan" in clash.output


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--account", "3300000001", "--amount", "1.005", "--payment-id", "X"], "2 decimals"),
        (["--account", "3300000001", "--amount", "-1", "--payment-id", "X"], "more than 0"),
        (["--account", "NOPE", "--amount", "1.00", "--payment-id", "X"], "not a platform account"),
    ],
)
def test_bad_payments_exit_2_with_one_line(db: str, args: list[str], says: str) -> None:
    result = runner.invoke(app, ["cis", "pay", *args, "--db", db])
    assert result.exit_code == 2
    assert says in result.output


def test_refund_within_the_realtime_balance_only(db: str) -> None:
    base = ["cis", "refund", "--account", "3300000001", "--db", db]
    refused = runner.invoke(app, [*base, "--amount", "10.01", "--refund-id", "R1"])
    assert refused.exit_code == 1
    assert "more than its real-time balance of 10.00 yuan" in refused.output
    done = runner.invoke(app, [*base, "--amount", "10.00", "--refund-id", "R2", "--json"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.output)["realtime_balance"] == "0.00"


def test_import_lists_bad_rows_and_reimport_credits_nothing(db: str, tmp_path: Path) -> None:
    path = tmp_path / "pay.csv"
    path.write_text(
        "payment_id,account_no,amount\nQ1,3300000001,5.00\nQ2,3300000003,x\nQ3,NOPE,1.00\n",
        encoding="utf-8",
    )
    first = runner.invoke(app, ["cis", "import", str(path), "--db", db])
    assert first.exit_code == 0, first.output
    assert "credited 1 payment(s), 5.00 yuan to 1 account(s)" in first.output
    assert "line 3: amount 'x' is not a number of yuan" in first.output
    assert "line 4: account NOPE is not a platform account" in first.output
    again = runner.invoke(app, ["cis", "import", str(path), "--db", db, "--json"])
    data = json.loads(again.output)
    assert (data["credited"], data["duplicates"], len(data["errors"])) == (0, 1, 2)
    missing = runner.invoke(app, ["cis", "import", str(tmp_path / "none.csv"), "--db", db])
    assert missing.exit_code == 2
    assert "cannot read payments file" in missing.output


def test_settle_then_audit(db: str) -> None:
    yesterday = (date.today() - timedelta(days=1)).isoformat()
    result = runner.invoke(app, ["cis", "settle", "--through", yesterday, "--db", db])
    assert result.exit_code == 0, result.output
    assert "1 account(s), 2.50 yuan" in result.output
    balance = json.loads(
        runner.invoke(app, ["cis", "balance", "3300000001", "--db", db, "--json"]).output
    )
    assert (balance["cis_balance"], balance["unsettled_charges"]) == ("10.00", "0.00")
    today = runner.invoke(app, ["cis", "settle", "--through", date.today().isoformat(), "--db", db])
    assert today.exit_code == 2
    audit = runner.invoke(app, ["cis", "audit", "--db", db])
    assert audit.exit_code == 0
    assert "every CIS balance equals the sum of its movements" in audit.output


def test_timely_dry_run_counts_per_rule(db: str, tmp_path: Path) -> None:
    rules = tmp_path / "timely.toml"
    rules.write_text('[timely]\nbalance_below = "15.00"\nnewer_reading = false\n', "utf-8")
    result = runner.invoke(
        app, ["cis", "timely", "--rules", str(rules), "--dry-run", "--db", db, "--json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["selected"] == 1  # 10.00 < 15.00; 20.00 and 30.00 are not
    assert data["by_rule"]["balance"] == 1
    bad = tmp_path / "bad.toml"
    bad.write_text("[timely]\naverage_days = 0\n", "utf-8")
    refused = runner.invoke(app, ["cis", "timely", "--rules", str(bad), "--db", db])
    assert refused.exit_code == 2
    assert "average_days: expected 1 to 90 days" in refused.output


def test_bench_prints_figures_and_the_rating_keeps_balances_in_step(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["cis", "bench", "--accounts", "300", "--days", "3", "--payments", "3", "--json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    for key in ("adopt_s", "bulk_realtime_per_s", "timely_select_s", "pay_p50_ms", "settle_s"):
        assert data[key] >= 0
    # after two days of rating, every stored real-time balance is CIS − unsettled already
    assert data["sync_corrected"] == 0
