"""What a simulated meter is made of: its configuration and its faults.

A fleet is a list of :class:`MeterConfig`; the scenario file (TOML) and the
``feikong meter-sim`` flags produce them. Meter behaviour lives in
:mod:`meter_sim.meter` (and :mod:`meter_sim.remote`, :mod:`meter_sim.local`);
the fleet runner (:mod:`meter_sim.fleet`) only needs :class:`SimulatedMeter`.
:class:`ModbusBreakerTarget` says where the breakers are when they are Modbus
devices on a bench (``feikong meter-sim --breaker``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable
from urllib.parse import parse_qsl, urlsplit

from breaker_sim import ModbusBreakerLink
from protocol import Address, Frame, Message

__all__ = [
    "MODBUS_RTU_SCHEME",
    "BreakerKind",
    "BreakerTargetError",
    "FaultConfig",
    "MeterConfig",
    "MeterKind",
    "ModbusBreakerTarget",
    "SimulatedMeter",
    "parse_breaker_target",
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


# ---------------------------------------------------------------- breakers on a bench

MODBUS_RTU_SCHEME = "modbus-rtu"
_RTU_PARITIES = ("N", "E", "O")
_RTU_BAUDS = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200)
_BREAKER_FORMS = (
    "'inproc', modbus://HOST:PORT[?unit=N] (e.g. modbus://127.0.0.1:1502) or "
    "modbus-rtu:///dev/ttyUSB1[?baud=9600&parity=N&stopbits=1&unit=N]"
)


class BreakerTargetError(ValueError):
    """A ``--breaker`` value that names no usable breaker (the message shows the forms)."""


@dataclass(frozen=True, slots=True)
class ModbusBreakerTarget:
    """Breakers that are Modbus devices on a bench: a real breaker, or ``feikong breaker-sim``.

    ``modbus://HOST:PORT?unit=N`` (Modbus TCP, e.g. a breaker behind a Modbus
    gateway) or ``modbus-rtu:///dev/ttyUSB1?baud=9600&parity=N&unit=N`` (Modbus RTU
    on an RS-485 line of its own). The meters of the fleet take units ``N``,
    ``N+1``, … in order (``N`` = ``first_unit``, 1 by default), all on that one
    endpoint, so a single real breaker set to unit 5 is reached with one meter and
    ``unit=5``. Without ``unit`` and on TCP, the fleet's own
    :class:`~meter_sim.fleet.ModbusBreakers` (247 units per port) applies instead.
    """

    kind: str
    """``tcp`` or ``rtu``."""
    where: str
    """``HOST:PORT`` or the serial device."""
    host: str = ""
    port: int = 0
    baudrate: int = 9600
    parity: str = "N"
    stopbits: int = 1
    first_unit: int = 1
    explicit_unit: bool = False
    timeout: float = 1.0

    def __str__(self) -> str:
        if self.kind == "tcp":
            return f"modbus://{self.where}?unit={self.first_unit}"
        return (
            f"modbus-rtu://{self.where} ({self.baudrate} 8{self.parity}{self.stopbits}, "
            f"unit {self.first_unit})"
        )

    @property
    def needs_own_links(self) -> bool:
        """True when :class:`~meter_sim.fleet.Fleet`'s ``modbus://`` form cannot express it."""
        return self.kind == "rtu" or self.explicit_unit

    def units(self, count: int) -> list[int]:
        """The Modbus unit of each of ``count`` meters (raises when they do not fit)."""
        last = self.first_unit + count - 1
        if last > 247:
            raise BreakerTargetError(
                f"{count} meters from unit {self.first_unit} need units up to {last}; a Modbus "
                "line has units 1-247 (use fewer meters or a lower unit=)"
            )
        return list(range(self.first_unit, last + 1))

    def links(self, count: int) -> list[ModbusBreakerLink]:
        """One :class:`breaker_sim.ModbusBreakerLink` per meter, sharing one connection.

        Close them with ``await links[0].aclose()`` (one connection for all).
        """
        units = self.units(count)
        if self.kind == "tcp":
            root = ModbusBreakerLink(self.host, self.port, units[0], timeout=self.timeout)
        else:
            root = ModbusBreakerLink.rtu(
                self.where,
                units[0],
                baudrate=self.baudrate,
                parity=self.parity,
                stopbits=self.stopbits,
                timeout=self.timeout,
            )
        return [root, *(root.for_unit(u) for u in units[1:])]


def parse_breaker_target(text: str) -> ModbusBreakerTarget | None:
    """``inproc`` → None; the Modbus forms of :class:`ModbusBreakerTarget` → a target.

    Raises :class:`BreakerTargetError` naming what is wrong and the accepted forms.
    """
    value = text.strip()
    if value.lower() == "inproc":
        return None
    try:
        parts = urlsplit(value)
        query = dict(parse_qsl(parts.query, keep_blank_values=True, strict_parsing=False))
        port = parts.port
    except ValueError as exc:
        raise BreakerTargetError(f"breaker {text!r}: {exc}; use {_BREAKER_FORMS}") from None
    scheme = parts.scheme.lower()
    allowed = {"unit", "timeout"} | (
        {"baud", "parity", "stopbits"} if scheme == MODBUS_RTU_SCHEME else set()
    )
    unknown = sorted(set(query) - allowed)
    if scheme in ("modbus", MODBUS_RTU_SCHEME) and unknown:
        raise BreakerTargetError(
            f"breaker {text!r}: unknown parameter(s) {', '.join(unknown)}; "
            f"{scheme}:// takes {', '.join(sorted(allowed))}"
        )
    unit = _query_int(query, "unit", 1, 1, 247, text)
    timeout = _query_float(query, "timeout", 1.0, text)
    if scheme == "modbus":
        if not parts.hostname or port is None or port == 0 or parts.path not in ("", "/"):
            raise BreakerTargetError(f"breakers must be {_BREAKER_FORMS}; {text!r} needs HOST:PORT")
        return ModbusBreakerTarget(
            "tcp",
            f"{parts.hostname}:{port}",
            host=parts.hostname,
            port=port,
            first_unit=unit,
            explicit_unit="unit" in query,
            timeout=timeout,
        )
    if scheme == MODBUS_RTU_SCHEME:
        device = parts.netloc + parts.path
        if not device:
            raise BreakerTargetError(
                f"breaker {text!r} names no serial port; e.g. modbus-rtu:///dev/ttyUSB1"
            )
        baud = _query_int(query, "baud", 9600, 300, 115200, text)
        if baud not in _RTU_BAUDS:
            raise BreakerTargetError(
                f"breaker {text!r}: baud {baud} is not one of {', '.join(map(str, _RTU_BAUDS))}"
            )
        parity = query.get("parity", "N").strip().upper() or "N"
        if parity not in _RTU_PARITIES:
            raise BreakerTargetError(f"breaker {text!r}: parity {parity!r} is not N, E or O")
        stopbits = _query_int(query, "stopbits", 1, 1, 2, text)
        return ModbusBreakerTarget(
            "rtu",
            device,
            baudrate=baud,
            parity=parity,
            stopbits=stopbits,
            first_unit=unit,
            explicit_unit=True,
            timeout=timeout,
        )
    raise BreakerTargetError(f"breakers must be {_BREAKER_FORMS}; got {text!r}")


def _query_int(
    query: dict[str, str], name: str, default: int, low: int, high: int, text: str
) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()) or not low <= int(raw) <= high:
        raise BreakerTargetError(f"breaker {text!r}: {name}={raw!r} must be {low}-{high}")
    return int(raw)


def _query_float(query: dict[str, str], name: str, default: float, text: str) -> float:
    raw = query.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise BreakerTargetError(
            f"breaker {text!r}: {name}={raw!r} must be a number of seconds > 0"
        )
    return value
