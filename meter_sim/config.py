"""What a simulated meter is made of: its configuration and its faults.

A fleet is a list of :class:`MeterConfig`; the scenario file (TOML) and the
``feikong meter-sim`` flags produce them. Meter behaviour lives in
:mod:`meter_sim.meter` (and :mod:`meter_sim.remote`, :mod:`meter_sim.local`);
the fleet runner (:mod:`meter_sim.fleet`) only needs :class:`SimulatedMeter`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from protocol import Address, Frame, Message

__all__ = [
    "BreakerKind",
    "FaultConfig",
    "MeterConfig",
    "MeterKind",
    "SimulatedMeter",
]


class MeterKind(StrEnum):
    """Fee-control mode of a meter."""

    REMOTE = "remote"
    """远程费控: the head-end rates and sends 1CH trip / permit-close."""
    LOCAL = "local"
    """本地费控: the meter holds the money (card / 070102FF recharge) and trips itself."""


class BreakerKind(StrEnum):
    """What the meter's relay output drives."""

    EXTERNAL = "external"
    """External micro-breaker that cannot be closed remotely (SPEC S1, the default)."""
    EXTERNAL_REMOTE_CLOSE = "external-remote-close"
    """External breaker that closes on a close signal (1CH direct close works)."""
    INTERNAL = "internal"
    """Built-in relay; 1CH direct close works, 1BH needs the button (simulated)."""


@dataclass(frozen=True, slots=True)
class FaultConfig:
    """Faults of one meter (from a scenario file or flags). All off by default."""

    offline: bool = False
    """No link at all: the fleet never answers and (TCP per-meter) refuses connections."""
    no_reply: bool = False
    """Receives but never answers."""
    late_reply_s: float = 0.0
    """Answers after this many (real) seconds."""
    bad_checksum: bool = False
    """Answers with a corrupted checksum."""
    wrong_address: str | None = None
    """Answers from this address instead of its own."""
    missing_freeze_days: int = 0
    """The last N daily freezes were not taken (0506 reads of them answer ERR 02)."""
    clock_drift_s_per_day: float = 0.0
    """The meter clock gains (or loses, negative) this many seconds per day."""
    breaker_fault: str = "none"
    """Fault of its breaker: none, fails-to-trip, welded, no-feedback."""


@dataclass(frozen=True, slots=True)
class MeterConfig:
    """One simulated meter."""

    address: str
    """Communication address, 12 digits."""
    kind: MeterKind = MeterKind.REMOTE
    meter_number: str | None = None
    """表号, 12 digits; defaults to the address (the ESAM dispersion factor uses it)."""
    customer_number: str = "000000000000"
    breaker: BreakerKind = BreakerKind.EXTERNAL
    permit_close_delay_s: float = 60.0
    """After a trip, the meter sends permit-close to an external breaker after this delay."""
    seed: int = 0
    """Seeds the load profile: the same seed gives the same consumption."""
    mean_daily_kwh: float = 8.0
    """Average consumption of the household (simulation input, not money)."""
    test_mode: bool = False
    """Factory/test mode: plaintext 1CH (level 02/04 with the password) is accepted."""
    faults: FaultConfig = field(default_factory=FaultConfig)
    extra: dict[str, Any] = field(default_factory=dict)
    """Kind-specific settings (e.g. initial remaining amount of a local meter)."""

    def __post_init__(self) -> None:
        Address(self.address)  # validates: 12 BCD digits
        if self.permit_close_delay_s < 0:
            raise ValueError(f"permit_close_delay_s must be >= 0, got {self.permit_close_delay_s}")


@runtime_checkable
class SimulatedMeter(Protocol):
    """What the fleet runner needs of a meter."""

    @property
    def address(self) -> Address: ...

    @property
    def config(self) -> MeterConfig: ...

    async def handle(self, frame: Frame, message: Message) -> Message | None:
        """Answer one request addressed to this meter (broadcasts included).

        Returns the reply message, or ``None`` to stay silent (a broadcast, a
        frame the meter ignores). Never raises for bad input: refusals are
        abnormal replies.
        """
        ...

    def to_state(self) -> dict[str, Any]:
        """Everything that must survive a restart (registers, money, counts, sessions)."""
        ...

    def restore_state(self, state: dict[str, Any]) -> None:
        """The inverse of :meth:`to_state`; raises ``ValueError`` on a bad state."""
        ...
