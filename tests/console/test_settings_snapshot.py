"""Snapshots of the settings editor at an area and of the power-guarantee registry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual.pilot import Pilot
from textual.widgets import Input, Select

from console.screens.guarantee import GuaranteeScreen
from console.screens.settings import SettingsScreen

from .workflow_console_rig import ScreenApp, click, console_rig, settle


def test_settings_in_force_at_an_area(snap_compare: Any, tmp_path: Path) -> None:
    r = console_rig(tmp_path)
    r.rig.set("reminder_amount", "15.50", level="area", key="A1")
    r.rig.set("protected_hours", "20:00-07:00", level="line", key="L1")

    async def show_area(pilot: Pilot[None]) -> None:
        pilot.app.screen.query_one("#level", Select).value = "area"
        pilot.app.screen.query_one("#key", Input).value = "A1"
        await click(pilot, "#show")
        await settle(pilot)

    app = ScreenApp(SettingsScreen(r.ctx("operator")))
    assert snap_compare(app, terminal_size=(150, 40), run_before=show_area)


def test_guarantee_registry(snap_compare: Any, tmp_path: Path) -> None:
    r = console_rig(tmp_path)
    r.rig.set("power_guarantee", "true", level="area", key="A2")
    r.rig.set("power_guarantee", "true", level="customer", key="3300000001")
    r.rig.add("3300000005", balance=100, guarantee=True)
    app = ScreenApp(GuaranteeScreen(r.ctx("operator")))
    assert snap_compare(app, terminal_size=(150, 30))
