"""Accounts, tariffs as database rows and the prepaid migration tree."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from prepaid.accounts import AccountError, load_catalog, phone_problem
from prepaid.db import VERSION_TABLE, current_revisions, head_revisions, migrate
from prepaid.tariff import BillingPeriod, PeriodEnergy, charge

from .rating_helpers import account, migrated, open_some, with_tariffs_and_unit


def test_migrate_twice_creates_the_prepaid_tables_once(tmp_path: Path) -> None:
    engine = migrated(tmp_path)
    first = current_revisions(engine)
    assert migrate(engine) == first  # a no-op the second time
    assert "a0002" in head_revisions()  # the accounts branch
    names = set(inspect(engine).get_table_names())
    assert {"prepaid_account", "prepaid_rating_state", "prepaid_charge", VERSION_TABLE} <= names
    assert "headend_reading" in names  # the head-end schema comes first
    with engine.connect() as c:
        ddl = c.execute(text("SELECT sql FROM sqlite_master WHERE name = 'prepaid_charge'"))
        assert "WITHOUT ROWID" in ddl.scalar_one()


def test_tariffs_round_trip_through_the_database(tmp_path: Path) -> None:
    engine = migrated(tmp_path)
    with engine.begin() as c:
        with_tariffs_and_unit(c)
    catalog = load_catalog(engine)
    assert {"res-monthly", "res-2025", "com-tou4"} <= set(catalog.ids)
    assert len(catalog.book.versions("res-2025")) == 2
    # the hand-checked case, from the stored rows: 450 kWh → 259.00 yuan
    result = charge(
        catalog.book, BillingPeriod.month(2026, 3), PeriodEnergy(45000), tariff_id="res-monthly"
    )
    assert result.total_fen == 25900


def test_opening_accounts_creates_their_rating_state(tmp_path: Path) -> None:
    engine = migrated(tmp_path)
    with engine.begin() as c:
        unit = with_tariffs_and_unit(c)
    ids = open_some(
        engine,
        [account(1, unit, balance_fen=5000), account(2, unit, tariff="res-tou", balance_fen=-10)],
    )
    with engine.connect() as c:
        states = c.execute(
            text("SELECT account_id, balance_fen, reading_day FROM prepaid_rating_state")
        ).all()
        tou = c.execute(text("SELECT account_id FROM prepaid_rating_tou")).scalars().all()
    assert sorted(tuple(s) for s in states) == [(ids[0], 5000, None), (ids[1], -10, None)]
    assert tou == [ids[1]]  # only the time-of-use account keeps rate registers


def test_unknown_tariff_and_bad_meter_address_are_refused(tmp_path: Path) -> None:
    engine = migrated(tmp_path)
    with engine.begin() as c:
        unit = with_tariffs_and_unit(c)
    with pytest.raises(AccountError, match="no tariff 'nope'"):
        open_some(engine, [account(1, unit, tariff="nope")])
    with pytest.raises(AccountError, match="12 digits"):
        open_some(engine, [dataclasses.replace(account(2, unit), meter_address="12AB")])


@pytest.mark.parametrize(
    ("phone", "problem"),
    [
        ("13812345678", None),
        ("+86 138 1234 5678", None),
        ("0571-87654321", None),
        ("", "no phone number"),
        ("1381234567", "too short"),
        ("138123456789", "too long"),
        ("1381234567X", "characters other than digits"),
        ("12012345678", "no valid mobile prefix"),
        ("87654321", "too short"),
    ],
)
def test_phone_problems_are_named(phone: str, problem: str | None) -> None:
    found = phone_problem(phone)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found
