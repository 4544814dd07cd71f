"""A payment re-rates its account at once: the new real-time balance, events, refunds."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import date, timedelta
from decimal import Decimal
from typing import TypeVar

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from headend.readings import NewReading, store_readings
from prepaid.balance import adopt_opening_balances, realtime_balance
from prepaid.cis import LedgerCis, PaymentOrder, RefundRefusedError, UnknownAccountError
from prepaid.cis.payments import PaymentEvent, PaymentOutcome, PaymentService
from prepaid.models import Charge, Outcome, RatingState, day_number
from prepaid.rating import DAILY_FORWARD_DI, rate_accounts
from protocol.clock import SteppedClock

from . import cis_rig
from .cis_rig import add_meters
from .rating_helpers import account, open_some, with_tariffs_and_unit

db_url, engine, clock, ledger = cis_rig.db_url, cis_rig.engine, cis_rig.clock, cis_rig.ledger

T = TypeVar("T")
STATE = RatingState.__table__  # type: ignore[attr-defined]
CHARGE = Charge.__table__  # type: ignore[attr-defined]
TODAY = date(2026, 3, 10)  # the clock's day
YESTERDAY = TODAY - timedelta(days=1)
METER = "000000000001"


def _reading(engine: Engine, day: date, kwh: str) -> None:
    ckwh = int(Decimal(kwh) * 100)
    store_readings(engine, [NewReading(METER, DAILY_FORWARD_DI, day, Decimal(kwh), ckwh)])


def _outcome(engine: Engine, ident: int) -> Outcome:
    with engine.connect() as c:
        value = c.execute(sa.select(STATE.c.outcome).where(STATE.c.account_id == ident)).scalar()
    return Outcome(value)


@pytest.fixture
def rated(engine: Engine, ledger: LedgerCis) -> int:
    return build_rated(engine, ledger)


def build_rated(engine: Engine, ledger: LedgerCis) -> int:
    """One account on res-monthly (0.52 yuan/kWh in tier 1), 5.00 yuan, rated yesterday."""
    with engine.begin() as c:
        unit = with_tariffs_and_unit(c)
    (ident,) = open_some(engine, [account(1, unit, balance_fen=500)])
    add_meters(engine, [METER])
    _reading(engine, YESTERDAY, "1000.00")
    rate_accounts(engine, [ident], YESTERDAY)
    assert adopt_opening_balances(engine, ledger) == 1
    _reading(engine, TODAY, "1020.00")  # 20 kWh today, not rated yet
    return ident


def test_a_payment_re_rates_the_account_and_returns_the_new_balance(
    engine: Engine, ledger: LedgerCis, clock: SteppedClock, rated: int
) -> None:
    service = PaymentService(engine, ledger, clock=clock)
    before = realtime_balance(engine, rated)
    assert before.realtime_fen == 500
    outcome = service.pay("3300000001", 100, "P1")
    # today's 20 kWh × 0.52 = 10.40 was charged by the re-rating: 5.00 + 1.00 − 10.40
    assert outcome.rerated and outcome.rating_error is None
    assert outcome.day == TODAY
    assert outcome.balance.realtime_fen == 500 + 100 - 1_040 == -440
    assert (outcome.balance.cis_fen, outcome.balance.unsettled_fen) == (600, 1_040)
    assert outcome.balance.stored_fen == -440  # the rating's copy is in step
    assert outcome.elapsed_s < 1.0
    assert _outcome(engine, rated) is Outcome.NEGATIVE
    with engine.connect() as c:
        charged = c.execute(
            sa.select(CHARGE.c.amount_fen).where(CHARGE.c.day == day_number(TODAY))
        ).scalar_one()
    assert charged == 1_040


def test_a_payment_after_the_days_rating_lifts_the_outcome_without_charging_again(
    engine: Engine, ledger: LedgerCis, clock: SteppedClock, rated: int
) -> None:
    rate_accounts(engine, [rated], TODAY)  # the daily run: 5.00 − 10.40 = −5.40
    assert _outcome(engine, rated) is Outcome.NEGATIVE
    service = PaymentService(engine, ledger, clock=clock)
    outcome = service.pay("3300000001", 10_000, "P2")
    assert outcome.balance.realtime_fen == 500 - 1_040 + 10_000 == 9_460
    assert outcome.balance.stored_fen == 9_460
    assert _outcome(engine, rated) is Outcome.NORMAL  # 94.60 is above the 20.00 reminder
    with engine.connect() as c:
        assert c.execute(sa.select(sa.func.count()).select_from(CHARGE)).scalar_one() == 2


def test_on_payment_hooks_get_each_new_payment_once(
    engine: Engine, ledger: LedgerCis, clock: SteppedClock, rated: int
) -> None:
    events: list[PaymentEvent] = []
    service = PaymentService(engine, ledger, clock=clock, on_payment=[events.append])

    def broken(event: PaymentEvent) -> None:
        raise RuntimeError("workflow down")

    service.subscribe(broken)  # a failing hook neither stops the others nor the payment
    later: list[PaymentEvent] = []
    unsubscribe = service.subscribe(later.append)
    service.pay("3300000001", 3_000, "P1")
    unsubscribe()
    duplicate = service.pay("3300000001", 3_000, "P1")
    assert duplicate.receipt.duplicate and not duplicate.rerated
    service.pay("3300000001", 1_000, "P2")
    assert [e.receipt.operation_id for e in events] == ["P1", "P2"]
    assert [e.receipt.operation_id for e in later] == ["P1"]
    first = events[0]
    assert (first.account_id, first.balance.realtime_fen) == (rated, 500 + 3_000 - 1_040)
    assert events[1].balance.realtime_fen == 500 + 3_000 + 1_000 - 1_040
    assert ledger.balance("3300000001") == 500 + 4_000


def test_a_payment_to_an_unknown_account_is_refused_and_recorded(
    engine: Engine, ledger: LedgerCis, clock: SteppedClock, rated: int
) -> None:
    service = PaymentService(engine, ledger, clock=clock)
    with pytest.raises(UnknownAccountError, match="3399999999 is not a platform account"):
        service.pay("3399999999", 100, "PX")
    assert ledger.balance("3399999999") == 0
    assert ledger.rejections()[0].operation_id == "PX"


def test_a_refund_cannot_take_more_than_the_realtime_balance(
    engine: Engine, ledger: LedgerCis, clock: SteppedClock, rated: int
) -> None:
    service = PaymentService(engine, ledger, clock=clock)
    service.pay("3300000001", 2_000, "P1")  # 5.00 + 20.00 − 10.40 = 14.60 real-time
    # the CIS holds 25.00, but 10.40 of it is already used up: at most 14.60 goes back
    with pytest.raises(RefundRefusedError, match=r"real-time balance of 14\.60 yuan") as info:
        service.refund("3300000001", 1_461, "R1")
    assert info.value.available_fen == 1_460
    done = service.refund("3300000001", 1_460, "R2")
    assert done.balance.realtime_fen == 0
    assert done.balance.stored_fen == 0
    again = service.refund("3300000001", 1_460, "R2")  # a retry is answered, not refused
    assert again.receipt.duplicate
    assert ledger.balance("3300000001") == 2_500 - 1_460
    assert [r.operation_id for r in ledger.rejections()] == ["R1"]


def test_a_crash_between_the_cis_and_the_platform_is_finished_by_the_retry(
    engine: Engine, ledger: LedgerCis, clock: SteppedClock, rated: int
) -> None:
    """The CIS credited the payment, then the process died before the platform took it."""
    events: list[PaymentEvent] = []
    service = PaymentService(engine, ledger, clock=clock, on_payment=[events.append])

    def crash(conn: object, cursor: object, statement: str, *args: object) -> None:
        if statement.startswith("INSERT INTO prepaid_cis_posted"):
            raise RuntimeError("killed")

    sa.event.listen(engine, "before_cursor_execute", crash)
    with pytest.raises(RuntimeError):
        service.pay("3300000001", 2_000, "P1")
    sa.event.remove(engine, "before_cursor_execute", crash)
    assert ledger.balance("3300000001") == 2_500  # the CIS has it
    assert realtime_balance(engine, rated).stored_fen == 500  # the platform does not
    retry = service.pay("3300000001", 2_000, "P1")
    assert retry.receipt.duplicate  # the CIS credits nothing twice …
    assert retry.rerated  # … and the platform finishes the job
    assert retry.balance.realtime_fen == retry.balance.stored_fen == 500 + 2_000 - 1_040
    assert [e.receipt.operation_id for e in events] == ["P1"]
    again = service.pay("3300000001", 2_000, "P1")
    assert not again.rerated
    assert again.balance.stored_fen == 1_460
    assert len(events) == 1


def _race(n: int, call: Callable[[], T]) -> list[T]:
    """``n`` threads make the same call at the same moment; their results (none raised)."""
    barrier = threading.Barrier(n)
    results: list[T] = []
    errors: list[BaseException] = []

    def attempt() -> None:
        try:
            barrier.wait()
            results.append(call())
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=attempt) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    return results


class Killed(BaseException):
    """The process dies (kill -9): nothing after this point runs, nothing catches it."""


def _killed_before_rating(
    engine: Engine, ids: list[int], day: date, *, clock: object = None
) -> None:
    raise Killed


def _done_at(engine: Engine, payment_id: str) -> object:
    with engine.connect() as c:
        return c.execute(
            sa.text(
                "SELECT done_at FROM prepaid_cis_posted WHERE kind = 'payment' "
                "AND operation_id = :op"
            ),
            {"op": payment_id},
        ).scalar_one()


def test_a_crash_after_posting_before_the_rerating_is_finished_by_the_retry(
    engine: Engine, ledger: LedgerCis, clock: SteppedClock, rated: int
) -> None:
    """Posted to the real-time balance, then the process died before the re-rating and the
    event (the reconnection hangs on it): the redelivered payment does both, once."""
    events: list[PaymentEvent] = []
    dying = PaymentService(engine, ledger, clock=clock, rate=_killed_before_rating)
    dying.subscribe(events.append)
    with pytest.raises(Killed):
        dying.pay("3300000001", 2_000, "P1")
    assert ledger.balance("3300000001") == 2_500
    assert realtime_balance(engine, rated).stored_fen == 2_500  # posted, today not rated
    assert _done_at(engine, "P1") is None
    assert events == []

    service = PaymentService(engine, ledger, clock=clock, on_payment=[events.append])
    retry = service.pay("3300000001", 2_000, "P1")
    assert retry.receipt.duplicate  # nothing credited or posted twice …
    assert retry.rerated  # … but the re-rating is done now: 20 kWh × 0.52 = 10.40
    assert retry.balance.realtime_fen == retry.balance.stored_fen == 500 + 2_000 - 1_040
    assert [e.receipt.operation_id for e in events] == ["P1"]
    assert _done_at(engine, "P1") is not None
    again = service.pay("3300000001", 2_000, "P1")
    assert not again.rerated
    assert again.balance.stored_fen == 1_460
    assert len(events) == 1


def test_racing_redeliveries_of_an_unfinished_payment_send_one_event(
    engine: Engine, ledger: LedgerCis, clock: SteppedClock, rated: int
) -> None:
    with pytest.raises(Killed):
        PaymentService(engine, ledger, clock=clock, rate=_killed_before_rating).pay(
            "3300000001", 2_000, "P1"
        )
    events: list[PaymentEvent] = []
    service = PaymentService(engine, ledger, clock=clock, on_payment=[events.append])
    _race(4, lambda: service.pay("3300000001", 2_000, "P1"))
    assert len(events) == 1
    final = realtime_balance(engine, rated)
    assert final.realtime_fen == final.stored_fen == 500 + 2_000 - 1_040
    assert ledger.balance("3300000001") == 2_500


def test_a_batch_killed_before_the_rerating_is_finished_by_its_redelivery(
    engine: Engine, ledger: LedgerCis, clock: SteppedClock, rated: int
) -> None:
    orders = [PaymentOrder("B1", "3300000001", 700), PaymentOrder("B2", "3300000001", 300)]
    with pytest.raises(Killed):
        PaymentService(engine, ledger, clock=clock, rate=_killed_before_rating).pay_many(orders)
    events: list[PaymentEvent] = []
    service = PaymentService(engine, ledger, clock=clock, on_payment=[events.append])
    # the CIS sends the batch again, one payment twice in it
    results = service.pay_many([*orders, orders[0]])
    assert all(isinstance(r, PaymentOutcome) and r.rerated for r in results)
    assert sorted(e.receipt.operation_id for e in events) == ["B1", "B2"]
    assert realtime_balance(engine, rated).stored_fen == 500 + 1_000 - 1_040
    assert service.pay_many(orders) and len(events) == 2


def test_an_account_new_to_the_ledger_is_opened_with_its_stored_balance(
    engine: Engine, ledger: LedgerCis, clock: SteppedClock
) -> None:
    with engine.begin() as c:
        unit = with_tariffs_and_unit(c)
    open_some(engine, [account(7, unit, balance_fen=730)])
    outcome = PaymentService(engine, ledger, clock=clock).pay("3300000007", 100, "P7")
    assert outcome.balance.cis_fen == 830  # 7.30 opening + 1.00
    assert outcome.balance.realtime_fen == outcome.balance.stored_fen == 830
    assert [m.kind.value for m in ledger.movements("3300000007")] == ["payment", "opening"]


def test_concurrent_twins_through_the_service_credit_and_post_once(
    engine: Engine, ledger: LedgerCis, clock: SteppedClock, rated: int
) -> None:
    """Four threads send the same payment at once (a double-click, a retrying gateway)."""
    events: list[PaymentEvent] = []
    service = PaymentService(engine, ledger, clock=clock, on_payment=[events.append])
    outcomes = _race(4, lambda: service.pay("3300000001", 5_000, "P-TWIN"))
    assert sum(not o.receipt.duplicate for o in outcomes) == 1
    assert len(events) == 1
    final = realtime_balance(engine, rated)
    assert final.realtime_fen == final.stored_fen == 500 + 5_000 - 1_040
    assert ledger.balance("3300000001") == 5_500
