"""The synthetic population: deterministic, realistic, and rateable."""

from __future__ import annotations

from collections import Counter
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from prepaid.accounts import phone_problem
from prepaid.generate import TARIFF_MIX, GenerateError, GenerateOptions, GenerateReport, generate
from prepaid.models import Outcome
from prepaid.rating import rate_day

from .rating_helpers import migrated

START = date(2026, 1, 1)


def made(
    tmp_path: Path, name: str, seed: int = 7, n: int = 1500, chunk: int = 100_000
) -> tuple[Engine, GenerateReport]:
    engine = migrated(tmp_path, name)
    report = generate(engine, GenerateOptions(customers=n, days=3, seed=seed, chunk=chunk))
    return engine, report


def dump(engine: Engine, sql: str) -> list[tuple[object, ...]]:
    with engine.connect() as c:
        return [tuple(r) for r in c.execute(text(sql))]


ACCOUNTS = (
    "SELECT id, customer_no, name, phone, address, supply_unit_id, feeder_line_id,"
    " transformer_area_id, reading_segment_id, meter_address, tariff_id, household_size,"
    " notify_mode, fee_control_mode, power_guarantee, vulnerable, free_allowance, opened_on"
    " FROM prepaid_account ORDER BY id"
)
READINGS = (
    "SELECT meter_address, di, freeze_date, value, energy_ckwh FROM headend_reading"
    " ORDER BY meter_address, freeze_date"
)
STATE = (
    "SELECT account_id, reading_day, reading_ckwh, period_start, period_ckwh, prior_ckwh,"
    " charged_fen, balance_fen FROM prepaid_rating_state ORDER BY account_id"
)


def test_the_same_seed_makes_the_same_population(tmp_path: Path) -> None:
    # three chunks: made by a producer process while the rows are inserted
    a, report_a = made(tmp_path, "a.db", n=900, chunk=300)
    b, report_b = made(tmp_path, "b.db", n=900, chunk=300)
    c, _ = made(tmp_path, "c.db", seed=8, n=900, chunk=300)
    for sql in (ACCOUNTS, READINGS, STATE):
        assert dump(a, sql) == dump(b, sql)
    assert dump(a, ACCOUNTS) != dump(c, ACCOUNTS)
    assert report_a.to_dict() | {"seconds": 0} == report_b.to_dict() | {"seconds": 0}


def test_the_population_looks_like_a_utility_s(tmp_path: Path) -> None:
    engine, report = made(tmp_path, "p.db", n=3000)
    accounts = dump(engine, ACCOUNTS)
    assert len(accounts) == report.customers == 3000
    problems = [phone_problem(str(row[3])) for row in accounts]
    kinds = Counter(
        next((k for k in KINDS if p and k in p), "other") for p in problems if p is not None
    )
    assert set(KINDS) <= set(kinds)  # every kind of unusable phone is there
    assert 0.02 < sum(kinds.values()) / len(accounts) < 0.08
    assert report.invalid_phones == sum(kinds.values())
    assert report.supply_units >= 2
    # a feeder line belongs to one supply unit, an area to one line
    lines = dump(
        engine,
        "SELECT a.feeder_line_id, count(DISTINCT a.supply_unit_id) FROM prepaid_account a"
        " GROUP BY a.feeder_line_id",
    )
    assert all(units == 1 for _, units in lines)
    areas = Counter(int(row[7]) for row in accounts)  # type: ignore[call-overload]
    assert all(60 <= size <= 240 for area, size in areas.items() if area != max(areas))
    assert set(report.tariffs) == {code for code, _ in TARIFF_MIX}
    households = Counter(row[11] for row in accounts)
    assert set(households) == {0, 1, 2, 3, 4, 5, 6}  # 0: commercial
    modes = Counter(row[13] for row in accounts)
    assert 0.02 < modes["local"] / len(accounts) < 0.09
    assert any(row[14] for row in accounts) and any(row[15] for row in accounts)
    # the head-end side: a meter per account, readings but for the missing ones
    meters = dump(engine, "SELECT count(*) FROM headend_meter")[0][0]
    readings = dump(engine, READINGS)
    assert meters == 3000
    assert len(readings) == report.readings == 3000 * 3 - report.missing_readings
    assert report.missing_readings > 0
    # the value is the daily freeze block as the head-end stores it: total, T1..T4 kWh
    blocks = [[int(x.replace(".", "")) for x in str(r[3]).split(",")] for r in readings]
    assert all(len(b) == 5 and b[0] == r[4] for b, r in zip(blocks, readings, strict=True))
    assert sum(1 for b in blocks if b[2] and b[4]) > 100  # peak and valley: TOU meters
    # registers never go down but where a meter was replaced (rare)
    first = {r[0]: r[4] for r in readings if r[2] == START.isoformat()}
    assert all(isinstance(v, int) and v >= 0 for v in first.values())


KINDS = ("too short", "characters other than digits", "no phone number", "no valid mobile prefix")


def test_the_next_day_rates_every_account(tmp_path: Path) -> None:
    engine, _ = made(tmp_path, "r.db", n=2000)
    rated = rate_day(engine, START + timedelta(days=1))
    assert sum(rated.counts.values()) == 2000
    assert rated.counts[Outcome.NORMAL] > 1500
    assert rated.counts[Outcome.MISSING_READING] == len(
        dump(
            engine,
            "SELECT m.address FROM headend_meter m WHERE NOT EXISTS (SELECT 1 FROM headend_reading"
            " r WHERE r.meter_address = m.address AND r.freeze_date = '2026-01-02')",
        )
    )
    day_charges = dump(engine, "SELECT count(*) FROM prepaid_charge WHERE day = 20455")[0][0]
    assert rated.rated == day_charges  # 20455: 2026-01-02
    assert rated.rated + rated.counts[Outcome.MISSING_READING] <= 2000


def test_generate_refuses_a_database_with_accounts(tmp_path: Path) -> None:
    engine, _ = made(tmp_path, "x.db", n=200)
    with pytest.raises(GenerateError, match="already has 200 accounts"):
        generate(engine, GenerateOptions(customers=10))


def test_options_are_checked() -> None:
    with pytest.raises(GenerateError, match="customers"):
        GenerateOptions(customers=0)
    with pytest.raises(GenerateError, match="days"):
        GenerateOptions(customers=1, days=0)
