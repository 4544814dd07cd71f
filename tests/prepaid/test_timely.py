"""Timely rating (适时算费): rules, their validation, selection on a hand-built population."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from headend.readings import NewReading, store_readings
from prepaid.balance import realtime_balance, settle_charges, sync_balances
from prepaid.cis import LedgerCis
from prepaid.cis.payments import PaymentService
from prepaid.models import Account, RatingState, day_number
from prepaid.timely import (
    DAILY_READING_DI,
    Rule,
    TimelyError,
    TimelyRules,
    load_rules,
    rules_from_dict,
    run_timely,
    select_accounts,
)
from protocol.clock import SteppedClock

from . import cis_rig
from .cis_rig import add_meters
from .rating_helpers import account, open_some, with_tariffs_and_unit
from .test_balance import _charges
from .test_cis_payments import build_rated

db_url, engine, clock, ledger = cis_rig.db_url, cis_rig.engine, cis_rig.clock, cis_rig.ledger

TODAY = date(2026, 3, 10)  # the clock's day
YESTERDAY_ = TODAY - timedelta(days=1)
WINDOW = [TODAY - timedelta(days=d) for d in range(1, 8)]  # the K = 7 days before today


def _rated_through(engine: Engine, ident: int, day: date) -> None:
    state = RatingState.__table__  # type: ignore[attr-defined]
    with engine.begin() as c:
        c.execute(
            sa.update(state).where(state.c.account_id == ident).values(reading_day=day_number(day))
        )


@pytest.fixture
def population(engine: Engine, ledger: LedgerCis) -> dict[str, int]:
    return build_population(engine, ledger)


def build_population(engine: Engine, ledger: LedgerCis) -> dict[str, int]:
    """Nine accounts built by hand; the comments give each one's figures."""
    with engine.begin() as c:
        unit = with_tariffs_and_unit(c)
    names = ["comfortable", "days", "boundary", "low", "reading", "old", "off", "negative", "aged"]
    ids = dict(zip(names, open_some(engine, [account(n, unit) for n in range(1, 10)]), strict=True))
    no = {name: f"33{n:08d}" for n, name in enumerate(names, start=1)}
    ledger.open_balances(
        [
            (no["comfortable"], 20_000),  # 200.00 − 7×5.00 − 9.00 today = 156.00, 31 days
            (no["days"], 12_000),  # 120.00 − 7×15.00 = 15.00, 1 day left
            (no["boundary"], 10_000),  # 100.00 − 7×10.00 = 30.00, exactly 3 days: not < 3
            (no["low"], 500),  # 5.00 and no consumption
            (no["reading"], 50_000),  # rich, but a newer reading is waiting
            (no["old"], 50_000),  # its reading was rated already
            (no["off"], 100),  # 1.00 but inactive
            (no["negative"], 0),  # 0 − 7×1.00 = −7.00
            (no["aged"], 10_000),  # a 50.00 charge 9 days ago: outside the K days
        ]
    )
    rows = []
    for day in WINDOW:
        rows += [
            (day, ids["comfortable"], 500),
            (day, ids["days"], 1_500),
            (day, ids["boundary"], 1_000),
            (day, ids["negative"], 100),
        ]
    rows += [(TODAY - timedelta(days=9), ids["aged"], 5_000), (TODAY, ids["comfortable"], 900)]
    _charges(engine, rows)
    with engine.begin() as c:
        table = Account.__table__  # type: ignore[attr-defined]
        c.execute(sa.update(table).where(table.c.id == ids["off"]).values(active=False))
    addresses = {name: f"{n:012d}" for n, name in enumerate(names, start=1)}
    add_meters(engine, list(addresses.values()))
    yesterday = TODAY - timedelta(days=1)
    _rated_through(engine, ids["reading"], TODAY - timedelta(days=2))
    _rated_through(engine, ids["old"], yesterday)
    store_readings(
        engine,
        [
            NewReading(addresses["reading"], DAILY_READING_DI, yesterday, Decimal("10.00"), 1000),
            NewReading(addresses["old"], DAILY_READING_DI, yesterday, Decimal("10.00"), 1000),
            # a date after today and another DI are not news for rating
            NewReading(addresses["old"], DAILY_READING_DI, TODAY + timedelta(days=1), "1", 1),
            NewReading(addresses["comfortable"], 0x00010000, TODAY, Decimal("5.00"), 500),
        ],
    )
    # the rating state's copy of the real-time balance, as rating and payments keep it
    assert sync_balances(engine) == 9
    return ids


def test_the_default_rules_select_by_days_left_balance_and_newer_reading(
    engine: Engine, population: dict[str, int]
) -> None:
    chosen = select_accounts(engine, TimelyRules(), TODAY)
    by_id = dict(zip(chosen.account_ids, chosen.rules, strict=True))
    names = {v: k for k, v in population.items()}
    assert [names[i] for i in chosen.account_ids] == ["negative", "days", "low", "reading"]
    assert by_id[population["negative"]] == Rule.DAYS_LEFT | Rule.BALANCE
    assert by_id[population["days"]] == Rule.DAYS_LEFT
    assert by_id[population["low"]] == Rule.BALANCE
    assert by_id[population["reading"]] == Rule.READING
    assert chosen.by_rule() == {"days-left": 2, "balance": 2, "newer-reading": 1}
    # the newer reading is yesterday's: that account is rated for yesterday, the rest today
    assert chosen.by_day() == {
        TODAY - timedelta(days=1): [population["reading"]],
        TODAY: [population["negative"], population["days"], population["low"]],  # by urgency
    }


def test_each_rule_can_be_tuned_or_turned_off(engine: Engine, population: dict[str, int]) -> None:
    names = {v: k for k, v in population.items()}

    def picked(**kwargs: object) -> list[str]:
        rules = rules_from_dict(kwargs)
        return sorted(names[i] for i in select_accounts(engine, rules, TODAY).account_ids)

    assert picked(balance_below=False, newer_reading=False) == ["days", "negative"]
    # 3.01 days: the boundary account (exactly 3 days left) is now short
    assert picked(balance_below=False, newer_reading=False, days_left_below="3.01") == [
        "boundary",
        "days",
        "negative",
    ]
    assert picked(days_left_below=False, newer_reading=False, balance_below="0") == ["negative"]
    assert picked(days_left_below=False, newer_reading=False, balance_below="156.00") == [
        "aged",  # 100.00 − 50.00 = 50.00
        "boundary",
        "days",
        "low",
        "negative",
    ]
    assert "comfortable" in picked(  # 156.00 < 156.01
        days_left_below=False, newer_reading=False, balance_below="156.01"
    )
    # K = 1: only yesterday's charge counts — the comfortable one has 156.00 / 5.00 = 31 days
    assert picked(balance_below=False, newer_reading=False, average_days=1) == [
        "days",
        "negative",
    ]
    assert picked(days_left_below=False, balance_below=False) == ["reading"]


def test_max_accounts_keeps_the_most_urgent(engine: Engine, population: dict[str, int]) -> None:
    chosen = select_accounts(engine, TimelyRules(max_accounts=2), TODAY)
    assert chosen.account_ids == (population["negative"], population["days"])
    assert chosen.candidates == 4


def test_settlement_does_not_change_the_selection(
    engine: Engine, ledger: LedgerCis, clock: SteppedClock, population: dict[str, int]
) -> None:
    before = select_accounts(engine, TimelyRules(), TODAY)
    settle_charges(engine, ledger, TODAY - timedelta(days=3), clock=clock)
    assert select_accounts(engine, TimelyRules(), TODAY) == before


def test_rules_from_toml_with_defaults_for_what_is_missing(tmp_path: Path) -> None:
    path = tmp_path / "timely.toml"
    path.write_text('[timely]\ndays_left_below = 2.5\nbalance_below = "20.00"\n', "utf-8")
    rules = load_rules(path)
    assert rules == TimelyRules(days_left_below=Decimal("2.5"), balance_below_fen=2_000)
    assert rules.average_days == 7 and rules.newer_reading


@pytest.mark.parametrize(
    ("table", "says"),
    [
        ({"days_left_below": -1}, "days_left_below: expected days more than 0"),
        ({"days_left_below": "soon"}, "days_left_below: expected a number"),
        ({"average_days": 0}, "average_days: expected 1 to 90 days"),
        ({"average_days": 2.5}, "average_days: expected whole days"),
        ({"balance_below": 10.5}, "not the binary float"),
        ({"balance_below": "1.001"}, "more than 2 decimals"),
        ({"newer_reading": "yes"}, "newer_reading: expected true or false"),
        ({"max_accounts": -3}, "max_accounts: expected a whole number"),
        ({"days_left": 3}, r"unknown key\(s\) days_left"),
        (
            {"days_left_below": False, "balance_below": False, "newer_reading": False},
            "every rule is off",
        ),
    ],
)
def test_invalid_rules_are_refused_with_the_key_and_the_fix(
    table: dict[str, object], says: str
) -> None:
    with pytest.raises(TimelyError, match=says):
        rules_from_dict(table)


def test_a_broken_rules_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "t.toml"
    path.write_text("[timely\n", "utf-8")
    with pytest.raises(TimelyError, match=r"t\.toml: not valid TOML"):
        load_rules(path)
    path.write_text("[timely]\naverage_days = 100\n", "utf-8")
    with pytest.raises(TimelyError, match=r"t\.toml: timely\.average_days"):
        load_rules(path)


def test_a_payment_takes_an_account_out_of_the_selection_at_once(
    engine: Engine, ledger: LedgerCis, clock: SteppedClock, population: dict[str, int]
) -> None:
    PaymentService(engine, ledger, clock=clock).pay("3300000004", 2_000, "P-LOW")
    chosen = select_accounts(engine, TimelyRules(), TODAY)
    assert population["low"] not in chosen.account_ids  # 5.00 + 20.00 is above 10.00
    assert population["negative"] in chosen.account_ids


def test_run_timely_rates_the_selected_accounts_now(
    engine: Engine, ledger: LedgerCis, clock: SteppedClock
) -> None:
    ident = build_rated(engine, ledger)  # 5.00 yuan, rated yesterday, today's reading waits
    seen: list[tuple[int, int]] = []
    report = run_timely(
        engine, TimelyRules(), clock=clock, progress=lambda d, t: seen.append((d, t))
    )
    assert report.selection.account_ids == (ident,)
    assert report.selection.rules == (Rule.BALANCE | Rule.READING,)
    assert report.rated == 1 and seen[-1] == (1, 1)
    after = realtime_balance(engine, ident)
    assert after.realtime_fen == after.stored_fen == 500 - 1_040  # today's 20 kWh charged
    again = run_timely(engine, TimelyRules(newer_reading=True, balance_below_fen=None), clock=clock)
    # the reading is rated now, and −5.40 with no cost history in the K days: nothing left
    assert again.selection.account_ids == ()
