"""How a meter drives its external breaker: the :class:`BreakerLink` interface.

The meter simulator holds a :class:`BreakerLink` and never imports anything else
from ``breaker_sim`` internals (nor does ``breaker_sim`` import ``meter_sim``).
Two implementations:

* :class:`InProcessBreakerLink` — a :class:`~breaker_sim.breaker.Breaker` in the
  same process (unit tests, the all-in-one demo);
* :class:`ModbusBreakerLink` — a breaker in another process or a real one on the
  bench, over Modbus TCP or RTU, using the map documented in
  :mod:`breaker_sim.modbus`.

Signal methods return the :class:`~breaker_sim.breaker.Outcome`. Over Modbus the
breaker does not say why a signal had no effect, so the link infers the outcome
from the state read before and after the write.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Protocol, Self, runtime_checkable

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.constants import ExcCodes
from pymodbus.exceptions import ModbusException
from pymodbus.pdu import ModbusPDU

from .breaker import Breaker, BreakerFault, BreakerState, Outcome, parse_fault
from .errors import BreakerConfigError, BreakerConnectionError, BreakerError, BreakerRefusedError
from .modbus import MAX_UNITS, Coil, DiscreteInput, HoldingRegister, InputRegister

__all__ = ["BreakerLink", "InProcessBreakerLink", "ModbusBreakerLink"]

_ModbusClient = AsyncModbusTcpClient | AsyncModbusSerialClient


@runtime_checkable
class BreakerLink(Protocol):
    """What a meter can do to (and learn from) its external breaker."""

    async def trip(self) -> Outcome:
        """Send the trip signal."""
        ...

    async def permit_close(self, permitted: bool) -> Outcome:
        """Set the permit-close signal (合闸允许): True permits a manual close, False locks."""
        ...

    async def close(self) -> Outcome:
        """Remote close (DL/T 645 "direct close"); only a remotely closable breaker obeys."""
        ...

    async def manual_close(self) -> Outcome:
        """A person pushes the lever (for tests and the demo)."""
        ...

    async def read_feedback(self) -> bool:
        """Is the auxiliary contact closed?"""
        ...

    async def read_state(self) -> BreakerState:
        """The breaker's latch state."""
        ...


class InProcessBreakerLink:
    """A :class:`BreakerLink` to a :class:`~breaker_sim.breaker.Breaker` in this process."""

    def __init__(self, breaker: Breaker) -> None:
        self.breaker = breaker

    def __repr__(self) -> str:
        return f"InProcessBreakerLink({self.breaker!r})"

    async def trip(self) -> Outcome:
        return self.breaker.trip()

    async def permit_close(self, permitted: bool) -> Outcome:
        return self.breaker.permit_close(permitted)

    async def close(self) -> Outcome:
        return self.breaker.close()

    async def manual_close(self) -> Outcome:
        return self.breaker.manual_close()

    async def read_feedback(self) -> bool:
        return self.breaker.feedback_closed

    async def read_state(self) -> BreakerState:
        return self.breaker.state

    async def set_fault(self, fault: BreakerFault | int | str) -> BreakerFault:
        """Inject a fault (not part of :class:`BreakerLink`: a bench/test tool)."""
        return self.breaker.set_fault(fault)

    async def read_fault(self) -> BreakerFault:
        return self.breaker.fault


class _Connection:
    """One pymodbus client, created and connected on first use, shared by links."""

    def __init__(self, where: str, hint: str, factory: Callable[[], _ModbusClient]) -> None:
        self.where = where
        self.hint = hint
        self._factory = factory
        self._client: _ModbusClient | None = None

    async def client(self, device_id: int) -> _ModbusClient:
        if self._client is None:
            self._client = self._factory()  # pymodbus clients need a running loop
        if not self._client.connected and not await self._client.connect():
            raise BreakerConnectionError(
                f"cannot connect to the breaker at {self.where} (unit {device_id}): {self.hint}"
            )
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


# (command, state before) -> (expected state after, outcome if reached, outcome if not)
_INFERENCE: dict[tuple[str, BreakerState], tuple[BreakerState, Outcome, Outcome]] = {
    ("trip", BreakerState.CLOSED): (
        BreakerState.OPEN_LOCKED,
        Outcome.TRIPPED,
        Outcome.TRIP_IGNORED,
    ),
    ("trip", BreakerState.OPEN_PERMITTED): (
        BreakerState.OPEN_LOCKED,
        Outcome.RELOCKED,
        Outcome.UNCHANGED,
    ),
    ("permit", BreakerState.OPEN_LOCKED): (
        BreakerState.OPEN_PERMITTED,
        Outcome.PERMITTED,
        Outcome.UNCHANGED,
    ),
    ("lock", BreakerState.OPEN_PERMITTED): (
        BreakerState.OPEN_LOCKED,
        Outcome.RELOCKED,
        Outcome.UNCHANGED,
    ),
    ("close", BreakerState.OPEN_LOCKED): (
        BreakerState.CLOSED,
        Outcome.CLOSED,
        Outcome.REFUSED_NOT_REMOTE,
    ),
    ("close", BreakerState.OPEN_PERMITTED): (
        BreakerState.CLOSED,
        Outcome.CLOSED,
        Outcome.REFUSED_NOT_REMOTE,
    ),
    ("manual", BreakerState.OPEN_LOCKED): (
        BreakerState.CLOSED,
        Outcome.CLOSED,
        Outcome.REFUSED_LOCKED,
    ),
    ("manual", BreakerState.OPEN_PERMITTED): (
        BreakerState.CLOSED,
        Outcome.CLOSED,
        Outcome.UNCHANGED,
    ),
}


def _infer(command: str, before: BreakerState, after: BreakerState) -> Outcome:
    """The outcome of ``command`` from the states read before and after it."""
    rule = _INFERENCE.get((command, before))
    if rule is None:
        return Outcome.UNCHANGED
    expected, reached, not_reached = rule
    return reached if after is expected else not_reached


_EXCEPTION_HINTS = {
    ExcCodes.ILLEGAL_FUNCTION: "the device does not implement this function",
    ExcCodes.ILLEGAL_ADDRESS: "check the register map (coils 0-3, input 0, input registers "
    "0-2, holding register 0) and that this unit is a feikong breaker",
    ExcCodes.ILLEGAL_VALUE: "the value is out of range (fault mode must be 0-3)",
    ExcCodes.DEVICE_FAILURE: "the device failed to carry out the request; see its log",
    ExcCodes.GATEWAY_NO_RESPONSE: "no breaker has this unit id there (breaker-sim serves "
    "units 1 to its --count)",
}


class ModbusBreakerLink:
    """A :class:`BreakerLink` to a breaker over Modbus TCP (or RTU: :meth:`rtu`).

    The connection opens on first use. :meth:`for_unit` gives a link to another unit
    over the same connection (one serial line, or one TCP connection, for many
    breakers). Close the connection with :meth:`aclose` or ``async with`` —
    :meth:`close` is the breaker's remote-close signal, not the connection.
    """

    def __init__(
        self,
        host: str,
        port: int = 502,
        device_id: int = 1,
        *,
        timeout: float = 1.0,
        retries: int = 1,
    ) -> None:
        where = f"{host}:{port}"
        hint = (
            f"is the breaker running and reachable (e.g. `feikong breaker-sim "
            f"--modbus-tcp {where}`), and is the address right?"
        )

        def factory() -> _ModbusClient:
            return AsyncModbusTcpClient(
                host, port=port, timeout=timeout, retries=retries, reconnect_delay_max=5.0
            )

        self._init(_Connection(where, hint, factory), device_id)

    @classmethod
    def rtu(
        cls,
        serial_port: str,
        device_id: int = 1,
        *,
        baudrate: int = 9600,
        parity: str = "N",
        bytesize: int = 8,
        stopbits: int = 1,
        timeout: float = 1.0,
        retries: int = 1,
    ) -> ModbusBreakerLink:
        """A link over a serial line (Modbus RTU), e.g. ``rtu("/dev/ttyUSB0", 3)``."""
        where = f"{serial_port} ({baudrate} {bytesize}{parity}{stopbits})"
        hint = (
            "does the serial port exist and may this user open it; are the baud rate, "
            "parity and wiring right?"
        )

        def factory() -> _ModbusClient:
            return AsyncModbusSerialClient(
                serial_port,
                baudrate=baudrate,
                parity=parity,
                bytesize=bytesize,
                stopbits=stopbits,
                timeout=timeout,
                retries=retries,
                reconnect_delay_max=5.0,
            )

        link = cls.__new__(cls)
        link._init(_Connection(where, hint, factory), device_id)
        return link

    def _init(self, connection: _Connection, device_id: int) -> None:
        if not 1 <= device_id <= MAX_UNITS:
            raise BreakerConfigError(f"Modbus unit id must be 1-{MAX_UNITS}, got {device_id}")
        self._conn = connection
        self.device_id = device_id

    def for_unit(self, device_id: int) -> ModbusBreakerLink:
        """A link to unit ``device_id`` sharing this link's connection."""
        link = ModbusBreakerLink.__new__(ModbusBreakerLink)
        link._init(self._conn, device_id)
        return link

    @property
    def where(self) -> str:
        """``host:port`` or the serial port, and the unit, for messages."""
        return f"{self._conn.where} unit {self.device_id}"

    def __repr__(self) -> str:
        return f"ModbusBreakerLink({self.where})"

    async def aclose(self) -> None:
        """Close the connection (shared with links made by :meth:`for_unit`)."""
        self._conn.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- BreakerLink ------------------------------------------------------------

    async def trip(self) -> Outcome:
        return await self._signal("trip", Coil.TRIP, True)

    async def permit_close(self, permitted: bool) -> Outcome:
        return await self._signal("permit" if permitted else "lock", Coil.PERMIT_CLOSE, permitted)

    async def close(self) -> Outcome:
        return await self._signal("close", Coil.REMOTE_CLOSE, True)

    async def manual_close(self) -> Outcome:
        return await self._signal("manual", Coil.MANUAL_CLOSE, True)

    async def read_feedback(self) -> bool:
        response = await self._call(
            "read discrete input 0 (contacts closed)",
            lambda c: c.read_discrete_inputs(
                DiscreteInput.CONTACTS_CLOSED, count=1, device_id=self.device_id
            ),
        )
        return bool(response.bits[0])

    async def read_state(self) -> BreakerState:
        response = await self._call(
            "read input register 0 (state)",
            lambda c: c.read_input_registers(
                InputRegister.STATE, count=1, device_id=self.device_id
            ),
        )
        value = response.registers[0]
        try:
            return BreakerState(value)
        except ValueError:
            raise BreakerError(
                f"the breaker at {self.where} reports state {value}, not 0-2: "
                f"is it a feikong breaker (see breaker_sim.modbus for the map)?"
            ) from None

    # -- extras (bench and tests) -------------------------------------------------

    async def read_counters(self) -> tuple[int, int]:
        """``(trip count, close count)``, each modulo 65536."""
        response = await self._call(
            "read input registers 1-2 (counters)",
            lambda c: c.read_input_registers(
                InputRegister.TRIP_COUNT, count=2, device_id=self.device_id
            ),
        )
        return response.registers[0], response.registers[1]

    async def set_fault(self, fault: BreakerFault | int | str) -> BreakerFault:
        """Inject a fault through holding register 0."""
        value = parse_fault(fault)
        await self._call(
            f"write holding register 0 (fault) = {int(value)}",
            lambda c: c.write_register(HoldingRegister.FAULT, int(value), device_id=self.device_id),
        )
        return value

    async def read_fault(self) -> BreakerFault:
        response = await self._call(
            "read holding register 0 (fault)",
            lambda c: c.read_holding_registers(
                HoldingRegister.FAULT, count=1, device_id=self.device_id
            ),
        )
        return parse_fault(response.registers[0])

    # -- internals ----------------------------------------------------------------

    async def _signal(self, command: str, coil: Coil, value: bool) -> Outcome:
        before = await self.read_state()
        await self._call(
            f"write coil {int(coil)} ({coil.name.lower().replace('_', '-')}) = {int(value)}",
            lambda c: c.write_coil(coil, value, device_id=self.device_id),
        )
        return _infer(command, before, await self.read_state())

    async def _call(
        self, what: str, request: Callable[[_ModbusClient], Awaitable[ModbusPDU]]
    ) -> ModbusPDU:
        client = await self._conn.client(self.device_id)
        try:
            response = await request(client)
        except ModbusException as exc:
            raise BreakerConnectionError(
                f"no answer from the breaker at {self.where} to {what}: {exc}. "
                f"Check the unit id, then {self._conn.hint}"
            ) from exc
        if response.isError():
            code = int(getattr(response, "exception_code", 0))
            try:
                name = ExcCodes(code).name.lower().replace("_", " ")
                hint = _EXCEPTION_HINTS.get(ExcCodes(code), "")
            except ValueError:
                name, hint = "unknown", ""
            raise BreakerRefusedError(
                f"the breaker at {self.where} refused to {what}: Modbus exception {code} "
                f"({name}){'; ' + hint if hint else ''}",
                code,
            )
        return response
