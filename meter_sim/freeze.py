"""Frozen data (冻结数据): daily freezes at 00:00 (日冻结, DIs 0506xxxx) and instant freezes.

A freeze is a snapshot of the forward and reverse energy blocks (total + T1..T4,
0.01 kWh) with the minute it was taken. The store is a flat ``array`` (11 integers a
freeze), newest last, so 62 daily freezes of 10,000 meters cost a few MB.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from typing import Any, Final, NamedTuple

__all__ = ["DAILY_FREEZES_KEPT", "INSTANT_FREEZES_KEPT", "Freeze", "FreezeStore"]

DAILY_FREEZES_KEPT: Final = 62
INSTANT_FREEZES_KEPT: Final = 3
_WIDTH: Final = 11
"""Per freeze: meter minute, forward block (5), reverse block (5)."""


class Freeze(NamedTuple):
    """One frozen snapshot."""

    minute: int
    """Meter time of the freeze, in minutes since 2000-01-01 00:00."""
    forward: tuple[int, ...]
    """Total + T1..T4 in 0.01 kWh."""
    reverse: tuple[int, ...]


class FreezeStore:
    """The last ``kept`` freezes; :meth:`get` (1 = the most recent) as the 05xxxxnn DIs count."""

    __slots__ = ("_data", "kept")

    def __init__(self, kept: int = DAILY_FREEZES_KEPT) -> None:
        self.kept = kept
        self._data = array("q")

    def __len__(self) -> int:
        return len(self._data) // _WIDTH

    def take(self, minute: int, forward: Sequence[int], reverse: Sequence[int]) -> None:
        """Store a freeze taken at meter ``minute``; the oldest beyond ``kept`` is dropped."""
        self._data.extend([minute, *forward, *reverse])
        excess = len(self._data) - self.kept * _WIDTH
        if excess > 0:
            del self._data[:excess]

    def get(self, n: int) -> Freeze | None:
        """The ``n``-th most recent freeze (1-based), or ``None`` if there is none."""
        if not 1 <= n <= len(self):
            return None
        start = len(self._data) - n * _WIDTH
        row = self._data[start : start + _WIDTH]
        return Freeze(row[0], tuple(row[1:6]), tuple(row[6:11]))

    def clear(self) -> None:
        self._data = array("q")

    def to_state(self) -> list[int]:
        return list(self._data)

    def restore_state(self, state: Sequence[Any]) -> None:
        data = array("q", (int(v) for v in state))
        if len(data) % _WIDTH or len(data) > self.kept * _WIDTH:
            raise ValueError(f"freezes must be rows of {_WIDTH} integers, at most {self.kept}")
        self._data = data
