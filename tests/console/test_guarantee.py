"""The power-guarantee registry: add an area, its customers' requests are refused; remove."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Button, DataTable, Input, Select

from console.screens.guarantee import GuaranteeScreen
from prepaid.workflows import GuaranteeLockoutError

from .workflow_console_rig import CUSTOMERS, ScreenApp, click, console_rig, status


async def test_add_a_guarantee_then_remove_it(tmp_path: Path) -> None:
    r = console_rig(tmp_path)
    app = ScreenApp(GuaranteeScreen(r.ctx("operator")))
    async with app.run_test(size=(160, 40)) as pilot:
        screen = app.screen
        registry = screen.query_one("#registry", DataTable)
        assert registry.row_count == 0
        screen.query_one("#level", Select).value = "area"
        screen.query_one("#key", Input).value = "A1"
        screen.query_one("#reason", Input).value = "hospital on this area"
        await click(pilot, "#add")
        assert status(app) == "area A1 is under power guarantee"
        assert list(registry.get_row_at(0)) == ["area", "A1", "operator", "2026-03-02 08:00"]

        with pytest.raises(GuaranteeLockoutError, match="set for area A1"):
            r.request(CUSTOMERS[0])

        await click(pilot, "#remove")
        assert status(app) == "area A1: power guarantee lifted"
        assert registry.row_count == 0
    assert r.request(CUSTOMERS[0]).state.value == "requested"


async def test_unknown_codes_and_roles_without_guarantee(tmp_path: Path) -> None:
    r = console_rig(tmp_path)
    app = ScreenApp(GuaranteeScreen(r.ctx("operator")))
    async with app.run_test(size=(160, 40)) as pilot:
        app.screen.query_one("#key", Input).value = "NOSUCH"
        await click(pilot, "#add")
        assert status(app).startswith("refused: ") and "NOSUCH" in status(app)
    app = ScreenApp(GuaranteeScreen(r.ctx("customer-service")))
    async with app.run_test(size=(160, 40)):
        assert app.screen.query_one("#add", Button).disabled
