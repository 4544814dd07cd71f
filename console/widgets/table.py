"""The console's data table: Textual's ``DataTable`` with a picture that never goes stale.

``DataTable`` measures its columns when the app is next idle, after rows were added.
On a busy machine (or a slow SSH link) a frame can be painted in between: the header
is then drawn at the old column widths and kept in the table's render cache, whose key
does not change when the widths do — the header stays misaligned with its rows until
something else touches the table. :class:`Table` drops that picture once the widths
are measured.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from textual.widgets import DataTable
from textual.widgets.data_table import RowKey

__all__ = ["Table"]

CellType = TypeVar("CellType")


class Table(DataTable[CellType]):
    """A ``DataTable`` repainted after its idle-time column measuring (see the module doc)."""

    def _update_dimensions(self, new_rows: Iterable[RowKey]) -> None:
        super()._update_dimensions(new_rows)
        # the render caches are keyed by the update count: a new count, a fresh picture
        self._update_count += 1
        self.refresh()
