"""Snapshot of the dunning batches and the records of one (fixed data and clock)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from console.screens.dunning import DunningScreen
from prepaid.dunning import run_dunning

from .workflow_console_rig import ScreenApp, console_rig


def test_dunning_batches_and_records(snap_compare: Any, tmp_path: Path) -> None:
    r = console_rig(tmp_path)
    run_dunning(
        r.engine, clock=r.rig.clock, by=r.staff["operator"], auto=False, settings=r.rig.settings
    )
    screen = DunningScreen(r.ctx("operator"), notices_dir=Path("notices"))
    assert snap_compare(ScreenApp(screen), terminal_size=(160, 36))
