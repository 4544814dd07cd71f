"""Local prepay money: deduction, the alarm/trip ladder and the recharge rules."""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meter_sim.wallet import AlarmLevel, PrepayLimits, RechargeError, Wallet
from protocol import SecurityErrorWord

T = datetime(2026, 11, 28, 10, 0)
LIMITS = PrepayLimits(
    alarm1_fen=2000,
    alarm2_fen=1000,
    overdraft_limit_fen=500,
    hoarding_limit_fen=100_000,
    close_permit_fen=100,
)


def opened(remaining_fen: int = 5000) -> Wallet:
    w = Wallet(LIMITS)
    w.open_account("000000000001", remaining_fen, 1, T)
    return w


def test_deduction_is_exact_and_carries_sub_fen() -> None:
    w = opened(5000)
    # 1.01 kWh at 0.5200 yuan/kWh = 0.5252 yuan: 52 fen now, 0.52 fen carried
    assert w.deduct(101, 5200) == 52
    assert w.remaining_fen == 4948 and w.residue_e6 == 5200
    # the next 1.01 kWh: 0.5252 + 0.0052 = 0.5304 → 53 fen
    assert w.deduct(101, 5200) == 53
    assert w.remaining_fen == 4895


@given(st.lists(st.integers(0, 500), max_size=50), st.integers(1, 20000))
def test_many_small_deductions_equal_one_big(steps: list[int], price: int) -> None:
    a, b = Wallet(), Wallet()  # no hoarding limit
    for w in (a, b):
        w.open_account("000000000001", 10**7, 1, T)
    for s in steps:
        a.deduct(s, price)
    b.deduct(sum(steps), price)
    assert (a.remaining_fen, a.residue_e6) == (b.remaining_fen, b.residue_e6)


def test_the_ladder() -> None:
    w = opened(2500)
    assert w.level == AlarmLevel.NORMAL and not w.wants_open
    w.deduct(1000, 5000)  # -5.00 → 20.00 yuan: ≤ alarm 1
    assert w.level == AlarmLevel.ALARM1 and not w.wants_open
    w.deduct(2000, 5000)  # -10.00 → 10.00: ≤ alarm 2 → pre-trip
    assert w.level == AlarmLevel.ALARM2 and w.wants_open
    assert w.reclose()  # the customer re-closes once
    assert not w.wants_open
    w.deduct(2000, 5000)  # → 0.00: zero, opens again
    assert w.level == AlarmLevel.ZERO and w.wants_open
    assert w.reclose()  # once more, on credit
    w.deduct(800, 5000)  # 4.00 yuan of overdraft
    assert w.overdraft_fen == 400 and w.level == AlarmLevel.ZERO and not w.wants_open
    w.deduct(200, 5000)  # overdraft 5.00 = limit
    assert w.level == AlarmLevel.MAX_OVERDRAFT and w.wants_open
    assert not w.reclose()  # no more re-closing


def test_recharge_pays_overdraft_first_and_unlocks() -> None:
    w = opened(0)
    w.deduct(2000, 5000)  # 10.00 yuan overdraft
    assert w.overdraft_fen == 1000 and w.max_overdraft_lock
    w.recharge("000000000001", 500, 2, T)  # not enough: overdraft 5.00 left
    assert (w.remaining_fen, w.overdraft_fen) == (0, 500) and w.max_overdraft_lock
    w.recharge("000000000001", 5000, 3, T)
    assert (w.remaining_fen, w.overdraft_fen) == (4500, 0)
    assert not w.wants_open
    assert [p.count for p in w.purchases] == [3, 2, 1]
    assert w.purchases[0].remaining_before_fen == 0 and w.purchases[0].remaining_after_fen == 4500


def test_duplicate_purchase_credited_once() -> None:
    w = opened(1000)
    w.recharge("000000000001", 2000, 2, T)
    with pytest.raises(RechargeError) as err:
        w.recharge("000000000001", 2000, 2, T)
    assert err.value.serr == SecurityErrorWord.DUPLICATE_RECHARGE
    assert w.remaining_fen == 3000


@pytest.mark.parametrize(
    ("customer", "amount", "count", "serr"),
    [
        ("000000000002", 100, 2, SecurityErrorWord.CUSTOMER_MISMATCH),
        ("000000000001", 100, 4, SecurityErrorWord.RECHARGE_COUNT_ERROR),
        ("000000000001", 100_000, 2, SecurityErrorWord.HOARDING_EXCEEDED),
    ],
)
def test_refused_purchases_change_nothing(
    customer: str, amount: int, count: int, serr: SecurityErrorWord
) -> None:
    w = opened(1000)
    before = w.to_state()
    with pytest.raises(RechargeError) as err:
        w.recharge(customer, amount, count, T)
    assert err.value.serr == serr
    assert w.to_state() == before


def test_state_round_trip() -> None:
    w = opened(1234)
    w.deduct(77, 5300)
    w.recharge("000000000001", 100, 2, T)
    assert Wallet.from_state(w.to_state()).to_state() == w.to_state()
    with pytest.raises(ValueError):
        Wallet.from_state({"limits": {}})


def test_limits_validated() -> None:
    with pytest.raises(ValueError, match="alarm amount 2"):
        PrepayLimits(alarm1_fen=100, alarm2_fen=200)
