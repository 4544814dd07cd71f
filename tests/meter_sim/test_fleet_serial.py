"""Three real meters on one RS-485 bus (a pty pair): only the addressed meter answers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime

import pytest

from meter_sim.fleet import Fleet
from meter_sim.runner import FleetServers, SerialBus
from meter_sim.scenario import FleetSpec
from protocol import Address, SteppedClock
from protocol.client import MasterClient
from protocol.errors import ResponseTimeoutError
from protocol.transport import SerialTransport
from tests.protocol.transport.conftest import PtyNullModem

ENERGY = 0x00010000


@pytest.fixture
async def null_modem() -> AsyncIterator[PtyNullModem]:
    modem = PtyNullModem()
    try:
        yield modem
    finally:
        modem.close()


async def test_three_meters_on_one_bus(null_modem: PtyNullModem) -> None:
    clock = SteppedClock(datetime(2026, 2, 1, 8, 0))
    configs = FleetSpec(first_address=100, count=3, seed=1).configs()
    fleet = Fleet(configs, clock, master_key=bytes(16))
    # This machine's pty devices reject even parity: 8N1 here, 8E1 on real ports.
    async with FleetServers(fleet, SerialBus(null_modem.a, 9600, "N")) as servers:
        assert servers.describe().startswith("RS-485 bus serial://")
        master = SerialTransport(
            null_modem.b, baudrate=9600, parity="N", response_timeout=0.3, inter_frame_gap=0
        )
        async with master:
            client = MasterClient(master)
            for address in fleet.addresses:
                assert (await client.read(address, ENERGY)).item.unit == "kWh"
            with pytest.raises(ResponseTimeoutError):  # 3 meters: the wildcard gets silence
                await client.read_address()
            await client.time_sync(datetime(2026, 2, 1, 8, 1))
            value = await client.read("AAAAAAAA0101", ENERGY)  # abbreviated: one meter matches
            assert value.di == ENERGY
        # one reply per answered request, none from the others, none to the broadcast
        assert master.stats.frames_received == 4 and master.stats.ignored_frames == 0
        assert servers.servers[0].stats.silent == 2
        assert master.stats.checksum_errors == 0
    assert Address(101) in fleet.meters
