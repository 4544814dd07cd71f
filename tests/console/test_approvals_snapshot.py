"""Snapshots of the approvals queue and the disconnection schedule (fixed data and clock)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from console.screens.approvals import ApprovalsScreen
from console.screens.schedule import ScheduleScreen

from .workflow_console_rig import CUSTOMERS, ScreenApp, console_rig

SIZE = (150, 36)


def test_approvals_level_two_queue(snap_compare: Any, tmp_path: Path) -> None:
    r = console_rig(tmp_path)
    first = r.request(CUSTOMERS[0])
    r.request(CUSTOMERS[1], by="operator")
    r.fc.disconnection.approve_l1(first.number, by=r.staff["approver-l1"], comment="ok")
    assert snap_compare(ScreenApp(ApprovalsScreen(r.ctx("approver-l2"))), terminal_size=SIZE)


def test_schedule_with_a_protected_hours_wait(snap_compare: Any, tmp_path: Path) -> None:
    r = console_rig(tmp_path)
    episode = r.request(CUSTOMERS[0])
    r.fc.disconnection.approve_l1(episode.number, by=r.staff["approver-l1"])
    r.rig.clock.set(datetime(2026, 3, 2, 19, 0))
    r.fc.disconnection.approve_l2(episode.number, by=r.staff["approver-l2"])
    assert snap_compare(ScreenApp(ScheduleScreen(r.ctx("operator"))), terminal_size=SIZE)
