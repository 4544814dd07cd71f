"""``feikong headend run | command | status`` against ``feikong meter-sim`` in its own process.

Real processes, real TCP, a real SQLite file and a real mosquitto: what an operator
does on a bench.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from feikong.cli import app
from headend.events import CommandSucceeded, EventBus, MqttEventSubscriber

cli = CliRunner()
METERS = ("000000000001", "000000000002")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"meter-sim exited with {proc.returncode}"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)  # an external process starting: nothing to await
    raise AssertionError(f"meter-sim did not listen on {port}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def meter_port() -> Iterator[int]:
    """Two remote fee-control meters (external breakers) on a TCP gateway, own process."""
    port = _free_port()
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "feikong", "meter-sim", "--tcp", f"127.0.0.1:{port}"),
            *("--first-address", "1", "--count", str(len(METERS))),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_port(port, proc)
        yield port
    finally:
        _stop(proc)


@pytest.fixture
def db(tmp_path: Path, meter_port: int) -> str:
    url = f"sqlite:///{tmp_path / 'feikong.db'}"
    archive = tmp_path / "archive.csv"
    lines = [
        "record,name,kind,host,port,address,meter_number,channel,breaker_type",
        f"channel,bench,gateway,127.0.0.1,{meter_port},,,,",
        *(f"meter,,remote,,,{a},{a},bench,external" for a in METERS),
        "meter,,remote,,,000000000009,000000000009,bench,external",  # not on the line
    ]
    archive.write_text("\n".join(lines) + "\n")
    result = cli.invoke(app, ["headend", "import-archive", str(archive), "--db", url])
    assert result.exit_code == 0, result.output
    return url


def test_command_wait_trips_a_meter_and_shows_the_attempts(db: str) -> None:
    args = ["headend", "command", METERS[0], "trip", "--reason", "arrears", "--db", db]
    args += ["--settle", "0.2"]
    result = cli.invoke(app, [*args, "--wait", "--id", "bill-1"])
    assert result.exit_code == 0, result.output
    assert "trip done; relay open; energy at the trip" in result.output
    assert "succeeded" in result.output  # the attempts table
    # the same id again: the finished job, not a second trip
    again = cli.invoke(app, [*args, "--wait", "--id", "bill-1", "--json"])
    assert again.exit_code == 0, again.output
    data = json.loads(again.stdout)
    assert data["job"]["state"] == "succeeded" and len(data["attempts"]) == 1
    assert data["job"]["params"] == {"reason": "arrears"}
    assert [line[:5] for line in data["attempts"][0]["frames"]][:2] == ["TX 68", "RX 68"]
    # and back: permit the close
    permit = cli.invoke(
        app, ["headend", "command", METERS[0], "permit-close", "--db", db, "--wait"]
    )
    assert permit.exit_code == 0, permit.output


def test_command_failures_exit_non_zero_with_the_reason(db: str) -> None:
    result = cli.invoke(
        app,
        [
            *("headend", "command", "000000000009", "guarantee", "--db", db, "--wait"),
            *("--attempts", "1", "--timeout", "0.2"),
        ],
    )
    assert result.exit_code == 1
    assert "did not answer" in result.output
    unknown = cli.invoke(app, ["headend", "command", "000000000077", "trip", "--db", db])
    assert unknown.exit_code == 2 and "not in the archive" in unknown.output
    bad = cli.invoke(app, ["headend", "command", METERS[0], "explode", "--db", db])
    assert bad.exit_code == 2


def test_status_without_a_running_head_end(db: str) -> None:
    queued = cli.invoke(app, ["headend", "command", METERS[1], "guarantee", "--db", db])
    assert queued.exit_code == 0 and "queued" in queued.output
    result = cli.invoke(app, ["headend", "status", "--db", db])
    assert result.exit_code == 0, result.output
    assert "guarantee-on" in result.output and "none recorded yet" in result.output
    data = json.loads(cli.invoke(app, ["headend", "status", "--db", db, "--json"]).stdout)
    assert data["jobs"] == {"guarantee-on": {"queued": 1}} and data["head_end"] is None
    assert data["collection"][0]["meters"] == 3


async def test_run_executes_queued_jobs_publishes_events_and_stops_cleanly(
    db: str, mosquitto: Any, mqtt_prefix: str
) -> None:
    url = f"{mosquitto.url}/{mqtt_prefix}/events"
    # queued before the head-end starts (as if it had crashed): run picks it up
    queued = cli.invoke(app, ["headend", "command", METERS[1], "trip", "--db", db, "--id", "a"])
    assert queued.exit_code == 0, queued.output
    bus = EventBus()
    outcomes = bus.subscribe(CommandSucceeded)
    async with MqttEventSubscriber(bus, url) as subscriber:
        await subscriber.wait_connected()
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "feikong",
            "headend",
            "run",
            "--db",
            db,
            "--mqtt",
            url,
            "--settle",
            "0.2",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            first = await asyncio.wait_for(outcomes.get(), 20)
            assert isinstance(first, CommandSucceeded)
            assert (first.job_id, first.address, first.relay) == ("a", METERS[1], "open")
            # queued by another process while it runs: picked up within a poll
            cmd = ["headend", "command", METERS[1], "permit-close", "--db", db, "--id", "b"]
            assert cli.invoke(app, cmd).exit_code == 0
            second = await asyncio.wait_for(outcomes.get(), 20)
            assert isinstance(second, CommandSucceeded) and second.job_id == "b"
            status = json.loads(cli.invoke(app, ["headend", "status", "--db", db, "--json"]).stdout)
            assert status["jobs"]["trip"] == {"succeeded": 1}
            assert status["head_end"]["running"] is True
        finally:
            proc.send_signal(signal.SIGTERM)
            out, err = await asyncio.wait_for(proc.communicate(), 20)
    text = out.decode()
    assert proc.returncode == 0, err.decode()
    assert "head-end running: 3 meter(s) on 1 channel(s)" in text
    assert f"{METERS[1]} trip done, relay open" in text and "head-end stopped" in text
    after = json.loads(cli.invoke(app, ["headend", "status", "--db", db, "--json"]).stdout)
    assert after["head_end"]["running"] is False
    (channel,) = after["head_end"]["channels"]
    # two jobs: 03H, 1CH and status word 3 each, and the energy at the trip
    assert channel["name"] == "bench" and channel["requests"] == 7 and channel["timeouts"] == 0
