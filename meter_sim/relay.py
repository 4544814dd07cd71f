"""The load switch the meter drives (负荷开关): a built-in relay or an external breaker.

:class:`Relay` holds what the meter knows of its switch and sends it signals over a
:class:`~breaker_sim.interface.BreakerLink` (in-process or Modbus). The built-in
relay of :attr:`BreakerKind.INTERNAL <meter_sim.config.BreakerKind.INTERNAL>` is
modelled by the same breaker state machine: a trip locks it, a permit-close lets the
customer's button close it, a direct close closes it.

What the meter knows:

- ``open_reasons`` — who wants the switch open (:class:`RelayReason`: a remote trip
  command, a local money trip). Status word 3 bit6 (command state) is set while any
  reason is.
- ``close_allowed`` — the meter has released the switch (permit-close sent, or a
  direct close): a close that follows is legitimate.
- ``feedback_closed`` — the auxiliary contact, read whenever the meter is touched;
  status word 3 bit4 shows it (the *actual* state).
- ``mismatch`` — the feedback contradicts the command (a breaker that fails to trip,
  welded contacts, a close that did not happen, a missing feedback): status word 1
  bit8 (control-circuit error).
- ``flowing`` — does power flow (energy accrues only then)? The feedback says so,
  except when it says open although nothing asked for open: then the breaker's latch
  state decides (a missing feedback must not stop metering).

Link errors (a Modbus breaker out of reach) are logged; the meter then keeps what it
last knew.
"""

from __future__ import annotations

import enum
import logging

from breaker_sim import BreakerError, BreakerLink, BreakerState, Outcome

__all__ = ["Relay", "RelayReason"]

_log = logging.getLogger(__name__)


class RelayReason(enum.IntFlag):
    """Why the switch is (to be) open."""

    REMOTE = 1
    """A remote trip command (1CH 1AH) is in force."""
    LOCAL = 2
    """A local money trip (local prepay meters)."""


class Relay:
    """The meter's view of its switch, and the signals it sends (see the module doc)."""

    __slots__ = (
        "close_allowed",
        "close_operator",
        "feedback_closed",
        "flowing",
        "link",
        "link_ok",
        "mismatch",
        "name",
        "open_reasons",
    )

    def __init__(self, link: BreakerLink, name: str) -> None:
        self.link = link
        self.name = name
        self.open_reasons = 0
        self.close_allowed = False
        self.close_operator = "FFFFFFFF"
        """Operator code to record when the switch closes after a release."""
        self.feedback_closed = True
        self.flowing = True
        self.mismatch = False
        self.link_ok = True

    async def trip(self) -> Outcome | None:
        """Send the trip signal; ``None`` if the link failed."""
        try:
            outcome = await self.link.trip()
        except BreakerError as exc:
            self._link_failed("trip", exc)
            return None
        _log.info("%s: trip signal: %s", self.name, outcome.message)
        self.link_ok = True
        return outcome

    async def permit(self, permitted: bool = True) -> Outcome | None:
        """Set the permit-close signal (合闸允许); ``None`` if the link failed."""
        try:
            outcome = await self.link.permit_close(permitted)
        except BreakerError as exc:
            self._link_failed("permit-close", exc)
            return None
        _log.info("%s: permit-close=%s: %s", self.name, permitted, outcome.message)
        self.link_ok = True
        return outcome

    async def close(self) -> Outcome | None:
        """Send the remote (direct) close signal; ``None`` if the link failed."""
        try:
            outcome = await self.link.close()
        except BreakerError as exc:
            self._link_failed("close", exc)
            return None
        _log.info("%s: close signal: %s", self.name, outcome.message)
        self.link_ok = True
        return outcome

    async def manual_close(self) -> Outcome | None:
        """The customer closes the switch (the button of a built-in relay)."""
        try:
            outcome = await self.link.manual_close()
        except BreakerError as exc:
            self._link_failed("manual close", exc)
            return None
        self.link_ok = True
        return outcome

    async def read_feedback(self) -> bool:
        """Read the auxiliary contact; on a link error keep the last known value."""
        try:
            closed = await self.link.read_feedback()
        except BreakerError as exc:
            self._link_failed("read feedback", exc)
            return self.feedback_closed
        self.link_ok = True
        return closed

    async def evaluate(self) -> None:
        """Recompute :attr:`flowing` and :attr:`mismatch` from the feedback and the command."""
        if self.feedback_closed:
            self.flowing = True
            self.mismatch = bool(self.open_reasons)
            return
        if self.open_reasons or self.close_allowed:
            self.flowing = False
            self.mismatch = False
            return
        # Nothing asked for open, yet the feedback says open: a failed close, a breaker
        # that opened by itself, or no feedback at all. The latch tells whether it conducts.
        self.mismatch = True
        try:
            self.flowing = await self.link.read_state() is BreakerState.CLOSED
        except BreakerError as exc:
            self._link_failed("read state", exc)
            self.flowing = False

    def _link_failed(self, what: str, exc: BreakerError) -> None:
        if self.link_ok:
            _log.warning("%s: breaker link failed (%s): %s", self.name, what, exc)
        self.link_ok = False
