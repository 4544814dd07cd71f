"""A bench for the local-meter tests (no tests here): a LocalMeter, its breaker and a master."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from breaker_sim import Breaker, BreakerConfig, InProcessBreakerLink
from meter_sim.card import Card, CardType
from meter_sim.config import BreakerKind, MeterConfig, MeterKind
from meter_sim.local import LocalMeter
from protocol import AbnormalReplyError, SteppedClock
from protocol.client import MasterClient, SecureSession
from protocol.security import TEST_MASTER_KEY, SimulatedEncryptionMachine
from protocol.transport import memory_pair

from .meter_rig import ADDRESS, OPERATOR, START, handler_for

CUSTOMER = "000000000042"
MACHINE = SimulatedEncryptionMachine(TEST_MASTER_KEY)


def local_config(**changes: Any) -> MeterConfig:
    base = MeterConfig(
        ADDRESS,
        kind=MeterKind.LOCAL,
        customer_number=CUSTOMER,
        breaker=BreakerKind.INTERNAL,
        seed=7,
        mean_daily_kwh=10.0,
    )
    return dataclasses.replace(base, **changes)


def make_local(clock: SteppedClock, cfg: MeterConfig | None = None) -> tuple[LocalMeter, Breaker]:
    cfg = cfg or local_config()
    remote_close = cfg.breaker is not BreakerKind.EXTERNAL
    breaker = Breaker(clock, BreakerConfig(remotely_closable=remote_close))
    meter = LocalMeter(cfg, clock, InProcessBreakerLink(breaker), master_key=TEST_MASTER_KEY)
    return meter, breaker


def card(
    amount_fen: int,
    count: int,
    *,
    kind: CardType = CardType.PURCHASE,
    customer: str = CUSTOMER,
    **parameters: int,
) -> Card:
    return Card(kind, customer, f"C{count:04d}", amount_fen, count, parameters).signed(MACHINE)


@dataclasses.dataclass
class LocalRig:
    clock: SteppedClock
    meter: LocalMeter
    breaker: Breaker
    client: MasterClient
    machine: SimulatedEncryptionMachine

    async def authenticate(self) -> SecureSession:
        return await self.client.authenticate(
            self.meter.address, self.machine, self.meter.meter_number, operator=OPERATOR
        )

    async def read(self, di: int) -> Any:
        return (await self.client.read(self.meter.address, di)).value

    async def recharge(
        self,
        di: int,
        amount_fen: int,
        count: int,
        customer: str = CUSTOMER,
        *,
        session: SecureSession | None = None,
        tamper: bool = False,
    ) -> bytes:
        session = session or await self.authenticate()
        block = bytearray(self.machine.recharge_block(session.session, amount_fen, count, customer))
        if tamper:
            block[0] ^= 1
        return await self.client.security(self.meter.address, di, bytes(block), operator=OPERATOR)

    async def refused(self, di: int, amount_fen: int, count: int, **kw: Any) -> Any:
        """A recharge that must be refused: the abnormal reply."""
        try:
            await self.recharge(di, amount_fen, count, **kw)
        except AbnormalReplyError as exc:
            return exc.reply
        raise AssertionError("the recharge was accepted")


@asynccontextmanager
async def local_rig(
    cfg: MeterConfig | None = None, *, start: datetime = START
) -> AsyncIterator[LocalRig]:
    clock = SteppedClock(start)
    meter, breaker = make_local(clock, cfg)
    transport, server = await memory_pair(handler_for(meter))
    async with server, transport:
        yield LocalRig(clock, meter, breaker, MasterClient(transport), MACHINE)
    await meter.aclose()
