"""``feikong meter-sim --breaker``: meters driving Modbus breakers on a bench.

The stand-in for a real breaker is ``feikong breaker-sim`` itself, run as its own
process: on Modbus RTU over a pty pair (an RS-485 line), and on Modbus TCP with
the meter on a chosen unit (``?unit=N``).
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from feikong.cmd_meter_sim import register
from meter_sim.config import BreakerTargetError, ModbusBreakerTarget, parse_breaker_target
from protocol import StatusWord3
from protocol.client import MasterClient
from protocol.codes import ControlCommand
from protocol.transport import TcpTransport
from tests.protocol.transport.conftest import PtyNullModem

ROOT = Path(__file__).resolve().parents[2]
METER = "000000000001"
STATUS_3 = 0x04000503


def test_the_breaker_forms() -> None:
    assert parse_breaker_target("inproc") is None
    plain = parse_breaker_target("modbus://127.0.0.1:1502")
    assert plain == ModbusBreakerTarget("tcp", "127.0.0.1:1502", host="127.0.0.1", port=1502)
    assert not plain.needs_own_links  # the fleet's own 247-units-per-port layout
    unit = parse_breaker_target("modbus://10.0.0.9:502?unit=5")
    assert unit is not None and unit.needs_own_links and unit.units(2) == [5, 6]
    rtu = parse_breaker_target("modbus-rtu:///dev/ttyUSB1?baud=19200&parity=e&stopbits=2&unit=3")
    assert rtu == ModbusBreakerTarget(
        "rtu",
        "/dev/ttyUSB1",
        baudrate=19200,
        parity="E",
        stopbits=2,
        first_unit=3,
        explicit_unit=True,
    )
    assert str(rtu) == "modbus-rtu:///dev/ttyUSB1 (19200 8E2, unit 3)"
    default = parse_breaker_target("modbus-rtu://COM4")
    assert default is not None and (default.where, default.baudrate, default.parity) == (
        "COM4",
        9600,
        "N",
    )


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("modbus://host", "'modbus://host' needs HOST:PORT"),
        ("modbus://host:502?unit=0", "unit='0' must be 1-247"),
        ("modbus://host:502?unit=248", "unit='248' must be 1-247"),
        ("modbus://host:502?baud=9600", "unknown parameter(s) baud"),
        ("modbus-rtu://", "names no serial port"),
        ("modbus-rtu:///dev/x?baud=1234", "baud 1234 is not one of"),
        ("modbus-rtu:///dev/x?parity=Q", "parity 'Q' is not N, E or O"),
        ("modbus-rtu:///dev/x?timeout=-1", "timeout='-1' must be a number of seconds > 0"),
        ("ftp://x", "breakers must be 'inproc', modbus://HOST:PORT"),
    ],
)
def test_bad_breaker_forms_say_what_to_write(text: str, error: str) -> None:
    with pytest.raises(BreakerTargetError) as info:
        parse_breaker_target(text)
    assert error in str(info.value)


def test_too_many_meters_for_the_units_left() -> None:
    target = parse_breaker_target("modbus-rtu:///dev/x?unit=246")
    assert target is not None
    with pytest.raises(BreakerTargetError, match="need units up to 248"):
        target.units(3)


async def feikong(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from feikong.cli import main; main()",
        *args,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "COLUMNS": "300"},
    )


async def first_line(proc: asyncio.subprocess.Process) -> str:
    assert proc.stdout is not None
    line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
    if not line:
        assert proc.stderr is not None
        raise AssertionError((await proc.stderr.read()).decode())
    return line


async def stop(proc: asyncio.subprocess.Process) -> tuple[int, str]:
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
    code = await asyncio.wait_for(proc.wait(), 15)
    assert proc.stderr is not None
    return code, (await proc.stderr.read()).decode()


@pytest.fixture
async def null_modem() -> AsyncIterator[PtyNullModem]:
    modem = PtyNullModem()
    try:
        yield modem
    finally:
        modem.close()


async def trip_and_read_status(port: int) -> StatusWord3:
    async with TcpTransport("127.0.0.1", port, response_timeout=3) as link:
        client = MasterClient(link)
        expiry = datetime.now() + timedelta(hours=1)
        await client.control_plain(METER, ControlCommand.TRIP, expiry)
        status = (await client.read(METER, STATUS_3)).value
    assert isinstance(status, StatusWord3)
    return status


async def test_meter_sim_drives_breaker_sim_over_modbus_rtu_on_a_pty_line(
    null_modem: PtyNullModem,
) -> None:
    breaker = await feikong(
        "-v", "breaker-sim", "--modbus-rtu", null_modem.a, "--count", "3", "--baud", "9600"
    )
    meters = None
    try:
        assert "3 breakers (units 1-3)" in await first_line(breaker)
        meters = await feikong(
            "meter-sim",
            "--tcp",
            "127.0.0.1:0",
            "--first-address",
            METER,
            "--count",
            "1",
            "--test-mode",
            "--breaker",
            f"modbus-rtu://{null_modem.b}?baud=9600&parity=N&unit=3",
        )
        line = await first_line(meters)
        assert f"breakers on modbus-rtu://{null_modem.b} (9600 8N1, unit 3)" in line
        match = re.search(r"tcp://127\.0\.0\.1:(\d+)", line)
        assert match, line
        status = await trip_and_read_status(int(match[1]))
        # the relay state comes back from the breaker's contacts over Modbus
        assert StatusWord3.RELAY_OPEN in status and StatusWord3.RELAY_COMMAND_TRIP in status
    finally:
        if meters is not None:
            meter_code, meter_log = await stop(meters)
        code, log = await stop(breaker)
    assert meter_code == 0, meter_log
    assert code == 0
    # breaker-sim -v logs each signal: unit 3 (and no other) was tripped
    assert re.search(r"unit 3: .*trip", log, re.IGNORECASE), log
    assert not re.search(r"unit [12]: .*trip", log, re.IGNORECASE), log


async def test_meter_sim_on_a_chosen_modbus_tcp_unit() -> None:
    breaker = await feikong("-v", "breaker-sim", "--modbus-tcp", "127.0.0.1:0", "--count", "2")
    meters = None
    try:
        line = await first_line(breaker)
        found = re.search(r"127\.0\.0\.1:(\d+)", line)
        assert found, line
        meters = await feikong(
            "meter-sim",
            "--tcp",
            "127.0.0.1:0",
            "--first-address",
            METER,
            "--count",
            "1",
            "--test-mode",
            "--breaker",
            f"modbus://127.0.0.1:{found[1]}?unit=2",
        )
        served = await first_line(meters)
        match = re.search(r"gateway tcp://127\.0\.0\.1:(\d+)", served)
        assert match, served
        status = await trip_and_read_status(int(match[1]))
        assert StatusWord3.RELAY_OPEN in status
    finally:
        if meters is not None:
            await stop(meters)
        _, log = await stop(breaker)
    assert re.search(r"unit 2: .*trip", log, re.IGNORECASE), log
    assert not re.search(r"unit 1: .*trip", log, re.IGNORECASE), log


@pytest.mark.parametrize(
    ("breaker", "error"),
    [
        ("modbus-rtu:///dev/x?unit=246", "--breaker: 3 meters from unit 246 need units up to 248"),
        (
            "modbus://127.0.0.1:502?unit=x",
            "--breaker: breaker 'modbus://127.0.0.1:502?unit=x': unit='x' must be 1-247",
        ),
        ("modbus://h", "'modbus://h' needs HOST:PORT"),
    ],
)
def test_a_bad_breaker_option_exits_2(breaker: str, error: str) -> None:
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """A stand-in for the feikong app."""

    register(app)
    args = ["meter-sim", "--tcp", "127.0.0.1:0", "--first-address", METER, "--count", "3"]
    result = CliRunner().invoke(app, [*args, "--breaker", breaker])
    assert result.exit_code == 2
    assert error in " ".join(result.stderr.split())
