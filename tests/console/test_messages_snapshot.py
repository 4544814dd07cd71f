"""Snapshot of the outbox after a custom SMS (fixed data and clock)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from console.screens.messages import MessagesScreen
from prepaid.service import Selection, send_custom_sms

from .workflow_console_rig import ScreenApp, console_rig


def test_outbox_with_delivery_status(snap_compare: Any, tmp_path: Path) -> None:
    r = console_rig(tmp_path)
    send_custom_sms(
        r.engine,
        "春节期间营业厅照常营业",
        by=r.staff["customer-service"],
        clock=r.rig.clock,
        selection=Selection.of(areas=["A1", "A2"]),
        settings=r.rig.settings,
    )
    screen = MessagesScreen(r.ctx("customer-service"), export_dir=Path("/srv/exports"))
    assert snap_compare(ScreenApp(screen), terminal_size=(160, 32))
