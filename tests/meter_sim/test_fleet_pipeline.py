"""A pipelining master and a fleet behind one TCP gateway (a concentrator's channel)."""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest

from meter_sim.config import FaultConfig, MeterConfig
from meter_sim.fleet import Fleet
from meter_sim.runner import FleetServers, TcpGateway
from meter_sim.scenario import FleetSpec
from protocol import SteppedClock
from protocol.client import MasterClient
from protocol.errors import ResponseTimeoutError
from protocol.transport import TcpFrameServer, TcpTransport, open_transport

KEY = b"0123456789abcdef"
DAILY_FREEZE = 0x05060101  # forward active energy of the last daily freeze (N=1)


async def test_pipelined_daily_freeze_reads_match_one_by_one_reads() -> None:
    clock = SteppedClock(datetime(2026, 3, 10, 9, 0))
    configs = FleetSpec(first_address=1, count=200, seed=7).configs()
    fleet = Fleet(configs, clock, master_key=KEY)
    await clock.advance(24 * 3600)
    async with FleetServers(fleet, TcpGateway()) as servers:
        url = servers.servers[0].url
        async with open_transport(f"{url}?pipeline=64&timeout=5") as link:
            client = MasterClient(link)
            together = await asyncio.gather(
                *(client.read_raw(a, DAILY_FREEZE) for a in fleet.addresses)
            )
            assert link.stats.in_flight == 0
            stats = link.stats
        async with open_transport(url) as one_by_one:
            client = MasterClient(one_by_one)
            alone = [await client.read_raw(a, DAILY_FREEZE) for a in fleet.addresses]
    assert together == alone  # each meter's own reading, in request order
    assert (stats.requests, stats.replies, stats.ignored_frames, stats.connects) == (200, 200, 0, 1)


async def test_a_late_meter_holds_up_no_other_in_the_pipeline() -> None:
    clock = SteppedClock(datetime(2026, 3, 10, 9, 0))
    configs = FleetSpec(first_address=1, count=30, seed=7).configs()
    slow = configs[0]
    configs[0] = MeterConfig(slow.address, seed=slow.seed, faults=FaultConfig(late_reply_s=30))
    fleet = Fleet(configs, clock, master_key=KEY)
    await clock.advance(24 * 3600)
    async with FleetServers(fleet, TcpGateway()) as servers:
        server = servers.servers[0]
        assert isinstance(server, TcpFrameServer)
        async with TcpTransport(
            "127.0.0.1", server.port, max_in_flight=8, response_timeout=30
        ) as link:
            client = MasterClient(link)
            late = asyncio.create_task(client.read_raw(slow.address, DAILY_FREEZE))
            others = await asyncio.gather(
                *(client.read_raw(a, DAILY_FREEZE) for a in fleet.addresses[1:])
            )
            assert not late.done()  # 29 answers came back past the one still waiting
            assert len(others) == 29 and link.stats.in_flight == 1
            late.cancel()  # giving up frees the meter and the slot at once
            client.timeout = 0.2
            with pytest.raises(ResponseTimeoutError, match=f"{slow.address} within 0.2 s"):
                await client.read_raw(slow.address, DAILY_FREEZE)
            assert link.stats.in_flight == 0
