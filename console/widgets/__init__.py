"""Widgets shared by the console's screens: paged table, chart, confirmation, progress."""

from __future__ import annotations

from .chart import TrendChart
from .confirm import Confirmation, ConfirmDialog
from .paged_table import Page, PagedTable
from .progress import JobProgress

__all__ = ["ConfirmDialog", "Confirmation", "JobProgress", "Page", "PagedTable", "TrendChart"]
