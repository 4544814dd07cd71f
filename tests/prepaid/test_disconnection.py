"""Disconnection workflow: selection after dunning, refusals, rejection, cancellation,
the repeat-trip policy, a meter under 3AH, lost events, and the orchestrator's loop."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from breaker_sim import BreakerState
from prepaid.audit import AuditLog
from prepaid.messages import Recipient
from prepaid.rating import rate_accounts
from prepaid.users import PermissionDeniedError
from prepaid.workflows import (
    DisconnectionState,
    NextAction,
    WorkflowConfig,
    WorkflowError,
    WorkflowStateError,
)

from .workflows_rig import CUSTOMERS, METERS, MONDAY, Platform, platform

TUESDAY_10 = datetime(2026, 3, 3, 10, 0)
THURSDAY_10 = datetime(2026, 3, 5, 10, 0)


def _approved(p: Platform, customer: str) -> str:
    flow, staff = p.fc.disconnection, p.staff
    episode = flow.request(customer, by=staff["operator"])
    flow.approve_l1(episode.number, by=staff["approver-l1"])
    flow.approve_l2(episode.number, by=staff["approver-l2"])
    return episode.number


async def test_selection_after_dunning_raises_requests_per_area_setting(tmp_path: Path) -> None:
    async with platform(tmp_path, config=WorkflowConfig()) as p:  # dunning required, 3 days
        rate_accounts(p.engine, [1, 2, 3], MONDAY.date(), clock=p.clock)  # the daily rating
        for customer in (CUSTOMERS[0], CUSTOMERS[2]):  # dunned on Monday; 2 is not
            p.fc.ctx.outbox.enqueue(
                Recipient(customer, "户"),
                "dunning",
                {"balance": -540, "amount_due": 540, "pay_by": MONDAY + timedelta(days=3)},
                episode="arrears-1",
            )
        p.settings.set(
            "auto_disconnection_request", "true", level="area", key="A2", user=p.staff["admin"]
        )
        flow = p.fc.disconnection
        assert flow.select().selected == 0  # the dunning notice is not 3 days old yet
        await p.go_to(THURSDAY_10)

        report = flow.select()
        assert report.selected == 2 and report.rerated == 2 and report.rating_error is None
        (requested,) = report.requested
        assert requested.customer_no == CUSTOMERS[2] and requested.origin == "auto"
        assert requested.requested_by == "system:disconnection"
        assert [c.customer_no for c in report.awaiting_operator] == [CUSTOMERS[0]]
        assert report.awaiting_operator[0].balance_fen == -540
        # the system may not raise it for area A1: a person does
        with pytest.raises(WorkflowStateError, match="raised by a person"):
            flow.request(CUSTOMERS[0], by="system:disconnection")
        again = flow.select(by=p.staff["operator"])
        assert [d.customer_no for d in again.requested] == [CUSTOMERS[0]]
        assert again.requested[0].requested_by == "operator"
        assert flow.select().selected == 0  # both have an episode now
        assert len(flow.list(active=True)) == 2


async def test_requests_are_refused_with_the_reason(tmp_path: Path) -> None:
    async with platform(tmp_path) as p:
        flow, staff = p.fc.disconnection, p.staff
        with pytest.raises(PermissionDeniedError, match="may not request-disconnection"):
            flow.request(CUSTOMERS[0], by=staff["customer-service"])
        with p.engine.begin() as conn:
            conn.execute(
                sa.text("UPDATE prepaid_account SET fee_control_mode = 'local' WHERE id = 2")
            )
        with pytest.raises(WorkflowStateError, match="local \\(card\\) fee control"):
            flow.request(CUSTOMERS[1], by=staff["operator"])
        p.payments.pay(CUSTOMERS[2], 1_000, "PAY-9")
        with pytest.raises(WorkflowStateError, match=r"not in arrears: real-time balance 4\.60"):
            flow.request(CUSTOMERS[2], by=staff["operator"])
        with pytest.raises(WorkflowError, match="no customer with number '404'"):
            flow.request("404", by=staff["operator"])
        assert flow.list() == []
        refusals = AuditLog(p.engine, p.clock).query(action="disconnection.request.refused")
        assert len(refusals) == 4


async def test_rejection_ends_the_request_and_a_new_one_can_follow(tmp_path: Path) -> None:
    async with platform(tmp_path) as p:
        flow, staff = p.fc.disconnection, p.staff
        episode = flow.request(CUSTOMERS[0], by=staff["operator"])
        with pytest.raises(WorkflowError, match="give the reason"):
            flow.reject(episode.number, by=staff["approver-l1"], reason=" ")
        with pytest.raises(PermissionDeniedError):
            flow.reject(episode.number, by=staff["approver-l2"], reason="not yet")
        rejected = flow.reject(episode.number, by=staff["approver-l1"], reason="家有病人，暂缓")
        assert rejected.state is DisconnectionState.REJECTED
        assert rejected.end_reason == "家有病人，暂缓"
        with pytest.raises(WorkflowStateError, match="level-1 approval is for a requested"):
            flow.approve_l1(episode.number, by=staff["approver-l1"])
        second = flow.request(CUSTOMERS[0], by=staff["operator"])
        assert second.number != episode.number
        assert second.state is DisconnectionState.REQUESTED


async def test_cancel_before_the_trip_but_not_after(tmp_path: Path) -> None:
    async with platform(tmp_path) as p:
        flow, staff = p.fc.disconnection, p.staff
        first, second = _approved(p, CUSTOMERS[0]), _approved(p, CUSTOMERS[1])
        cancelled = flow.cancel(first, by=staff["operator"], reason="客户申请缓缴")
        assert cancelled.state is DisconnectionState.CANCELLED
        await p.go_to(TUESDAY_10)
        assert p.fc.step().trips == [second]
        await p.run_jobs()
        with pytest.raises(WorkflowStateError, match="reconnected instead"):
            flow.cancel(second, by=staff["operator"], reason="oops")
        assert p.jobs("trip") == [f"fk-{second}-trip1-1"]


async def test_the_repeat_trip_policy(tmp_path: Path) -> None:
    async with platform(tmp_path) as p:
        flow, admin = p.fc.disconnection, p.staff["admin"]
        p.settings.set("repeat_trip_max", 1, level="area", key="A1", user=admin)
        p.settings.set("repeat_trip_interval", "12h", level="area", key="A1", user=admin)
        p.settings.set("repeat_trip_max", 0, level="area", key="A2", user=admin)
        one, none = _approved(p, CUSTOMERS[0]), _approved(p, CUSTOMERS[2])
        await p.go_to(TUESDAY_10)
        p.fc.step()
        await p.run_jobs()
        assert flow.get(none).next_action is None  # repeat_trip_max 0: never again
        tripped = flow.get(one)
        assert tripped.due_at == TUESDAY_10 + timedelta(hours=12, seconds=3)

        # the customer did not close it again: the relay is open, checked again later
        await p.go_to(tripped.due_at)
        assert p.fc.step().checks == [one]
        await p.run_jobs()
        checked = flow.get(one)
        assert checked.next_action is NextAction.CHECK and checked.last_relay == "open"
        assert checked.trips == 1

        # now closed by hand: at the next check (12 h later) it is tripped again
        p.he.breaker(METERS[0]).manual_close()
        assert checked.due_at == datetime(2026, 3, 4, 10, 0, 3)  # read at 22:00:03, +12 h
        await p.go_to(checked.due_at)
        assert p.fc.step().checks == [one]
        await p.run_jobs()
        assert flow.get(one).next_action is NextAction.TRIP
        assert p.fc.step().trips == [one]
        await p.run_jobs()
        assert p.he.breaker(METERS[0]).state is BreakerState.OPEN_LOCKED
        last = flow.get(one)
        assert last.trips == 2 and last.next_action is None  # the one repeat is used
        assert "no more repeat trips" in flow.history(one)[-1].comment
        await p.go_to(datetime(2026, 3, 10, 10, 0))
        assert p.fc.step().total == 0
        assert len(p.jobs("trip")) == 3


async def test_a_meter_under_3ah_refuses_the_trip_and_the_episode_is_cancelled(
    tmp_path: Path,
) -> None:
    async with platform(tmp_path) as p:
        number = _approved(p, CUSTOMERS[0])
        await p.finish(p.service.guarantee(METERS[0], True, reason="hospital"))
        await p.go_to(TUESDAY_10)
        p.fc.step()
        await p.run_jobs()
        cancelled = p.fc.disconnection.get(number)
        assert cancelled.state is DisconnectionState.CANCELLED
        assert "the meter refused the trip" in (cancelled.end_reason or "")
        assert p.fc.workorders.list() == []  # not a failure: nothing for the field


async def test_a_lost_trip_outcome_is_recovered_from_the_head_end(tmp_path: Path) -> None:
    async with platform(tmp_path, config=WorkflowConfig(require_dunning=False)) as p:
        number = _approved(p, CUSTOMERS[0])
        await p.go_to(TUESDAY_10)
        p.fc.step()
        p.fc.close()  # the workflows stop listening: the outcome event is lost
        await p.he.run_until(lambda: p.he.runner.queued == 0 and p.he.runner.running == 0)
        assert p.fc.disconnection.get(number).state is DisconnectionState.TRIPPING
        p.fc.subscribe(p.he.bus)
        await p.go_to(TUESDAY_10 + timedelta(hours=3))
        report = p.fc.step()
        assert report.recovered == [number]
        assert p.fc.disconnection.get(number).state is DisconnectionState.DISCONNECTED


async def test_the_orchestrator_loop_trips_on_the_clock(tmp_path: Path) -> None:
    async with platform(tmp_path) as p:
        number = _approved(p, CUSTOMERS[0])
        p.fc.close()
        task = asyncio.create_task(p.fc.run(p.he.bus))
        try:
            await p.go_to(TUESDAY_10)
            flow = p.fc.disconnection
            await p.he.run_until(lambda: flow.get(number).state is DisconnectionState.DISCONNECTED)
            assert p.he.breaker(METERS[0]).state is not BreakerState.CLOSED
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
