"""A small stand-in meter for the fleet tests (the fleet needs only SimulatedMeter)."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from breaker_sim import BreakerLink
from meter_sim.config import MeterConfig
from protocol import Address, Clock, ErrorReply, ErrorWord, Frame, Message
from protocol.messages import (
    ControlReply,
    ControlRequest,
    ReadAddressReply,
    ReadAddressRequest,
    ReadReply,
    ReadRequest,
    TimeSyncRequest,
)

ENERGY_DI = 0x00010000


class FakeMeter:
    """Answers 11H 00010000 (energy = seed + 0.5 kWh), 13H, plaintext 1CH trip; records 08H."""

    def __init__(
        self, config: MeterConfig, clock: Clock, breaker: BreakerLink, *, master_key: bytes
    ) -> None:
        self._config = config
        self._address = Address(config.address)
        self.clock = clock
        self.breaker = breaker
        self.master_key = master_key
        self.energy = config.seed + 0.5
        self.synced: list[datetime] = []
        self.requests = 0
        self.seen = asyncio.Event()
        """Set when the meter has handled its first request."""

    @property
    def address(self) -> Address:
        return self._address

    @property
    def config(self) -> MeterConfig:
        return self._config

    async def handle(self, frame: Frame, message: Message) -> Message | None:
        self.requests += 1
        self.seen.set()
        if isinstance(message, TimeSyncRequest):
            self.synced.append(message.when)
            return None
        if frame.address.is_broadcast:
            return None
        if isinstance(message, ReadRequest) and message.di == ENERGY_DI:
            return ReadReply.for_value(ENERGY_DI, self.energy)
        if isinstance(message, ReadAddressRequest):
            return ReadAddressReply(self._address)
        if isinstance(message, ControlRequest) and message.command == 0x1A:
            await self.breaker.trip()
            return ControlReply()
        return ErrorReply(frame.function, ErrorWord.NO_DATA)

    def to_state(self) -> dict[str, Any]:
        return {"energy": self.energy}

    def restore_state(self, state: dict[str, Any]) -> None:
        energy = state["energy"]
        if not isinstance(energy, int | float):
            raise ValueError(f"energy must be a number, got {energy!r}")
        self.energy = float(energy)
