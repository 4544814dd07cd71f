"""Load (issue 9, item 3): the ``feikong bench trips | payments | console`` runs at a small
size, checking what must hold whatever the speed — no meter tripped twice, no payment
lost or credited twice, every balance right, every console query answering — and the
bugs the load found.

The figures themselves (jobs/s, payments/s, milliseconds) are the benches' business and
are not asserted here: the machine is shared.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from prepaid.balance import adopt_opening_balances, realtime_balance, sync_balances
from prepaid.cis import LedgerCis
from prepaid.cis.payments import PaymentService
from prepaid.db import migrate, open_database
from prepaid.generate import GenerateOptions, generate
from prepaid.rating import rate_day
from protocol.clock import SteppedClock

# --------------------------------------------------------------------------- a population


@pytest.fixture
def population(tmp_path: Path) -> Iterator[tuple[Engine, PaymentService]]:
    """20 generated accounts, 1-2 January read and the 2nd rated, opened in the ledger."""
    engine = open_database(f"sqlite:///{tmp_path / 'load.db'}")
    migrate(engine)
    generate(engine, GenerateOptions(customers=20, days=2, start=date(2026, 1, 1)))
    rate_day(engine, date(2026, 1, 2))
    clock = SteppedClock(datetime(2026, 1, 3, 10, 0))
    ledger = LedgerCis(engine, clock=clock)
    adopt_opening_balances(engine, ledger)
    yield engine, PaymentService(engine, ledger, clock=clock)
    engine.dispose()


def test_a_payment_id_twice_in_one_file_is_posted_to_the_balance_once(
    population: tuple[Engine, PaymentService],
) -> None:
    """The CIS credits the second row as a duplicate; the rating state's copy of the
    real-time balance (what reminders and trips decide on) must rise by 100.00 once,
    not twice (it did: both rows of the batch were added)."""
    engine, service = population
    before = realtime_balance(engine, "3300000001")
    outcome = service.import_csv(
        io.StringIO("payment_id,account_no,amount\nX-1,3300000001,100.00\nX-1,3300000001,100.00\n")
    )
    assert (outcome.report.credited, outcome.report.duplicates) == (1, 1)
    after = realtime_balance(engine, "3300000001")
    assert after.cis_fen - before.cis_fen == 10_000
    assert after.realtime_fen - before.realtime_fen == 10_000
    # the rating state's copy agrees with CIS − unsettled: nothing to correct
    assert sync_balances(engine) == 0
