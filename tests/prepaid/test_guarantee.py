"""Power guarantee (保电): guaranteed customers are never tripped; 3AH goes to their meters."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from breaker_sim import BreakerState
from prepaid.audit import AuditLog
from prepaid.workflows import DisconnectionState, GuaranteeLockoutError

from .workflows_rig import CUSTOMERS, METERS, platform

TUESDAY_10 = datetime(2026, 3, 3, 10, 0)


async def test_a_request_for_a_guaranteed_customer_is_refused_with_the_reason(
    tmp_path: Path,
) -> None:
    async with platform(tmp_path) as p:
        flow = p.fc.disconnection
        p.settings.set("power_guarantee", "true", level="line", key="L1", user=p.staff["admin"])
        with pytest.raises(GuaranteeLockoutError, match=r"power guarantee .*set for line L1"):
            flow.request(CUSTOMERS[0], by=p.staff["operator"])
        assert flow.list() == []
        (refusal,) = AuditLog(p.engine, p.clock).query(action="disconnection.request.refused")
        assert refusal.target == f"customer:{CUSTOMERS[0]}" and "L1" in refusal.details["reason"]
        # the status says why, and where it comes from
        status = p.fc.guarantee.status(CUSTOMERS[0])
        assert status.guaranteed and "line L1" in (status.reason or "")
        assert not p.fc.guarantee.status(CUSTOMERS[2]).guaranteed  # line L2


async def test_a_guarantee_set_after_the_approval_stops_the_trip(tmp_path: Path) -> None:
    async with platform(tmp_path) as p:
        flow, staff = p.fc.disconnection, p.staff
        episode = flow.request(CUSTOMERS[0], by=staff["operator"])
        flow.approve_l1(episode.number, by=staff["approver-l1"])
        flow.approve_l2(episode.number, by=staff["approver-l2"])
        p.settings.set(
            "power_guarantee", "true", level="customer", key=CUSTOMERS[0], user=staff["admin"]
        )
        await p.go_to(TUESDAY_10)
        report = p.fc.step()
        assert report.trips == [] and report.cancelled == [episode.number]
        cancelled = flow.get(episode.number)
        assert cancelled.state is DisconnectionState.CANCELLED
        assert "power guarantee" in (cancelled.end_reason or "")
        assert flow.history(episode.number)[-1].action == "guarantee-lockout"
        assert p.jobs("trip") == []
        assert p.he.breaker(METERS[0]).state is BreakerState.CLOSED


async def test_guarantee_between_the_approvals_cancels_the_request(tmp_path: Path) -> None:
    async with platform(tmp_path) as p:
        flow, staff = p.fc.disconnection, p.staff
        episode = flow.request(CUSTOMERS[2], by=staff["operator"])
        flow.approve_l1(episode.number, by=staff["approver-l1"])
        p.settings.set("power_guarantee", "true", level="area", key="A2", user=staff["admin"])
        with pytest.raises(GuaranteeLockoutError, match="area A2"):
            flow.approve_l2(episode.number, by=staff["approver-l2"])
        assert flow.get(episode.number).state is DisconnectionState.CANCELLED
        assert p.messages() == []  # no notice went out


async def test_3ah_is_sent_to_guaranteed_meters_once_and_released_when_lifted(
    tmp_path: Path,
) -> None:
    async with platform(tmp_path) as p:
        admin, guarantee = p.staff["admin"], p.fc.guarantee
        p.settings.set("power_guarantee", "true", level="area", key="A1", user=admin)
        assert guarantee.sync().sent_on == []  # guarantee_send_3ah is off by default
        p.settings.set("guarantee_send_3ah", "true", level="default", user=admin)

        report = guarantee.sync()
        assert sorted(report.sent_on) == sorted(CUSTOMERS[:2]) and report.guaranteed == 2
        assert guarantee.sync().sent_on == []  # sent already: nothing new
        await p.run_jobs()
        assert guarantee.status(CUSTOMERS[0]).meter_state == "on"

        # the meter itself now refuses a trip: a head-end trip fails as "guaranteed"
        job = p.service.trip(METERS[0], "test")
        failed = await p.finish(job)
        assert getattr(failed, "error", None) == "guaranteed"
        assert p.he.breaker(METERS[0]).state is BreakerState.CLOSED

        # lifted for area A1: 3BH releases both meters
        p.settings.unset("power_guarantee", level="area", key="A1", user=admin)
        released = guarantee.sync()
        assert sorted(released.sent_off) == sorted(CUSTOMERS[:2])
        await p.run_jobs()
        assert guarantee.status(CUSTOMERS[1]).meter_state == "off"
        assert guarantee.sync().sent_off == []
        entries = AuditLog(p.engine, p.clock).query(action="guarantee.*")
        assert [e.action for e in entries].count("guarantee.send-on") == 2
        assert [e.action for e in entries].count("guarantee.confirmed") == 4
