"""The fleet over TCP: gateway routing, wildcards, broadcast, per-meter ports, faults."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import datetime

import pytest

from meter_sim.config import FaultConfig, MeterConfig
from meter_sim.fleet import Fleet, FleetError, modbus_unit, parse_breakers
from meter_sim.runner import FleetServers, TcpGateway, TcpPerMeter
from meter_sim.scenario import FleetSpec
from protocol import Address, ChecksumError, SteppedClock
from protocol.client import MasterClient
from protocol.errors import AbnormalReplyError, ResponseTimeoutError
from protocol.frame import Frame, encode_frame
from protocol.transport import TcpFrameServer, TcpTransport

from .fleet_doubles import ENERGY_DI, FakeMeter

KEY = b"0123456789abcdef"
A1, A2, A3 = (Address(n) for n in (1, 2, 3))


def fleet_of(
    count: int = 3, *, faults: dict[int, FaultConfig] | None = None, breakers: str = "inproc"
) -> Fleet:
    configs = FleetSpec(first_address=1, count=count, seed=10).configs()
    for index, fault in (faults or {}).items():
        c = configs[index]
        configs[index] = MeterConfig(c.address, seed=c.seed, faults=fault)
    return Fleet(
        configs, SteppedClock(), master_key=KEY, meter_factory=FakeMeter, breakers=breakers
    )


async def energy(client: MasterClient, address: str) -> float:
    value = await client.read(address, ENERGY_DI)
    return float(value.value)


def fake(fleet: Fleet, address: str) -> FakeMeter:
    meter = fleet.meters[Address(address)]
    assert isinstance(meter, FakeMeter)
    return meter


class Gateway:
    """Serves fleets on TCP gateways and connects clients to them; closes all at the end."""

    def __init__(self) -> None:
        self.opened: list[FleetServers] = []
        self.clients: list[TcpTransport] = []

    async def __call__(
        self, fleet: Fleet, timeout: float = 2.0
    ) -> tuple[MasterClient, FleetServers]:
        servers = FleetServers(fleet, TcpGateway("127.0.0.1", 0))
        await servers.start()
        self.opened.append(servers)
        server = servers.servers[0]
        assert isinstance(server, TcpFrameServer)
        transport = TcpTransport("127.0.0.1", server.port, response_timeout=timeout)
        self.clients.append(transport)
        return MasterClient(transport), servers


@pytest.fixture
async def gateway() -> AsyncIterator[Gateway]:
    g = Gateway()
    yield g
    for t in g.clients:
        await t.close()
    for s in g.opened:
        await s.stop()


async def test_gateway_routes_by_address(gateway: Gateway) -> None:
    fleet = fleet_of(3)
    client, _ = await gateway(fleet)
    assert await energy(client, A1) == pytest.approx(10.5)
    assert await energy(client, A3) == pytest.approx(12.5)
    assert await energy(client, "000000000002") == pytest.approx(11.5)
    assert [fake(fleet, a).requests for a in (A1, A2, A3)] == [1, 1, 1]


async def test_seeds_and_keys_per_meter() -> None:
    fleet = fleet_of(3)
    assert [m.config.seed for m in fleet] == [10, 11, 12]
    assert all(fake(fleet, a).master_key == KEY for a in fleet.addresses)
    assert fleet.breakers[A1].name == "breaker of 000000000001"


async def test_unknown_address_times_out(gateway: Gateway) -> None:
    client, servers = await gateway(fleet_of(2), timeout=0.2)
    with pytest.raises(ResponseTimeoutError):
        await energy(client, "000000000009")
    assert servers.servers[0].stats.silent == 1


async def test_broadcast_reaches_every_meter_and_is_never_answered(
    gateway: Gateway,
) -> None:
    fleet = fleet_of(3)
    client, servers = await gateway(fleet)
    when = datetime(2026, 3, 1, 12, 0, 0)
    await client.time_sync(when)
    # The connection handles frames in order: once this read is answered, so was the sync.
    assert await energy(client, A2) == pytest.approx(11.5)
    assert all(fake(fleet, a).synced == [when] for a in fleet.addresses)
    stats = client.transport.stats
    assert stats.ignored_frames == 0 and stats.frames_received == 1
    assert servers.servers[0].stats.silent == 1


async def test_wildcard_answers_only_when_one_meter_matches(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    client, _ = await gateway(fleet_of(1))
    assert await client.read_address() == A1
    assert await energy(client, "AAAAAAAAAA01") == pytest.approx(10.5)

    many, _ = await gateway(fleet_of(3), timeout=0.2)
    assert await energy(many, "AAAAAAAAAA03") == pytest.approx(12.5)  # abbreviated
    with (
        caplog.at_level(logging.INFO, logger="meter_sim.fleet"),
        pytest.raises(ResponseTimeoutError),
    ):
        await many.read_address()
    assert "matches more than one meter" in caplog.text


async def test_per_meter_ports() -> None:
    fleet = fleet_of(3, faults={1: FaultConfig(offline=True)})
    async with FleetServers(fleet, TcpPerMeter("127.0.0.1", 0)) as servers:
        assert list(servers.by_address) == [A1, A3]
        for address, value in ((A1, 10.5), (A3, 12.5)):
            server = servers.by_address[address]
            assert isinstance(server, TcpFrameServer)
            async with TcpTransport("127.0.0.1", server.port, response_timeout=0.2) as t:
                client = MasterClient(t)
                assert await client.read_address() == address  # alone on its link
                assert await energy(client, address) == pytest.approx(value)
                with pytest.raises(ResponseTimeoutError):  # another meter's address
                    await energy(client, A2)
        assert "one TCP port per meter" in servers.describe()


async def test_fault_offline(gateway: Gateway) -> None:
    fleet = fleet_of(2, faults={0: FaultConfig(offline=True)})
    client, _ = await gateway(fleet, timeout=0.2)
    with pytest.raises(ResponseTimeoutError):
        await energy(client, A1)
    await client.time_sync(datetime(2026, 3, 1, 12))
    assert await energy(client, A2) == pytest.approx(11.5)
    assert fake(fleet, A1).requests == 0 and fake(fleet, A1).synced == []
    assert fleet.online == [A2]


async def test_fault_no_reply_still_acts(gateway: Gateway) -> None:
    fleet = fleet_of(2, faults={0: FaultConfig(no_reply=True)})
    client, _ = await gateway(fleet, timeout=0.2)
    with pytest.raises(ResponseTimeoutError):
        await client.control_plain(A1, 0x1A, datetime(2026, 1, 2))
    assert fake(fleet, A1).requests == 1
    assert fleet.breakers[A1].trip_count == 1


async def test_fault_late_reply_does_not_block_other_connections(
    gateway: Gateway,
) -> None:
    fleet = fleet_of(2, faults={0: FaultConfig(late_reply_s=30.0)})
    slow, servers = await gateway(fleet, timeout=60.0)
    pending = asyncio.create_task(slow.read(A1, ENERGY_DI))
    server = servers.servers[0]
    assert isinstance(server, TcpFrameServer)
    async with TcpTransport("127.0.0.1", server.port, response_timeout=2.0) as t:
        await fake(fleet, A1).seen.wait()  # the slow request has reached its meter
        assert await energy(MasterClient(t), A2) == pytest.approx(11.5)
    assert not pending.done()
    pending.cancel()


async def test_fault_late_reply_arrives_late(gateway: Gateway) -> None:
    fleet = fleet_of(1, faults={0: FaultConfig(late_reply_s=0.5)})
    client, _ = await gateway(fleet, timeout=0.1)
    with pytest.raises(ResponseTimeoutError):
        await energy(client, A1)
    client.timeout = 2.0  # the next read waits long enough
    assert await energy(client, A1) == pytest.approx(10.5)


async def test_fault_bad_checksum(gateway: Gateway) -> None:
    fleet = fleet_of(1, faults={0: FaultConfig(bad_checksum=True)})
    client, _ = await gateway(fleet, timeout=0.3)
    with pytest.raises(ResponseTimeoutError):
        await energy(client, A1)
    assert client.transport.stats.checksum_errors == 1


async def test_bad_checksum_bytes() -> None:
    fleet = fleet_of(1, faults={0: FaultConfig(bad_checksum=True)})
    request = Frame(A1, 0x11, ENERGY_DI.to_bytes(4, "little"))
    raw = await fleet.handle(request)
    assert isinstance(raw, bytes) and raw.startswith(b"\xfe" * 4)
    from protocol import decode_frame

    with pytest.raises(ChecksumError):
        decode_frame(raw)
    good = bytearray(raw)
    good[-2] ^= 0xFF
    assert decode_frame(bytes(good))[0].address == A1
    assert bytes(good) == encode_frame(decode_frame(bytes(good))[0])


async def test_fault_wrong_address(gateway: Gateway) -> None:
    fleet = fleet_of(1, faults={0: FaultConfig(wrong_address="000000000077")})
    client, _ = await gateway(fleet, timeout=0.3)
    with pytest.raises(ResponseTimeoutError):  # a reply, but not from the meter asked
        await energy(client, A1)
    assert client.transport.stats.ignored_frames == 1
    reply = await fleet.handle(Frame(A1, 0x11, ENERGY_DI.to_bytes(4, "little")))
    assert isinstance(reply, Frame) and reply.address == "000000000077"


async def test_undecodable_request_gets_an_abnormal_reply(gateway: Gateway) -> None:
    fleet = fleet_of(1)
    reply = await fleet.handle(Frame(A1, 0x11, b"\x00"))  # a read needs 4, 5 or 10 bytes
    assert isinstance(reply, Frame) and reply.control == 0xD1 and reply.data == b"\x01"
    client, _ = await gateway(fleet)
    with pytest.raises(AbnormalReplyError):
        await client.read(A1, 0x04000401)


def test_duplicate_and_reserved_addresses() -> None:
    c = MeterConfig("000000000001")
    with pytest.raises(FleetError, match="two meters"):
        Fleet([c, c], SteppedClock(), master_key=KEY, meter_factory=FakeMeter)
    with pytest.raises(FleetError, match="reserved"):
        Fleet(
            [MeterConfig("AAAAAAAAAA01")], SteppedClock(), master_key=KEY, meter_factory=FakeMeter
        )
    with pytest.raises(FleetError, match="at least one"):
        Fleet([], SteppedClock(), master_key=KEY, meter_factory=FakeMeter)


def test_breaker_specs() -> None:
    assert parse_breakers("inproc") is None
    spec = parse_breakers("modbus://127.0.0.1:1502")
    assert spec is not None and (spec.host, spec.port) == ("127.0.0.1", 1502)
    for bad in ("modbus://host", "tcp://h:1", "modbus://h:x", "nope"):
        with pytest.raises(FleetError, match="inproc' or modbus://HOST:PORT"):
            parse_breakers(bad)
    assert [modbus_unit(i) for i in (0, 246, 247, 494)] == [(0, 1), (0, 247), (1, 1), (2, 1)]


def test_modbus_breakers_take_units_in_order() -> None:
    fleet = fleet_of(250, breakers="modbus://127.0.0.1:1502")
    links = [fake(fleet, a).breaker for a in fleet.addresses]
    wheres = [link.where for link in links]  # type: ignore[attr-defined]
    assert wheres[0] == "127.0.0.1:1502 unit 1"
    assert wheres[246] == "127.0.0.1:1502 unit 247"
    assert wheres[247] == "127.0.0.1:1503 unit 1"
    assert wheres[249] == "127.0.0.1:1503 unit 3"
    assert fleet.breakers == {}


async def test_real_meters_behind_a_gateway_and_on_their_own_ports(gateway: Gateway) -> None:
    clock = SteppedClock(datetime(2026, 4, 1, 9, 0))
    configs = FleetSpec(first_address=123456780001, count=4).configs()
    fleet = Fleet(configs, clock, master_key=KEY)  # meter_sim.factory.build_meter
    client, servers = await gateway(fleet, timeout=0.3)
    for address in fleet.addresses:
        value = await client.read(address, ENERGY_DI)
        assert value.item.unit == "kWh"
    with pytest.raises(ResponseTimeoutError):
        await client.read("123456789999", ENERGY_DI)
    await client.time_sync(datetime(2026, 4, 1, 9, 2))
    assert (await client.read(fleet.addresses[0], ENERGY_DI)).di == ENERGY_DI
    assert client.transport.stats.ignored_frames == 0
    assert servers.servers[0].stats.silent == 2  # the unknown address and the broadcast

    async with FleetServers(fleet, TcpPerMeter("127.0.0.1", 0)) as own:
        for address, server in own.by_address.items():
            assert isinstance(server, TcpFrameServer)
            async with TcpTransport("127.0.0.1", server.port, response_timeout=2) as t:
                assert await MasterClient(t).read_address() == address
