"""The disconnection lifecycle end to end: simulated meters over TCP, the head-end's job
runner, the prepaid database and the workflows on one stepped clock (days in ms).

request → L1 → L2 (the wrong people refused) → notice → the due time falls on a
weekend → waits until Monday 08:00 → trip (the breaker opens) → the customer closes
it again by hand → repeated trip the next day → payment → permit-close → the
customer closes the breaker; no more trips.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from breaker_sim import BreakerState
from prepaid.audit import AuditLog
from prepaid.messages import MessageKind
from prepaid.workflows import (
    DisconnectionState,
    NextAction,
    ReconnectionMethod,
    ReconnectionState,
    WorkflowStateError,
)

from .workflows_rig import CUSTOMERS, METERS, platform

FRIDAY = datetime(2026, 3, 6, 10, 0)
SATURDAY = FRIDAY + timedelta(days=1)  # the due time: a day after the approval
NEXT_MONDAY_8 = datetime(2026, 3, 9, 8, 0)


async def test_the_whole_disconnection_and_reconnection_lifecycle(tmp_path: Path) -> None:
    async with platform(tmp_path) as p:
        fc, staff = p.fc, p.staff
        flow = fc.disconnection
        customer, meter = CUSTOMERS[0], METERS[0]

        # an operator raises the request; the account is re-rated first:
        # 5.00 − 20 kWh × 0.52 = −5.40 yuan, below the 0.00 threshold
        episode = flow.request(customer, by=staff["operator"], reason="arrears")
        assert episode.state is DisconnectionState.REQUESTED
        assert (episode.balance_fen, episode.threshold_fen) == (500 - 1040, 0)
        assert flow.request(customer, by=staff["operator"]).number == episode.number  # once

        # separation of duties: the requester approves nothing; L2 needs a second person
        with pytest.raises(WorkflowStateError, match="the requester approves nothing"):
            flow.approve_l1(episode.number, by=_with_role(p, "operator", "approver-l1"))
        with pytest.raises(WorkflowStateError, match="follows the level-1 approval"):
            flow.approve_l2(episode.number, by=staff["approver-l2"])
        await p.go_to(datetime(2026, 3, 4, 11, 0))
        approved = flow.approve_l1(episode.number, by=staff["approver-l1"])
        assert approved.state is DisconnectionState.APPROVED_L1
        assert flow.approve_l1(episode.number, by=staff["approver-l1"]) == approved  # again
        both = _with_role(p, "approver.l1", "approver-l2")
        with pytest.raises(WorkflowStateError, match="must come from a different person"):
            flow.approve_l2(episode.number, by=both)

        # L2 on Friday 10:00: the lead time (1 day) ends on Saturday — protected (weekend)
        await p.go_to(FRIDAY)
        notified = flow.approve_l2(episode.number, by=staff["approver-l2"])
        assert notified.state is DisconnectionState.NOTIFIED
        assert notified.earliest_at == SATURDAY
        assert notified.planned_at == NEXT_MONDAY_8  # what the customer is told
        (notice,) = p.messages(MessageKind.DISCONNECTION_NOTICE)
        assert notice.customer_no == customer and notice.phone == "13800138001"
        assert "2026年3月9日 08:00" in notice.text and "-5.40" in notice.text
        assert flow.approve_l2(episode.number, by=staff["approver-l2"]).number == episode.number
        assert len(p.messages(MessageKind.DISCONNECTION_NOTICE)) == 1  # one per episode

        # Saturday 10:00: due, but protected — the trip waits, it is not dropped
        await p.go_to(SATURDAY)
        report = fc.step()
        assert report.waiting == [episode.number] and report.trips == []
        waiting = flow.get(episode.number)
        assert waiting.state is DisconnectionState.NOTIFIED
        assert waiting.due_at == NEXT_MONDAY_8
        assert "weekend" in flow.history(episode.number)[-1].comment
        assert fc.next_due() == NEXT_MONDAY_8
        await p.go_to(NEXT_MONDAY_8 - timedelta(minutes=1))
        assert fc.step().trips == []
        assert p.jobs("trip") == []

        # Monday 08:00: the trip goes to the head-end; the meter opens the breaker
        await p.go_to(NEXT_MONDAY_8)
        report = fc.step()
        assert report.trips == [episode.number]
        assert fc.step().trips == []  # re-running the step: no second trip
        (trip_job,) = p.jobs("trip")
        assert trip_job == f"fk-{episode.number}-trip1-1"
        await p.finish(trip_job)
        assert p.he.breaker(meter).state is BreakerState.OPEN_LOCKED
        tripped = flow.get(episode.number)
        assert tripped.state is DisconnectionState.DISCONNECTED and tripped.trips == 1
        assert tripped.next_action is NextAction.CHECK
        assert tripped.due_at == NEXT_MONDAY_8 + timedelta(days=1, seconds=3)
        (done,) = p.messages(MessageKind.DISCONNECTED)
        assert done.customer_no == customer

        # the meter permits the close after 60 s; the customer closes the breaker by hand
        await p.clock.advance(61)
        assert p.he.breaker(meter).state is BreakerState.OPEN_PERMITTED
        p.he.breaker(meter).manual_close()
        assert p.he.breaker(meter).state is BreakerState.CLOSED

        # the next day the relay is read: closed again → tripped again (repeat 1 of 3)
        await p.go_to(tripped.due_at)
        assert fc.step().checks == [episode.number]
        await p.run_jobs()
        assert flow.get(episode.number).next_action is NextAction.TRIP
        assert fc.step().trips == [episode.number]
        await p.run_jobs()
        assert p.he.breaker(meter).state is BreakerState.OPEN_LOCKED
        again = flow.get(episode.number)
        assert (again.state, again.trips) == (DisconnectionState.DISCONNECTED, 2)
        assert len(p.messages(MessageKind.DISCONNECTED)) == 1  # one per episode

        # payment: re-rated at once, balance > 0 → reconnect: permit-close, no more trips
        outcome = p.payments.pay(customer, 10_000, "PAY-1")
        assert outcome.balance.realtime_fen == 500 - 1040 + 10_000
        ended = flow.get(episode.number)
        assert ended.state is DisconnectionState.ENDED and ended.due_at is None
        (recon,) = fc.reconnection.list(customer_no=customer)
        assert (recon.state, recon.method) == (
            ReconnectionState.SENT,
            ReconnectionMethod.PERMIT_CLOSE,
        )
        assert p.payments.pay(customer, 10_000, "PAY-1").receipt.duplicate  # credited once
        assert len(fc.reconnection.list(customer_no=customer)) == 1
        await p.run_jobs()
        assert fc.reconnection.get(recon.number).state is ReconnectionState.DONE
        assert p.he.breaker(meter).state is BreakerState.OPEN_PERMITTED  # may be closed now
        p.he.breaker(meter).manual_close()
        assert p.he.breaker(meter).state is BreakerState.CLOSED
        (back,) = p.messages(MessageKind.RECONNECTED)
        assert back.customer_no == customer and "94.60" in back.text  # 5.00 − 10.40 + 100

        # days later: nothing more is sent to this meter
        await p.go_to(NEXT_MONDAY_8 + timedelta(days=5))
        assert fc.step().total == 0
        assert len(p.jobs("trip")) == 2 and len(p.jobs("permit-close")) == 1

        # every change is on record, and the audit chain holds
        actions = [e.action for e in flow.history(episode.number)]
        assert actions[:4] == ["request", "approve-l1", "approve-l2", "notify"]
        assert "wait" in actions and actions.count("tripped") == 2 and actions[-1] == "end"
        audit = AuditLog(p.engine, p.clock)
        refused = audit.query(action="disconnection.approve-l*")
        assert [e.action for e in refused].count("disconnection.approve-l1.refused") == 1
        assert [e.action for e in refused].count("disconnection.approve-l2.refused") == 2
        assert audit.verify().ok


def _with_role(p: object, login: str, role: str) -> object:
    """``login`` with ``role`` granted too (by the admin), as it is stored now."""
    from prepaid.users import Role

    platform = p  # a Platform
    users = platform.users  # type: ignore[attr-defined]
    return users.grant(login, Role(role), by=platform.staff["admin"])  # type: ignore[attr-defined]
