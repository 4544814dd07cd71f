"""Real meters driving breakers over Modbus TCP (a BreakerServer on a free port)."""

from __future__ import annotations

from datetime import datetime

from breaker_sim import Breaker, BreakerServer, BreakerState
from meter_sim.fleet import Fleet
from meter_sim.runner import FleetServers, TcpGateway
from meter_sim.scenario import FleetSpec
from protocol import Address, StatusWord3, SteppedClock
from protocol.client import MasterClient
from protocol.codes import ControlCommand
from protocol.transport import TcpFrameServer, TcpTransport

STATUS_3 = 0x04000503


async def test_a_trip_through_the_fleet_drives_the_modbus_breaker() -> None:
    clock = SteppedClock(datetime(2026, 1, 1))
    breakers = [Breaker(clock, name=f"unit {u}") for u in (1, 2, 3)]
    async with BreakerServer(breakers, tcp=("127.0.0.1", 0)) as modbus:
        configs = FleetSpec(
            first_address=1, count=3, test_mode=True, permit_close_delay_s=60
        ).configs()
        fleet = Fleet(
            configs, clock, master_key=bytes(16), breakers=f"modbus://127.0.0.1:{modbus.port}"
        )
        async with fleet, FleetServers(fleet, TcpGateway()) as servers:
            server = servers.servers[0]
            assert isinstance(server, TcpFrameServer)
            async with TcpTransport("127.0.0.1", server.port) as t:
                client = MasterClient(t)
                await client.control_plain(Address(2), ControlCommand.TRIP, datetime(2026, 1, 2))
                assert [b.state for b in breakers] == [
                    BreakerState.CLOSED,
                    BreakerState.OPEN_LOCKED,
                    BreakerState.CLOSED,
                ]
                status = (await client.read(Address(2), STATUS_3)).value
                assert isinstance(status, StatusWord3) and StatusWord3.RELAY_OPEN in status
                # the external breaker gets permit-close once the delay has passed
                await clock.advance(61)
                await client.read(Address(2), STATUS_3)
                assert breakers[1].state is BreakerState.OPEN_PERMITTED
    assert breakers[1].trip_count == 1
    assert breakers[0].trip_count == breakers[2].trip_count == 0
