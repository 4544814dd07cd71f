"""``feikong selftest`` against a simulated meter on a real TCP socket (served in a thread).

The meter is a :mod:`meter_sim` meter behind :class:`~meter_sim.runner.FleetServers`
on its own event loop, so the command runs exactly as on a bench: its own
``asyncio.run``, a real connection, exit codes and printed output.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
from collections.abc import Iterator
from datetime import datetime

import pytest
import typer
from typer.testing import CliRunner

from feikong.cmd_selftest import register
from meter_sim.config import FaultConfig, MeterConfig
from meter_sim.fleet import Fleet
from meter_sim.runner import FleetServers, TcpGateway
from protocol import SteppedClock

ADDRESS = "123456781012"


class ThreadedMeter:
    """One simulated meter on a loopback TCP port, served from a thread of its own."""

    def __init__(self, faults: FaultConfig) -> None:
        self.faults = faults
        self.port = 0
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(),), daemon=True)

    async def _main(self) -> None:
        try:
            clock = SteppedClock(datetime(2026, 3, 1, 8, 0))
            config = MeterConfig(ADDRESS, seed=5, faults=self.faults)
            async with Fleet([config], clock, master_key=bytes(16)) as fleet:
                servers = FleetServers(fleet, TcpGateway("127.0.0.1", 0))
                async with servers:
                    await clock.advance(26 * 3600)  # a night passes: a daily freeze
                    self.port = servers.servers[0].port  # type: ignore[attr-defined]
                    self._loop = asyncio.get_running_loop()
                    self._stop = asyncio.Event()
                    self._ready.set()
                    await self._stop.wait()
        except BaseException as exc:
            self._error = exc
            self._ready.set()

    def __enter__(self) -> ThreadedMeter:
        self._thread.start()
        assert self._ready.wait(10), "the meter did not start"
        if self._error is not None:
            raise self._error
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """A stand-in for the feikong app (so selftest stays a subcommand)."""

    register(app)
    return app


@pytest.fixture
def meter() -> Iterator[ThreadedMeter]:
    with ThreadedMeter(FaultConfig()) as m:
        yield m


def run(app: typer.Typer, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["selftest", *args])
    return result.exit_code, result.stdout, result.stderr


def test_a_conforming_meter_passes_and_exits_0(app: typer.Typer, meter: ThreadedMeter) -> None:
    code, out, err = run(app, "--tcp", f"127.0.0.1:{meter.port}", "-a", ADDRESS, "--timeout", "0.3")
    assert code == 0, (out, err)
    assert f"selftest of meter {ADDRESS} on tcp://127.0.0.1:{meter.port}" in out
    assert "PASS: 14 of 14 mandatory checks passed" in " ".join(out.split())
    assert re.search(r"freeze-time +│ 05060001 │ pass +│ +\d+ │ 2026-03-02", out), out
    # the meter runs on the test's stepped clock (2026-03-02), not this machine's
    assert "optional checks not passed: clock-offset (fail)" in " ".join(out.split())


def test_json_and_verbose_carry_the_frames(app: typer.Typer, meter: ThreadedMeter) -> None:
    args = ("--tcp", f"127.0.0.1:{meter.port}", "-a", ADDRESS, "--timeout", "0.3")
    code, out, _ = run(app, *args, "--json")
    assert code == 0
    data = json.loads(out)
    assert data["ok"] is True and data["address"] == ADDRESS
    by_key = {c["key"]: c for c in data["checks"]}
    assert by_key["read-address"]["frames"][0]["hex"] == (
        "FE FE FE FE 68 AA AA AA AA AA AA 68 13 00 DF 16"  # PROTOCOL.md §6 TV4a
    )
    assert by_key["unknown-di"]["error_word"] == "02"
    assert by_key["energy-forward"]["elapsed_ms"] is not None
    code, out, _ = run(app, *args, "--verbose")
    assert code == 0
    assert "read-address           TX FE FE FE FE 68 AA AA AA AA AA AA 68 13 00 DF 16" in out


def test_a_missing_freeze_exits_1_naming_the_checks(app: typer.Typer) -> None:
    with ThreadedMeter(FaultConfig(missing_freeze_days=3)) as m:
        code, out, err = run(app, "--tcp", f"127.0.0.1:{m.port}", "-a", ADDRESS, "--timeout", "0.3")
    assert code == 1
    assert re.search(r"freeze-time +│ 05060001 │ not-supported │ +\d+ │ refused with", out), out
    text = " ".join(err.split())
    assert "FAIL: 3 of 14 mandatory checks did not pass" in text
    assert "freeze-time (not-supported)" in text


def test_a_silent_meter_times_out_and_exits_1_with_a_hint(app: typer.Typer) -> None:
    with ThreadedMeter(FaultConfig(no_reply=True)) as m:
        code, out, err = run(app, "--tcp", f"127.0.0.1:{m.port}", "-a", ADDRESS, "--timeout", "0.1")
    assert code == 1
    assert out.count("timeout") >= 13
    assert "the meter answered nothing" in " ".join(err.split())


def test_a_wrong_address_says_which_meter_answers(app: typer.Typer, meter: ThreadedMeter) -> None:
    code, _, err = run(
        app, "--tcp", f"127.0.0.1:{meter.port}", "-a", "123456781099", "--timeout", "0.1"
    )
    assert code == 1
    assert f"rerun with --address {ADDRESS}" in " ".join(err.split())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-a", "12345", "--tcp", "127.0.0.1:1"], "--address wants the meter's 12-digit address"),
        (["-a", ADDRESS], "give exactly one of --serial DEV, --tcp HOST:PORT or --url URL"),
        (["-a", ADDRESS, "--tcp", "nowhere"], "--tcp wants HOST:PORT"),
        (["-a", ADDRESS, "--serial", "/dev/x", "--parity", "Q"], "parity 'Q' is not valid"),
        (["-a", ADDRESS, "--serial", "/dev/x", "--baud", "1234"], "baud rate 1234"),
        (["-a", ADDRESS, "--serial", "/dev/feikong-none"], "no such device"),
        (["-a", ADDRESS, "--url", "ftp://x"], "unknown transport scheme 'ftp'"),
        (["-a", ADDRESS, "--tcp", "127.0.0.1:1", "--key-file", "k"], "go with --auth"),
    ],
)
def test_bad_input_exits_2_with_one_clear_line(
    app: typer.Typer, args: list[str], message: str
) -> None:
    code, out, err = run(app, *args)
    assert code == 2
    assert message in " ".join(err.split())
    assert "Traceback" not in out + err


def test_a_refused_port_exits_2(app: typer.Typer) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code, _, err = run(app, "--tcp", f"127.0.0.1:{port}", "-a", ADDRESS)
    assert code == 2
    assert "cannot open the link to the meter" in err and f"127.0.0.1:{port}" in err
