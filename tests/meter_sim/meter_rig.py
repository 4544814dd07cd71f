"""A bench for the meter tests: one meter, its breaker and a master over an in-memory link."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

from breaker_sim import Breaker, BreakerConfig, BreakerFault, BreakerState, InProcessBreakerLink
from meter_sim.config import BreakerKind, FaultConfig, MeterConfig
from meter_sim.meter import Meter
from meter_sim.remote import RemoteMeter
from protocol import (
    AbnormalReplyError,
    ControlCommand,
    ErrorReply,
    ErrorWord,
    Frame,
    Message,
    ProtocolError,
    SteppedClock,
    decode_message,
    to_frame,
)
from protocol.client import MasterClient, SecureSession
from protocol.messages import ControlReply
from protocol.security import TEST_MASTER_KEY, SimulatedEncryptionMachine
from protocol.transport import memory_pair

ADDRESS = "123456781012"
START = datetime(2026, 3, 10, 10, 0, 0)
"""A Tuesday morning, well away from midnight and the settlement day."""
OPERATOR = "12345678"


def state(breaker: Breaker) -> BreakerState:
    """``breaker.state`` read afresh (mypy would keep a property narrowed between asserts)."""
    return breaker.state


def config(**changes: Any) -> MeterConfig:
    faults = changes.pop("faults", None)
    base = MeterConfig(ADDRESS, seed=7, mean_daily_kwh=10.0)
    if faults is not None:
        changes["faults"] = FaultConfig(**faults)
    return dataclasses.replace(base, **changes)


def make_meter(
    clock: SteppedClock,
    cfg: MeterConfig | None = None,
    *,
    breaker: Breaker | None = None,
    master_key: bytes = TEST_MASTER_KEY,
) -> tuple[RemoteMeter, Breaker]:
    cfg = cfg or config()
    if breaker is None:
        remote_close = cfg.breaker is not BreakerKind.EXTERNAL
        fault = BreakerFault[cfg.faults.breaker_fault.upper().replace("-", "_")]
        breaker = Breaker(clock, BreakerConfig(remotely_closable=remote_close, fault=fault))
    meter = RemoteMeter(cfg, clock, InProcessBreakerLink(breaker), master_key=master_key)
    return meter, breaker


def handler_for(meter: Meter) -> Any:
    async def handler(frame: Frame) -> Frame | None:
        try:
            message = decode_message(frame)
        except ProtocolError:
            return to_frame(meter.address, ErrorReply(frame.function, ErrorWord.OTHER))
        reply = await meter.handle(frame, message)
        return None if reply is None else to_frame(meter.address, reply)

    return handler


async def ask(meter: Meter, message: Message, address: str | None = None) -> Message | None:
    """Hand one request straight to ``meter.handle`` (as the fleet does)."""
    frame = to_frame(address or meter.address, message)
    return await meter.handle(frame, decode_message(frame))


@dataclasses.dataclass
class Rig:
    clock: SteppedClock
    meter: RemoteMeter
    breaker: Breaker
    client: MasterClient
    machine: SimulatedEncryptionMachine

    async def authenticate(self) -> SecureSession:
        return await self.client.authenticate(
            self.meter.address, self.machine, self.meter.meter_number, operator=OPERATOR
        )

    async def control(
        self,
        command: ControlCommand,
        *,
        session: SecureSession | None = None,
        expiry: datetime | None = None,
    ) -> ControlReply:
        session = session or await self.authenticate()
        when = expiry or self.clock.now() + timedelta(minutes=10)
        return await self.client.control_secure(
            session, self.machine, command, when, operator=OPERATOR
        )

    async def refused(self, command: ControlCommand, **kw: Any) -> Message:
        """Send a command that must be refused; return the abnormal reply."""
        try:
            await self.control(command, **kw)
        except AbnormalReplyError as exc:
            assert isinstance(exc.reply, Message)
            return exc.reply
        raise AssertionError(f"{command.name} was not refused")

    async def read(self, di: int) -> Any:
        return (await self.client.read(self.meter.address, di)).value


@asynccontextmanager
async def rig(
    cfg: MeterConfig | None = None,
    *,
    start: datetime = START,
    master_key: bytes = TEST_MASTER_KEY,
    meter_key: bytes = TEST_MASTER_KEY,
) -> AsyncIterator[Rig]:
    """A meter on a stepped clock, served in memory to a :class:`MasterClient`."""
    clock = SteppedClock(start)
    meter, breaker = make_meter(clock, cfg, master_key=meter_key)
    transport, server = await memory_pair(handler_for(meter))
    async with server, transport:
        yield Rig(
            clock,
            meter,
            breaker,
            MasterClient(transport),
            SimulatedEncryptionMachine(master_key),
        )
    await meter.aclose()
