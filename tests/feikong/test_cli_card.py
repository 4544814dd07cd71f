"""``feikong card write`` / ``card show``, and a written card taken by a local meter."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from breaker_sim import Breaker, BreakerConfig, InProcessBreakerLink
from feikong.cli import app
from meter_sim.card import CardType, read_card
from meter_sim.config import BreakerKind, MeterConfig, MeterKind
from meter_sim.local import LocalMeter
from protocol import SteppedClock
from protocol.security import TEST_MASTER_KEY, SimulatedEsam, format_key_file

CUSTOMER = "000000000042"


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["card", *args])
    return result.exit_code, result.stdout, result.stderr


def write(path: Path, *extra: str) -> tuple[int, str, str]:
    return run("write", str(path), "--customer", CUSTOMER, *extra)


def test_write_and_show(tmp_path: Path) -> None:
    path = tmp_path / "card.json"
    code, out, err = write(
        path, "--amount", "100.5", "--count", "1", "--type", "open", "--alarm1", "30"
    )
    assert code == 0, err
    assert "test key" in err
    assert "open card" in out and "100.50 yuan" in out
    card = read_card(path)
    assert card.type is CardType.OPEN and card.amount_fen == 10_050
    assert card.purchase_count == 1 and card.serial == f"{CUSTOMER}-1"
    assert card.parameters == {"alarm1_fen": 3000}
    card.verify(SimulatedEsam(TEST_MASTER_KEY, "123456781012"))

    code, out, err = run("show", str(path))
    assert code == 0, err
    assert "MAC         valid" in out and "100.50 yuan" in out and "(not inserted yet)" in out
    assert "alarm1      30.00 yuan" in out

    code, out, _ = run("show", str(path), "--json")
    data = json.loads(out)
    assert data["mac_valid"] is True and data["amount"] == "100.50"
    assert data["amount_fen"] == 10_050


def test_show_detects_tampering_and_another_key(tmp_path: Path) -> None:
    path = tmp_path / "card.json"
    assert write(path, "--amount", "5", "--count", "2", "--serial", "S-1")[0] == 0
    data = json.loads(path.read_text())
    data["amount_fen"] = 999_999
    path.write_text(json.dumps(data))
    code, out, _ = run("show", str(path))
    assert code == 0 and "INVALID" in out

    key = tmp_path / "lab.key"
    key.write_text(format_key_file(bytes(range(16))))
    other = tmp_path / "other.json"
    assert write(other, "--amount", "5", "--count", "2", "--key-file", str(key))[0] == 0
    assert json.loads(run("show", str(other), "--json", "--key-file", str(key))[1])["mac_valid"]
    assert not json.loads(run("show", str(other), "--json")[1])["mac_valid"]


async def test_a_written_card_is_taken_and_written_back(tmp_path: Path) -> None:
    path = tmp_path / "card.json"
    assert write(path, "--amount", "88.88", "--count", "1", "--type", "open")[0] == 0
    clock = SteppedClock(datetime(2026, 3, 10, 10, 0))
    cfg = MeterConfig(
        "123456781012", kind=MeterKind.LOCAL, breaker=BreakerKind.INTERNAL, mean_daily_kwh=0
    )
    breaker = Breaker(clock, BreakerConfig(remotely_closable=True))
    meter = LocalMeter(cfg, clock, InProcessBreakerLink(breaker), master_key=TEST_MASTER_KEY)
    back = await meter.insert_card_file(path)
    assert back.remaining_fen == 8_888 and meter.customer_number == CUSTOMER
    code, out, _ = run("show", str(path))
    assert code == 0
    assert "return      meter 123456781012" in out and "remaining 88.88 yuan" in out
    await meter.aclose()


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--amount", "1.005", "--count", "1"], "at most 2 decimals"),
        (["--amount", "-1", "--count", "1"], "at most 2 decimals"),
        (["--amount", "abc", "--count", "1"], "--amount wants yuan"),
        (["--amount", "1000000", "--count", "1"], "0..999999.99"),
        (["--amount", "1", "--count", "0"], "--count must be"),
        (["--amount", "1", "--count", "1", "--type", "gift"], "--type must be one of"),
        (["--amount", "1", "--count", "1", "--alarm1", "1", "--alarm2", "2"], "--alarm2"),
        (["--amount", "1", "--count", "1", "--alarm2", "2.123"], "--alarm2 wants yuan"),
        (["--amount", "1", "--count", "1", "--key-file", "/nonexistent"], "--key-file"),
    ],
)
def test_write_errors(tmp_path: Path, args: list[str], error: str) -> None:
    path = tmp_path / "card.json"
    code, _, err = write(path, *args)
    assert code == 2
    assert error in err and "error:" in err
    assert not path.exists()


def test_bad_customer_and_files(tmp_path: Path) -> None:
    code, _, err = run("write", str(tmp_path / "c.json"), "--customer", "42", "--amount", "1",
                       "--count", "1")  # fmt: skip
    assert code == 2 and "--customer must be 12 digits" in err
    code, _, err = run("show", str(tmp_path / "missing.json"))
    assert code == 2 and "cannot read card file" in err
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    code, _, err = run("show", str(bad))
    assert code == 2 and "not valid JSON" in err
    assert len(err.strip().splitlines()) == 1
