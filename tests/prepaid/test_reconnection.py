"""Reconnection after payment: cancel what is pending, permit-close or direct close, the
"reconnected" message, an on-site work order when the command fails."""

from __future__ import annotations

import contextlib
import dataclasses
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from breaker_sim import BreakerState
from meter_sim.config import BreakerKind
from meter_sim.scenario import FleetSpec
from prepaid.cis import LedgerCis
from prepaid.cis.payments import PaymentService
from prepaid.messages import MessageKind
from prepaid.users import PermissionDeniedError
from prepaid.workflows import (
    DisconnectionState,
    ReconnectionMethod,
    ReconnectionState,
    WorkflowStateError,
)
from prepaid.workorders import WorkOrderKind
from protocol.errors import SecurityError

from .workflows_rig import CUSTOMERS, METERS, Platform, platform

TUESDAY_10 = datetime(2026, 3, 3, 10, 0)


def _approved(p: Platform, customer: str) -> str:
    flow, staff = p.fc.disconnection, p.staff
    episode = flow.request(customer, by=staff["operator"])
    flow.approve_l1(episode.number, by=staff["approver-l1"])
    flow.approve_l2(episode.number, by=staff["approver-l2"])
    return episode.number


async def _tripped(p: Platform, customer: str) -> str:
    number = _approved(p, customer)
    await p.go_to(TUESDAY_10)
    assert p.fc.step().trips == [number]
    await p.run_jobs()
    assert p.fc.disconnection.get(number).state is DisconnectionState.DISCONNECTED
    return number


async def test_a_payment_before_the_trip_cancels_it_and_nothing_is_sent(tmp_path: Path) -> None:
    async with platform(tmp_path) as p:
        flow = p.fc.disconnection
        number = _approved(p, CUSTOMERS[0])
        # a payment that leaves the balance at or below zero reconnects nothing
        p.payments.pay(CUSTOMERS[0], 540, "PAY-0")  # −5.40 + 5.40 = 0.00
        assert flow.get(number).state is DisconnectionState.NOTIFIED
        p.payments.pay(CUSTOMERS[0], 1, "PAY-1")  # 0.01 > 0
        cancelled = flow.get(number)
        assert cancelled.state is DisconnectionState.CANCELLED
        assert "PAY-1" in (cancelled.end_reason or "")
        (recon,) = p.fc.reconnection.list()
        assert (recon.state, recon.method) == (
            ReconnectionState.CANCELLED_ONLY,
            ReconnectionMethod.NONE,
        )
        await p.go_to(TUESDAY_10)
        assert p.fc.step().total == 0
        assert p.jobs() == []
        assert p.messages(MessageKind.RECONNECTED) == []
        # a new episode is possible later, and gets a new number
        assert flow.active_for(cancelled.account_id) is None


async def test_auto_reconnect_off_waits_for_an_operator(tmp_path: Path) -> None:
    async with platform(tmp_path) as p:
        staff = p.staff
        p.settings.set("auto_reconnect", "false", level="area", key="A1", user=staff["admin"])
        number = await _tripped(p, CUSTOMERS[1])
        p.payments.pay(CUSTOMERS[1], 3_000, "PAY-2")
        (waiting,) = p.fc.reconnection.list()
        assert waiting.state is ReconnectionState.WAITING
        assert p.fc.disconnection.get(number).state is DisconnectionState.DISCONNECTED
        assert "waits for an operator" in p.fc.disconnection.history(number)[-1].comment
        with pytest.raises(PermissionDeniedError, match="may not reconnect"):
            p.fc.reconnection.reconnect(CUSTOMERS[1], by=staff["approver-l1"])
        done = p.fc.reconnection.reconnect(CUSTOMERS[1], by=staff["customer-service"])
        assert done.number == waiting.number and done.state is ReconnectionState.SENT
        assert done.created_by == "system:reconnection"
        assert p.fc.reconnection.reconnect(CUSTOMERS[1], by=staff["customer-service"]) == done
        await p.run_jobs()
        assert p.fc.reconnection.get(done.number).state is ReconnectionState.DONE
        assert p.he.breaker(METERS[1]).state is BreakerState.OPEN_PERMITTED


async def test_an_operator_cannot_reconnect_a_customer_still_in_arrears(tmp_path: Path) -> None:
    async with platform(tmp_path) as p:
        await _tripped(p, CUSTOMERS[0])
        with pytest.raises(WorkflowStateError, match="balance above zero"):
            p.fc.reconnection.reconnect(CUSTOMERS[0], by=p.staff["customer-service"])


async def test_direct_close_where_configured_and_supported(tmp_path: Path) -> None:
    configs = FleetSpec(first_address=1, count=3, seed=7).configs()
    configs[0] = dataclasses.replace(configs[0], breaker=BreakerKind.EXTERNAL_REMOTE_CLOSE)
    async with platform(tmp_path, configs=configs) as p:
        with p.engine.begin() as conn:  # the archive says what the meter drives
            conn.execute(
                sa.text("UPDATE headend_meter SET breaker_type = :t WHERE address = :a"),
                {"t": "external-remote-close", "a": METERS[0]},
            )
        p.settings.set("reconnect_direct_close", "true", level="default", user=p.staff["admin"])
        numbers = [_approved(p, CUSTOMERS[0]), _approved(p, CUSTOMERS[1])]
        await p.go_to(TUESDAY_10)
        assert p.fc.step().trips == numbers
        await p.run_jobs()
        p.payments.pay(CUSTOMERS[0], 2_000, "PAY-3")
        p.payments.pay(CUSTOMERS[1], 2_000, "PAY-4")
        first, second = p.fc.reconnection.list()
        assert first.method is ReconnectionMethod.CLOSE  # remotely closable
        assert second.method is ReconnectionMethod.PERMIT_CLOSE  # plain external breaker
        await p.run_jobs()
        assert p.he.breaker(METERS[0]).state is BreakerState.CLOSED  # closed by the meter
        assert p.he.breaker(METERS[1]).state is BreakerState.OPEN_PERMITTED
        assert p.jobs("close") == [f"fk-{first.number}-close"]
        assert len(p.messages(MessageKind.RECONNECTED)) == 2


async def test_a_payment_during_the_trip_queues_the_permit_close_behind_it(
    tmp_path: Path,
) -> None:
    async with platform(tmp_path) as p:
        number = _approved(p, CUSTOMERS[0])
        await p.go_to(TUESDAY_10)
        assert p.fc.step().trips == [number]
        assert p.fc.disconnection.get(number).state is DisconnectionState.TRIPPING
        p.payments.pay(CUSTOMERS[0], 2_000, "PAY-5")  # the trip has not run yet
        assert p.fc.disconnection.get(number).state is DisconnectionState.ENDED
        await p.run_jobs()
        # the trip ran, then the permit-close: the customer can close the breaker
        assert p.he.breaker(METERS[0]).state is BreakerState.OPEN_PERMITTED
        (recon,) = p.fc.reconnection.list()
        assert recon.state is ReconnectionState.DONE
        assert p.fc.disconnection.history(number)[-1].action == "late-outcome"
        await p.go_to(datetime(2026, 3, 10, 10, 0))
        assert p.fc.step().total == 0 and len(p.jobs("trip")) == 1


async def test_a_failed_reconnection_opens_an_on_site_work_order(tmp_path: Path) -> None:
    async with platform(tmp_path) as p:
        handler = p.staff["fault-handler"]
        p.fc.ctx.set_handler_phone(handler.login, "13900000002", by=p.staff["operator"])
        await _tripped(p, CUSTOMERS[0])
        esam = p.he.meter(METERS[0]).auth.esam  # someone tries wrong keys: ESAM suspended
        for _ in range(esam.max_mac_errors):
            with contextlib.suppress(SecurityError):
                esam.identity_auth(bytes(8), bytes(8), esam.factor)
        p.payments.pay(CUSTOMERS[0], 2_000, "PAY-6")
        await p.run_jobs()
        (recon,) = p.fc.reconnection.list()
        assert recon.state is ReconnectionState.FAILED and recon.work_order
        order = p.fc.workorders.get(recon.work_order)
        assert order.kind is WorkOrderKind.RECONNECTION_FAILURE
        assert order.assignee == handler.login and "esam-suspended" in order.summary
        (sms,) = p.messages(MessageKind.CUSTOM)
        assert sms.phone == "13900000002" and order.number in sms.text
        assert p.messages(MessageKind.RECONNECTED) == []


async def test_a_payment_taken_elsewhere_is_found_by_the_next_tick(tmp_path: Path) -> None:
    """A payment through another process (no on_payment hook here) still reconnects."""
    async with platform(tmp_path) as p:
        number = await _tripped(p, CUSTOMERS[0])
        elsewhere = PaymentService(p.engine, LedgerCis(p.engine, clock=p.clock), clock=p.clock)
        elsewhere.pay(CUSTOMERS[0], 2_000, "PAY-X")
        assert p.fc.disconnection.get(number).state is DisconnectionState.DISCONNECTED
        assert p.fc.step().cancelled == [number]
        assert p.fc.disconnection.get(number).state is DisconnectionState.ENDED
        await p.run_jobs()
        (recon,) = p.fc.reconnection.list()
        assert recon.trigger == "balance above zero" and recon.state is ReconnectionState.DONE
        assert p.he.breaker(METERS[0]).state is BreakerState.OPEN_PERMITTED
