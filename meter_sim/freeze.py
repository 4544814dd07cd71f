"""Frozen data (冻结数据): daily freezes at 00:00 (日冻结, DIs 0506xxxx) and instant freezes.

A freeze is a snapshot of the forward and reverse energy blocks (total + T1..T4,
0.01 kWh) with the minute it was taken. The store is a flat ``array`` (11 integers a
freeze), newest last, so 62 daily freezes of 10,000 meters cost a few MB.

The daily-freeze data block (日冻结数据块, DI ``0506FFnn``) answers every item of
freeze ``nn`` in one reply, as [FW-A] ``ReadFreezedRec`` builds it: the items in
DI1 order, each followed by an ``AAH`` separator, an item the meter does not
keep being its separator alone::

    time (YYMMDDhhmm, 5) AA  forward block (20) AA  reverse block (20) AA
    AA×8 (combined reactive 1/2, quadrants I–IV, forward / reverse max demand)
    AA (variable data: not kept)

57 bytes. BCD never contains ``AAH``, so a master splits the block on it.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Final, NamedTuple

__all__ = [
    "BLOCK_SEPARATOR",
    "DAILY_BLOCK_SIZE",
    "DAILY_FREEZES_KEPT",
    "INSTANT_FREEZES_KEPT",
    "Freeze",
    "FreezeStore",
    "daily_block",
]

DAILY_FREEZES_KEPT: Final = 62
INSTANT_FREEZES_KEPT: Final = 3
_WIDTH: Final = 11
"""Per freeze: meter minute, forward block (5), reverse block (5)."""
BLOCK_SEPARATOR: Final = b"\xaa"
"""Ends each item of a data block (数据块分隔符 AAH)."""
_NOT_KEPT: Final = BLOCK_SEPARATOR * 9
"""Items 03..0A and 10 of the daily-freeze block: not kept by a single-phase meter."""
DAILY_BLOCK_SIZE: Final = 5 + 1 + 20 + 1 + 20 + 1 + len(_NOT_KEPT)
_EPOCH: Final = datetime(2000, 1, 1)
_TIMES: dict[int, str] = {}
"""Freeze minute → its YYMMDDhhmm digits (a fleet's freezes share a few minutes)."""
_BLOCK_REVERSED: Final = "AA" * (len(_NOT_KEPT) + 1) + "%08d" * 5 + "AA" + "%08d" * 5 + "AA%s"


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
        self.take_row(minute, (*forward, *reverse))

    def take_row(self, minute: int, blocks: Sequence[int]) -> None:
        """:meth:`take` with the forward and reverse blocks as one row of 10 integers."""
        if len(blocks) != _WIDTH - 1:
            raise ValueError(f"a freeze holds {_WIDTH - 1} registers, got {len(blocks)}")
        data = self._data
        data.append(minute)
        data.extend(blocks)
        excess = len(data) - self.kept * _WIDTH
        if excess > 0:
            del data[:excess]

    def get(self, n: int) -> Freeze | None:
        """The ``n``-th most recent freeze (1-based), or ``None`` if there is none."""
        if not 1 <= n <= len(self):
            return None
        start = len(self._data) - n * _WIDTH
        row = self._data[start : start + _WIDTH]
        return Freeze(row[0], tuple(row[1:6]), tuple(row[6:11]))

    def block(self, n: int) -> bytes | None:
        """The daily-freeze data block of the ``n``-th most recent freeze, or ``None``."""
        if not 1 <= n <= len(self):
            return None
        start = len(self._data) - n * _WIDTH
        return _block(self._data[start : start + _WIDTH])

    def clear(self) -> None:
        self._data = array("q")

    def to_state(self) -> list[int]:
        return list(self._data)

    def restore_state(self, state: Sequence[Any]) -> None:
        data = array("q", (int(v) for v in state))
        if len(data) % _WIDTH or len(data) > self.kept * _WIDTH:
            raise ValueError(f"freezes must be rows of {_WIDTH} integers, at most {self.kept}")
        self._data = data


def _time_digits(minute: int) -> str:
    """``YYMMDDhhmm`` of meter ``minute`` since 2000-01-01."""
    text = _TIMES.get(minute)
    if text is None:
        t = _EPOCH + timedelta(minutes=minute)
        text = f"{t.year % 100:02d}{t.month:02d}{t.day:02d}{t.hour:02d}{t.minute:02d}"
        if len(_TIMES) > 4096:
            _TIMES.clear()
        _TIMES[minute] = text
    return text


def _block(row: Sequence[int]) -> bytes:
    """The block of one stored row (minute, forward ×5, reverse ×5)."""
    m = 100_000_000  # registers roll over past 999999.99 kWh
    # Written back to front, then reversed: every item comes out low byte first.
    return bytes.fromhex(
        _BLOCK_REVERSED
        % (
            row[10] % m,
            row[9] % m,
            row[8] % m,
            row[7] % m,
            row[6] % m,
            row[5] % m,
            row[4] % m,
            row[3] % m,
            row[2] % m,
            row[1] % m,
            _time_digits(row[0]),
        )
    )[::-1]


def daily_block(freeze: Freeze) -> bytes:
    """The daily-freeze data block (``0506FFnn``) of ``freeze`` (see the module doc)."""
    return _block((freeze.minute, *freeze.forward, *freeze.reverse))
