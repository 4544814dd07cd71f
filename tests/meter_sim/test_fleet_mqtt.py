"""The fleet on an MQTT broker (DTU-style meters): real meters answer over a real mosquitto."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from datetime import datetime
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from feikong.cmd_meter_sim import register
from meter_sim.fleet import Fleet
from meter_sim.runner import FleetServers, MqttBroker, listen_from_url
from meter_sim.scenario import FleetSpec
from protocol import Address, Frame, SteppedClock
from protocol.client import MasterClient
from protocol.errors import ResponseTimeoutError, TransportError
from protocol.transport import MqttFrameServer, MqttTransport, open_transport
from tests.conftest import Mosquitto

pytestmark = pytest.mark.broker

ROOT = Path(__file__).resolve().parents[2]
KEY = b"0123456789abcdef"
ENERGY = 0x00010000
DAILY_FREEZE = 0x05060101  # forward active energy of the last daily freeze (N=1)


def real_fleet(count: int) -> tuple[Fleet, SteppedClock]:
    clock = SteppedClock(datetime(2026, 3, 10, 9, 0))
    configs = FleetSpec(first_address=123456780001, count=count, seed=3).configs()
    return Fleet(configs, clock, master_key=KEY), clock


async def test_real_meters_answer_over_mqtt(mosquitto: Mosquitto, mqtt_prefix: str) -> None:
    fleet, clock = real_fleet(3)
    await clock.advance(24 * 3600)  # past midnight: yesterday's daily freeze exists
    url = f"{mosquitto.url}/{mqtt_prefix}"
    async with FleetServers(fleet, MqttBroker(url)) as servers:
        assert servers.describe() == f"MQTT broker {url} (topics …/ADDRESS/down and /up)"
        (server,) = servers.servers
        assert isinstance(server, MqttFrameServer) and server.reply_preamble == 0
        async with open_transport(f"{url}?timeout=2") as link:
            client = MasterClient(link)
            for address in fleet.addresses:
                frozen = await client.read(address, DAILY_FREEZE)
                assert frozen.di == DAILY_FREEZE
                assert frozen.item is not None and frozen.item.unit == "kWh"
            # abbreviated address: one meter matches and answers on its own topic
            wanted = Frame(Address("AAAAAAAA0002"), 0x11, ENERGY.to_bytes(4, "little"))
            assert (await link.request(wanted)).address == "123456780002"
            await client.time_sync(datetime(2026, 3, 11, 9, 1))  # broadcast, never answered
            client.timeout = 0.3
            with pytest.raises(ResponseTimeoutError, match="123456789999"):
                await client.read("123456789999", ENERGY)
        stats = server.stats
    assert link.stats.ignored_frames == 0
    assert stats.silent == 2  # the broadcast and the unknown address


async def test_concurrent_reads_of_many_meters_over_mqtt(
    mosquitto: Mosquitto, mqtt_prefix: str
) -> None:
    fleet, clock = real_fleet(20)
    await clock.advance(24 * 3600)
    url = f"{mosquitto.url}/{mqtt_prefix}"
    async with FleetServers(fleet, MqttBroker(url)):
        async with MqttTransport(
            mosquitto.host, mosquitto.port, mqtt_prefix, response_timeout=5, max_in_flight=20
        ) as link:
            client = MasterClient(link)
            together = await asyncio.gather(
                *(client.read_raw(a, DAILY_FREEZE) for a in fleet.addresses)
            )
            assert link.stats.replies == 20
        async with MqttTransport(
            mosquitto.host, mosquitto.port, mqtt_prefix, response_timeout=5, max_in_flight=1
        ) as one_by_one:
            client = MasterClient(one_by_one)
            alone = [await client.read_raw(a, DAILY_FREEZE) for a in fleet.addresses]
    assert together == alone  # each meter's own reading, in request order


def test_listen_urls() -> None:
    assert listen_from_url("mqtt://10.1.2.3/site/meters") == MqttBroker(
        "mqtt://10.1.2.3/site/meters"
    )
    with pytest.raises(TransportError, match="cannot serve a fleet on 'mem://x'"):
        listen_from_url("mem://x")
    with pytest.raises(TransportError, match="unknown parameter 'pipeline'"):
        listen_from_url("mqtt://10.1.2.3?pipeline=8")


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--listen", "mem://x"], "--listen: cannot serve a fleet on 'mem://x'"),
        (
            ["--listen", "mqtt://h/a/+"],
            "--listen: mqtt://h/a/+: MQTT topic prefix 'a/+' must not contain",
        ),
        (["--listen", "mqtt://h", "--tcp", "127.0.0.1:0"], "give exactly one of --tcp"),
        (["--listen", "mqtt://h", "--per-meter-ports"], "--per-meter-ports needs --tcp"),
    ],
)
def test_bad_listen_options_exit_2(args: list[str], error: str) -> None:
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """Stand-in for the feikong app."""

    register(app)
    result = CliRunner().invoke(app, ["meter-sim", *args, "--first-address", "1", "--count", "2"])
    assert result.exit_code == 2, result.stderr
    assert result.stderr.startswith("error: ") and error in result.stderr, result.stderr


async def test_meter_sim_command_serves_on_mqtt(mosquitto: Mosquitto, mqtt_prefix: str) -> None:
    """``feikong meter-sim --listen mqtt://…`` in its own process answers a read."""
    url = f"{mosquitto.url}/{mqtt_prefix}"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from feikong.cli import main; main()",
        "meter-sim",
        "--listen",
        url,
        "--first-address",
        "123456780001",
        "--count",
        "3",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "COLUMNS": "300"},
    )
    try:
        assert proc.stdout is not None and proc.stderr is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 15)).decode()
        if not line:
            pytest.fail((await proc.stderr.read()).decode())
        assert re.search(rf"3 remote meters .* on MQTT broker {re.escape(url)} ", line), line
        async with MqttTransport(mosquitto.host, mosquitto.port, mqtt_prefix) as link:
            value = await MasterClient(link).read(Address("123456780002"), ENERGY)
            assert value.item is not None and value.item.unit == "kWh"
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 15)
    assert code == 0
