"""A breaker that fails to trip: N remote attempts, then a disconnection-failure work order
for a fault handler and an SMS to the handler; the on-site result closes the loop."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from breaker_sim import BreakerState
from prepaid.messages import MessageKind
from prepaid.workflows import DisconnectionState, ReconnectionMethod, ReconnectionState
from prepaid.workorders import WorkOrderKind, WorkOrderOutcome, WorkOrderState

from .workflows_rig import CUSTOMERS, METERS, Platform, platform

TUESDAY_10 = datetime(2026, 3, 3, 10, 0)


async def _approved(p: Platform, customer: str) -> str:
    """A request approved at Monday 09:00 (due Tuesday 09:00, a working day)."""
    flow, staff = p.fc.disconnection, p.staff
    episode = flow.request(customer, by=staff["operator"])
    flow.approve_l1(episode.number, by=staff["approver-l1"])
    flow.approve_l2(episode.number, by=staff["approver-l2"])
    return episode.number


async def test_failed_trips_open_a_work_order_and_text_the_handler(tmp_path: Path) -> None:
    async with platform(tmp_path) as p:
        fc, flow = p.fc, p.fc.disconnection
        customer, meter = CUSTOMERS[0], METERS[0]
        handler = p.staff["fault-handler"]
        fc.ctx.set_handler_phone(handler.login, "139 0000 0001", by=p.staff["operator"])
        number = await _approved(p, customer)
        p.he.breaker(meter).set_fault("fails-to-trip")

        # remote_attempts (default 3): each attempt is a head-end job (itself retried
        # 3 times); a failed one is tried again 30 minutes later
        await p.go_to(TUESDAY_10)
        for attempt in (1, 2, 3):
            report = fc.step()
            assert report.trips == [number], attempt
            await p.run_jobs()
            episode = flow.get(number)
            if attempt < 3:
                assert (episode.state, episode.attempts) == (DisconnectionState.NOTIFIED, attempt)
                assert episode.due_at == p.clock.now() + timedelta(minutes=30)
                await p.go_to(episode.due_at)
        assert p.jobs("trip") == [f"fk-{number}-trip1-{n}" for n in (1, 2, 3)]
        assert p.he.breaker(meter).state is BreakerState.CLOSED

        failed = flow.get(number)
        assert failed.state is DisconnectionState.FAILED and failed.work_order
        order = fc.workorders.get(failed.work_order)
        assert order.kind is WorkOrderKind.DISCONNECTION_FAILURE
        assert (order.state, order.assignee) == (WorkOrderState.ASSIGNED, handler.login)
        assert order.customer_no == customer and order.meter_address == meter
        assert "3次失败" in order.summary and "relay-not-open" in order.summary
        assert [o.number for o in flow.failure_orders_open()] == [order.number]

        (sms,) = p.messages(MessageKind.DISCONNECTION_FAILURE)
        assert sms.phone == "13900000001" and sms.status.value == "queued"
        assert order.number in sms.text and customer in sms.text and "幸福路1号" in sms.text

        # nothing more happens on its own: no further trips, no second order or SMS
        await p.go_to(TUESDAY_10 + timedelta(days=2))
        assert fc.step().total == 0
        assert len(p.jobs("trip")) == 3
        assert len(fc.workorders.list(kind=WorkOrderKind.DISCONNECTION_FAILURE)) == 1

        # the handler disconnects on site and records it
        fc.workorders.record_result(
            order.number, outcome="done", result="现场拉开表后开关并加封", by=handler
        )
        on_site = flow.get(number)
        assert on_site.state is DisconnectionState.ON_SITE
        assert flow.history(number)[-1].actor == handler.login
        fc.workorders.close(order.number, by=handler)

        # payment: the customer was disconnected on site, so it is reconnected on site
        p.payments.pay(customer, 5_000, "PAY-7")
        assert flow.get(number).state is DisconnectionState.ENDED
        (recon,) = fc.reconnection.list(customer_no=customer)
        assert recon.method is ReconnectionMethod.ON_SITE
        assert recon.state is ReconnectionState.ON_SITE
        on_site_order = fc.workorders.get(recon.work_order or "")
        assert on_site_order.kind is WorkOrderKind.RECONNECTION_FAILURE
        assert on_site_order.assignee == handler.login
        assert p.jobs("permit-close") == []
        fc.workorders.record_result(
            on_site_order.number, outcome=WorkOrderOutcome.DONE, result="已合闸", by=handler
        )
        fc.pump()
        assert fc.reconnection.get(recon.number).state is ReconnectionState.DONE
        assert len(p.messages(MessageKind.RECONNECTED)) == 1


async def test_a_payment_while_the_failure_order_is_open_cancels_it(tmp_path: Path) -> None:
    async with platform(tmp_path) as p:
        fc, flow = p.fc, p.fc.disconnection
        number = await _approved(p, CUSTOMERS[1])
        p.he.breaker(METERS[1]).set_fault("welded")
        await p.go_to(TUESDAY_10)
        for _ in range(3):
            fc.step()
            await p.run_jobs()
            due = flow.get(number).due_at
            if due is not None:
                await p.go_to(due)
        failed = flow.get(number)
        assert failed.state is DisconnectionState.FAILED
        p.payments.pay(CUSTOMERS[1], 2_000, "PAY-8")
        assert flow.get(number).state is DisconnectionState.ENDED
        order = fc.workorders.get(failed.work_order or "")
        assert order.state is WorkOrderState.CANCELLED
        (recon,) = fc.reconnection.list(customer_no=CUSTOMERS[1])
        assert recon.state is ReconnectionState.CANCELLED_ONLY  # the power never went off
        assert p.messages(MessageKind.RECONNECTED) == []


@pytest.mark.parametrize("attempts", [1])
async def test_without_a_fault_handler_the_order_waits_unassigned(
    tmp_path: Path, attempts: int
) -> None:
    async with platform(tmp_path) as p:
        fc, flow = p.fc, p.fc.disconnection
        p.users.disable("fault.handler", by=p.staff["admin"])
        p.settings.set("remote_attempts", attempts, level="area", key="A1", user=p.staff["admin"])
        number = await _approved(p, CUSTOMERS[0])
        p.he.breaker(METERS[0]).set_fault("fails-to-trip")
        await p.go_to(TUESDAY_10)
        fc.step()
        await p.run_jobs()
        failed = flow.get(number)
        assert failed.state is DisconnectionState.FAILED
        order = fc.workorders.get(failed.work_order or "")
        assert order.state is WorkOrderState.OPEN and order.assignee is None
        assert "nobody to assign" in flow.history(number)[-1].comment
        assert p.messages(MessageKind.DISCONNECTION_FAILURE) == []
