"""The exceptions of the meter_sim core.

:class:`Refused` and :class:`ControlRefused` never leave a meter: it turns them
into the abnormal reply they name. :class:`MeterStateError` is what
:meth:`~meter_sim.meter.Meter.restore_state` raises for a state it cannot use.
"""

from __future__ import annotations

from protocol import ControlErrorWord, ErrorWord

__all__ = ["ControlRefused", "MeterError", "MeterStateError", "Refused"]


class MeterError(Exception):
    """Base class of the errors of ``meter_sim``."""


class MeterStateError(MeterError, ValueError):
    """A saved meter state that cannot be restored (wrong meter, missing or bad field)."""


class Refused(MeterError):
    """A request the meter refuses with a 1-byte ERR (abnormal reply ``C|C0``).

    ``reason`` is for the log only; the master sees the error word.
    """

    def __init__(self, error: ErrorWord, reason: str) -> None:
        super().__init__(reason)
        self.error = error


class ControlRefused(MeterError):
    """A 1CH command (N1) the meter refuses; ``word`` is the 2013 control-error word."""

    def __init__(self, word: ControlErrorWord, reason: str) -> None:
        super().__init__(reason)
        self.word = word
