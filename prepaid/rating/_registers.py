"""Rate registers of a daily reading (分时示值), as the head-end stores them.

The daily frozen forward active energy block (DL/T 645 DI 0506 01 01: total, then
rates 1–4 = sharp, peak, flat, valley) is one ``headend_reading`` row whose
``energy_ckwh`` is the total register. Time-of-use rating also needs the rate
registers; they are read from the row's ``value`` text: five decimal kWh values
separated by commas or spaces (``"1234.56,0.00,800.00,0.00,434.56"``).
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Final

import numpy as np
from numpy.typing import NDArray

__all__ = ["DAILY_FORWARD_DI", "TOU_REGISTER_ORDER", "parse_rate_blocks", "parse_rate_registers"]

#: 上1次日冻结正向有功电能数据: the daily freeze of 00:00, total + 4 rate registers.
DAILY_FORWARD_DI: Final = 0x05060101

#: The rate registers of the block in DL/T 645 order (费率1..4 = 尖峰平谷).
TOU_REGISTER_ORDER: Final = ("sharp", "peak", "flat", "valley")

_SPLIT: Final = re.compile(r"[,\s;]+")


def parse_rate_registers(value: str | None) -> tuple[int, int, int, int] | None:
    """The four rate registers (0.01 kWh) of a reading's value text, or ``None``.

    ``None`` when the text is not five non-negative decimals (total and four rates)
    with at most two decimal places.
    """
    if not value:
        return None
    parts = [p for p in _SPLIT.split(value.strip()) if p]
    if len(parts) != 5:
        return None
    out: list[int] = []
    for part in parts[1:]:
        try:
            number = Decimal(part)
        except InvalidOperation:
            return None
        scaled = number * 100
        if not number.is_finite() or number < 0 or scaled != scaled.to_integral_value():
            return None
        out.append(int(scaled))
    return (out[0], out[1], out[2], out[3])


_EXACT_LIMIT: Final = 10.0**12  # below this, a float times 100 is within 1e-3 of its integer


def parse_rate_blocks(values: list[str | None]) -> NDArray[np.int64]:
    """:func:`parse_rate_registers` of many texts at once: an ``(n, 4)`` array, ``-1`` rows
    where a text is not usable.

    The common form (``"t,s,p,f,v"`` with at most two decimals) is parsed by numpy in
    one pass; the values are checked to be whole hundredths, and any text that is not
    in that form goes through the exact :func:`parse_rate_registers`.
    """
    n = len(values)
    out = np.full((n, 4), -1, dtype=np.int64)
    simple = [i for i, v in enumerate(values) if v and v.count(",") == 4 and " " not in v]
    if simple:
        joined = ",".join(values[i] or "" for i in simple)
        numbers = np.fromstring(joined, dtype=np.float64, sep=",")
        if numbers.size == 5 * len(simple):
            block = numbers.reshape(-1, 5)[:, 1:] * 100.0
            whole = np.round(block)
            good = (
                (np.abs(block - whole) < 1e-3).all(axis=1)
                & (block >= 0).all(axis=1)
                & (block < _EXACT_LIMIT).all(axis=1)
            )
            rows = np.asarray(simple, dtype=np.int64)
            out[rows[good]] = whole[good].astype(np.int64)
            rest = rows[~good].tolist()
        else:
            rest = simple
    else:
        rest = []
    done = set(simple) - set(rest)
    for i in range(n):
        if i in done:
            continue
        parsed = parse_rate_registers(values[i])
        if parsed is not None:
            out[i] = parsed
    return out
