"""Daily rating on a real SQLite database: outcomes, idempotency, crash and rerun, payments.

Tariff ``res-monthly`` (prepaid/tariffs/residential_monthly.toml): 0.52 yuan/kWh up to
200 kWh a month, 0.57 to 400, 0.82 above. A daily freeze dated D closes day D − 1,
so the reading of 1 March closes February and is each account's baseline here.
"""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from prepaid.db import open_database
from prepaid.models import Outcome, day_number
from prepaid.rating import RatingOptions, RatingRunError, rate_accounts, rate_day

from .rating_helpers import (
    account,
    add_meters,
    charges,
    migrated,
    open_some,
    read,
    state,
    with_tariffs_and_unit,
)

MAR1, MAR2, MAR3 = date(2026, 3, 1), date(2026, 3, 2), date(2026, 3, 3)


def population(tmp_path: Path) -> tuple[Engine, list[int]]:
    """Six accounts, baselined on 1 March, with the readings of 2 March.

    | account | balance | reading 2 March    | charge            | balance after | outcome  |
    |---------|---------|--------------------|-------------------|---------------|----------|
    | 1       | 100.00  | +10 kWh            | 10 × 0.52 = 5.20  | 94.80         | normal   |
    | 2       |  21.00  | +5 kWh             |  5 × 0.52 = 2.60  | 18.40 < 20    | below    |
    | 3       |   1.00  | +10 kWh            | 5.20              | −4.20         | negative |
    | 4       |  50.00  | none               | –                 | 50.00         | missing  |
    | 5       |  50.00  | 1 kWh *below* 1 Mar| held              | 50.00         | anomaly  |
    | 6       |  60.00  | +20 kWh; own reminder 50.00 | 10.40   | 49.60 < 50    | below    |
    """
    engine = migrated(tmp_path)
    with engine.begin() as c:
        unit = with_tariffs_and_unit(c)
    ids = open_some(
        engine,
        [
            account(1, unit, balance_fen=10000),
            account(2, unit, balance_fen=2100),
            account(3, unit, balance_fen=100),
            account(4, unit, balance_fen=5000),
            account(5, unit, balance_fen=5000),
            account(6, unit, balance_fen=6000, reminder_fen=5000),
        ],
    )
    add_meters(engine, range(1, 7))
    read(engine, MAR1, {1: 100000, 2: 5000, 3: 0, 4: 700, 5: 9000, 6: 12345})
    read(engine, MAR2, {1: 101000, 2: 5500, 3: 1000, 5: 8900, 6: 14345})
    return engine, ids


def test_outcome_counts_of_a_hand_computed_day(tmp_path: Path) -> None:
    engine, ids = population(tmp_path)
    first = rate_day(engine, MAR1)
    assert first.rated == 6  # every baseline
    assert all(c["amount_fen"] == 0 and c["energy_ckwh"] == 0 for c in charges(engine))

    report = rate_day(engine, MAR2)
    assert report.counts == {
        Outcome.NORMAL: 1,
        Outcome.BELOW_REMINDER: 2,
        Outcome.NEGATIVE: 1,
        Outcome.MISSING_READING: 1,
        Outcome.ANOMALY: 1,
    }
    assert (report.accounts, report.rated, report.already_rated) == (6, 4, 0)
    balances = {i: state(engine, i)["balance_fen"] for i in ids}
    assert balances == {1: 9480, 2: 1840, 3: -420, 4: 5000, 5: 5000, 6: 4960}
    day2 = [c for c in charges(engine) if c["day"] == day_number(MAR2)]
    assert [(c["account_id"], c["energy_ckwh"], c["amount_fen"]) for c in day2] == [
        (1, 1000, 520),
        (2, 500, 260),
        (3, 1000, 520),
        (6, 2000, 1040),
    ]
    # the charge row is what the CIS settles: period, period-to-date energy and charge
    assert {c["period_start"] for c in day2} == {day_number(MAR1)}
    assert [c["period_ckwh"] for c in day2] == [1000, 500, 1000, 2000]


def test_running_a_day_twice_charges_once(tmp_path: Path) -> None:
    engine, ids = population(tmp_path)
    rate_day(engine, MAR1)
    first = rate_day(engine, MAR2)
    before = ([state(engine, i) for i in ids], charges(engine))
    again = rate_day(engine, MAR2)
    assert (again.rated, again.already_rated) == (0, 4)
    assert again.counts == first.counts  # the day's outcome, reported the same way
    assert ([state(engine, i) for i in ids], charges(engine)) == before


def test_cumulative_deductions_cross_the_first_tier(tmp_path: Path) -> None:
    """190 kWh then 20 kWh: the second day charges 10 kWh at 0.52 and 10 at 0.57."""
    engine, (ident,) = migrated_one(tmp_path)
    read(engine, MAR1, {1: 0})
    read(engine, MAR2, {1: 19000})
    read(engine, MAR3, {1: 21000})
    for day in (MAR1, MAR2, MAR3):
        rate_day(engine, day)
    amounts = [c["amount_fen"] for c in charges(engine, ident)]
    assert amounts == [0, 9880, 1090]  # 190 × 0.52; 210 kWh → 109.90 − 98.80
    assert state(engine, ident)["tier"] == 2
    assert state(engine, ident)["charged_fen"] == 10970


def migrated_one(tmp_path: Path, tariff: str = "res-monthly") -> tuple[Engine, list[int]]:
    engine = migrated(tmp_path)
    with engine.begin() as c:
        unit = with_tariffs_and_unit(c)
    ids = open_some(engine, [account(1, unit, tariff=tariff, balance_fen=100000)])
    add_meters(engine, [1])
    return engine, ids


def test_time_of_use_registers_come_from_the_daily_freeze_block(tmp_path: Path) -> None:
    """res-tou: 10 kWh, 6 peak (+0.03) and 4 valley (−0.17): 5.20 + 0.18 − 0.68 = 4.70."""
    engine, (ident,) = migrated_one(tmp_path, "res-tou")
    read(engine, MAR1, {1: "100.00,0.00,60.00,0.00,40.00"})
    read(engine, MAR2, {1: "110.00,0.00,66.00,0.00,44.00"})
    rate_day(engine, MAR1)
    rate_day(engine, MAR2)
    assert [c["amount_fen"] for c in charges(engine, ident)] == [0, 470]
    with engine.connect() as c:
        tou = c.execute(text("SELECT ptd_peak_ckwh, ptd_valley_ckwh FROM prepaid_rating_tou"))
        assert tuple(tou.one()) == (600, 400)


def test_a_missing_reading_is_rated_with_the_next_one(tmp_path: Path) -> None:
    engine, _ = population(tmp_path)
    rate_day(engine, MAR1)
    rate_day(engine, MAR2)
    read(engine, MAR3, {4: 1700})  # account 4: 10 kWh over two days
    report = rate_day(engine, MAR3)
    assert report.rated == 1
    assert [c["amount_fen"] for c in charges(engine, 4)] == [0, 520]
    assert state(engine, 4)["balance_fen"] == 5000 - 520


def test_a_run_killed_midway_and_run_again_leaves_every_balance_right(tmp_path: Path) -> None:
    engine = migrated(tmp_path)
    with engine.begin() as c:
        unit = with_tariffs_and_unit(c)
    n = 60
    open_some(engine, [account(i, unit, balance_fen=3000 + 7 * i) for i in range(1, n + 1)])
    add_meters(engine, range(1, n + 1))
    read(engine, MAR1, {i: 1000 * i for i in range(1, n + 1)})
    read(engine, MAR2, {i: 1000 * i + 37 * i for i in range(1, n + 1)})
    rate_day(engine, MAR1)
    engine.dispose()
    shutil.copy(tmp_path / "prepaid.db", tmp_path / "twin.db")
    twin = open_database(f"sqlite:///{tmp_path / 'twin.db'}")

    class Killed(Exception):
        pass

    def kill_after_two(index: int) -> None:
        if index == 1:
            raise Killed

    with pytest.raises(Killed):
        rate_day(engine, MAR2, chunk_size=10, pipeline=False, after_chunk=kill_after_two)
    halfway = sum(1 for c in charges(engine) if c["day"] == day_number(MAR2))
    assert halfway == 20  # two whole chunks, nothing of the third
    rerun = rate_day(engine, MAR2, chunk_size=10, pipeline=False)
    assert (rerun.rated, rerun.already_rated) == (40, 20)

    clean = rate_day(twin, MAR2, chunk_size=25, pipeline=False)
    assert clean.counts == rerun.counts
    assert charges(engine) == charges(twin)
    for i in range(1, n + 1):
        assert state(engine, i) == state(twin, i)
        assert state(engine, i)["balance_fen"] == 3000 + 7 * i - (37 * i * 52 + 50) // 100


def test_the_pipelined_reader_process_gives_the_same_result(tmp_path: Path) -> None:
    engine = migrated(tmp_path)
    with engine.begin() as c:
        unit = with_tariffs_and_unit(c)
    n = 40
    open_some(engine, [account(i, unit, balance_fen=500 * i) for i in range(1, n + 1)])
    add_meters(engine, range(1, n + 1))
    read(engine, MAR1, {i: 0 for i in range(1, n + 1)})
    read(engine, MAR2, {i: 150 * i for i in range(1, n + 1) if i % 7})
    rate_day(engine, MAR1)
    report = rate_day(engine, MAR2, chunk_size=8, pipeline=True)  # 5 chunks: a reader process
    assert report.chunks == 5
    assert report.counts[Outcome.MISSING_READING] == 5  # accounts 7, 14, 21, 28, 35
    assert report.rated == 35
    for i in (1, 20, 40):
        assert state(engine, i)["balance_fen"] == 500 * i - (150 * i * 52 + 50) // 100


def test_a_payment_then_rate_accounts_gives_the_new_outcome(tmp_path: Path) -> None:
    engine, _ = population(tmp_path)
    rate_day(engine, MAR1)
    rate_day(engine, MAR2)
    assert state(engine, 3)["outcome"] == Outcome.NEGATIVE
    with engine.begin() as c:  # what the CIS adapter does when a payment is credited
        credit = "UPDATE prepaid_rating_state SET balance_fen = balance_fen + :fen"
        c.execute(text(f"{credit} WHERE account_id = 3"), {"fen": 5000})
    report = rate_accounts(engine, [3, 4], MAR2)
    by_id = {r.account_id: r for r in report.results}
    assert by_id[3].balance_fen == 4580 and by_id[3].outcome is Outcome.NORMAL
    assert not by_id[3].rated_now  # already rated for the day: not charged again
    assert [c["amount_fen"] for c in charges(engine, 3)] == [0, 520]
    assert report.counts[Outcome.MISSING_READING] == 1  # account 4


def test_rate_accounts_rates_a_new_reading_at_once(tmp_path: Path) -> None:
    engine, _ = population(tmp_path)
    rate_day(engine, MAR1)
    rate_day(engine, MAR2)
    read(engine, MAR3, {1: 102000})
    report = rate_accounts(engine, [1], MAR3)
    (result,) = report.results
    assert result.rated_now and result.last_amount_fen == 520
    assert result.balance_fen == 9480 - 520
    assert report.seconds < 1.0


def test_rating_refuses_a_database_without_tariffs(tmp_path: Path) -> None:
    engine = migrated(tmp_path)
    with pytest.raises(RatingRunError, match="no tariffs"):
        rate_day(engine, MAR1)


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match="jump_factor"):
        RatingOptions(jump_factor=0)


def test_a_gap_over_the_month_end_closes_the_month_with_its_share_by_days(
    tmp_path: Path,
) -> None:
    """Baseline 30 March (closes the 29th); no readings 31 March and 1 April; 30 kWh on
    2 April. The unread days are 30, 31 March and 1 April: March gets 2/3 (20 kWh,
    10.40 yuan, charged on 1 April — the freeze that should have closed March) and
    April 1/3 (10 kWh, 5.20 yuan, charged on 2 April)."""
    engine, (ident,) = migrated_one(tmp_path)
    read(engine, date(2026, 3, 30), {1: 0})
    read(engine, date(2026, 4, 2), {1: 3000})
    for day in (date(2026, 3, 30), date(2026, 3, 31), date(2026, 4, 1), date(2026, 4, 2)):
        rate_day(engine, day)
    rows = [
        (c["day"], c["period_start"], c["energy_ckwh"], c["period_ckwh"], c["amount_fen"])
        for c in charges(engine, ident)
    ]
    n = day_number
    assert rows == [
        (n(date(2026, 3, 30)), n(date(2026, 3, 1)), 0, 0, 0),
        (n(date(2026, 4, 1)), n(date(2026, 3, 1)), 2000, 2000, 1040),
        (n(date(2026, 4, 2)), n(date(2026, 4, 1)), 1000, 1000, 520),
    ]
    assert state(engine, ident)["balance_fen"] == 100000 - 1560
