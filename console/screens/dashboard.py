"""The dashboard (总览): the fee-control overview per supply unit, alarms and a trend.

An operator limited to one supply unit sees that unit only. The figures are
computed in a worker thread (at 15 million accounts the overview is a pass over the
accounts), so the console stays responsive; ``r`` refreshes.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import ClassVar, Final

from rich.text import Text
from textual import work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Label, LoadingIndicator, Static

from prepaid.statistics import UnitOverview
from prepaid.users import Action

from ..context import ConsoleContext
from ..queries.dashboard import DashboardData, Severity, dashboard_data
from ..widgets.chart import TrendChart
from .base import ConsoleScreen

__all__ = ["DashboardScreen"]

STALE_AFTER_S: Final = 60.0
"""Shown again after this many (real) seconds, the dashboard counts again."""

COLUMNS = (
    "supply unit",
    "name",
    "customers",
    "warning",
    "arrears",
    "pending approval",
    "trips today",
    "trip failures",
    "collection",
)


def _rate(row: UnitOverview) -> str:
    return "-" if row.collection_rate is None else f"{row.collection_rate * 100:.2f}%"


def _cells(row: UnitOverview, *, bold: bool = False) -> list[str | Text]:
    cells: list[str | Text] = [
        row.supply_unit,
        row.name,
        *(
            Text(str(v), justify="right")
            for v in (
                row.customers,
                row.in_warning,
                row.in_arrears,
                row.pending_approvals,
                row.trips_today,
                row.trip_failures,
            )
        ),
        Text(_rate(row), justify="right"),
    ]
    if bold:
        cells = [
            Text(str(c), style="bold", justify="right" if i > 1 else "left")
            for i, c in enumerate(cells)
        ]
    return cells


class DashboardScreen(ConsoleScreen):
    """The fee-control overview (费控概况) for today, alarms and a 14-day trend."""

    KEY = "dashboard"
    TITLE = "Dashboard"
    ACTIONS = frozenset({Action.VIEW})
    DEFAULT_CSS = """
    DashboardScreen #dash-body { height: 1fr; }
    DashboardScreen #dash-units { height: auto; max-height: 16; }
    DashboardScreen #dash-lower { height: 1fr; }
    DashboardScreen #dash-alarms { width: 1fr; height: 1fr; border: round $warning; padding: 0 1; }
    DashboardScreen #dash-chart { width: 2fr; height: 1fr; }
    DashboardScreen #dash-day { padding: 0 1; text-style: bold; }
    DashboardScreen LoadingIndicator { height: 3; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("r", "refresh_data", "Refresh")]

    def __init__(self, ctx: ConsoleContext) -> None:
        super().__init__(ctx)
        self.data: DashboardData | None = None
        self._loaded_at = 0.0

    def compose(self) -> ComposeResult:
        with Vertical(id="dash-body"):
            yield Label("fee-control overview (费控概况)", id="dash-day")
            yield LoadingIndicator(id="dash-loading")
            table: DataTable[str | Text] = DataTable(id="dash-units", cursor_type="row")
            table.add_columns(*COLUMNS)
            yield table
            with Horizontal(id="dash-lower"):
                yield TrendChart("last 14 days", id="dash-chart")
                yield Static("no alarms", id="dash-alarms")

    def on_mount(self) -> None:
        self.query_one("#dash-alarms", Static).border_title = "alarms (告警)"
        self.action_refresh_data()

    def on_screen_resume(self) -> None:
        # shown again after a while: count again (the app keeps screens once built)
        if self.data is not None and time.monotonic() - self._loaded_at > STALE_AFTER_S:
            self.action_refresh_data()

    def palette_commands(self) -> Iterable[SystemCommand]:
        yield SystemCommand("Refresh the dashboard", "count again (r)", self.action_refresh_data)

    def action_refresh_data(self) -> None:
        self.query_one("#dash-loading").display = True
        self._load()

    @work(thread=True, exclusive=True, group="dashboard")
    def _load(self) -> None:
        try:
            data = dashboard_data(
                self.ctx.engine, self.ctx.clock.now(), supply_unit=self.ctx.user.supply_unit
            )
        except Exception as exc:  # shown on screen; the console goes on
            self.app.call_from_thread(self._failed, exc)
            return
        self.app.call_from_thread(self._show, data)

    def _failed(self, exc: Exception) -> None:
        self.query_one("#dash-loading").display = False
        self.query_one("#dash-alarms", Static).update(
            Text(f"the overview could not be computed: {exc}; press r to try again", style="red")
        )

    def _show(self, data: DashboardData) -> None:
        self.data = data
        self._loaded_at = time.monotonic()
        self.query_one("#dash-loading").display = False
        self.query_one("#dash-day", Label).update(
            f"fee-control overview (费控概况) on {data.day.isoformat()}"
        )
        table = self.query_one("#dash-units", DataTable)
        table.clear()
        for row in data.units:
            table.add_row(*_cells(row), key=row.supply_unit)
        if len(data.units) > 1:
            table.add_row(*_cells(data.total, bold=True), key="total")
        lines = Text()
        for alarm in data.alarms:
            style = "bold red" if alarm.severity is Severity.ERROR else "yellow"
            lines.append(f"● {alarm.text}\n", style=style)
        self.query_one("#dash-alarms", Static).update(lines if data.alarms else "no alarms")
        t = data.trend
        self.query_one(TrendChart).show(
            t.days, {"requests": t.requests, "trips": t.trips, "failed trips": t.failures}
        )
