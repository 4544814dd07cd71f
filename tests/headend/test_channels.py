"""The channel pool against real simulated meters over real TCP (and a pty RS-485 bus)."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.engine import Engine

from headend.archive import import_archive
from headend.channels import ChannelPool, UnknownMeterError, transport_pipelines
from meter_sim.fleet import Fleet
from meter_sim.runner import FleetServers, SerialBus
from meter_sim.scenario import FleetSpec
from protocol.errors import ResponseTimeoutError
from protocol.frame import Frame
from protocol.messages import ReadReply, ReadRequest, decode_message, to_frame
from protocol.transport import MqttFrameServer
from tests.conftest import Mosquitto
from tests.protocol.transport.conftest import PtyNullModem

from .fleet_rig import KEY, Rig

ENERGY = 0x00010000
PIPELINE_MODES = [1, None] if transport_pipelines() else [1]
"""One connection per slot; and, when the transport pipelines, all slots on one."""


def read(address: str, di: int = ENERGY) -> Frame:
    return to_frame(address, ReadRequest(di))


def answered(reply: Frame, address: str) -> bool:
    message = decode_message(reply)
    return reply.address == address and isinstance(message, ReadReply) and message.di == ENERGY


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    r = Rig()
    yield r
    await r.aclose()


async def test_requests_go_out_on_the_meters_channel(rig: Rig, engine: Engine) -> None:
    north = await rig.gateway("north", 1, 3)
    south = await rig.gateway("south", 101, 3)
    rig.load_archive(engine)
    async with ChannelPool.from_archive(engine, timeout=2.0) as pool:
        assert len(pool) == 6
        for address in north.addresses + south.addresses:
            assert answered(await pool.request(address, read(address)), address)
        assert pool.channel_of("000000000101") == "south"
        health = {h.name: h for h in pool.health()}
    # each gateway saw only its own meters, one read each
    assert set(north.handled) == set(north.addresses)
    assert set(south.handled) == set(south.addresses)
    assert health["north"].requests == health["north"].replies == 3
    assert health["south"].url == f"tcp://127.0.0.1:{south.port}"
    assert health["south"].kind == "gateway" and health["south"].connected
    assert health["north"].p50_ms is not None and health["north"].p99_ms is not None


@pytest.mark.parametrize("pipeline", PIPELINE_MODES)
async def test_the_channel_concurrency_limit_is_honoured(
    rig: Rig, engine: Engine, pipeline: int | None
) -> None:
    gateway = await rig.gateway("dtu", 1, 12, latency=0.02)
    rig.load_archive(engine, concurrency=3)
    async with ChannelPool.from_archive(engine, pipeline=pipeline) as pool:
        replies = await asyncio.gather(*(pool.request(a, read(a)) for a in gateway.addresses))
        (health,) = pool.health()
    assert all(answered(r, a) for r, a in zip(replies, gateway.addresses, strict=True))
    # 12 meters wanted at once; the gateway never had more than 3 in hand, and had 3.
    assert gateway.peak == 3
    assert health.concurrency == 3 and health.in_flight == 0
    assert health.connections == (3 if pipeline == 1 else 1)


async def test_one_transaction_at_a_time_per_meter(rig: Rig, engine: Engine) -> None:
    gateway = await rig.gateway("dtu", 1, 2, latency=0.01)
    rig.load_archive(engine, concurrency=8)
    address = gateway.addresses[0]
    async with ChannelPool.from_archive(engine, pipeline=1) as pool:
        replies = await asyncio.gather(*(pool.request(address, read(address)) for _ in range(5)))
    assert all(answered(r, address) for r in replies)
    assert gateway.handled[address] == 5
    assert gateway.peak_per_meter == 1


async def test_a_session_holds_the_meter_for_the_whole_exchange(rig: Rig, engine: Engine) -> None:
    gateway = await rig.gateway("dtu", 1, 2)
    rig.load_archive(engine, concurrency=4)
    first, second = gateway.addresses
    async with ChannelPool.from_archive(engine) as pool:
        async with pool.session(first) as client:
            waiting = asyncio.create_task(pool.request(first, read(first)))
            await client.read(first, ENERGY)
            # another meter goes through meanwhile; the same meter waits for the session
            assert answered(await pool.request(second, read(second)), second)
            await client.read(first, 0x04000503)
            assert not waiting.done()
        assert answered(await waiting, first)
        assert pool.health()[0].requests == 4


async def test_an_unknown_address_is_refused_before_anything_is_sent(
    rig: Rig, engine: Engine
) -> None:
    gateway = await rig.gateway("dtu", 1, 1)
    rig.load_archive(engine)
    async with ChannelPool.from_archive(engine) as pool:
        with pytest.raises(UnknownMeterError, match="000000000777 is not in the archive"):
            await pool.request("000000000777", read("000000000777"))
        with pytest.raises(UnknownMeterError):
            async with pool.session("000000000777"):
                pass
        assert pool.health()[0].requests == 0
    assert not gateway.handled


async def test_a_silent_meter_times_out_and_is_counted(rig: Rig, engine: Engine) -> None:
    gateway = await rig.gateway("dtu", 1, 2)
    rig.load_archive(engine)
    mute, fine = gateway.addresses
    gateway.silenced.add(mute)
    async with ChannelPool.from_archive(engine, timeout=0.2, clock=rig.clock) as pool:
        with pytest.raises(ResponseTimeoutError, match=mute):
            await pool.request(mute, read(mute))
        assert answered(await pool.request(fine, read(fine)), fine)
        (health,) = pool.health()
    assert (health.requests, health.replies, health.timeouts) == (2, 1, 1)
    assert health.last_error is not None and mute in health.last_error
    assert health.last_error_at == rig.clock.now()


async def test_a_serial_bus_carries_one_request_at_a_time(engine: Engine) -> None:
    modem = PtyNullModem()
    try:
        configs = FleetSpec(first_address=201, count=3, seed=3).configs()
        fleet = Fleet(configs, Rig().clock, master_key=KEY)
        # pty devices refuse even parity here: 8N1 on the test bus, 8E1 on real ports
        async with FleetServers(fleet, SerialBus(modem.a, 9600, "N")):
            csv = (
                "record,name,kind,serial_port,baud,parity,concurrency,address,meter_number,"
                f"channel,breaker_type\nchannel,bus,serial,{modem.b},9600,N,4,,,,\n"
            )
            csv += "".join(
                f"meter,,remote,,,,,{a},{a},bus,internal\n" for a in map(str, fleet.addresses)
            )
            assert not import_archive(engine, io.StringIO(csv)).errors
            async with ChannelPool.from_archive(engine) as pool:
                addresses = [str(a) for a in fleet.addresses]
                replies = await asyncio.gather(*(pool.request(a, read(a)) for a in addresses))
                (health,) = pool.health()
        assert all(answered(r, a) for r, a in zip(replies, addresses, strict=True))
        assert health.kind == "serial" and health.concurrency == 1 and health.replies == 3
    finally:
        modem.close()


async def test_an_mqtt_channel_reaches_meters_through_a_real_broker(
    engine: Engine, mosquitto: Mosquitto, mqtt_prefix: str
) -> None:
    configs = FleetSpec(first_address=301, count=3, seed=3).configs()
    fleet = Fleet(configs, Rig().clock, master_key=KEY)
    addresses = [str(a) for a in fleet.addresses]
    async with MqttFrameServer(fleet.handle, mosquitto.host, mosquitto.port, mqtt_prefix):
        csv = (
            "record,name,kind,host,port,mqtt_topic,concurrency,address,meter_number,channel,"
            f"breaker_type\nchannel,broker,mqtt,{mosquitto.host},{mosquitto.port},"
            f"{mqtt_prefix},2,,,,\n"
        )
        csv += "".join(f"meter,,remote,,,,,{a},{a},broker,internal\n" for a in addresses)
        assert not import_archive(engine, io.StringIO(csv)).errors
        async with ChannelPool.from_archive(engine) as pool:
            replies = await asyncio.gather(*(pool.request(a, read(a)) for a in addresses))
            (health,) = pool.health()
    assert all(answered(r, a) for r, a in zip(replies, addresses, strict=True))
    assert health.kind == "mqtt" and health.url == f"{mosquitto.url}/{mqtt_prefix}"
    assert (health.concurrency, health.replies) == (2, 3)
