"""Keyset paging for the console's long lists (newest first, no OFFSET): a page is the
rows with an id below a cursor; the screen keeps the cursors of the pages it has seen
(:class:`Pager`) so that "previous" goes back without counting rows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final, Generic, TypeVar

__all__ = ["PAGE_SIZE", "Page", "Pager", "page_of"]

PAGE_SIZE: Final = 100
"""Rows per page on the console's paged tables."""

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """Up to ``size`` rows below ``before`` (``None``: from the newest); ``next_before``:
    the cursor of the next (older) page, ``None`` on the last page."""

    items: Sequence[T]
    before: int | None
    next_before: int | None


def page_of(rows: Sequence[T], ids: Sequence[int], before: int | None, size: int) -> Page[T]:
    """A page from ``size + 1`` rows read newest first (the extra row says more follow)."""
    more = len(rows) > size
    return Page(list(rows[:size]), before, ids[size - 1] if more else None)


@dataclass
class Pager:
    """Where a paged table is: the cursors of the pages before the current one."""

    size: int = PAGE_SIZE
    cursors: list[int | None] = field(default_factory=lambda: [None])
    next_before: int | None = None
    shown: int = 0

    @property
    def before(self) -> int | None:
        return self.cursors[-1]

    @property
    def number(self) -> int:
        return len(self.cursors)

    def reset(self) -> None:
        self.cursors = [None]

    def seen(self, page: Page[T]) -> None:
        self.next_before = page.next_before
        self.shown = len(page.items)

    def forward(self) -> bool:
        if self.next_before is None:
            return False
        self.cursors.append(self.next_before)
        return True

    def back(self) -> bool:
        if len(self.cursors) == 1:
            return False
        self.cursors.pop()
        return True

    @property
    def label(self) -> str:
        more = ", more follow (n: next)" if self.next_before is not None else ""
        back = ", p: previous" if len(self.cursors) > 1 else ""
        return f"page {self.number}: {self.shown} rows{more}{back}"
