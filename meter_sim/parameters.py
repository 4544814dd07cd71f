"""Settable parameters (参数) and who may write them with 14H.

Each :class:`ParameterSpec` names a DI, its default value and its :class:`Access`:

- ``PROGRAM`` — plaintext, a level 00..04 password, and the programming key pressed
  (or the meter in test mode);
- ``SECURE`` — in the field the 98 level (ciphertext + MAC through the ESAM). The
  simulation has no parameter-cipher primitive, so these are written in plaintext
  with a level 00..04 password **only in test mode** (documented simplification);
- ``FIXED`` — never by 14H (the communication address is changed with 15H; the meter
  number is set at manufacture).

A meter stores only the values that differ from the defaults, so 10,000 meters with
default parameters cost nothing. The table of specs is shared by every meter of a
kind; a subclass (the local prepay meter) extends :data:`PARAMETERS`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final

from protocol.di import encode_value

__all__ = ["PARAMETERS", "Access", "ParameterSpec", "ParameterTable"]


class Access(enum.Enum):
    """Who may write a parameter with 14H (see the module doc)."""

    PROGRAM = "program"
    SECURE = "secure"
    FIXED = "fixed"


@dataclass(frozen=True, slots=True)
class ParameterSpec:
    """A parameter: DI, access and default (a typed value, encoded with the DI's format)."""

    di: int
    access: Access
    default: Any
    raw_default: bytes = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "raw_default", encode_value(self.di, self.default))


def specs(*items: ParameterSpec) -> dict[int, ParameterSpec]:
    """A spec table by DI (``{**PARAMETERS, **specs(...)}`` extends the base table)."""
    return {s.di: s for s in items}


PARAMETERS: Final[Mapping[int, ParameterSpec]] = specs(
    ParameterSpec(0x04001001, Access.SECURE, Decimal("20.00")),  # alarm amount 1
    ParameterSpec(0x04001002, Access.SECURE, Decimal("10.00")),  # alarm amount 2
    ParameterSpec(0x04001003, Access.SECURE, Decimal("0.00")),  # overdraft limit
    ParameterSpec(0x04001004, Access.SECURE, Decimal("0.00")),  # hoarding limit
    ParameterSpec(0x04001005, Access.SECURE, Decimal("0.00")),  # close-permit amount
    ParameterSpec(0x04001401, Access.SECURE, 0),  # trip delay, minutes (跳闸延时)
    ParameterSpec(0x04001402, Access.SECURE, Decimal("0.000")),  # trip current threshold, A
    ParameterSpec(0x04001403, Access.SECURE, 0),  # large-current delayed-trip time, minutes
)
"""Parameters of every fee-control meter (the money limits matter to local meters)."""


class ParameterTable:
    """The parameter values of one meter: overrides of the shared defaults."""

    __slots__ = ("_values", "specs")

    def __init__(self, table: Mapping[int, ParameterSpec]) -> None:
        self.specs = table
        self._values: dict[int, bytes] | None = None

    def __contains__(self, di: object) -> bool:
        return di in self.specs

    def raw(self, di: int) -> bytes:
        """The value bytes of ``di`` (a known parameter)."""
        if self._values is not None and di in self._values:
            return self._values[di]
        return self.specs[di].raw_default

    def set_raw(self, di: int, raw: bytes) -> None:
        if di not in self.specs:
            raise KeyError(f"{di:08X} is not a parameter of this meter")
        if raw == self.specs[di].raw_default:
            if self._values is not None:
                self._values.pop(di, None)
            return
        if self._values is None:
            self._values = {}
        self._values[di] = bytes(raw)

    def to_state(self) -> dict[str, str]:
        return {f"{di:08X}": raw.hex() for di, raw in sorted((self._values or {}).items())}

    def restore_state(self, state: Mapping[str, str]) -> None:
        self._values = None
        for key, value in state.items():
            self.set_raw(int(key, 16), bytes.fromhex(value))
