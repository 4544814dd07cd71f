"""The remote fee-control meter (远程费控电能表).

The head-end keeps the money and sends authenticated 1CH commands (trip, permit
close, alarm, power guarantee); the meter does no money calculation and shows remote
mode in status word 1 bit6. Asked for the money registers of a local meter
(0090xxxx: remaining and overdraft amount or energy) it answers ERR 02, as [FW-A]
does in remote mode. Everything else is the common core, :class:`meter_sim.meter.Meter`.
"""

from __future__ import annotations

from typing import ClassVar

from protocol import ErrorWord, StatusWord1

from .config import MeterKind
from .errors import Refused
from .meter import Meter

__all__ = ["RemoteMeter"]


class RemoteMeter(Meter):
    """A remote fee-control meter (see :mod:`meter_sim.meter` for the behaviour)."""

    __slots__ = ()

    KIND: ClassVar[MeterKind] = MeterKind.REMOTE

    def _status1_bits(self) -> int:
        return StatusWord1.REMOTE_MODE

    def read_value(self, di: int) -> bytes:
        if di >> 16 == 0x0090:
            raise Refused(ErrorWord.NO_DATA, "a remote-mode meter keeps no money (0090xxxx)")
        return super().read_value(di)
