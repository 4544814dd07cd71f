"""Snapshot of the audit log viewer after a verified chain (fixed data and clock)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual.pilot import Pilot

from console.screens.audit import AuditScreen

from .workflow_console_rig import ScreenApp, click, console_rig, settle


def test_audit_log_verified(snap_compare: Any, tmp_path: Path) -> None:
    r = console_rig(tmp_path)

    async def verify(pilot: Pilot[None]) -> None:
        await click(pilot, "#verify")
        await pilot.app.workers.wait_for_complete()
        await settle(pilot)

    app = ScreenApp(AuditScreen(r.ctx("auditor")))
    assert snap_compare(app, terminal_size=(150, 30), run_before=verify)
