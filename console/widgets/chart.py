"""A trend chart (趋势图) over days: one or more integer series drawn with plotext.

Values are plotted as given (e.g. yuan as ``Decimal`` converted for drawing only; the
tables beside a chart show the exact amounts). An empty series says so instead of an
empty frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from decimal import Decimal

from textual_plotext import PlotextPlot

__all__ = ["TrendChart"]


class TrendChart(PlotextPlot):
    """Series by day; call :meth:`show` with the days and ``{label: values}``."""

    DEFAULT_CSS = """
    TrendChart { height: 14; min-height: 8; }
    """

    def __init__(self, title: str, *, y_label: str = "", id: str | None = None) -> None:
        super().__init__(id=id)
        self.title = title
        self.y_label = y_label
        self.series: dict[str, list[float]] = {}
        self.days: list[date] = []

    def show(self, days: Sequence[date], series: dict[str, Sequence[int | Decimal]]) -> None:
        self.days = list(days)
        self.series = {k: [float(v) for v in vs] for k, vs in series.items()}
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title(self.title if days else f"{self.title}: no data yet")
        plt.date_form("Y-m-d")
        if days:
            xs = [d.isoformat() for d in days]
            for label, values in self.series.items():
                plt.plot(xs, values, label=label, marker="braille")
        if self.y_label:
            plt.ylabel(self.y_label)
        self.refresh()
