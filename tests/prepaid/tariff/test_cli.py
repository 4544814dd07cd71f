"""``feikong tariff quote`` and ``feikong tariff show`` (CliRunner)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from feikong.cli import app
from prepaid.tariff import Tariff, example_path

runner = CliRunner()
MONTHLY = str(example_path("residential_monthly"))
JULY = ["--from", "2025-07-01", "--to", "2025-07-31"]


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["tariff", *args])
    return result.exit_code, result.output


def test_quote_monthly_prints_the_tiers_and_259() -> None:
    code, out = run("quote", "--tariff", MONTHLY, "--kwh", "450", *JULY)
    assert code == 0, out
    assert "259.00" in out
    for amount in ("104.00", "114.00", "41.00"):
        assert amount in out


def test_quote_json_has_exact_decimal_strings() -> None:
    code, out = run("quote", "--tariff", MONTHLY, "--kwh", "450", *JULY, "--json")
    assert code == 0, out
    data = json.loads(out)
    assert data["tariff"] == "res-monthly"
    assert data["total"] == "259.00" and data["total_fen"] == 25900
    assert [(ln["tier"], ln["kwh"], ln["price"], ln["amount"]) for ln in data["lines"]] == [
        (1, "200.00", "0.5200", "104.000000"),
        (2, "200.00", "0.5700", "114.000000"),
        (3, "50.00", "0.8200", "41.000000"),
    ]


def test_quote_annual_tou_household_free_and_price_change() -> None:
    annual = str(example_path("residential_annual"))
    args = ("--kwh", "300", "--prior-kwh", "2700", "--from", "2025-07-01", "--json")
    _, out = run("quote", "--tariff", annual, *args)
    assert json.loads(out)["total"] == "173.40"
    tou = str(example_path("residential_tou2"))
    _, out = run("quote", "--tariff", tou, "--tou", "peak=300,valley=150", *JULY)
    assert "242.50" in out and "valley" in out
    _, out = run("quote", "--tariff", MONTHLY, "--kwh", "450", *JULY, "--household-size", "5")
    assert "241.50" in out
    _, out = run("quote", "--tariff", MONTHLY, "--kwh", "450", *JULY, "--free")
    assert "251.20" in out and "free" in out
    change = str(example_path("residential_price_change"))
    code, out = run("quote", "--tariff", change, "--kwh", "450", "--from", "2025-06-01")
    assert code == 0, out
    assert "265.75" in out and "v2" in out


def test_show_prints_the_tariff_and_json_round_trips() -> None:
    code, out = run("show", "--tariff", str(example_path("commercial_tou4")))
    assert code == 0, out
    assert "com-tou4 v1" in out and "19:00-21:00" in out and "+0.5460" in out
    code, out = run("show", "--tariff", MONTHLY, "--json")
    assert code == 0, out
    rows = json.loads(out)
    assert Tariff.from_dict(rows[0]).thresholds_ckwh == (20000, 40000)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["quote", "--tariff", "missing.toml", "--kwh", "1"], "cannot read the tariff file"),
        (["quote", "--tariff", MONTHLY, "--kwh", "1.001"], "at most 2 decimals"),
        (["quote", "--tariff", MONTHLY, "--kwh", "-3"], "--kwh wants kWh"),
        (["quote", "--tariff", MONTHLY], "give the energy"),
        (
            ["quote", "--tariff", MONTHLY, "--kwh", "1", "--from", "2025-02-30"],
            "--from wants a date",
        ),
        (
            [
                "quote",
                "--tariff",
                MONTHLY,
                "--kwh",
                "1",
                "--from",
                "2025-07-05",
                "--to",
                "2025-07-01",
            ],
            "on or after start",
        ),
        (
            ["quote", "--tariff", MONTHLY, "--kwh", "1", "--household-size", "many"],
            "--household-size wants",
        ),
        (["quote", "--tariff", MONTHLY, "--kwh", "1", "--id", "nope"], "no tariff 'nope'"),
        (
            ["quote", "--tariff", MONTHLY, "--kwh", "1", "--from", "2020-01-01"],
            "no version is in force on 2020-01-01",
        ),
        (
            ["quote", "--tariff", str(example_path("residential_tou2")), "--kwh", "1", *JULY],
            "time-of-use",
        ),
        (
            ["quote", "--tariff", str(example_path("residential_tou2")), "--tou", "peak:1", *JULY],
            "--tou wants PERIOD=KWH",
        ),
        (
            ["quote", "--tariff", MONTHLY, "--kwh", "10", "--tou", "peak=1,valley=2", *JULY],
            "add up",
        ),
        (["show", "--tariff", MONTHLY, "--id", "x"], "no tariff 'x'"),
    ],
)
def test_bad_input_is_one_error_line_and_exit_2(args: list[str], message: str) -> None:
    code, out = run(*args)
    assert code == 2, out
    assert message in out
    assert len(out.strip().splitlines()) == 1, out


def test_bad_tariff_file_names_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(
        '[[tariff]]\nid = "x"\nname = "x"\nversion = 1\neffective_from = 2025-01-01\n'
        "thresholds_kwh = [400, 200]\nprices = [0.5, 0.6, 0.7]\n",
        encoding="utf-8",
    )
    code, out = run("quote", "--tariff", str(path), "--kwh", "1", *JULY)
    assert code == 2
    assert "bad.toml" in out and "thresholds_kwh" in out and "ascending" in out
