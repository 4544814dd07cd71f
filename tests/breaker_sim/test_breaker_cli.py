"""``feikong breaker-sim``: option errors, the serving line, Ctrl-C."""

from __future__ import annotations

import asyncio
import re
import signal
import socket
import sys
from pathlib import Path

import pytest
import typer
from pymodbus.client import AsyncModbusTcpClient
from typer.testing import CliRunner

from breaker_sim import BreakerFault, BreakerServer
from feikong.cmd_breaker import register


@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """A stand-in for the feikong app (so breaker-sim stays a subcommand)."""

    register(app)
    return app


def run(app: typer.Typer, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["breaker-sim", *args])
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("bad", ["localhost", "host:", "host:port", "1.2.3.4:70000", ":1502"])
def test_bad_host_port_is_one_line_and_exit_2(app: typer.Typer, bad: str) -> None:
    code, out, err = run(app, "--modbus-tcp", bad)
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --modbus-tcp")


@pytest.mark.parametrize(
    "args", [[], ["--modbus-tcp", "127.0.0.1:0", "--modbus-rtu", "/dev/ttyUSB0"]]
)
def test_exactly_one_transport(app: typer.Typer, args: list[str]) -> None:
    code, _, err = run(app, *args)
    assert code == 2
    assert err.strip() == "error: give exactly one of --modbus-tcp HOST:PORT or --modbus-rtu DEV"


def test_unknown_fault_is_a_usage_error(app: typer.Typer) -> None:
    code, _, _ = run(app, "--modbus-tcp", "127.0.0.1:0", "--fault", "melted")
    assert code == 2


def test_serves_until_ctrl_c(app: typer.Typer, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[BreakerServer] = []

    async def interrupted(self: BreakerServer) -> None:
        seen.append(self)
        await self.stop()
        raise KeyboardInterrupt  # what Ctrl-C does to asyncio.run

    monkeypatch.setattr(BreakerServer, "serve_forever", interrupted)
    code, out, err = run(
        app,
        "--modbus-tcp",
        "127.0.0.1:0",
        "--count",
        "3",
        "--remotely-closable",
        "--trip-response",
        "1.5",
        "--fault",
        "welded",
    )
    assert code == 0, err
    (server,) = seen
    assert server.port
    assert out.strip().splitlines() == [
        f"breaker-sim: 3 breakers (units 1-3) on Modbus TCP 127.0.0.1:{server.port}"
        " — remotely closable, trip in 1.5 s, fault welded. Ctrl-C to stop."
    ]
    units = server.breakers
    assert sorted(units) == [1, 2, 3]
    assert all(b.fault is BreakerFault.WELDED for b in units.values())
    assert all(b.config.remotely_closable for b in units.values())


def test_port_in_use_is_an_error(app: typer.Typer) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        code, _, err = run(app, "--modbus-tcp", f"127.0.0.1:{port}")
    assert code == 1
    assert err.startswith(f"error: cannot serve breakers on Modbus TCP 127.0.0.1:{port}")


ROOT = Path(__file__).resolve().parents[2]
STANDALONE = """
import typer
from feikong.cmd_breaker import register
app = typer.Typer()
app.callback()(lambda: None)
register(app)
app()
"""


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
async def test_end_to_end_in_a_subprocess(stop: signal.Signals) -> None:
    """The real command: Typer runs it, it serves, a client trips unit 2, a signal stops it."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        STANDALONE,
        "breaker-sim",
        "--modbus-tcp",
        "127.0.0.1:0",
        "--count",
        "2",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        match = re.search(r"Modbus TCP 127\.0\.0\.1:(\d+)", line)
        assert match, line
        client = AsyncModbusTcpClient("127.0.0.1", port=int(match[1]), timeout=2, retries=0)
        assert await client.connect()
        assert not (await client.write_coil(0, True, device_id=2)).isError()
        states = await client.read_input_registers(0, count=2, device_id=2)
        assert states.registers == [1, 1]  # open-locked, one trip
        client.close()
    finally:
        proc.send_signal(stop)
        code = await asyncio.wait_for(proc.wait(), 20)
    assert code == 0
