"""A fleet of simulated meters (表计群) behind one frame handler.

:class:`Fleet` builds one meter per :class:`~meter_sim.config.MeterConfig`
(through :func:`meter_sim.factory.build_meter`), gives each its breaker, and
routes every request frame to the meter it is addressed to:

* a full address goes to that meter (a dictionary look-up, so 10,000 meters
  cost no more than one);
* ``99…99`` (broadcast) goes to every meter and is never answered;
* ``AA…AA`` (wildcard) and abbreviated addresses (high bytes ``AA``) are
  answered only when exactly one meter matches; otherwise every meter stays
  silent, as colliding replies on a real bus would be garbage (logged);
* an address no meter has gets no reply, as on a real bus.

Transport-level faults of :class:`~meter_sim.config.FaultConfig` are applied
here, outside the meter: ``offline`` (the meter is not on the link at all: it
sees nothing, answers nothing, and gets no port of its own), ``no_reply``
(the meter acts on the request but never answers), ``late_reply_s`` (the reply
waits that many *real* seconds; only that connection waits, others go on),
``bad_checksum`` (the reply goes out with a broken CS, as raw bytes through the
:data:`~protocol.transport.FrameHandler` contract) and ``wrong_address`` (the
reply carries that address).

Breakers (``breakers=``):

* ``"inproc"`` (default): one :class:`breaker_sim.Breaker` per meter, in this
  process, remotely closable unless the meter's breaker kind is ``external``,
  with the fault of ``FaultConfig.breaker_fault``.
* ``"modbus://HOST:PORT"``: breakers served elsewhere (``feikong breaker-sim``).
  Meters take Modbus units in order: meter 1..247 are units 1..247 on
  ``PORT``, meters 248..494 units 1..247 on ``PORT+1``, and so on (a Modbus
  server has at most :data:`breaker_sim.MAX_UNITS` units). Start one
  ``breaker-sim --count 247`` per port.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Protocol, Self
from urllib.parse import urlsplit

from breaker_sim import (
    MAX_UNITS,
    Breaker,
    BreakerConfig,
    BreakerError,
    BreakerFault,
    BreakerLink,
    InProcessBreakerLink,
    ModbusBreakerLink,
    parse_fault,
)
from protocol import (
    Address,
    Clock,
    ErrorReply,
    ErrorWord,
    Frame,
    FunctionCode,
    ProtocolError,
    SecurityErrorReply,
    SecurityErrorWord,
    decode_message,
)
from protocol.frame import encode_frame, remember_addresses
from protocol.messages import Message, ReadReply, to_frame

from .config import BreakerKind, MeterConfig, SimulatedMeter

__all__ = [
    "INPROC",
    "Fleet",
    "FleetError",
    "MeterFactory",
    "ModbusBreakers",
    "modbus_unit",
    "parse_breakers",
]

logger = logging.getLogger(__name__)

INPROC: Final = "inproc"
"""The ``breakers=`` value for one in-process breaker per meter."""


class FleetError(ValueError):
    """A fleet cannot be built as configured (the message says what to change)."""


class MeterFactory(Protocol):
    """The signature of :func:`meter_sim.factory.build_meter`."""

    def __call__(
        self, config: MeterConfig, clock: Clock, breaker: BreakerLink, *, master_key: bytes
    ) -> SimulatedMeter: ...


@dataclass(frozen=True, slots=True)
class ModbusBreakers:
    """Breakers reached over Modbus TCP: units 1..247 on ``port``, then ``port + 1``, …"""

    host: str
    port: int

    def __str__(self) -> str:
        return f"modbus://{self.host}:{self.port}"


def parse_breakers(text: str) -> ModbusBreakers | None:
    """``"inproc"`` → None; ``"modbus://HOST:PORT"`` → :class:`ModbusBreakers`.

    Raises :class:`FleetError` for anything else.
    """
    value = text.strip()
    if value.lower() == INPROC:
        return None
    parts = urlsplit(value)
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme.lower() != "modbus" or not parts.hostname or port is None or port == 0:
        raise FleetError(
            f"breakers must be 'inproc' or modbus://HOST:PORT (e.g. modbus://127.0.0.1:1502), "
            f"got {text!r}"
        )
    return ModbusBreakers(parts.hostname, port)


def modbus_unit(index: int) -> tuple[int, int]:
    """The (port offset, unit id) of the breaker of the meter at ``index`` (0-based)."""
    return divmod(index, MAX_UNITS)[0], index % MAX_UNITS + 1


def _default_factory() -> MeterFactory:
    from .factory import build_meter  # imported late: the meter modules are large

    return build_meter


Deliver = Callable[[Frame], Awaitable[Frame | bytes | None]]


class Fleet:
    """Meters built from ``configs``, answering frames through :meth:`handle`.

    ``clock`` drives every meter and in-process breaker; ``master_key`` seeds
    the meters' ESAMs. ``meter_factory`` defaults to
    :func:`meter_sim.factory.build_meter`. ``reply_preamble`` is the number of
    ``FE`` bytes before a reply sent as raw bytes (bad-checksum fault); give the
    server's value. Use ``async with`` (or :meth:`aclose`) to close Modbus links.
    """

    def __init__(
        self,
        configs: Sequence[MeterConfig],
        clock: Clock,
        *,
        master_key: bytes,
        breakers: str = INPROC,
        meter_factory: MeterFactory | None = None,
        reply_preamble: int = 4,
    ) -> None:
        if not configs:
            raise FleetError("a fleet needs at least one meter")
        seen: set[str] = set()
        for config in configs:
            address = Address(config.address)
            if address.is_broadcast or "A" in address:
                raise FleetError(f"meter address {address} is reserved (broadcast or wildcard)")
            if address in seen:
                raise FleetError(f"two meters have address {address}; addresses must be unique")
            seen.add(address)
        self.clock = clock
        self.reply_preamble = reply_preamble
        self.modbus = parse_breakers(breakers)
        factory = meter_factory or _default_factory()
        self.breakers: dict[Address, Breaker] = {}
        """The in-process breakers by meter address (empty with Modbus breakers)."""
        self._modbus_roots: list[ModbusBreakerLink] = []
        links = self._breaker_links(configs, clock)
        self.meters: dict[Address, SimulatedMeter] = {}
        """Every meter by address, in configuration order (offline ones included)."""
        for config, link in zip(configs, links, strict=True):
            meter = factory(config, clock, link, master_key=master_key)
            self.meters[Address(meter.address)] = meter
        self._online: dict[Address, SimulatedMeter] = {
            a: m for a, m in self.meters.items() if not m.config.faults.offline
        }
        remember_addresses(self._online)  # requests to them decode from the cache at once
        logger.info(
            "fleet of %d meters (%d offline), breakers %s",
            len(self.meters),
            len(self.meters) - len(self._online),
            self.modbus or INPROC,
        )

    # -- building -------------------------------------------------------------------

    def _breaker_links(self, configs: Sequence[MeterConfig], clock: Clock) -> list[BreakerLink]:
        links: list[BreakerLink] = []
        if self.modbus is None:
            for config in configs:
                breaker_config = BreakerConfig(
                    remotely_closable=config.breaker is not BreakerKind.EXTERNAL,
                    fault=_breaker_fault(config),
                )
                breaker = Breaker(clock, breaker_config, name=f"breaker of {config.address}")
                self.breakers[Address(config.address)] = breaker
                links.append(InProcessBreakerLink(breaker))
            return links
        host, port = self.modbus.host, self.modbus.port
        last_port = port + modbus_unit(len(configs) - 1)[0]
        if last_port > 65535:
            raise FleetError(
                f"{len(configs)} meters need Modbus ports {port}..{last_port} "
                f"({MAX_UNITS} units each); choose a lower port"
            )
        for index in range(len(configs)):
            offset, unit = modbus_unit(index)
            if offset == len(self._modbus_roots):
                self._modbus_roots.append(ModbusBreakerLink(host, port + offset, 1))
            links.append(self._modbus_roots[offset].for_unit(unit))
        return links

    # -- what it holds ----------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.meters)

    def __iter__(self) -> Iterator[SimulatedMeter]:
        return iter(self.meters.values())

    def __repr__(self) -> str:
        return f"<Fleet of {len(self.meters)} meters, breakers {self.modbus or INPROC}>"

    @property
    def addresses(self) -> list[Address]:
        return list(self.meters)

    @property
    def answers_eagerly(self) -> bool:
        """True with in-process breakers: :meth:`handle` needs no task of its own until it
        waits, so a frame server may run it at once as each frame arrives."""
        return self.modbus is None

    @property
    def online(self) -> list[Address]:
        """Addresses of the meters on the link (all but the ``offline`` ones)."""
        return list(self._online)

    # -- routing ----------------------------------------------------------------------

    async def handle(self, frame: Frame) -> Frame | bytes | None:
        """A :data:`~protocol.transport.FrameHandler` for a gateway or a bus of all meters."""
        address = frame.address
        if address.is_broadcast:
            await self._broadcast(frame, self._online.values())
            return None
        meter = self._online.get(address)
        if meter is None:
            if "A" not in address:
                logger.debug("no meter at %s: no reply", address)
                return None
            meter = self._only_match(address, self._online.values())
            if meter is None:
                return None
        return await self._deliver(meter, frame)

    def handler_for(self, address: Address | str) -> Deliver:
        """A frame handler for one meter alone on its link (a port of its own)."""
        meter = self.meters[Address(address)]

        async def handle(frame: Frame) -> Frame | bytes | None:
            if frame.address.is_broadcast:
                await self._broadcast(frame, (meter,))
                return None
            if frame.address != meter.address and not frame.address.matches(meter.address):
                logger.debug("%s: frame for %s ignored", meter.address, frame.address)
                return None
            return await self._deliver(meter, frame)

        return handle

    def _only_match(
        self, address: Address, meters: Iterable[SimulatedMeter]
    ) -> SimulatedMeter | None:
        found: SimulatedMeter | None = None
        for meter in meters:
            if address.matches(meter.address):
                if found is not None:
                    logger.info(
                        "%s matches more than one meter (%s, %s, …): no reply, "
                        "as their answers would collide",
                        address,
                        found.address,
                        meter.address,
                    )
                    return None
                found = meter
        if found is None:
            logger.debug("%s matches no meter: no reply", address)
        return found

    async def _broadcast(self, frame: Frame, meters: Iterable[SimulatedMeter]) -> None:
        try:
            message = decode_message(frame)
        except ProtocolError as exc:
            logger.info("broadcast %s ignored: %s", frame.describe_control(), exc)
            return
        count = 0
        for meter in meters:
            try:
                await meter.handle(frame, message)
            except Exception:
                logger.exception("meter %s failed on broadcast %s", meter.address, message)
            count += 1
        logger.debug("broadcast %s to %d meters (never answered)", message, count)

    async def _deliver(self, meter: SimulatedMeter, frame: Frame) -> Frame | bytes | None:
        faults = meter.config.faults
        reply: Message | None
        try:
            if frame.control == _READ and len(frame.data) == 4:  # the hot path: a plain read
                message = _READS.get(frame.data) or _read_request(frame)
            else:
                message = decode_message(frame)
        except ProtocolError as exc:
            logger.info("meter %s: bad %s: %s", meter.address, frame.describe_control(), exc)
            if frame.function == FunctionCode.SECURITY:  # C3H carries a 2-byte SERR word
                reply = SecurityErrorReply(SecurityErrorWord.OTHER)
            else:
                reply = ErrorReply(frame.function, ErrorWord.OTHER)
        else:
            reply = await meter.handle(frame, message)
        if reply is None:
            return None
        if faults.no_reply:
            logger.debug("meter %s: no_reply fault, %s not sent", meter.address, reply)
            return None
        if faults.wrong_address:
            out = to_frame(faults.wrong_address, reply)
        elif type(reply) is ReadReply and not reply.follow_up:  # the hot path: a read reply
            value = reply.di.to_bytes(4, "little") + reply.raw
            out = _new_frame(Frame, (meter.address, _READ_REPLY, value))  # Frame(…)
        else:  # the address is already checked
            out = Frame(meter.address, reply.control, reply.to_data())
        if faults.late_reply_s > 0:
            await asyncio.sleep(faults.late_reply_s)
        if faults.bad_checksum:
            data = bytearray(encode_frame(out, self.reply_preamble))
            data[-2] ^= 0xFF
            return bytes(data)
        return out

    # -- state ------------------------------------------------------------------------

    def to_state(self) -> dict[str, dict[str, Any]]:
        """Every meter's :meth:`~meter_sim.config.SimulatedMeter.to_state`, by address."""
        return {str(a): m.to_state() for a, m in self.meters.items()}

    def restore_state(self, states: dict[str, dict[str, Any]]) -> list[str]:
        """Restore meters from :meth:`to_state`; returns the addresses no meter has.

        Raises ``ValueError`` (naming the meter) if a meter rejects its state.
        """
        unknown: list[str] = []
        for address, state in states.items():
            try:
                meter = self.meters.get(Address(address))
            except ProtocolError:
                meter = None
            if meter is None:
                unknown.append(address)
                continue
            try:
                meter.restore_state(state)
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"meter {address}: {exc}") from exc
        return unknown

    # -- life cycle ---------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close the Modbus connections (nothing to do for in-process breakers)."""
        for root in self._modbus_roots:
            await root.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


_READ: Final = 0x11
_READ_REPLY: Final = 0x91
_new_frame: Final = tuple.__new__
_READS: dict[bytes, Message] = {}
"""Plain 11H read requests by their data (the DI): a fleet is asked a few DIs many times."""


def _read_request(frame: Frame) -> Message:
    message = decode_message(frame)
    if len(_READS) >= 4096:
        _READS.clear()
    _READS[frame.data] = message  # messages are frozen values: one may serve every meter
    return message


def _breaker_fault(config: MeterConfig) -> BreakerFault:
    try:
        return parse_fault(config.faults.breaker_fault)
    except BreakerError as exc:
        raise FleetError(f"meter {config.address}: {exc}") from None
