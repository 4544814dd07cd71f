"""Energy registers (电能量寄存器): forward and reverse active energy by tariff.

Energy is kept in integers of 1e-5 kWh (:data:`UNITS_PER_KWH`) so that lazy accrual
never loses a fraction; the registers the master reads have the meter's resolution,
0.01 kWh (XXXXXX.XX). A register's total is the sum of its tariff registers *as
read*, so what a head-end reads always adds up (total = T1 + T2 + T3 + T4).

Settlement-period snapshots (结算日电能量, DIs ``000x00nn``): on the settlement day
(the 1st, 00:00) the current registers are copied to period 1 and older periods
shift; 12 are kept.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from typing import Any, Final

from .tou import TARIFFS

__all__ = [
    "COMBINED",
    "FORWARD",
    "REVERSE",
    "SETTLEMENTS_KEPT",
    "UNITS_PER_CKWH",
    "UNITS_PER_KWH",
    "EnergyRegisters",
]

UNITS_PER_KWH: Final = 100_000
UNITS_PER_CKWH: Final = 1_000
"""Internal units per register step (0.01 kWh)."""
SETTLEMENTS_KEPT: Final = 12
COMBINED: Final = 0
FORWARD: Final = 1
REVERSE: Final = 2
"""DI2 of the energy DIs: combined, forward, reverse active."""
_SNAPSHOT: Final = 2 * TARIFFS
"""A settlement snapshot: forward T1..T4 then reverse T1..T4, in 0.01 kWh."""


class EnergyRegisters:
    """Forward and reverse active energy per tariff, and 12 settlement snapshots.

    Combined active energy (组合有功) is forward + reverse (combination word 05H).
    """

    __slots__ = ("_settled", "forward", "reverse")

    def __init__(self) -> None:
        self.forward = [0] * TARIFFS
        """Internal units (1e-5 kWh) per tariff 1..4."""
        self.reverse = [0] * TARIFFS
        self._settled = array("q")
        """Newest first: ``_SNAPSHOT`` values per settled period."""

    def add_forward(self, deltas: Sequence[int]) -> list[int]:
        """Add energy (1e-5 kWh per tariff); return the register steps (0.01 kWh) it made."""
        fwd = self.forward
        if len(deltas) == 4 == len(fwd):  # (TARIFFS) every accrual: unrolled
            a, b, c, d = fwd
            da, db, dc, dd = deltas
            fwd[0] = na = a + da
            fwd[1] = nb = b + db
            fwd[2] = nc = c + dc
            fwd[3] = nd = d + dd
            ck = UNITS_PER_CKWH
            return [na // ck - a // ck, nb // ck - b // ck, nc // ck - c // ck, nd // ck - d // ck]
        steps = []
        for k, delta in enumerate(deltas):
            before = fwd[k]
            fwd[k] = before + delta
            steps.append((before + delta) // UNITS_PER_CKWH - before // UNITS_PER_CKWH)
        return steps

    def tariffs(self, kind: int) -> list[int]:
        """Current tariff registers 1..4 of ``kind`` (FORWARD, REVERSE, COMBINED) in 0.01 kWh."""
        if kind == FORWARD:
            return [u // UNITS_PER_CKWH for u in self.forward]
        if kind == REVERSE:
            return [u // UNITS_PER_CKWH for u in self.reverse]
        return [(f + r) // UNITS_PER_CKWH for f, r in zip(self.forward, self.reverse, strict=True)]

    def block(self, kind: int, period: int = 0) -> list[int] | None:
        """Total + T1..T4 (0.01 kWh) now (``period`` 0) or ``period`` settlements ago.

        A period before the meter's first settlement reads as zeros; ``None`` for a
        period outside 0..12.
        """
        if period == 0:
            values = self.tariffs(kind)
        elif 1 <= period <= SETTLEMENTS_KEPT:
            start = (period - 1) * _SNAPSHOT
            snap = self._settled[start : start + _SNAPSHOT]
            if not snap:
                values = [0] * TARIFFS
            elif kind == FORWARD:
                values = list(snap[:TARIFFS])
            elif kind == REVERSE:
                values = list(snap[TARIFFS:])
            else:
                values = [f + r for f, r in zip(snap[:TARIFFS], snap[TARIFFS:], strict=True)]
        else:
            return None
        return [sum(values), *values]

    def frozen(self) -> tuple[int, ...]:
        """The forward then the reverse block (total + T1..T4 each, 0.01 kWh) for a freeze:
        ``block(FORWARD) + block(REVERSE)`` in one go."""
        a, b, c, d = self.forward
        a //= UNITS_PER_CKWH
        b //= UNITS_PER_CKWH
        c //= UNITS_PER_CKWH
        d //= UNITS_PER_CKWH
        e, f, g, h = self.reverse
        e //= UNITS_PER_CKWH
        f //= UNITS_PER_CKWH
        g //= UNITS_PER_CKWH
        h //= UNITS_PER_CKWH
        return (a + b + c + d, a, b, c, d, e + f + g + h, e, f, g, h)

    @property
    def settled_periods(self) -> int:
        return len(self._settled) // _SNAPSHOT

    def settle(self) -> None:
        """Copy the current registers to settlement period 1 (结算); drop period 13."""
        snap = array("q", self.tariffs(FORWARD) + self.tariffs(REVERSE))
        self._settled = snap + self._settled[: (SETTLEMENTS_KEPT - 1) * _SNAPSHOT]

    def clear(self) -> None:
        """Meter clear (电表清零): every register and snapshot to zero."""
        self.forward = [0] * TARIFFS
        self.reverse = [0] * TARIFFS
        self._settled = array("q")

    def to_state(self) -> dict[str, Any]:
        return {
            "forward": list(self.forward),
            "reverse": list(self.reverse),
            "settled": list(self._settled),
        }

    def restore_state(self, state: dict[str, Any]) -> None:
        forward = [int(v) for v in state["forward"]]
        reverse = [int(v) for v in state["reverse"]]
        settled = array("q", (int(v) for v in state["settled"]))
        if len(forward) != TARIFFS or len(reverse) != TARIFFS:
            raise ValueError(f"energy registers need {TARIFFS} tariffs each")
        if len(settled) % _SNAPSHOT or len(settled) > SETTLEMENTS_KEPT * _SNAPSHOT:
            raise ValueError("settlement snapshots are malformed")
        self.forward, self.reverse, self._settled = forward, reverse, settled
