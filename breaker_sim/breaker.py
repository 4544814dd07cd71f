"""The external micro circuit breaker (外置微型断路器) as a state machine.

The deployed hardware (SPEC §S1) is an external-switch remote fee-control meter
driving a micro circuit breaker that *cannot be closed remotely*:

1. the meter sends a **trip** signal: the breaker opens at once and its close
   lever is locked (``CLOSED`` → ``OPEN_LOCKED``);
2. a minute later the meter sends **permit close** (合闸允许): the lever is
   released (``OPEN_LOCKED`` → ``OPEN_PERMITTED``);
3. a person pushes the lever (**manual close**): ``OPEN_PERMITTED`` → ``CLOSED``.

A manual close while locked is refused, counted and logged. Withdrawing the
permit (permit signal 0) locks the lever again. :class:`BreakerConfig` adds what a
lab wants too: a breaker that closes on a remote close signal (DL/T 645 "direct
close"), a slow trip (``trip_response_s``), and faults (:class:`BreakerFault`).

The *state* is the breaker's latch (what it was told); the *contacts* are what
actually conducts, and the *auxiliary contact* (``feedback_closed``) is what it
reports. They differ while a slow trip is under way and under the faults.

Pure logic: no I/O and no tasks. Time comes from a :class:`protocol.clock.Clock`;
a delayed trip is settled lazily whenever the breaker is looked at, so stepping a
:class:`~protocol.clock.SteppedClock` is all a test needs.
"""

from __future__ import annotations

import enum
import logging
import math
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

from protocol.clock import Clock

from .errors import BreakerConfigError

__all__ = [
    "Breaker",
    "BreakerConfig",
    "BreakerEvent",
    "BreakerFault",
    "BreakerState",
    "Outcome",
]

_log = logging.getLogger(__name__)


class BreakerState(enum.IntEnum):
    """The breaker's latch state (input register 0 on the Modbus map)."""

    CLOSED = 0
    """Contacts closed: the customer has power."""
    OPEN_LOCKED = 1
    """Tripped; the close lever is locked until the meter permits a close."""
    OPEN_PERMITTED = 2
    """Tripped; the meter has permitted a close: a person may push the lever."""


class BreakerFault(enum.IntEnum):
    """Injected faults (holding register 0 on the Modbus map)."""

    NONE = 0
    FAILS_TO_TRIP = 1
    """A trip signal to a closed breaker is ignored: it stays closed."""
    WELDED = 2
    """The contacts stay closed whatever the latch does; the auxiliary contact says closed."""
    NO_FEEDBACK = 3
    """The auxiliary contact always reads open (feedback absent), whatever the contacts do."""


class Outcome(enum.StrEnum):
    """What a signal did to the breaker; :attr:`message` is a line a person can read."""

    TRIPPED = "tripped"
    TRIP_IGNORED = "trip-ignored"
    RELOCKED = "relocked"
    PERMITTED = "permitted"
    CLOSED = "closed"
    UNCHANGED = "unchanged"
    REFUSED_LOCKED = "refused-locked"
    REFUSED_NOT_REMOTE = "refused-not-remote"

    @property
    def refused(self) -> bool:
        """True when a close was refused (the caller asked for something that did not happen)."""
        return self in (Outcome.REFUSED_LOCKED, Outcome.REFUSED_NOT_REMOTE)

    @property
    def message(self) -> str:
        """A sentence for an operator."""
        return _MESSAGES[self]


_MESSAGES: dict[Outcome, str] = {
    Outcome.TRIPPED: "tripped: contacts open, close locked",
    Outcome.TRIP_IGNORED: "trip signal ignored: the breaker fails to trip (fault), still closed",
    Outcome.RELOCKED: "close locked again",
    Outcome.PERMITTED: "close permitted: the lever may now be pushed by hand",
    Outcome.CLOSED: "closed",
    Outcome.UNCHANGED: "no change",
    Outcome.REFUSED_LOCKED: (
        "close refused: the lever is locked (wait for the permit-close signal from the meter)"
    ),
    Outcome.REFUSED_NOT_REMOTE: (
        "remote close refused: this breaker is not remotely closable (close it by hand)"
    ),
}


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    """How a breaker behaves; every default is the deployed hardware of SPEC §S1."""

    remotely_closable: bool = False
    """When True a remote close signal closes it (DL/T 645 "direct close")."""
    trip_response_s: float = 0.0
    """Clock seconds from the trip signal to the contacts opening (0: at once)."""
    fault: BreakerFault = BreakerFault.NONE
    """The fault at start-up (it can be changed at run time with :meth:`Breaker.set_fault`)."""

    def __post_init__(self) -> None:
        if not math.isfinite(self.trip_response_s) or self.trip_response_s < 0:
            raise BreakerConfigError(
                f"trip_response_s must be a finite number of seconds >= 0, "
                f"got {self.trip_response_s!r}"
            )
        object.__setattr__(self, "fault", parse_fault(self.fault))


class BreakerEvent(NamedTuple):
    """One entry of a breaker's event log."""

    time: datetime
    event: str
    """An :class:`Outcome` value, ``"contacts-opened"`` (after a slow trip) or ``"fault"``."""
    detail: str


def parse_fault(value: BreakerFault | int | str) -> BreakerFault:
    """A :class:`BreakerFault` from itself, its number, or its name (``"fails-to-trip"``).

    Raises :class:`BreakerConfigError` naming the valid values.
    """
    if isinstance(value, BreakerFault):
        return value
    try:
        if isinstance(value, str) and not value.strip().isdigit():
            return BreakerFault[value.strip().upper().replace("-", "_")]
        return BreakerFault(int(value))
    except (KeyError, ValueError):
        valid = ", ".join(f"{f.value} {f.name.lower().replace('_', '-')}" for f in BreakerFault)
        raise BreakerConfigError(f"unknown breaker fault {value!r}; valid: {valid}") from None


class Breaker:
    """One external micro circuit breaker (外置微型断路器).

    Every signal method returns an :class:`Outcome`; refusals are also counted and
    logged (stdlib logger ``breaker_sim.breaker`` and :attr:`events`).
    """

    def __init__(
        self,
        clock: Clock,
        config: BreakerConfig | None = None,
        *,
        name: str = "breaker",
        state: BreakerState = BreakerState.CLOSED,
        log_size: int = 256,
    ) -> None:
        self._clock = clock
        self._config = config or BreakerConfig()
        self.name = name
        self._state = BreakerState(state)
        self._fault = self._config.fault
        self._contacts_open_at: datetime | None = None
        self._trip_count = 0
        self._close_count = 0
        self._refused_manual_closes = 0
        self._events: deque[BreakerEvent] = deque(maxlen=log_size)

    def __repr__(self) -> str:
        return (
            f"Breaker(name={self.name!r}, state={self.state.name}, "
            f"fault={self.fault.name}, contacts_closed={self.contacts_closed})"
        )

    # -- what can be observed -------------------------------------------------

    @property
    def config(self) -> BreakerConfig:
        return self._config

    @property
    def state(self) -> BreakerState:
        """The latch state (what the breaker reports in input register 0)."""
        self._settle()
        return self._state

    @property
    def fault(self) -> BreakerFault:
        return self._fault

    @property
    def contacts_closed(self) -> bool:
        """Whether the main contacts actually conduct (does the customer have power?)."""
        self._settle()
        if self._fault is BreakerFault.WELDED:
            return True
        return self._state is BreakerState.CLOSED or self._contacts_open_at is not None

    @property
    def feedback_closed(self) -> bool:
        """What the auxiliary contact reports (discrete input 0): closed or not."""
        if self._fault is BreakerFault.NO_FEEDBACK:
            return False
        return self.contacts_closed

    @property
    def trip_pending(self) -> bool:
        """A slow trip is under way: latched open, contacts not open yet."""
        self._settle()
        return self._contacts_open_at is not None

    @property
    def trip_count(self) -> int:
        """Trips that opened the latch (closed → open-locked)."""
        return self._trip_count

    @property
    def close_count(self) -> int:
        """Closes, by hand or remote."""
        return self._close_count

    @property
    def refused_manual_closes(self) -> int:
        """Manual closes refused because the lever was locked."""
        return self._refused_manual_closes

    @property
    def events(self) -> list[BreakerEvent]:
        """The most recent events, oldest first (bounded by ``log_size``)."""
        self._settle()
        return list(self._events)

    # -- signals ----------------------------------------------------------------

    def trip(self) -> Outcome:
        """The meter's trip signal."""
        self._settle()
        if self._state is BreakerState.OPEN_PERMITTED:
            self._state = BreakerState.OPEN_LOCKED
            return self._outcome(Outcome.RELOCKED, "trip signal while open: close locked again")
        if self._state is BreakerState.OPEN_LOCKED:
            return self._outcome(Outcome.UNCHANGED, "trip signal while already open and locked")
        if self._fault is BreakerFault.FAILS_TO_TRIP:
            return self._outcome(
                Outcome.TRIP_IGNORED, "trip signal ignored (fault: fails to trip)", logging.WARNING
            )
        self._state = BreakerState.OPEN_LOCKED
        self._trip_count += 1
        delay = self._config.trip_response_s
        if delay > 0:
            self._contacts_open_at = self._clock.now() + timedelta(seconds=delay)
            detail = f"trip signal: latched open, contacts open in {delay:g} s"
        else:
            detail = "trip signal: contacts open"
        if self._fault is BreakerFault.WELDED:
            detail += " (fault: contacts welded, they stay closed)"
        return self._outcome(Outcome.TRIPPED, detail)

    def permit_close(self, permitted: bool) -> Outcome:
        """The meter's permit-close signal (合闸允许): True permits, False locks again."""
        self._settle()
        if permitted and self._state is BreakerState.OPEN_LOCKED:
            self._state = BreakerState.OPEN_PERMITTED
            return self._outcome(Outcome.PERMITTED, "permit-close signal: lever released")
        if not permitted and self._state is BreakerState.OPEN_PERMITTED:
            self._state = BreakerState.OPEN_LOCKED
            return self._outcome(Outcome.RELOCKED, "permit-close withdrawn: lever locked")
        signal = "permit-close" if permitted else "permit-close withdrawn"
        return self._outcome(
            Outcome.UNCHANGED, f"{signal} signal while {self._state.name.lower().replace('_', '-')}"
        )

    def close(self) -> Outcome:
        """A remote close signal; only a remotely closable breaker obeys it."""
        self._settle()
        if self._state is BreakerState.CLOSED:
            return self._outcome(Outcome.UNCHANGED, "remote close while already closed")
        if not self._config.remotely_closable:
            return self._outcome(
                Outcome.REFUSED_NOT_REMOTE,
                "remote close refused: not remotely closable",
                logging.WARNING,
            )
        return self._do_close("remote close")

    def manual_close(self) -> Outcome:
        """A person pushes the lever; refused (and counted) while the lever is locked."""
        self._settle()
        if self._state is BreakerState.CLOSED:
            return self._outcome(Outcome.UNCHANGED, "lever pushed while already closed")
        if self._state is BreakerState.OPEN_LOCKED:
            self._refused_manual_closes += 1
            return self._outcome(
                Outcome.REFUSED_LOCKED,
                f"lever pushed while locked: refused ({self._refused_manual_closes} so far)",
                logging.WARNING,
            )
        return self._do_close("lever pushed by hand")

    def set_fault(self, fault: BreakerFault | int | str) -> BreakerFault:
        """Inject (or clear, with ``NONE``) a fault; an unknown one raises BreakerConfigError."""
        new = parse_fault(fault)
        self._settle()
        if new is not self._fault:
            old, self._fault = self._fault, new
            self._record("fault", f"fault {old.name.lower()} → {new.name.lower()}", logging.WARNING)
        return new

    # -- internals ----------------------------------------------------------------

    def _do_close(self, how: str) -> Outcome:
        self._state = BreakerState.CLOSED
        self._contacts_open_at = None
        self._close_count += 1
        return self._outcome(Outcome.CLOSED, f"{how}: closed")

    def _settle(self) -> None:
        """Open the contacts of a slow trip whose time has come."""
        due = self._contacts_open_at
        if due is not None and self._clock.now() >= due:
            self._contacts_open_at = None
            self._record(
                "contacts-opened",
                f"contacts opened {self._config.trip_response_s:g} s after the trip signal",
                when=due,
            )

    def _outcome(self, outcome: Outcome, detail: str, level: int = logging.INFO) -> Outcome:
        self._record(outcome.value, detail, level)
        return outcome

    def _record(
        self, event: str, detail: str, level: int = logging.INFO, *, when: datetime | None = None
    ) -> None:
        self._events.append(BreakerEvent(when or self._clock.now(), event, detail))
        _log.log(level, "%s: %s", self.name, detail)
