"""The breaker state machine, on a stepped clock."""

from __future__ import annotations

import logging
from datetime import datetime

import pytest

from breaker_sim import (
    Breaker,
    BreakerConfig,
    BreakerConfigError,
    BreakerFault,
    BreakerState,
    InProcessBreakerLink,
    Outcome,
    parse_fault,
)
from breaker_sim.interface import BreakerLink
from protocol.clock import SteppedClock

START = datetime(2026, 1, 1, 8, 0, 0)


@pytest.fixture
def clock() -> SteppedClock:
    return SteppedClock(START)


def make(clock: SteppedClock, **config: object) -> Breaker:
    return Breaker(clock, BreakerConfig(**config))  # type: ignore[arg-type]


def state(b: Breaker) -> BreakerState:
    """``b.state``, read afresh (mypy would keep a property narrowed between asserts)."""
    return b.state


def test_starts_closed(clock: SteppedClock) -> None:
    b = make(clock)
    assert state(b) is BreakerState.CLOSED
    assert b.contacts_closed and b.feedback_closed
    assert (b.trip_count, b.close_count, b.refused_manual_closes) == (0, 0, 0)


def test_trip_opens_at_once_and_locks(clock: SteppedClock) -> None:
    b = make(clock)
    assert b.trip() is Outcome.TRIPPED
    assert state(b) is BreakerState.OPEN_LOCKED
    assert not b.contacts_closed and not b.feedback_closed
    assert not b.trip_pending
    assert b.trip_count == 1


def test_the_deployed_sequence(clock: SteppedClock) -> None:
    """SPEC §S1: trip, manual close refused, permit close, manual close accepted."""
    b = make(clock)
    b.trip()
    outcome = b.manual_close()
    assert outcome is Outcome.REFUSED_LOCKED and outcome.refused
    assert "locked" in outcome.message
    assert state(b) is BreakerState.OPEN_LOCKED
    assert b.refused_manual_closes == 1

    assert b.permit_close(True) is Outcome.PERMITTED
    assert state(b) is BreakerState.OPEN_PERMITTED
    assert not b.contacts_closed  # permitted, still open until a person acts

    assert b.manual_close() is Outcome.CLOSED
    assert state(b) is BreakerState.CLOSED
    assert b.contacts_closed and b.feedback_closed
    assert (b.trip_count, b.close_count, b.refused_manual_closes) == (1, 1, 1)


def test_refused_manual_close_is_logged(
    clock: SteppedClock, caplog: pytest.LogCaptureFixture
) -> None:
    b = Breaker(clock, name="unit 7")
    b.trip()
    with caplog.at_level(logging.WARNING, logger="breaker_sim.breaker"):
        b.manual_close()
    assert any("unit 7" in r.getMessage() and "refused" in r.getMessage() for r in caplog.records)
    assert b.events[-1].event == "refused-locked"
    assert b.events[-1].time == START


def test_withdrawing_the_permit_locks_again(clock: SteppedClock) -> None:
    b = make(clock)
    b.trip()
    b.permit_close(True)
    assert b.permit_close(False) is Outcome.RELOCKED
    assert state(b) is BreakerState.OPEN_LOCKED
    assert b.manual_close() is Outcome.REFUSED_LOCKED


def test_trip_while_permitted_locks_again(clock: SteppedClock) -> None:
    b = make(clock)
    b.trip()
    b.permit_close(True)
    assert b.trip() is Outcome.RELOCKED
    assert state(b) is BreakerState.OPEN_LOCKED
    assert b.trip_count == 1  # it did not open again: it was open


def test_signals_without_effect(clock: SteppedClock) -> None:
    b = make(clock)
    assert b.permit_close(True) is Outcome.UNCHANGED  # closed: nothing to permit
    assert b.manual_close() is Outcome.UNCHANGED
    b.trip()
    assert b.trip() is Outcome.UNCHANGED
    assert b.permit_close(False) is Outcome.UNCHANGED
    assert b.trip_count == 1


def test_not_remotely_closable_refuses_a_remote_close(clock: SteppedClock) -> None:
    b = make(clock)
    b.trip()
    b.permit_close(True)
    outcome = b.close()
    assert outcome is Outcome.REFUSED_NOT_REMOTE and outcome.refused
    assert state(b) is BreakerState.OPEN_PERMITTED
    assert b.refused_manual_closes == 0  # only manual refusals are counted there


def test_remotely_closable_closes_on_a_close_signal(clock: SteppedClock) -> None:
    b = make(clock, remotely_closable=True)
    b.trip()
    assert b.close() is Outcome.CLOSED  # direct close: no permit needed
    assert state(b) is BreakerState.CLOSED and b.contacts_closed
    assert b.close_count == 1
    assert b.close() is Outcome.UNCHANGED


async def test_slow_trip_opens_the_contacts_after_the_response_time(clock: SteppedClock) -> None:
    b = make(clock, trip_response_s=2.5)
    assert b.trip() is Outcome.TRIPPED
    assert state(b) is BreakerState.OPEN_LOCKED  # latched at once
    assert b.contacts_closed and b.feedback_closed and b.trip_pending
    await clock.advance(2.4)
    assert b.contacts_closed
    await clock.advance(0.1)
    assert not b.contacts_closed and not b.feedback_closed and not b.trip_pending
    opened = b.events[-1]
    assert opened.event == "contacts-opened"
    assert (opened.time - START).total_seconds() == 2.5


async def test_closing_during_a_slow_trip_cancels_it(clock: SteppedClock) -> None:
    b = make(clock, trip_response_s=10, remotely_closable=True)
    b.trip()
    await clock.advance(3)
    b.close()
    await clock.advance(30)
    assert state(b) is BreakerState.CLOSED and b.contacts_closed
    assert "contacts-opened" not in [e.event for e in b.events]


def test_fault_fails_to_trip(clock: SteppedClock) -> None:
    b = make(clock, fault=BreakerFault.FAILS_TO_TRIP)
    outcome = b.trip()
    assert outcome is Outcome.TRIP_IGNORED
    assert state(b) is BreakerState.CLOSED
    assert b.contacts_closed and b.feedback_closed
    assert b.trip_count == 0
    b.set_fault(BreakerFault.NONE)
    assert b.trip() is Outcome.TRIPPED


def test_fault_welded(clock: SteppedClock) -> None:
    b = make(clock, fault=BreakerFault.WELDED)
    assert b.trip() is Outcome.TRIPPED  # the latch trips …
    assert state(b) is BreakerState.OPEN_LOCKED
    assert b.contacts_closed and b.feedback_closed  # … the contacts do not open
    b.set_fault(BreakerFault.NONE)
    assert not b.contacts_closed


def test_fault_no_feedback(clock: SteppedClock) -> None:
    b = make(clock, fault=BreakerFault.NO_FEEDBACK)
    assert b.contacts_closed and not b.feedback_closed  # closed, but reports open
    b.trip()
    assert not b.contacts_closed and not b.feedback_closed
    b.permit_close(True)
    b.manual_close()
    assert b.contacts_closed and not b.feedback_closed


def test_set_fault_at_run_time(clock: SteppedClock) -> None:
    b = make(clock)
    assert b.set_fault(2) is BreakerFault.WELDED
    assert b.set_fault("no-feedback") is BreakerFault.NO_FEEDBACK
    assert b.events[-1].event == "fault"
    with pytest.raises(BreakerConfigError, match="valid: 0 none"):
        b.set_fault(4)
    assert b.fault is BreakerFault.NO_FEEDBACK


@pytest.mark.parametrize("value", [-1, 4, "melted", "9"])
def test_parse_fault_rejects_unknown(value: int | str) -> None:
    with pytest.raises(BreakerConfigError):
        parse_fault(value)


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf")])
def test_config_rejects_bad_trip_response(bad: float) -> None:
    with pytest.raises(BreakerConfigError, match="trip_response_s"):
        BreakerConfig(trip_response_s=bad)


def test_counters_over_repeated_cycles(clock: SteppedClock) -> None:
    b = make(clock)
    for _ in range(3):
        b.trip()
        b.manual_close()
        b.permit_close(True)
        b.manual_close()
    assert (b.trip_count, b.close_count, b.refused_manual_closes) == (3, 3, 3)


def test_event_log_is_bounded(clock: SteppedClock) -> None:
    b = Breaker(clock, log_size=4)
    for _ in range(10):
        b.trip()
        b.permit_close(True)
        b.manual_close()
    assert len(b.events) == 4


async def test_in_process_link(clock: SteppedClock) -> None:
    b = make(clock)
    link = InProcessBreakerLink(b)
    assert isinstance(link, BreakerLink)
    assert await link.trip() is Outcome.TRIPPED
    assert not await link.read_feedback()
    assert await link.manual_close() is Outcome.REFUSED_LOCKED
    assert await link.permit_close(True) is Outcome.PERMITTED
    assert await link.read_state() is BreakerState.OPEN_PERMITTED
    assert await link.close() is Outcome.REFUSED_NOT_REMOTE
    assert await link.manual_close() is Outcome.CLOSED
    assert await link.read_feedback()
    assert await link.set_fault("welded") is BreakerFault.WELDED
    assert await link.read_fault() is BreakerFault.WELDED
