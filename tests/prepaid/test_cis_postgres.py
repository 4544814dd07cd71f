"""The CIS ledger, real-time balances, settlement, timely selection and a payment's
re-rating on a real PostgreSQL (skipped without initdb or psycopg, like the head-end's)."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine, make_url

from prepaid.balance import (
    realtime_balance,
    realtime_balances,
    settle_charges,
    sync_balances,
)
from prepaid.cis import LedgerCis, Receipt
from prepaid.cis.payments import PaymentService
from prepaid.db import migrate, open_database
from prepaid.timely import TimelyRules, select_accounts
from protocol.clock import SteppedClock

from ..headend.test_postgres import pg_url
from . import test_balance, test_cis_payments, test_timely
from .cis_rig import START

_names = itertools.count()
_ = pg_url


@pytest.fixture
def engine(pg_url: str) -> Iterator[Engine]:
    """A fresh database of its own on the test cluster, migrated."""
    name = f"feikong_cis_{next(_names)}"
    admin = open_database(pg_url)
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.execute(text(f"CREATE DATABASE {name}"))
    url = make_url(pg_url).set(database=name).render_as_string(hide_password=False)
    engine = open_database(url)
    migrate(engine)
    yield engine
    engine.dispose()
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.execute(text(f"DROP DATABASE {name}"))
    admin.dispose()


@pytest.fixture
def clock() -> SteppedClock:
    return SteppedClock(START)


@pytest.fixture
def ledger(engine: Engine, clock: SteppedClock) -> LedgerCis:
    return LedgerCis(engine, clock=clock)


def test_concurrent_twins_of_a_payment_credit_once_on_postgres(
    ledger: LedgerCis, engine: Engine
) -> None:
    barrier = threading.Barrier(6)
    results: list[Receipt] = []

    def attempt(payment_id: str) -> None:
        barrier.wait()
        results.append(ledger.pay("3100012345", 5_000, payment_id))

    threads = [threading.Thread(target=attempt, args=(f"PAY-{i % 2}",)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(r.duplicate for r in results) == [False, False, True, True, True, True]
    assert ledger.balance("3100012345") == 10_000
    assert ledger.audit() == []


def test_balances_settlement_and_timely_selection_on_postgres(
    engine: Engine, ledger: LedgerCis, clock: SteppedClock
) -> None:
    ids = test_balance.build_population(engine, ledger)
    every = realtime_balances(engine)
    assert [every[i].realtime_fen for i in ids] == [9_542, -500, -99, 520]
    assert realtime_balances(engine, ids[1:3]) == {i: every[i] for i in ids[1:3]}
    assert realtime_balance(engine, ids[0]) == every[ids[0]]
    report = settle_charges(engine, ledger, test_balance.D2, clock=clock)
    assert report.amount_fen == 305 + 2_500 - 20
    after = realtime_balances(engine)
    assert {i: b.realtime_fen for i, b in after.items()} == {
        i: b.realtime_fen for i, b in every.items()
    }
    assert sync_balances(engine) == 4
    assert sync_balances(engine) == 0


def test_timely_selection_on_postgres(engine: Engine, ledger: LedgerCis) -> None:
    population = test_timely.build_population(engine, ledger)
    chosen = select_accounts(engine, TimelyRules(), test_timely.TODAY)
    names = {v: k for k, v in population.items()}
    assert [names[i] for i in chosen.account_ids] == ["negative", "days", "low", "reading"]
    assert chosen.by_day()[test_timely.YESTERDAY_] == [population["reading"]]


def test_a_payment_re_rates_on_postgres(
    engine: Engine, ledger: LedgerCis, clock: SteppedClock
) -> None:
    ident = test_cis_payments.build_rated(engine, ledger)
    outcome = PaymentService(engine, ledger, clock=clock).pay("3300000001", 100, "P1")
    assert outcome.rerated, outcome.rating_error
    assert outcome.balance.realtime_fen == -440
    assert outcome.balance.stored_fen == -440
    assert outcome.balance.account_id == ident
