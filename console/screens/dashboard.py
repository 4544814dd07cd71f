"""The dashboard (总览): the fee-control overview per supply unit, alarms and a trend.

An operator limited to one supply unit sees that unit only. Customers, warning,
arrears and the collection rate are the counts stored for the day (by the day's rating
or the last refresh) and the screen says as of when; pending approvals, the day's
trips, alarms and the trend are counted at every look. ``r`` counts the stored figures
again: a pass over every account (tens of seconds at 15 million), in a worker thread
behind the loading indicator while the figures shown stay; a day never counted is
counted at the first look.
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
from textual.worker import get_current_worker

from prepaid.statistics import UnitOverview
from prepaid.users import Action

from ..context import ConsoleContext
from ..queries.dashboard import DashboardData, Severity, dashboard_data
from ..widgets.chart import TrendChart
from ..widgets.table import Table
from .base import ConsoleScreen

__all__ = ["DashboardScreen"]

STALE_AFTER_S: Final = 60.0
"""Shown again after this many (real) seconds, the dashboard reads its figures again
(the stored counts and the live ones; it does not count every account again)."""

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
    DashboardScreen #dash-asof { padding: 0 1; color: $text-muted; }
    DashboardScreen LoadingIndicator { height: 3; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("r", "refresh_data", "Refresh")]

    def __init__(self, ctx: ConsoleContext) -> None:
        super().__init__(ctx)
        self.data: DashboardData | None = None
        self._loaded_at = 0.0
        self.counting = False
        """The per-account figures are being counted again (``r``)."""

    def compose(self) -> ComposeResult:
        with Vertical(id="dash-body"):
            yield Label("fee-control overview (费控概况)", id="dash-day")
            yield Label("", id="dash-asof")
            yield LoadingIndicator(id="dash-loading")
            table: DataTable[str | Text] = Table(id="dash-units", cursor_type="row")
            table.add_columns(*COLUMNS)
            yield table
            with Horizontal(id="dash-lower"):
                yield TrendChart("last 14 days", id="dash-chart")
                yield Static("no alarms", id="dash-alarms")

    def on_mount(self) -> None:
        self.query_one("#dash-alarms", Static).border_title = "alarms (告警)"
        self._reload()

    def on_screen_resume(self) -> None:
        # shown again after a while: read the figures again (the app keeps screens once
        # built); the stored counts are read, not counted again
        if (
            self.data is not None
            and not self.counting
            and time.monotonic() - self._loaded_at > STALE_AFTER_S
        ):
            self._reload()

    def palette_commands(self) -> Iterable[SystemCommand]:
        yield SystemCommand(
            "Refresh the dashboard",
            "count customers, balances and readings of every account again (r)",
            self.action_refresh_data,
        )

    def _reload(self) -> None:
        self.query_one("#dash-loading").display = True
        self._load(refresh=False)

    def action_refresh_data(self) -> None:
        """Count the stored figures again, in the background (the shown ones stay)."""
        if self.counting:
            self.notify("the dashboard is being counted already", timeout=3)
            return
        self.counting = True
        self.query_one("#dash-loading").display = True
        self._show_as_of()
        self._load(refresh=True)

    @work(thread=True, exclusive=True, group="dashboard")
    def _load(self, *, refresh: bool) -> None:
        try:
            data = dashboard_data(
                self.ctx.engine,
                self.ctx.clock.now(),
                supply_unit=self.ctx.user.supply_unit,
                refresh=refresh,
                clock=self.ctx.clock,
            )
        except Exception as exc:  # shown on screen; the console goes on
            if not get_current_worker().is_cancelled:
                self.app.call_from_thread(self._failed, exc)
            return
        if not get_current_worker().is_cancelled:  # a later look replaced this one
            self.app.call_from_thread(self._show, data)

    def _failed(self, exc: Exception) -> None:
        self.counting = False
        self.query_one("#dash-loading").display = False
        self._show_as_of()
        self.query_one("#dash-alarms", Static).update(
            Text(f"the overview could not be computed: {exc}; press r to try again", style="red")
        )

    def _show_as_of(self) -> None:
        """Say as of when the stored figures are (and that they are being counted)."""
        label = self.query_one("#dash-asof", Label)
        data = self.data
        if data is None:
            label.update("counting customers, balances and readings …" if self.counting else "")
            return
        when = data.overview.as_of()
        if self.counting:
            label.update(f"counting again … (customers to collection shown {when})")
            return
        label.update(
            f"customers, warning, arrears, collection {when}"
            "; approvals and trips now · r counts again"
        )

    def _show(self, data: DashboardData) -> None:
        self.data = data
        self.counting = False
        self._loaded_at = time.monotonic()
        self.query_one("#dash-loading").display = False
        self.query_one("#dash-day", Label).update(
            f"fee-control overview (费控概况) on {data.day.isoformat()}"
        )
        self._show_as_of()
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
