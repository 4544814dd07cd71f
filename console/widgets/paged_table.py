"""A table that shows one page of a keyset-paged query at a time (分页表格).

Nothing is loaded beyond the page on screen: the screen gives a ``fetch(cursor,
limit)`` function that returns a :class:`Page` (the rows after ``cursor`` and the
cursor of the next page); the table keeps the cursors of the pages seen so that
"previous" goes back without OFFSET. Fetching runs in a worker thread, so a slow query
never freezes the console; an error is shown in the status line.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Button, DataTable, Label

from .table import Table

__all__ = ["Fetch", "Page", "PagedTable"]


@dataclass(frozen=True, slots=True)
class Page:
    """One page: the cells of each row, a key per row, and the next page's cursor."""

    rows: Sequence[Sequence[str | Text]]
    keys: Sequence[str]
    next_cursor: object | None = None
    """Where the next page starts; ``None`` on the last page."""
    note: str = field(default="")
    """A line shown under the table (e.g. what was searched)."""


Fetch = Callable[[object | None, int], Page]


class PagedTable(Vertical):
    """A :class:`DataTable` fed one page at a time; Enter or a click chooses a row."""

    DEFAULT_CSS = """
    PagedTable { height: 1fr; }
    PagedTable DataTable { height: 1fr; }
    PagedTable .pager { height: auto; }
    PagedTable .pager Button { min-width: 12; margin-right: 1; }
    PagedTable .pager Label { padding: 1 1 0 1; }
    """

    class RowChosen(Message):
        """A row was chosen (Enter or click); ``key`` is its key."""

        def __init__(self, table: PagedTable, key: str) -> None:
            super().__init__()
            self.table = table
            self.key = key

        @property
        def control(self) -> PagedTable:
            return self.table

    def __init__(
        self,
        columns: Sequence[str],
        *,
        page_size: int = 50,
        fetch: Fetch | None = None,
        id: str | None = None,
    ) -> None:
        super().__init__(id=id)
        self.columns = tuple(columns)
        self.page_size = page_size
        self.fetch: Fetch | None = fetch
        self._cursors: list[object | None] = [None]
        self._next: object | None = None
        self.page: Page | None = None

    def compose(self) -> ComposeResult:
        table: DataTable[str | Text] = Table(cursor_type="row", zebra_stripes=True)
        table.add_columns(*self.columns)
        yield table
        with Horizontal(classes="pager"):
            yield Button("◀ Previous", id="page-prev", disabled=True)
            yield Button("Next ▶", id="page-next", disabled=True)
            yield Label("", id="page-status")

    @property
    def table(self) -> DataTable[str | Text]:
        return self.query_one(DataTable)

    @property
    def page_number(self) -> int:
        return len(self._cursors)

    def load(self, fetch: Fetch | None = None) -> None:
        """Start again at the first page (of ``fetch`` when given)."""
        if fetch is not None:
            self.fetch = fetch
        self._cursors = [None]
        self._show_page()

    def next_page(self) -> None:
        if self._next is not None:
            self._cursors.append(self._next)
            self._show_page()

    def previous_page(self) -> None:
        if len(self._cursors) > 1:
            self._cursors.pop()
            self._show_page()

    def _show_page(self) -> None:
        self.query_one("#page-status", Label).update("loading…")
        self._fetch(self._cursors[-1])

    @work(thread=True, exclusive=True, group="page")
    def _fetch(self, cursor: object | None) -> None:
        if self.fetch is None:
            return
        try:
            page = self.fetch(cursor, self.page_size)
        except Exception as exc:  # shown, never a crash: the operator can search again
            self.app.call_from_thread(self._failed, exc)
            return
        self.app.call_from_thread(self._fill, page)

    def _failed(self, exc: Exception) -> None:
        self.query_one("#page-status", Label).update(f"[red]could not load the page: {exc}[/]")

    def _fill(self, page: Page) -> None:
        self.page = page
        self._next = page.next_cursor
        table = self.table
        table.clear()
        for key, row in zip(page.keys, page.rows, strict=True):
            table.add_row(*row, key=key)
        shown = f"page {self.page_number}: {len(page.rows)} row(s)"
        if page.next_cursor is not None:
            shown += ", more on the next page"
        if page.note:
            shown += f" — {page.note}"
        self.query_one("#page-status", Label).update(shown)
        self.query_one("#page-prev", Button).disabled = self.page_number <= 1
        self.query_one("#page-next", Button).disabled = page.next_cursor is None

    @on(Button.Pressed, "#page-prev")
    def _prev(self, event: Button.Pressed) -> None:
        event.stop()
        self.previous_page()

    @on(Button.Pressed, "#page-next")
    def _next_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.next_page()

    @on(DataTable.RowSelected)
    def _chosen(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if event.row_key.value is not None:
            self.post_message(self.RowChosen(self, event.row_key.value))
