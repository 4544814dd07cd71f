"""Simulated breakers served over Modbus TCP or RTU (pymodbus), one per unit.

:class:`BreakerServer` exposes N :class:`~breaker_sim.breaker.Breaker` objects as
Modbus units (device ids) ``1..N``. Writes drive each breaker's state machine and
reads show it live. This register map is the bench contract — a real breaker
wired through a Modbus I/O module must look the same:

=================  =======  ==================================================================
table              address  meaning
=================  =======  ==================================================================
coil               0        trip signal (write 1 = trip)
coil               1        permit-close signal (1 = permitted, 0 = locked)
coil               2        manual-close lever (write 1 = a person pushes it; ignored unless
                            permitted); reads back 0
coil               3        remote close (write 1 = close; obeyed only by a remotely closable
                            breaker, DL/T 645 "direct close"); reads back 0 — *an addition to
                            the bench map, for* ``BreakerLink.close()``
discrete input     0        contacts closed (auxiliary contact)
input register     0        state (0 closed, 1 open-locked, 2 open-permitted)
input register     1        trip count (modulo 65536)
input register     2        close count (modulo 65536)
holding register   0        fault mode (0 none, 1 fails to trip, 2 welded, 3 no feedback) —
                            writable to inject faults; an invalid value → Modbus exception 3
                            (illegal data value)
=================  =======  ==================================================================

Every write of 1 to coils 0, 2 or 3 is one signal (an edge), whatever the coil
held before; writing 0 to them does nothing. Coils 0 and 1 read back the level last
written. A write to coil 1 is a permit (1) or a withdrawal (0). Other addresses
answer exception 2 (illegal data address), except that pymodbus bit blocks are 16
wide: coils 4–15 and discrete inputs 1–15 read as 0. On TCP a unit other than
``1..N`` answers exception 0x0B (gateway target failed to respond); on RTU it
gets no answer, so other devices may share the line. No broadcast.

How it hooks into pymodbus 3.16 (the pattern to reuse): each unit is a
:class:`pymodbus.simulator.SimDevice` with four separate blocks
(coils, discrete inputs, holding, input — each table starts at address 0, which a
shared block cannot express) and an ``action`` coroutine. pymodbus calls the
action on *every* access after its address checks and *before* it touches the
block: ``action(function_code, start_address, address, count, registers,
set_values)``. For a write ``set_values`` holds the request values: we drive the
state machine and may return an :class:`~pymodbus.constants.ExcCodes` to refuse
the write. For a read ``set_values`` is ``None``: we refresh ``registers`` (the
accessed block, edited in place) from the breaker, so the answer is live.

Two traps: a write-single (function 5 or 6) is followed by a read-back with the
*write's* function code and ``set_values=None`` — dispatch on the function code,
or that read-back may clobber what was just written. And pymodbus' ``SimCore``
has no answer of its own for an unknown unit (a KeyError, logged with a traceback,
answered "device failure"): a catch-all ``SimDevice(id=0)`` answers for units we
do not serve on TCP, and on RTU a ``trace_pdu`` hook that returns None for them
makes pymodbus drop the request.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType
from typing import Self, cast

from pymodbus.constants import ExcCodes
from pymodbus.pdu import ModbusPDU
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from .breaker import Breaker
from .errors import BreakerConfigError, BreakerServerError

__all__ = [
    "MAX_UNITS",
    "BreakerServer",
    "Coil",
    "DiscreteInput",
    "HoldingRegister",
    "InputRegister",
    "serve_breakers",
]

_log = logging.getLogger(__name__)

MAX_UNITS = 247
"""The highest Modbus unit (device) id a serial line can address."""


class Coil(enum.IntEnum):
    TRIP = 0
    PERMIT_CLOSE = 1
    MANUAL_CLOSE = 2
    REMOTE_CLOSE = 3


class DiscreteInput(enum.IntEnum):
    CONTACTS_CLOSED = 0


class InputRegister(enum.IntEnum):
    STATE = 0
    TRIP_COUNT = 1
    CLOSE_COUNT = 2


class HoldingRegister(enum.IntEnum):
    FAULT = 0


# Modbus function codes, by the table they reach.
_READ_COILS = 1
_READ_DISCRETE_INPUTS = 2
_READ_INPUT_REGISTERS = 4
_WRITE_COILS = frozenset({5, 15})
_HOLDING = frozenset({3, 6, 16, 22, 23})
_MOMENTARY_COILS = (Coil.MANUAL_CLOSE, Coil.REMOTE_CLOSE)


class _Unit:
    """The registers of one unit, kept in step with its breaker (the SimDevice action)."""

    def __init__(self, unit: int, breaker: Breaker | None) -> None:
        self.unit = unit
        self.breaker = breaker

    async def action(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        # Every block starts at address 0, so registers[0] holds address 0 (for the
        # bit tables: the 16 bits of addresses 0-15, bit n = address n).
        del start_address, count
        breaker = self.breaker
        if breaker is None:  # the catch-all device: a unit we do not serve
            return ExcCodes.GATEWAY_NO_RESPONSE
        if set_values is None:
            self._refresh(breaker, function_code, registers)
            return None
        if function_code in _WRITE_COILS:
            return self._write_coils(breaker, address, [bool(v) for v in set_values])
        return self._write_fault(breaker, [int(v) for v in set_values])

    def _refresh(self, breaker: Breaker, function_code: int, registers: list[int]) -> None:
        if function_code == _READ_COILS:
            # Momentary coils read back 0; only a plain read clears them, so that the
            # read-back pymodbus makes for a write-coil answer still echoes the request.
            for coil in _MOMENTARY_COILS:
                registers[0] &= ~(1 << coil)
        elif function_code == _READ_DISCRETE_INPUTS:
            registers[0] = int(breaker.feedback_closed) << DiscreteInput.CONTACTS_CLOSED
        elif function_code == _READ_INPUT_REGISTERS:
            registers[InputRegister.STATE] = int(breaker.state)
            registers[InputRegister.TRIP_COUNT] = breaker.trip_count & 0xFFFF
            registers[InputRegister.CLOSE_COUNT] = breaker.close_count & 0xFFFF
        elif function_code in _HOLDING:  # read, or the read-back after a write
            registers[HoldingRegister.FAULT] = int(breaker.fault)
        # else: the read-back after a coil write: leave the coils as written

    def _write_coils(self, breaker: Breaker, address: int, values: list[bool]) -> ExcCodes | None:
        if address + len(values) > len(Coil):
            return ExcCodes.ILLEGAL_ADDRESS
        for offset, value in enumerate(values):
            coil = Coil(address + offset)
            if coil is Coil.PERMIT_CLOSE:
                outcome = breaker.permit_close(value)
            elif not value:
                continue
            elif coil is Coil.TRIP:
                outcome = breaker.trip()
            elif coil is Coil.MANUAL_CLOSE:
                outcome = breaker.manual_close()
            else:
                outcome = breaker.close()
            _log.debug("unit %d: coil %d ← %d: %s", self.unit, coil, value, outcome)
        return None

    def _write_fault(self, breaker: Breaker, values: list[int]) -> ExcCodes | None:
        try:
            breaker.set_fault(values[HoldingRegister.FAULT])
        except BreakerConfigError as exc:
            _log.warning("unit %d: fault write refused: %s", self.unit, exc)
            return ExcCodes.ILLEGAL_VALUE
        return None


def _sim_device(unit: _Unit) -> SimDevice:
    return SimDevice(
        id=unit.unit,
        simdata=(
            [SimData(0, values=[False] * len(Coil), datatype=DataType.BITS)],
            [SimData(0, values=[False] * len(DiscreteInput), datatype=DataType.BITS)],
            [SimData(0, count=len(HoldingRegister), values=0, datatype=DataType.UINT16)],
            [SimData(0, count=len(InputRegister), values=0, datatype=DataType.UINT16)],
        ),
        use_bit_addressing=True,
        action=unit.action,
    )


class BreakerServer:
    """A Modbus server (TCP *or* RTU) exposing ``breakers`` as units ``1..N``.

    ``tcp=(host, port)`` listens on TCP (port 0 picks a free port: see :attr:`port`);
    ``rtu="/dev/ttyUSB0"`` serves a serial line. Use ``async with`` or
    :meth:`start` / :meth:`stop`.
    """

    def __init__(
        self,
        breakers: Sequence[Breaker],
        *,
        tcp: tuple[str, int] | None = None,
        rtu: str | None = None,
        baudrate: int = 9600,
        parity: str = "N",
        bytesize: int = 8,
        stopbits: int = 1,
    ) -> None:
        if not 1 <= len(breakers) <= MAX_UNITS:
            raise BreakerConfigError(
                f"serve between 1 and {MAX_UNITS} breakers (one per Modbus unit), "
                f"got {len(breakers)}"
            )
        if (tcp is None) == (rtu is None):
            raise BreakerConfigError("give exactly one of tcp=(host, port) or rtu=serial port")
        if tcp is not None and not 0 <= tcp[1] <= 65535:
            raise BreakerConfigError(f"TCP port must be 0-65535, got {tcp[1]}")
        if parity.upper() not in ("N", "E", "O"):
            raise BreakerConfigError(f"parity must be N, E or O, got {parity!r}")
        self._units = {unit: breaker for unit, breaker in enumerate(breakers, start=1)}
        self._tcp = tcp
        self._rtu = rtu
        self._serial = (baudrate, parity.upper(), bytesize, stopbits)
        self._server: ModbusTcpServer | ModbusSerialServer | None = None
        self._port: int | None = None
        self._stopped = asyncio.Event()

    @property
    def breakers(self) -> dict[int, Breaker]:
        """The breakers by unit id."""
        return dict(self._units)

    def breaker(self, unit: int) -> Breaker:
        return self._units[unit]

    @property
    def port(self) -> int | None:
        """The bound TCP port once started (None for RTU, or before :meth:`start`)."""
        return self._port

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def where(self) -> str:
        """Where it serves, for people: ``Modbus TCP 127.0.0.1:1502`` or ``Modbus RTU …``."""
        if self._tcp is not None:
            host = self._tcp[0] or "0.0.0.0"
            return f"Modbus TCP {host}:{self._port if self._port is not None else self._tcp[1]}"
        baudrate, parity, bytesize, stopbits = self._serial
        return f"Modbus RTU {self._rtu} {baudrate} {bytesize}{parity}{stopbits}"

    async def start(self) -> None:
        """Start serving; raises :class:`BreakerServerError` if the port cannot be opened."""
        if self._server is not None:
            return
        devices = [_sim_device(_Unit(unit, b)) for unit, b in self._units.items()]
        if self._tcp is not None:
            devices.append(_sim_device(_Unit(0, None)))  # answers units we do not serve
            server: ModbusTcpServer | ModbusSerialServer = ModbusTcpServer(
                devices, address=self._tcp
            )
            hint = (
                "is the port in use, is the host an address of this machine, or is the "
                "port below 1024 without privileges?"
            )
        else:
            assert self._rtu is not None
            baudrate, parity, bytesize, stopbits = self._serial
            server = ModbusSerialServer(
                devices,
                port=self._rtu,
                baudrate=baudrate,
                parity=parity,
                bytesize=bytesize,
                stopbits=stopbits,
                trace_pdu=self._ignore_other_units,
            )
            hint = "does the serial port exist, and may this user open it (group dialout)?"
        try:
            await server.serve_forever(background=True)
        except RuntimeError as exc:
            raise BreakerServerError(f"cannot serve breakers on {self.where}: {hint}") from exc
        self._server = server
        self._stopped.clear()
        if self._tcp is not None:
            sockets = getattr(server.transport, "sockets", None) or ()
            self._port = sockets[0].getsockname()[1] if sockets else self._tcp[1]
        _log.info(
            "serving %d breaker(s) as units 1..%d on %s",
            len(self._units),
            len(self._units),
            self.where,
        )

    async def stop(self) -> None:
        """Stop serving (and close open connections); idempotent."""
        server, self._server = self._server, None
        if server is not None:
            # pymodbus leaves shutdown() unannotated
            await cast(Callable[[], Awaitable[None]], server.shutdown)()
            _log.info("stopped serving breakers on %s", self.where)
        self._stopped.set()

    def request_stop(self) -> None:
        """Make :meth:`serve_forever` return (and stop); callable from a signal handler."""
        self._stopped.set()

    async def serve_forever(self) -> None:
        """Start if needed, then serve until :meth:`stop` or :meth:`request_stop`, or cancelled."""
        await self.start()
        try:
            await self._stopped.wait()
        finally:
            await self.stop()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def _ignore_other_units(self, sending: bool, pdu: ModbusPDU) -> ModbusPDU:
        """pymodbus ``trace_pdu`` hook: on a serial line, stay silent to other units."""
        if not sending and pdu.dev_id not in self._units:
            _log.debug("ignoring a request to unit %d (not ours)", pdu.dev_id)
            # A request whose trace returns None is dropped by pymodbus' server handler.
            return None  # type: ignore[return-value]
        return pdu


async def serve_breakers(
    breakers: Sequence[Breaker],
    *,
    tcp: tuple[str, int] | None = None,
    rtu: str | None = None,
    baudrate: int = 9600,
    parity: str = "N",
    bytesize: int = 8,
    stopbits: int = 1,
) -> None:
    """Serve ``breakers`` as units ``1..N`` until cancelled (see :class:`BreakerServer`)."""
    server = BreakerServer(
        breakers,
        tcp=tcp,
        rtu=rtu,
        baudrate=baudrate,
        parity=parity,
        bytesize=bytesize,
        stopbits=stopbits,
    )
    await server.serve_forever()
