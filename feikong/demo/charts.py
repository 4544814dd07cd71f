"""The demo report's charts as PNG files (matplotlib, Agg: no display needed).

:func:`write_charts` draws four charts of a :class:`~feikong.demo.report.DemoReport`:

- ``balance_distribution.png`` — accounts per real-time balance band (yuan);
- ``collection_rate.png`` — the daily collection rate (meters with the day's freeze);
- ``trips_per_day.png`` — remote trips that succeeded and failed trip attempts per day;
- ``messages_per_type.png`` — messages per kind.

Figures are built with :class:`matplotlib.figure.Figure` and the Agg canvas directly
(no pyplot: no global state, safe in any thread). Labels are English, so no CJK font is
needed. Money is converted to float only to draw it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from .report import DemoReport

__all__ = ["CHART_FILES", "write_charts"]

CHART_FILES: Final = (
    "balance_distribution.png",
    "collection_rate.png",
    "trips_per_day.png",
    "messages_per_type.png",
)

_SIZE: Final = (8.0, 4.0)
_DPI: Final = 100
_BLUE: Final = "#2f6db5"
_RED: Final = "#c0392b"


def _figure() -> tuple[Any, Any]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=_SIZE, dpi=_DPI)
    FigureCanvasAgg(figure)
    return figure, figure.add_subplot()


def _save(figure: Any, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, format="png")
    return path


def _integer_ticks(axis: Any) -> None:
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(integer=True))


def _day_axis(axes: Any, report: DemoReport) -> list[str]:
    labels = [d.day.strftime("%m-%d") for d in report.daily]
    step = max(1, len(labels) // 15)
    axes.set_xticks(range(0, len(labels), step))
    axes.set_xticklabels(labels[::step], rotation=45, ha="right", fontsize=8)
    axes.set_xlabel("day")
    return labels


def balance_chart(report: DemoReport, path: Path) -> Path:
    figure, axes = _figure()
    labels = [b.label for b in report.bands]
    counts = [b.accounts for b in report.bands]
    colours = [_RED if b.high_fen is not None and b.high_fen <= 0 else _BLUE for b in report.bands]
    bars = axes.bar(labels, counts, color=colours)
    axes.bar_label(bars, fontsize=8)
    axes.set_title(f"Real-time balances ({report.active} active accounts)")
    axes.set_xlabel("balance (yuan)")
    axes.set_ylabel("accounts")
    axes.tick_params(axis="x", labelsize=8)
    _integer_ticks(axes.yaxis)
    return _save(figure, path)


def collection_chart(report: DemoReport, path: Path) -> Path:
    figure, axes = _figure()
    rates = [
        float(d.collection_rate * 100) if d.collection_rate is not None else float("nan")
        for d in report.daily
    ]
    axes.plot(range(len(rates)), rates, marker="o", markersize=3, color=_BLUE)
    _day_axis(axes, report)
    axes.set_ylim(0, 105)
    axes.set_ylabel("collection rate (%)")
    axes.set_title("Daily collection rate (meters with the day's freeze)")
    axes.grid(True, alpha=0.3)
    return _save(figure, path)


def trips_chart(report: DemoReport, path: Path) -> Path:
    figure, axes = _figure()
    xs = list(range(len(report.daily)))
    trips = [d.trips for d in report.daily]
    failures = [d.trip_failures for d in report.daily]
    width = 0.4
    axes.bar([x - width / 2 for x in xs], trips, width, label="trips", color=_BLUE)
    axes.bar([x + width / 2 for x in xs], failures, width, label="failed attempts", color=_RED)
    _day_axis(axes, report)
    axes.set_ylabel("count")
    axes.set_title("Remote trips and failed trip attempts per day")
    axes.legend()
    _integer_ticks(axes.yaxis)
    return _save(figure, path)


def messages_chart(report: DemoReport, path: Path) -> Path:
    figure, axes = _figure()
    kinds = list(report.messages)
    counts = [report.messages[k] for k in kinds]
    bars = axes.barh(kinds or ["(none)"], counts or [0], color=_BLUE)
    axes.bar_label(bars, fontsize=8)
    axes.invert_yaxis()
    axes.set_xlabel("messages")
    axes.set_title(f"Messages per type ({sum(counts)} in all)")
    axes.tick_params(axis="y", labelsize=8)
    _integer_ticks(axes.xaxis)
    return _save(figure, path)


_CHARTS: Final[tuple[Callable[[DemoReport, Path], Path], ...]] = (
    balance_chart,
    collection_chart,
    trips_chart,
    messages_chart,
)


def write_charts(report: DemoReport, out_dir: Path) -> list[Path]:
    """Draw the four charts into ``out_dir`` (created if needed); returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    return [draw(report, out_dir / name) for draw, name in zip(_CHARTS, CHART_FILES, strict=True)]
