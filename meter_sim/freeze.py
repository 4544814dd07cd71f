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
_TIMES: dict[int, bytes] = {}
"""Freeze minute → its YYMMDDhhmm bytes (a fleet's freezes share a few minutes)."""


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


def _time_bytes(minute: int) -> bytes:
    """``mm hh DD MM YY`` (BCD, low byte first) of meter ``minute`` since 2000-01-01."""
    raw = _TIMES.get(minute)
    if raw is None:
        t = _EPOCH + timedelta(minutes=minute)
        raw = bytes.fromhex(f"{t.year % 100:02d}{t.month:02d}{t.day:02d}{t.hour:02d}{t.minute:02d}")
        raw = raw[::-1]
        if len(_TIMES) > 4096:
            _TIMES.clear()
        _TIMES[minute] = raw
    return raw


def _energy_block(values: Sequence[int]) -> bytes:
    """Five registers (0.01 kWh) as XXXXXX.XX BCD, each low byte first (rolls over)."""
    a, b, c, d, e = (v % 100_000_000 for v in values)
    return bytes.fromhex(f"{e:08d}{d:08d}{c:08d}{b:08d}{a:08d}")[::-1]


def daily_block(freeze: Freeze) -> bytes:
    """The daily-freeze data block (``0506FFnn``) of ``freeze`` (see the module doc)."""
    return b"".join(
        (
            _time_bytes(freeze.minute),
            BLOCK_SEPARATOR,
            _energy_block(freeze.forward),
            BLOCK_SEPARATOR,
            _energy_block(freeze.reverse),
            BLOCK_SEPARATOR,
            _NOT_KEPT,
        )
    )
