"""The Modbus map, read and written by a plain pymodbus client, and ModbusBreakerLink."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pty
import socket
import tty
from collections.abc import AsyncIterator
from datetime import datetime

import pytest
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.constants import ExcCodes

from breaker_sim import (
    Breaker,
    BreakerConfig,
    BreakerConfigError,
    BreakerConnectionError,
    BreakerFault,
    BreakerLink,
    BreakerRefusedError,
    BreakerServer,
    BreakerServerError,
    BreakerState,
    ModbusBreakerLink,
    Outcome,
)
from protocol.clock import SteppedClock

# Unit 1: as deployed. Unit 2: remotely closable. Unit 3: slow trip (2 s).
CONFIGS = [
    BreakerConfig(),
    BreakerConfig(remotely_closable=True),
    BreakerConfig(trip_response_s=2.0),
]


@pytest.fixture
def clock() -> SteppedClock:
    return SteppedClock(datetime(2026, 1, 1))


@pytest.fixture
def breakers(clock: SteppedClock) -> list[Breaker]:
    return [Breaker(clock, c, name=f"unit {i}") for i, c in enumerate(CONFIGS, start=1)]


@pytest.fixture
async def server(breakers: list[Breaker]) -> AsyncIterator[BreakerServer]:
    async with BreakerServer(breakers, tcp=("127.0.0.1", 0)) as srv:
        yield srv


@pytest.fixture
async def client(server: BreakerServer) -> AsyncIterator[AsyncModbusTcpClient]:
    assert server.port
    c = AsyncModbusTcpClient("127.0.0.1", port=server.port, timeout=2, retries=0)
    assert await c.connect()
    yield c
    c.close()


async def state_and_counts(c: AsyncModbusTcpClient, unit: int) -> list[int]:
    r = await c.read_input_registers(0, count=3, device_id=unit)
    assert not r.isError(), r
    return list(r.registers)


async def contacts(c: AsyncModbusTcpClient, unit: int) -> bool:
    r = await c.read_discrete_inputs(0, count=1, device_id=unit)
    assert not r.isError(), r
    return bool(r.bits[0])


# -- the map, through a plain client ---------------------------------------------------


async def test_server_binds_a_free_port(server: BreakerServer) -> None:
    assert server.running and server.port and server.port > 0
    assert server.where == f"Modbus TCP 127.0.0.1:{server.port}"


async def test_initial_reads(client: AsyncModbusTcpClient) -> None:
    for unit in (1, 2, 3):
        assert await state_and_counts(client, unit) == [0, 0, 0]
        assert await contacts(client, unit) is True
        coils = await client.read_coils(0, count=4, device_id=unit)
        assert coils.bits[:4] == [False] * 4
        fault = await client.read_holding_registers(0, count=1, device_id=unit)
        assert fault.registers == [0]


async def test_trip_permit_manual_close_over_modbus(
    client: AsyncModbusTcpClient, breakers: list[Breaker]
) -> None:
    assert not (await client.write_coil(0, True, device_id=1)).isError()
    assert await state_and_counts(client, 1) == [BreakerState.OPEN_LOCKED, 1, 0]
    assert await contacts(client, 1) is False
    assert breakers[0].state is BreakerState.OPEN_LOCKED

    # A person pushes the lever while locked: refused, and the lever reads back 0
    # (the write answer still echoes the request, as Modbus requires).
    echo = await client.write_coil(2, True, device_id=1)
    assert not echo.isError() and echo.bits[0] is True
    assert await state_and_counts(client, 1) == [BreakerState.OPEN_LOCKED, 1, 0]
    assert (await client.read_coils(2, count=1, device_id=1)).bits[0] is False
    assert breakers[0].refused_manual_closes == 1

    assert not (await client.write_coil(1, True, device_id=1)).isError()
    assert await state_and_counts(client, 1) == [BreakerState.OPEN_PERMITTED, 1, 0]
    assert (await client.read_coils(1, count=1, device_id=1)).bits[0] is True

    assert not (await client.write_coil(2, True, device_id=1)).isError()
    assert await state_and_counts(client, 1) == [BreakerState.CLOSED, 1, 1]
    assert await contacts(client, 1) is True
    assert (await client.read_coils(0, count=4, device_id=1)).bits[:4] == [
        True,  # trip: the level last written
        True,  # permit: the level last written
        False,  # lever: momentary
        False,  # remote close: momentary
    ]


async def test_units_are_independent(client: AsyncModbusTcpClient) -> None:
    await client.write_coil(0, True, device_id=2)
    assert await state_and_counts(client, 1) == [0, 0, 0]
    assert await state_and_counts(client, 2) == [1, 1, 0]
    assert await state_and_counts(client, 3) == [0, 0, 0]


async def test_withdrawing_the_permit(client: AsyncModbusTcpClient) -> None:
    await client.write_coil(0, True, device_id=1)
    await client.write_coil(1, True, device_id=1)
    await client.write_coil(1, False, device_id=1)
    assert (await state_and_counts(client, 1))[0] == BreakerState.OPEN_LOCKED


async def test_write_multiple_coils_applies_in_address_order(client: AsyncModbusTcpClient) -> None:
    # trip, permit, push the lever: in one request
    assert not (await client.write_coils(0, [True, True, True], device_id=1)).isError()
    assert await state_and_counts(client, 1) == [BreakerState.CLOSED, 1, 1]


async def test_remote_close_coil(client: AsyncModbusTcpClient) -> None:
    for unit in (1, 2):
        await client.write_coil(0, True, device_id=unit)
        await client.write_coil(3, True, device_id=unit)
    assert (await state_and_counts(client, 1))[0] == BreakerState.OPEN_LOCKED  # not closable
    assert await state_and_counts(client, 2) == [BreakerState.CLOSED, 1, 1]


async def test_slow_trip_is_live_on_the_contacts_input(
    client: AsyncModbusTcpClient, clock: SteppedClock
) -> None:
    await client.write_coil(0, True, device_id=3)
    assert (await state_and_counts(client, 3))[0] == BreakerState.OPEN_LOCKED
    assert await contacts(client, 3) is True
    await clock.advance(2.0)
    assert await contacts(client, 3) is False


async def test_fault_injection_through_holding_register(client: AsyncModbusTcpClient) -> None:
    assert not (await client.write_register(0, BreakerFault.FAILS_TO_TRIP, device_id=1)).isError()
    assert (await client.read_holding_registers(0, count=1, device_id=1)).registers == [1]
    await client.write_coil(0, True, device_id=1)
    assert await state_and_counts(client, 1) == [BreakerState.CLOSED, 0, 0]

    await client.write_register(0, BreakerFault.WELDED, device_id=1)
    await client.write_coil(0, True, device_id=1)
    assert await state_and_counts(client, 1) == [BreakerState.OPEN_LOCKED, 1, 0]
    assert await contacts(client, 1) is True  # welded: still conducting

    await client.write_register(0, BreakerFault.NO_FEEDBACK, device_id=2)
    assert await contacts(client, 2) is False  # closed, but no feedback
    assert (await state_and_counts(client, 2))[0] == BreakerState.CLOSED


@pytest.mark.parametrize("value", [4, 99, 0xFFFF])
async def test_invalid_fault_value_is_an_illegal_data_value(
    client: AsyncModbusTcpClient, breakers: list[Breaker], value: int
) -> None:
    r = await client.write_register(0, value, device_id=1)
    assert r.isError() and r.exception_code == ExcCodes.ILLEGAL_VALUE
    assert breakers[0].fault is BreakerFault.NONE
    assert (await client.read_holding_registers(0, count=1, device_id=1)).registers == [0]


async def test_addresses_outside_the_map_are_illegal(client: AsyncModbusTcpClient) -> None:
    checks = [
        await client.read_input_registers(3, count=1, device_id=1),
        await client.read_input_registers(0, count=4, device_id=1),
        await client.read_holding_registers(1, count=1, device_id=1),
        await client.write_register(1, 0, device_id=1),
        await client.write_coil(4, True, device_id=1),
        await client.write_coils(2, [True, True, True], device_id=1),
        await client.read_coils(16, count=1, device_id=1),
    ]
    assert [r.exception_code for r in checks] == [ExcCodes.ILLEGAL_ADDRESS] * len(checks)


async def test_unknown_unit_answers_gateway_no_response(client: AsyncModbusTcpClient) -> None:
    r = await client.read_input_registers(0, count=1, device_id=9)
    assert r.isError() and r.exception_code == ExcCodes.GATEWAY_NO_RESPONSE


async def test_counters_wrap_at_16_bits(
    client: AsyncModbusTcpClient, breakers: list[Breaker]
) -> None:
    breakers[0]._trip_count = 65536 + 5  # a long-lived breaker
    assert (await state_and_counts(client, 1))[1] == 5


# -- ModbusBreakerLink ----------------------------------------------------------------


@pytest.fixture
async def link(server: BreakerServer) -> AsyncIterator[ModbusBreakerLink]:
    assert server.port
    async with ModbusBreakerLink("127.0.0.1", server.port, 1, timeout=2) as lnk:
        yield lnk


async def test_link_is_a_breaker_link(link: ModbusBreakerLink) -> None:
    assert isinstance(link, BreakerLink)


async def test_link_drives_the_deployed_sequence(link: ModbusBreakerLink) -> None:
    assert await link.read_state() is BreakerState.CLOSED
    assert await link.read_feedback() is True
    assert await link.trip() is Outcome.TRIPPED
    assert await link.read_feedback() is False
    assert await link.manual_close() is Outcome.REFUSED_LOCKED
    assert await link.close() is Outcome.REFUSED_NOT_REMOTE
    assert await link.permit_close(True) is Outcome.PERMITTED
    assert await link.permit_close(False) is Outcome.RELOCKED
    assert await link.permit_close(True) is Outcome.PERMITTED
    assert await link.trip() is Outcome.RELOCKED
    assert await link.permit_close(True) is Outcome.PERMITTED
    assert await link.manual_close() is Outcome.CLOSED
    assert await link.manual_close() is Outcome.UNCHANGED
    assert await link.read_state() is BreakerState.CLOSED
    assert await link.read_counters() == (1, 1)


async def test_link_outcomes_match_in_process(link: ModbusBreakerLink) -> None:
    await link.set_fault(BreakerFault.FAILS_TO_TRIP)
    assert await link.read_fault() is BreakerFault.FAILS_TO_TRIP
    assert await link.trip() is Outcome.TRIP_IGNORED
    await link.set_fault("none")
    assert await link.trip() is Outcome.TRIPPED
    assert await link.trip() is Outcome.UNCHANGED


async def test_link_for_other_units_shares_the_connection(link: ModbusBreakerLink) -> None:
    unit2 = link.for_unit(2)
    assert unit2.where.endswith("unit 2")
    assert await unit2.trip() is Outcome.TRIPPED
    assert await unit2.close() is Outcome.CLOSED  # remotely closable
    assert await link.read_state() is BreakerState.CLOSED
    assert await link.for_unit(3).trip() is Outcome.TRIPPED


async def test_link_reports_a_modbus_exception(server: BreakerServer) -> None:
    assert server.port
    async with ModbusBreakerLink("127.0.0.1", server.port, 1, timeout=2) as lnk:
        with pytest.raises(BreakerRefusedError, match=r"unit 1 .*exception 3 \(illegal value\)"):
            await lnk._call("write fault 7", lambda c: c.write_register(0, 7, device_id=1))
        with pytest.raises(BreakerConfigError):
            await lnk.set_fault(7)  # caught before it reaches the wire


async def test_link_to_an_unknown_unit(server: BreakerServer) -> None:
    assert server.port
    async with ModbusBreakerLink("127.0.0.1", server.port, 200, timeout=2) as lnk:
        with pytest.raises(BreakerRefusedError, match="unit 200") as info:
            await lnk.read_state()
    assert info.value.exception_code == ExcCodes.GATEWAY_NO_RESPONSE


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def test_link_to_nothing_says_what_to_check() -> None:
    port = _free_port()
    async with ModbusBreakerLink("127.0.0.1", port, 1, timeout=0.5, retries=0) as lnk:
        with pytest.raises(
            BreakerConnectionError, match=rf"127\.0\.0\.1:{port} \(unit 1\).*running"
        ):
            await lnk.trip()


def test_link_rejects_a_bad_unit() -> None:
    with pytest.raises(BreakerConfigError, match="1-247"):
        ModbusBreakerLink("127.0.0.1", 502, 0)


# -- server errors --------------------------------------------------------------------


async def test_port_in_use(server: BreakerServer, breakers: list[Breaker]) -> None:
    assert server.port
    other = BreakerServer(breakers, tcp=("127.0.0.1", server.port))
    with pytest.raises(BreakerServerError, match=f"127.0.0.1:{server.port}"):
        await other.start()


async def test_missing_serial_port(breakers: list[Breaker]) -> None:
    srv = BreakerServer(breakers, rtu="/dev/does-not-exist")
    with pytest.raises(BreakerServerError, match=r"/dev/does-not-exist.*serial port exist"):
        await srv.start()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({}, "exactly one"),
        ({"tcp": ("127.0.0.1", 0), "rtu": "/dev/ttyS0"}, "exactly one"),
        ({"tcp": ("127.0.0.1", 70000)}, "0-65535"),
        ({"rtu": "/dev/ttyS0", "parity": "X"}, "parity"),
    ],
)
def test_server_config_errors(
    breakers: list[Breaker], kwargs: dict[str, object], match: str
) -> None:
    with pytest.raises(BreakerConfigError, match=match):
        BreakerServer(breakers, **kwargs)  # type: ignore[arg-type]


def test_server_needs_breakers() -> None:
    with pytest.raises(BreakerConfigError, match="between 1 and 247"):
        BreakerServer([], tcp=("127.0.0.1", 0))


async def test_stop_closes_client_connections(
    server: BreakerServer, client: AsyncModbusTcpClient
) -> None:
    await server.stop()
    assert not server.running
    await server.stop()  # idempotent


# -- Modbus RTU over a pair of bridged ptys -------------------------------------------


@pytest.fixture
async def serial_line() -> AsyncIterator[tuple[str, str]]:
    """Two pty devices joined like a null-modem cable: (server side, client side).

    Parity N: this kernel's ptys reject even parity (see docs STYLE, known traps).
    """
    loop = asyncio.get_running_loop()
    (m1, s1), (m2, s2) = pty.openpty(), pty.openpty()
    for fd in (s1, s2):
        tty.setraw(fd)

    def pump(src: int, dst: int) -> None:
        with contextlib.suppress(OSError):
            os.write(dst, os.read(src, 4096))

    loop.add_reader(m1, pump, m1, m2)
    loop.add_reader(m2, pump, m2, m1)
    try:
        yield os.ttyname(s1), os.ttyname(s2)
    finally:
        loop.remove_reader(m1)
        loop.remove_reader(m2)
        for fd in (m1, s1, m2, s2):
            os.close(fd)


async def test_rtu_map_and_link(serial_line: tuple[str, str], breakers: list[Breaker]) -> None:
    server_side, client_side = serial_line
    async with BreakerServer(breakers, rtu=server_side, baudrate=19200) as srv:
        assert srv.port is None
        assert srv.where == f"Modbus RTU {server_side} 19200 8N1"
        link = ModbusBreakerLink.rtu(client_side, 1, baudrate=19200, timeout=2)
        async with link:
            assert await link.trip() is Outcome.TRIPPED
            assert await link.manual_close() is Outcome.REFUSED_LOCKED
            assert await link.permit_close(True) is Outcome.PERMITTED
            assert await link.manual_close() is Outcome.CLOSED
            assert await link.for_unit(2).trip() is Outcome.TRIPPED
            assert await link.for_unit(2).close() is Outcome.CLOSED
            assert await link.read_counters() == (1, 1)
            with pytest.raises(BreakerConfigError):
                await link.set_fault(9)
            await link.set_fault("welded")
            assert breakers[0].fault is BreakerFault.WELDED


async def test_rtu_stays_silent_to_other_units(
    serial_line: tuple[str, str], breakers: list[Breaker]
) -> None:
    server_side, client_side = serial_line
    async with BreakerServer(breakers, rtu=server_side) as srv:
        assert srv.running
        link = ModbusBreakerLink.rtu(client_side, 9, timeout=0.3, retries=0)
        async with link:
            with pytest.raises(BreakerConnectionError, match="unit 9"):
                await link.read_state()
            assert await link.for_unit(3).read_state() is BreakerState.CLOSED


async def test_serve_forever_returns_on_request_stop(breakers: list[Breaker]) -> None:
    srv = BreakerServer(breakers, tcp=("127.0.0.1", 0))
    await srv.start()
    task = asyncio.create_task(srv.serve_forever())
    srv.request_stop()  # what the CLI's SIGTERM handler does
    await asyncio.wait_for(task, 5)
    assert not srv.running
