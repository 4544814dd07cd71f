"""``feikong meter-sim``: option errors, the serving line, SIGTERM saves the state."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

import meter_sim.fleet
from feikong.cmd_meter_sim import register
from meter_sim.fleet import MeterFactory
from meter_sim.runner import FleetServers
from protocol.client import MasterClient
from protocol.transport import TcpTransport

from .fleet_doubles import FakeMeter

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "meter_sim" / "scenarios" / "example.toml"


@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """A stand-in for the feikong app (so meter-sim stays a subcommand)."""

    register(app)
    return app


def run(app: typer.Typer, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["meter-sim", *args])
    return result.exit_code, result.stdout, result.stderr


TCP = ["--tcp", "127.0.0.1:0"]
FLEET = ["--first-address", "1", "--count", "3"]


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ([*FLEET], "give exactly one of --tcp HOST:PORT or --serial DEV"),
        ([*TCP, "--serial", "/dev/ttyUSB0", *FLEET], "give exactly one of --tcp"),
        (["--tcp", "nowhere", *FLEET], "--tcp wants HOST:PORT"),
        (["--serial", "/dev/x", "--per-meter-ports", *FLEET], "--per-meter-ports needs --tcp"),
        (["--serial", "/dev/x", "--parity", "Q", *FLEET], "parity 'Q' is not valid"),
        (["--serial", "/dev/x", "--baud", "1234", *FLEET], "baud rate 1234 is not supported"),
        ([*TCP], "give --first-address N and --count N (or set them in the --scenario [fleet])"),
        ([*TCP, "--count", "3"], "--count N (or set them in the --scenario [fleet])"),
        ([*TCP, "--first-address", "x1", "--count", "3"], "--first-address wants a meter address"),
        ([*TCP, *FLEET[:2], "--count", "0"], "--count must be at least 1"),
        ([*TCP, "--first-address", "999999999998", "--count", "2"], "expected meters that fit"),
        ([*TCP, *FLEET, "--breaker", "modbus://x"], "--breaker: breakers must be 'inproc'"),
        ([*TCP, *FLEET, "--speed", "0"], "--speed must be > 0"),
        ([*TCP, *FLEET, "--permit-close-delay", "-1"], "--permit-close-delay must be >= 0"),
        ([*TCP, *FLEET, "--scenario", "missing.toml"], "missing.toml: (file): expected"),
        ([*TCP, *FLEET, "--key-file", "missing.key"], "--key-file: master key file"),
    ],
)
def test_bad_options_are_one_line_and_exit_2(app: typer.Typer, args: list[str], error: str) -> None:
    code, out, err = run(app, *args)
    assert code == 2, err
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and error in lines[0], lines[0]


def test_unknown_kind_is_a_usage_error(app: typer.Typer) -> None:
    code, _, _ = run(app, *TCP, *FLEET, "--kind", "prepaid")
    assert code == 2


@pytest.fixture
def fake_meters(monkeypatch: pytest.MonkeyPatch) -> None:
    def factory() -> MeterFactory:
        return FakeMeter

    monkeypatch.setattr(meter_sim.fleet, "_default_factory", factory)


def stop_when_serving(monkeypatch: pytest.MonkeyPatch, seen: list[FleetServers]) -> None:
    """Send ourselves SIGTERM once the servers are up (the command's handler catches it)."""
    start = FleetServers.start

    async def start_then_stop(self: FleetServers) -> None:
        await start(self)
        seen.append(self)
        self.started_with = (list(self.servers), dict(self.by_address))  # type: ignore[attr-defined]
        asyncio.get_running_loop().call_soon(os.kill, os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(FleetServers, "start", start_then_stop)


def test_serves_until_sigterm_and_saves_state(
    app: typer.Typer, fake_meters: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    seen: list[FleetServers] = []
    stop_when_serving(monkeypatch, seen)
    state = tmp_path / "state.json"
    code, out, err = run(app, *TCP, *FLEET, "--seed", "5", "--state", str(state), "--speed", "60")
    assert code == 0, err
    (servers,) = seen
    url = servers.started_with[0][0].url  # type: ignore[attr-defined]
    assert out.strip().splitlines() == [
        f"meter-sim: 3 remote meters (000000000001…000000000003) on TCP gateway {url} — "
        f"in-process breakers, time ×60, state {state}, lab test key. Ctrl-C to stop."
    ]
    meters = json.loads(state.read_text())["meters"]
    assert meters == {f"{n:012d}": {"energy": 4.5 + n} for n in (1, 2, 3)}


def test_scenario_and_per_meter_ports(
    app: typer.Typer, fake_meters: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[FleetServers] = []
    stop_when_serving(monkeypatch, seen)
    code, out, err = run(app, *TCP, "--per-meter-ports", "--scenario", str(EXAMPLE))
    assert code == 0, err
    (servers,) = seen
    assert len(servers.started_with[1]) == 19  # type: ignore[attr-defined]  # 10 is offline
    assert "meter-sim: 19 remote + 1 local meters (000000000001…000000000020)" in out
    assert "one TCP port per meter on 127.0.0.1:" in out and "1 offline" in out


def test_corrupt_state_file_is_an_error_and_kept(
    app: typer.Typer, fake_meters: None, tmp_path: Path
) -> None:
    state = tmp_path / "state.json"
    state.write_text("{broken")
    code, out, err = run(app, *TCP, *FLEET, "--state", str(state))
    assert code == 1
    assert out == ""
    assert err.startswith(f"error: state file {state} is corrupt")
    assert state.read_text() == "{broken"


def test_port_in_use_is_an_error(app: typer.Typer, fake_meters: None) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        code, _, err = run(app, "--tcp", f"127.0.0.1:{port}", *FLEET)
    assert code == 1
    assert err.startswith(f"error: cannot listen on 127.0.0.1:{port}")


def _real_meters_exist() -> bool:
    try:
        from meter_sim.factory import build_meter  # noqa: F401
        from meter_sim.remote import RemoteMeter  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.skipif(not _real_meters_exist(), reason="meter_sim.remote is not there yet")
async def test_real_subprocess_read_then_sigterm(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from feikong.cli import main; main()",
        "meter-sim",
        *TCP,
        "--first-address",
        "123456780001",
        "--count",
        "5",
        "--state",
        str(state),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "COLUMNS": "300"},
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 15)).decode()
        match = re.search(r"tcp://127\.0\.0\.1:(\d+)", line)
        assert match, line
        async with TcpTransport("127.0.0.1", int(match[1]), response_timeout=2) as t:
            client = MasterClient(t)
            value = await client.read("123456780003", 0x00010000)
            assert value.item.unit == "kWh"
            abbreviated = await client.read("AAAAAAAA0005", 0x00010000)  # only one matches
            assert abbreviated.item.unit == "kWh"
    finally:
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 15)
    assert code == 0
    meters = json.loads(state.read_text())["meters"]
    assert sorted(meters) == [f"12345678{n:04d}" for n in range(1, 6)]
