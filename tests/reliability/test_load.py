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

from feikong.cmd_bench_console import run_console_bench
from feikong.cmd_bench_payments import run_payments_bench
from feikong.cmd_bench_trips import run_trips_bench
from prepaid.balance import adopt_opening_balances, realtime_balance, sync_balances
from prepaid.cis import DuplicateMismatchError, LedgerCis, PaymentOrder, UnknownAccountError
from prepaid.cis.payments import PaymentEvent, PaymentOutcome, PaymentService
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


# --------------------------------------------------------------------------- payments


def test_pay_many_credits_each_id_once_and_answers_every_order(
    population: tuple[Engine, PaymentService],
) -> None:
    """One tick's batch: new payments, a resend inside the batch, a resend of an earlier
    batch, the same id with another amount, an unknown account — one answer each."""
    engine, service = population
    before = {no: realtime_balance(engine, no) for no in ("3300000002", "3300000003")}
    (first,) = service.pay_many([PaymentOrder("T-0", "3300000003", 1_000)])
    assert isinstance(first, PaymentOutcome) and first.rerated
    events: list[PaymentEvent] = []
    service.subscribe(events.append)
    results = service.pay_many(
        [
            PaymentOrder("T-1", "3300000002", 5_000),
            PaymentOrder("T-2", "3300000002", 2_500),
            PaymentOrder("T-1", "3300000002", 5_000),  # resent in the same tick
            PaymentOrder("T-0", "3300000003", 1_000),  # resent from the last tick
            PaymentOrder("T-2", "3300000003", 2_500),  # same id, another account
            PaymentOrder("T-3", "3399999999", 100),  # not a platform account
        ]
    )
    t1, t2, t1_again, t0_again, t2_other, unknown = results
    assert isinstance(t1, PaymentOutcome) and isinstance(t2, PaymentOutcome)
    assert not t1.receipt.duplicate and not t2.receipt.duplicate
    assert isinstance(t1_again, PaymentOutcome) and t1_again.receipt.duplicate
    assert isinstance(t0_again, PaymentOutcome) and t0_again.receipt.duplicate
    assert isinstance(t2_other, DuplicateMismatchError)
    assert isinstance(unknown, UnknownAccountError)
    assert "3399999999 is not a platform account" in str(unknown)
    # 50.00 + 25.00 once each; the balance each answer carries is the account's new one
    after2 = realtime_balance(engine, "3300000002")
    assert after2.cis_fen - before["3300000002"].cis_fen == 7_500
    assert after2.realtime_fen - before["3300000002"].realtime_fen == 7_500
    assert t2.balance.realtime_fen == after2.realtime_fen
    after3 = realtime_balance(engine, "3300000003")
    assert after3.realtime_fen - before["3300000003"].realtime_fen == 1_000
    # each movement's balance-after is the running CIS balance, in arrival order
    assert t2.receipt.balance_fen == t1.receipt.balance_fen + 2_500 == after2.cis_fen
    assert [e.receipt.operation_id for e in events] == ["T-1", "T-2"]  # new payments only
    assert service.cis.audit() == []  # type: ignore[attr-defined]
    assert sync_balances(engine) == 0


@pytest.mark.parametrize("per_payment", [False, True], ids=["batch-per-tick", "per-payment"])
def test_payments_bench_loses_nothing_and_credits_nothing_twice(
    tmp_path: Path, per_payment: bool
) -> None:
    """``feikong bench payments --rate 50 --seconds 2 --accounts 300``, every 5th arrival
    a resend: every payment answered with its new balance, none lost, none doubled."""
    result = run_payments_bench(
        rate=50,
        seconds=2,
        accounts=300,
        resend_every=5,
        per_payment=per_payment,
        db=f"sqlite:///{tmp_path / 'bench.db'}",
    )
    figures = dict(result.lines())
    assert figures["offered"] == 100 and figures["resends"] == 20
    assert figures["ingested"] == 100 and figures["refused"] == 0
    assert (figures["lost"], figures["doubled"]) == (0, 0)
    assert (figures["balances_off"], figures["audit_mismatches"]) == (0, 0)
    assert figures["p99_ms"] is not None and figures["p99_ms"] > 0


# --------------------------------------------------------------------------- trips


async def test_trips_bench_trips_every_meter_once() -> None:
    """``feikong bench trips --meters 200``: 200 authenticated trips at once to a fleet in
    another process; every meter's own trip count (1D000001) is 1 afterwards."""
    result = await run_trips_bench(200, max_meters=64, concurrency=64, speed=60.0)
    figures = dict(result.lines())
    assert (figures["jobs"], figures["succeeded"], figures["failed"]) == (200, 200, 0)
    assert figures["tripped_meters"] == 200 and figures["not_tripped"] == 0
    assert figures["duplicates"] == 0 and figures["repeated_trip_commands"] == 0
    assert figures["attempts"] == 200  # no retry was needed
    assert figures["p99_ms"] is not None


async def test_trips_bench_sees_a_meter_tripped_twice() -> None:
    """The duplicate count is not blind: 5 meters sent a second trip under another id
    show up as 5 duplicates (two succeeded jobs and two accepted 1CH trips each)."""
    result = await run_trips_bench(20, max_meters=16, concurrency=16, speed=60.0, twice=5)
    figures = dict(result.lines())
    assert (figures["jobs"], figures["succeeded"]) == (25, 25)
    assert figures["duplicates"] == 5
    assert figures["double_jobs"] == 5 and figures["repeated_trip_commands"] == 5
    # the relay was already open: the meter records one trip (no new 1D record)
    assert figures["tripped_meters"] == 20


# --------------------------------------------------------------------------- the console


def test_console_bench_answers_every_query_and_drives_the_app(tmp_path: Path) -> None:
    """``feikong bench console --customers 10000``: every search finds the customer it
    was given (a whole number, meter; a page of 50 for a surname or an area), the detail
    loads, the dashboard covers every supply unit, and the real app shows a page of
    results and a customer's detail."""
    result = run_console_bench(customers=10_000, repeat=5, days=2)
    figures = dict(result.lines())
    assert figures["customers"] == 10_000
    # exact keys find exactly the picked customer, five times out of five
    assert figures["search_customer_no_rows"] == 5 and figures["search_meter_rows"] == 5
    assert figures["search_area_rows"] >= 5 and figures["search_name_rows"] >= 5
    assert figures["search_phone_rows"] >= 5
    assert figures["detail_rows"] > 5 * 2  # account + its readings, charges, … each time
    assert figures["dashboard_rows"] > 0
    # the day's overview is counted once and stored; every dashboard look reads it
    assert figures["dashboard_rows"] == 5 * figures["overview_refresh_rows"]
    assert figures["overview_refresh_p50_ms"] is not None
    for name in ("search_customer_no", "search_name", "detail", "dashboard"):
        assert figures[f"{name}_p99_ms"] is not None
    assert figures["app_search_rows"] == 50  # a surname: a full first page
    assert figures["app_detail_ms"] > 0
    assert figures["app_first_page_ms"] >= figures["app_search_ms"]
