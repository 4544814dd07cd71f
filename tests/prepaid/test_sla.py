"""Approval time limits (SLA) of disconnection requests, on the stepped clock.

Limits here: level 1 four hours from the request, level 2 two hours from the level-1
approval. The request is made Monday 2 March 2026 at 09:00 (tests.prepaid.workflows_rig).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

from typer.testing import CliRunner

from feikong.cli import app
from prepaid.audit import AuditLog
from prepaid.workflows import DisconnectionState, WorkflowConfig

from .workflows_rig import CUSTOMERS, platform

CONFIG = WorkflowConfig(
    require_dunning=False,
    approval_l1_limit=timedelta(hours=4),
    approval_l2_limit=timedelta(hours=2),
)


def _overdue_lines(p: object, number: str) -> list[str]:
    flow = p.fc.disconnection  # type: ignore[attr-defined]
    return [h.comment for h in flow.history(number) if h.action == "sla-overdue"]


async def test_overdue_at_the_limit_escalated_once_per_level_never_decided(
    tmp_path: Path,
) -> None:
    async with platform(tmp_path, config=CONFIG) as p:
        flow, staff, sla = p.fc.disconnection, p.staff, p.fc.sla
        episode = flow.request(CUSTOMERS[0], by=staff["operator"])
        (wait,) = sla.pending()
        assert (wait.level, wait.deadline, wait.overdue) == (1, datetime(2026, 3, 2, 13, 0), False)
        assert wait.approvers == ("approver.l1",)
        # the orchestrator's loop wakes up at the deadline
        assert p.fc.next_due() == datetime(2026, 3, 2, 13, 0)

        await p.go_to(datetime(2026, 3, 2, 12, 59))
        assert p.fc.step().escalated == [] and sla.overdue() == []
        await p.go_to(datetime(2026, 3, 2, 13, 0))
        assert p.fc.step().escalated == [episode.number]
        (line,) = _overdue_lines(p, episode.number)
        assert "level-1 approval overdue" in line and "limit 4h" in line
        assert "escalated to approver-l1: approver.l1" in line
        await p.go_to(datetime(2026, 3, 2, 15, 30))
        assert p.fc.step().escalated == []  # once per level
        (late,) = sla.overdue()
        assert late.overdue_by == timedelta(hours=2, minutes=30)
        assert late.to_dict()["overdue_by"] == "2h30m"
        assert late.escalated_at == datetime(2026, 3, 2, 13, 0)
        assert p.fc.next_due() is None  # nothing more to wake up for
        assert flow.get(episode.number).state is DisconnectionState.REQUESTED  # never decided

        flow.approve_l1(episode.number, by=staff["approver-l1"])  # at 15:30
        assert sla.overdue() == []
        (wait,) = sla.pending()
        assert (wait.level, wait.deadline) == (2, datetime(2026, 3, 2, 17, 30))
        assert wait.approvers == ("approver.l2",)
        await p.go_to(datetime(2026, 3, 2, 17, 30))
        assert p.fc.step().escalated == [episode.number]
        assert len(_overdue_lines(p, episode.number)) == 2
        assert flow.get(episode.number).state is DisconnectionState.APPROVED_L1
        audit = [e.action for e in AuditLog(p.engine, p.clock).iter_entries()]
        assert audit.count("disconnection.sla-overdue") == 2

        flow.approve_l2(episode.number, by=staff["approver-l2"])
        assert sla.pending() == [] and sla.overdue() == []


async def test_nobody_may_approve_the_escalation_says_so(tmp_path: Path) -> None:
    async with platform(tmp_path, config=CONFIG) as p:
        p.users.disable("approver.l1", by=p.staff["admin"], reason="on leave")
        episode = p.fc.disconnection.request(CUSTOMERS[1], by=p.staff["operator"])
        await p.go_to(datetime(2026, 3, 2, 13, 0))
        assert p.fc.step().escalated == [episode.number]
        (line,) = _overdue_lines(p, episode.number)
        assert "nobody of supply unit 3301 may approve it" in line
        assert "an admin must grant the role" in line


async def test_cli_lists_overdue_requests(tmp_path: Path) -> None:
    async with platform(tmp_path, config=CONFIG) as p:
        episode = p.fc.disconnection.request(CUSTOMERS[2], by=p.staff["operator"])
        env = {"FEIKONG_DB": str(p.engine.url), "COLUMNS": "220"}
        runner = CliRunner()
        # the CLI runs on the real clock: months after the request in 2026-03
        result = runner.invoke(app, ["disconnect", "overdue", "--json"], env=env)
        assert result.exit_code == 0, result.output
        (row,) = json.loads(result.output)
        assert (row["number"], row["level"], row["overdue"]) == (episode.number, 1, True)
        assert row["deadline"] == "2026-03-03T09:00:00"  # the default limit: 24 h
        limited = runner.invoke(
            app, ["disconnect", "overdue", "--l1-limit", "4h", "--json"], env=env
        )
        assert json.loads(limited.output)[0]["deadline"] == "2026-03-02T13:00:00"
        table = runner.invoke(app, ["disconnect", "overdue"], env=env)
        assert episode.number in table.output and "approver.l1" in table.output
        bad = runner.invoke(app, ["disconnect", "overdue", "--l1-limit", "soon"], env=env)
        assert bad.exit_code == 2 and "90m, 24h, 2d" in bad.output


async def test_the_orchestrator_loop_escalates_at_the_deadline(tmp_path: Path) -> None:
    import asyncio
    import contextlib

    async with platform(tmp_path, config=CONFIG) as p:
        episode = p.fc.disconnection.request(CUSTOMERS[0], by=p.staff["operator"])
        p.fc.close()
        # idle wake-ups every 3 h (12:00, 15:00): only the deadline wakes it at 13:00
        task = asyncio.create_task(p.fc.run(p.he.bus, idle_s=3 * 3600))
        try:
            await p.go_to(datetime(2026, 3, 2, 12, 59))
            for _ in range(20):  # let the loop run (no clock time passes)
                await asyncio.sleep(0)
            assert _overdue_lines(p, episode.number) == []
            await p.go_to(datetime(2026, 3, 2, 13, 0))
            for _ in range(100):
                if _overdue_lines(p, episode.number):
                    break
                await asyncio.sleep(0)
            assert len(_overdue_lines(p, episode.number)) == 1
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
