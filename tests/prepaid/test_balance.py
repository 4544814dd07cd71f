"""Real-time balance = CIS balance − unsettled charges, one account and in bulk, and settlement."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from prepaid.balance import (
    BalanceError,
    adopt_opening_balances,
    realtime_balance,
    realtime_balances,
    settle_charges,
    sync_balances,
)
from prepaid.cis import LedgerCis, MovementKind
from prepaid.db import open_database
from prepaid.models import Charge, RatingState, day_number
from protocol.clock import SteppedClock

from . import cis_rig
from .rating_helpers import account, open_some, with_tariffs_and_unit

db_url, engine, clock, ledger = cis_rig.db_url, cis_rig.engine, cis_rig.clock, cis_rig.ledger

CHARGE = Charge.__table__  # type: ignore[attr-defined]
STATE = RatingState.__table__  # type: ignore[attr-defined]
D1, D2, D3 = date(2026, 3, 7), date(2026, 3, 8), date(2026, 3, 9)  # the clock is at 03-10


def _charges(engine: Engine, rows: list[tuple[date, int, int]]) -> None:
    """Hand-made charges ``(day, account_id, amount_fen)`` (rating's output, simplified)."""
    with engine.begin() as c:
        c.execute(
            sa.insert(CHARGE),
            [
                {
                    "day": day_number(day),
                    "account_id": ident,
                    "period_start": day_number(date(2026, 3, 1)),
                    "reading_ckwh": 0,
                    "energy_ckwh": 0,
                    "period_ckwh": 0,
                    "amount_fen": fen,
                    "charged_fen": 0,
                    "balance_fen": 0,
                    "tariff_version": 1,
                    "tier": 1,
                    "outcome": 1,
                }
                for day, ident, fen in rows
            ],
        )


@pytest.fixture
def population(engine: Engine, ledger: LedgerCis) -> list[int]:
    return build_population(engine, ledger)


def build_population(engine: Engine, ledger: LedgerCis) -> list[int]:
    """Four accounts; CIS balances 100.00, 20.00, 0 (never paid), 5.00; charges by hand."""
    with engine.begin() as c:
        unit = with_tariffs_and_unit(c)
    ids = open_some(engine, [account(n, unit) for n in (1, 2, 3, 4)])
    ledger.pay("3300000001", 10_000, "P1")
    ledger.pay("3300000002", 2_000, "P2")
    ledger.pay("3300000004", 500, "P4")
    _charges(
        engine,
        [
            (D1, ids[0], 153),
            (D2, ids[0], 152),
            (D3, ids[0], 153),
            (D2, ids[1], 2_500),
            (D3, ids[2], 99),
            (D1, ids[3], -20),  # a cumulative-rating correction gives money back
        ],
    )
    return ids


def test_realtime_is_cis_minus_unsettled_charges_by_hand(
    engine: Engine, population: list[int]
) -> None:
    a1, a2, a3, a4 = population
    one = realtime_balance(engine, "3300000001")
    assert (one.account_id, one.cis_fen, one.unsettled_fen) == (a1, 10_000, 153 + 152 + 153)
    assert one.realtime_fen == 10_000 - 458 == 9_542
    assert realtime_balance(engine, a2).realtime_fen == 2_000 - 2_500 == -500
    assert realtime_balance(engine, a3).realtime_fen == 0 - 99
    assert realtime_balance(engine, a4).realtime_fen == 500 - (-20) == 520
    assert one.to_dict()["realtime_balance"] == "95.42"


def test_bulk_balances_equal_the_per_account_ones(engine: Engine, population: list[int]) -> None:
    every = realtime_balances(engine)
    some = realtime_balances(engine, [population[1], population[3], 999_999])
    assert sorted(every) == sorted(population)
    assert sorted(some) == [population[1], population[3]]
    for ident in population:
        single = realtime_balance(engine, ident)
        assert (every[ident].cis_fen, every[ident].unsettled_fen) == (
            single.cis_fen,
            single.unsettled_fen,
        )
        if ident in some:
            assert some[ident] == every[ident]


@pytest.fixture(params=["ledger", "remote"])
def cis(
    request: pytest.FixtureRequest, engine: Engine, clock: SteppedClock, db_url: str
) -> LedgerCis:
    """The built-in ledger in this database (settled set-based, in SQL), or the same
    ledger reached through an engine of its own, as an external CIS would be (settled
    through the adapter interface, in batches)."""
    if request.param == "ledger":
        return LedgerCis(engine, clock=clock)
    remote = open_database(db_url)
    request.addfinalizer(remote.dispose)
    return LedgerCis(remote, clock=clock)


def test_settlement_moves_charges_into_the_cis_and_keeps_the_realtime_balance(
    engine: Engine, cis: LedgerCis, clock: SteppedClock, population: list[int]
) -> None:
    ledger = cis
    a1 = population[0]
    before = realtime_balances(engine)
    report = settle_charges(engine, ledger, D2, clock=clock)
    # through 03-08: a1 153 + 152, a2 2500, a4 -20; a3 has nothing then
    assert (report.applied, report.amount_fen) == (3, 305 + 2_500 - 20)
    after = realtime_balances(engine)
    assert {i: b.realtime_fen for i, b in after.items()} == {
        i: b.realtime_fen for i, b in before.items()
    }
    one = after[a1]
    assert (one.cis_fen, one.unsettled_fen) == (10_000 - 305, 153)  # only 03-09 is left
    (settlement, _payment) = ledger.movements("3300000001")
    assert (settlement.kind, settlement.amount_fen) == (MovementKind.SETTLEMENT, -305)
    assert settlement.operation_id == "chg:3300000001:start:20260308"
    again = settle_charges(engine, ledger, D2, clock=clock)
    assert (again.applied, again.amount_fen) == (0, 0)
    third = settle_charges(engine, ledger, D3, clock=clock)
    assert third.amount_fen == 153 + 99
    assert ledger.movements("3300000001")[0].operation_id == "chg:3300000001:20260309:20260309"
    assert all(b.unsettled_fen == 0 for b in realtime_balances(engine).values())
    assert realtime_balance(engine, a1).realtime_fen == 9_542
    assert ledger.audit() == []


def test_settling_only_some_accounts(
    engine: Engine, cis: LedgerCis, clock: SteppedClock, population: list[int]
) -> None:
    settle_charges(engine, cis, D3, clock=clock, account_ids=[population[1]])
    balances = realtime_balances(engine)
    assert balances[population[1]].unsettled_fen == 0
    assert balances[population[1]].cis_fen == 2_000 - 2_500
    assert balances[population[0]].unsettled_fen == 458


def test_todays_charges_cannot_be_settled(
    engine: Engine, ledger: LedgerCis, clock: SteppedClock, population: list[int]
) -> None:
    with pytest.raises(BalanceError, match="through 2026-03-09 at the latest"):
        settle_charges(engine, ledger, clock.now().date(), clock=clock)


def test_a_settlement_killed_midway_is_finished_by_running_it_again(
    engine: Engine, cis: LedgerCis, clock: SteppedClock, population: list[int]
) -> None:
    """The process dies while writing the settled-through days (the last step)."""

    def crash(conn: object, cursor: object, statement: str, *args: object) -> None:
        if statement.startswith("INSERT INTO prepaid_cis_settled"):
            raise RuntimeError("killed")

    sa.event.listen(engine, "before_cursor_execute", crash)
    try:
        with pytest.raises(RuntimeError):
            settle_charges(engine, cis, D3, clock=clock)
    finally:
        sa.event.remove(engine, "before_cursor_execute", crash)
    in_cis = cis.balance("3300000001")
    if cis.engine is engine:  # one transaction: nothing happened
        assert in_cis == 10_000
    else:  # the external CIS took the settlements, the platform did not record them
        assert in_cis == 10_000 - 458
    again = settle_charges(engine, cis, D3, clock=clock)
    assert again.applied + again.already == 4  # nothing deducted twice
    assert cis.balance("3300000001") == 10_000 - 458
    assert all(b.unsettled_fen == 0 for b in realtime_balances(engine).values())
    assert realtime_balance(engine, population[0]).realtime_fen == 9_542
    assert cis.audit() == []


def test_sync_sets_the_rating_states_copy_to_cis_minus_unsettled(
    engine: Engine, population: list[int]
) -> None:
    with engine.begin() as c:
        c.execute(sa.update(STATE).values(balance_fen=12_345))
    assert sync_balances(engine, [population[0]]) == 1
    assert realtime_balance(engine, population[0]).stored_fen == 9_542
    assert realtime_balance(engine, population[1]).stored_fen == 12_345
    assert sync_balances(engine) == 3
    assert sync_balances(engine) == 0
    for balance in realtime_balances(engine).values():
        assert balance.stored_fen == balance.realtime_fen


def test_opening_balances_of_the_rating_state_are_adopted_by_the_ledger(
    engine: Engine, ledger: LedgerCis, tmp_path: Path
) -> None:
    with engine.begin() as c:
        unit = with_tariffs_and_unit(c)
    ids = open_some(engine, [account(n, unit, balance_fen=1_000 * n) for n in (1, 2)])
    _charges(engine, [(D3, ids[1], 300)])
    with engine.begin() as c:  # the rating deducted it from the stored balance
        c.execute(sa.update(STATE).where(STATE.c.account_id == ids[1]).values(balance_fen=1_700))
    assert adopt_opening_balances(engine, ledger) == 2
    assert adopt_opening_balances(engine, ledger) == 0
    assert ledger.balances(["3300000001", "3300000002"]) == {
        "3300000001": 1_000,
        "3300000002": 2_000,
    }
    assert [b.realtime_fen for b in realtime_balances(engine).values()] == [1_000, 1_700]
    assert sync_balances(engine) == 0
    (opening,) = ledger.movements("3300000002")
    assert (opening.kind, opening.operation_id, opening.amount_fen) == (
        MovementKind.OPENING,
        "opening:3300000002",
        2_000,
    )
    assert ledger.audit() == []


def test_an_unknown_account_is_named(engine: Engine) -> None:
    with pytest.raises(BalanceError, match="no account with number 'NOPE'"):
        realtime_balance(engine, "NOPE")
