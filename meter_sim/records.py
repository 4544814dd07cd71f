"""Event records (事件记录): trip (跳闸, 1Dxxxxxx), close (合闸, 1Exxxxxx), meter clear.

Each log keeps a total count and the last 10 records: time, operator code, forward
and reverse active totals at the time (PROTOCOL.md §2, [FW-A] ``Tab_Reley``). The
operator code ``FFFFFFFF`` marks an action of the meter itself (e.g. a money trip, or
a close after the meter's own permit-close).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final, NamedTuple

from protocol.bcd import bcd_encode

__all__ = [
    "METER_OPERATOR",
    "RECORDS_KEPT",
    "EventLog",
    "EventRecord",
    "encode_energy",
    "encode_operator",
]

RECORDS_KEPT: Final = 10
METER_OPERATOR: Final = "FFFFFFFF"
"""Operator code of the meter's own actions."""
_MAX_COUNT: Final = 999_999
"""The count register is NNNNNN."""


class EventRecord(NamedTuple):
    """One record; times are meter seconds since 2000-01-01, energies 0.01 kWh."""

    time_s: int
    operator: str
    forward: int
    reverse: int


class EventLog:
    """Count + the last :data:`RECORDS_KEPT` records, newest first."""

    __slots__ = ("_items", "count")

    def __init__(self) -> None:
        self.count = 0
        self._items: list[EventRecord] = []

    def add(self, record: EventRecord) -> None:
        self.count = (self.count + 1) % (_MAX_COUNT + 1)
        self._items.insert(0, record)
        del self._items[RECORDS_KEPT:]

    def get(self, n: int) -> EventRecord | None:
        """The ``n``-th most recent record (1-based), or ``None``."""
        return self._items[n - 1] if 1 <= n <= len(self._items) else None

    def clear(self) -> None:
        self.count = 0
        self._items = []

    def to_state(self) -> dict[str, Any]:
        return {"count": self.count, "items": [list(r) for r in self._items]}

    def restore_state(self, state: dict[str, Any]) -> None:
        items: Sequence[Sequence[Any]] = state["items"]
        records = [EventRecord(int(t), str(op), int(f), int(r)) for t, op, f, r in items]
        if len(records) > RECORDS_KEPT:
            raise ValueError(f"at most {RECORDS_KEPT} records are kept, got {len(records)}")
        self.count = int(state["count"])
        self._items = records


def encode_operator(operator: str) -> bytes:
    """An operator code (8 hex digits, as in the frames) as 4 bytes, low byte first."""
    return bytes.fromhex(operator)[::-1]


def encode_energy(ckwh: int) -> bytes:
    """0.01 kWh as XXXXXX.XX (rolls over past 999999.99 kWh, as a register does)."""
    return bcd_encode(ckwh % 100_000_000, 4)
