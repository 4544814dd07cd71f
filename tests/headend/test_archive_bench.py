"""The README's bench archive rows: a meter on a serial port (2400 8E1) and behind a gateway.

Each row is imported as written in the README recipe (only the port names are the
test's) and the channel pool reads a simulated meter through it; the parity words
other systems export (``even``, 偶校验) load as the letter.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from datetime import datetime

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from headend.archive import export_archive, import_archive
from headend.channels import ChannelPool
from headend.models import Channel
from meter_sim.config import MeterConfig
from meter_sim.fleet import Fleet
from meter_sim.runner import FleetServers, SerialBus, TcpGateway
from protocol import SteppedClock, decode_message, to_frame
from protocol.errors import TransportError
from protocol.messages import ReadReply, ReadRequest
from tests.protocol.transport.conftest import PtyNullModem

METER = "123456781012"
HEADER = (
    "record,name,kind,host,port,serial_port,baud,parity,concurrency,"
    "address,meter_number,channel,breaker_type\n"
)


@pytest.fixture
async def null_modem() -> AsyncIterator[PtyNullModem]:
    modem = PtyNullModem()
    try:
        yield modem
    finally:
        modem.close()


def fleet() -> Fleet:
    return Fleet([MeterConfig(METER)], SteppedClock(datetime(2026, 3, 1)), master_key=bytes(16))


async def read_energy(engine: Engine) -> ReadReply:
    async with ChannelPool.from_archive(engine, timeout=1.0) as pool:
        reply = await pool.request(METER, to_frame(METER, ReadRequest(0x00010000)))
    message = decode_message(reply)
    assert isinstance(message, ReadReply)
    return message


async def test_a_meter_on_an_rs485_port_at_2400_8e1(
    engine: Engine, null_modem: PtyNullModem
) -> None:
    meters = fleet()
    servers = FleetServers(meters, SerialBus(null_modem.a, 2400, "E"))
    parity = "E"
    try:
        await servers.start()
    except TransportError as exc:  # some kernels refuse even parity on a pty (EINVAL)
        assert "refuse parity E" in str(exc)
        parity = "N"
        servers = FleetServers(meters, SerialBus(null_modem.a, 2400, parity))
        await servers.start()
    try:
        rows = (
            f"channel,rs485-1,serial,,,{null_modem.b},2400,{parity},1,,,,\n"
            f"meter,,remote,,,,,,,{METER},{METER},rs485-1,external\n"
        )
        assert not import_archive(engine, io.StringIO(HEADER + rows)).errors
        assert (await read_energy(engine)).di == 0x00010000
    finally:
        await servers.stop()
    with Session(engine) as session:
        channel = session.scalars(select(Channel)).one()
    assert channel.url == f"serial://{null_modem.b}?baud=2400&parity={parity}"


async def test_a_meter_behind_a_tcp_serial_gateway(engine: Engine) -> None:
    meters = fleet()
    async with FleetServers(meters, TcpGateway("127.0.0.1", 0)) as servers:
        port = servers.servers[0].port  # type: ignore[attr-defined]
        # a transparent TCP/serial converter carries one RS-485 line: concurrency 1
        rows = (
            f"channel,gw-1,gateway,127.0.0.1,{port},,,,1,,,,\n"
            f"meter,,remote,,,,,,,{METER},{METER},gw-1,external\n"
        )
        assert not import_archive(engine, io.StringIO(HEADER + rows)).errors
        assert (await read_energy(engine)).di == 0x00010000


@pytest.mark.parametrize(
    ("spelled", "stored"),
    [("even", "E"), ("Odd", "O"), ("none", "N"), ("偶校验", "E"), ("奇校验", "O"), ("e", "E")],
)
def test_parity_words_load_as_the_letter(engine: Engine, spelled: str, stored: str) -> None:
    rows = f"channel,bus,serial,,,/dev/ttyUSB0,2400,{spelled},1,,,,\n"
    assert not import_archive(engine, io.StringIO(HEADER + rows)).errors
    out = io.StringIO()
    export_archive(engine, out)
    assert f",/dev/ttyUSB0,2400,{stored}," in out.getvalue()


def test_an_unknown_parity_word_is_reported(engine: Engine) -> None:
    rows = "channel,bus,serial,,,/dev/ttyUSB0,2400,parity-please,1,,,,\n"
    (error,) = import_archive(engine, io.StringIO(HEADER + rows)).errors
    assert error.line == 2
    assert error.reason == "parity 'parity-please' is not one of N, E, O"
