"""Real processes for the head-end fault tests: a ``feikong meter-sim`` fleet and
``feikong headend run``, each in its own process, sharing a real SQLite file.

The tests kill, restart and starve these processes; what they check is read back
from the database (jobs, attempts, collections) and from the meters themselves
over DL/T 645 (the trip count 1D000001 and status word 3), as an operator would.
"""

from __future__ import annotations

import asyncio
import io
import os
import re
import signal
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.engine import Engine

from headend.archive import import_archive
from headend.db import migrate, open_database
from headend.jobs import FINAL_STATES, JobRecord, JobStore
from meter_sim.fleet import Fleet
from meter_sim.scenario import FleetSpec
from meter_sim.state import write_state
from protocol import SteppedClock
from protocol.client import MasterClient
from protocol.codes import StatusWord3
from protocol.messages import ReadRequest, to_frame
from protocol.security import load_master_key
from protocol.transport import TcpTransport

DI_TRIP_COUNT = 0x1D000001
"""跳闸总次数: the meter counts each opening of its relay (not each 1AH it hears)."""
DI_STATUS3 = 0x04000503
ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "300"}


def address(n: int) -> str:
    return f"{n:012d}"


async def start_fleet(
    count: int,
    *,
    scenario: Path | None = None,
    listen: str | None = None,
    state: Path | None = None,
) -> tuple[asyncio.subprocess.Process, str]:
    """``feikong meter-sim`` with meters 1..count; returns the process and its URL."""
    args = ["--listen", listen] if listen else ["--tcp", "127.0.0.1:0"]
    if scenario is not None:
        args += ["--scenario", str(scenario)]
    if state is not None:
        args += ["--state", str(state)]
    proc = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "feikong", "meter-sim", *args),
        *("--first-address", "1", "--count", str(count)),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        env=ENV,
    )
    assert proc.stdout is not None
    line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
    match = re.search(r"((?:tcp|mqtt)://\S+)", line)
    assert match, f"meter-sim said {line!r}"
    return proc, match[1].rstrip(",;)")


def port_of(url: str) -> int:
    match = re.search(r":(\d+)", url.split("//", 1)[1])
    assert match, url
    return int(match[1])


async def stop(proc: asyncio.subprocess.Process, *, timeout: float = 20) -> int:
    """SIGTERM and wait; returns the exit code."""
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return await asyncio.wait_for(proc.wait(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(f"process {proc.pid} did not stop on SIGTERM") from None


async def kill9(proc: asyncio.subprocess.Process) -> None:
    proc.send_signal(signal.SIGKILL)
    await proc.wait()
    assert proc.returncode == -signal.SIGKILL


def archive(
    tmp: Path,
    meters: Iterable[str],
    *,
    port: int | None = None,
    mqtt: tuple[int, str] | None = None,
    concurrency: int = 4,
) -> Engine:
    """A migrated SQLite file with one gateway (or MQTT) channel and ``meters`` on it."""
    engine = open_database(f"sqlite:///{tmp / 'feikong.db'}")
    migrate(engine)
    lines = [
        "record,name,kind,host,port,mqtt_topic,concurrency,address,meter_number,"
        "channel,breaker_type"
    ]
    if mqtt is not None:
        lines.append(f"channel,line,mqtt,127.0.0.1,{mqtt[0]},{mqtt[1]},{concurrency},,,,")
    else:
        lines.append(f"channel,line,gateway,127.0.0.1,{port},,{concurrency},,,,")
    lines += [f"meter,,remote,,,,,{a},{a},line,external" for a in meters]
    report = import_archive(engine, io.StringIO("\n".join(lines) + "\n"))
    assert not report.errors, report.errors
    return engine


async def start_headend(url: str, *extra: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "feikong", "headend", "run", "--db", url, *extra),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=ENV,
    )


def jobs(engine: Engine) -> dict[str, JobRecord]:
    with engine.connect() as c:
        ids = [r[0] for r in c.execute(text("SELECT id FROM headend_job"))]
    store = JobStore(engine)
    return {i: store.require(i) for i in ids}


def attempts(engine: Engine) -> dict[str, list[tuple[int, str | None, str | None]]]:
    """job id → [(attempt no, outcome, error)] — the command log."""
    out: dict[str, list[tuple[int, str | None, str | None]]] = {}
    with engine.connect() as c:
        rows = c.execute(
            text(
                "SELECT job_id, attempt_no, outcome, error FROM headend_job_attempt "
                "ORDER BY job_id, attempt_no"
            )
        )
        for job_id, number, outcome, error in rows:
            out.setdefault(job_id, []).append((number, outcome, error))
    return out


async def wait_until(predicate: Any, timeout: float, what: str, step: float = 0.05) -> None:
    """Poll ``predicate()`` (the state of other processes: nothing to await on)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(step)


def all_final(engine: Engine) -> bool:
    return all(j.state in FINAL_STATES for j in jobs(engine).values())


@dataclass(frozen=True)
class MeterView:
    trips: int
    relay_open: bool
    trip_command: bool
    guaranteed: bool


async def look(port: int, meters: Sequence[str]) -> dict[str, MeterView]:
    """Each meter's trip count and relay state, read over its own TCP connection."""
    out: dict[str, MeterView] = {}
    async with TcpTransport("127.0.0.1", port, response_timeout=3) as transport:
        client = MasterClient(transport)
        for a in meters:
            trips = int((await client.read(a, DI_TRIP_COUNT)).value)
            word = StatusWord3(int((await client.read(a, DI_STATUS3)).value))
            out[a] = MeterView(
                trips,
                bool(word & StatusWord3.RELAY_OPEN),
                bool(word & StatusWord3.RELAY_COMMAND_TRIP),
                bool(word & StatusWord3.GUARANTEED),
            )
    return out


async def aged_state(path: Path, count: int, days: int = 2) -> None:
    """A meter-sim state file (``--state``) of meters 1..count that have been running
    for ``days`` days up to now, so they hold the daily freezes of those days."""
    now = datetime.now().replace(microsecond=0)
    clock = SteppedClock(now - timedelta(days=days))
    key, _ = load_master_key(None)  # the key `feikong meter-sim` uses without --key-file
    fleet = Fleet(FleetSpec(first_address=1, count=count).configs(), clock, master_key=key)
    try:
        clock.set(now)
        for a in fleet.addresses:  # a request makes each meter live up to now
            await fleet.handle(to_frame(a, ReadRequest(di=0x00010000)))
        write_state(path, fleet.to_state())
    finally:
        await fleet.aclose()


def collection_rows(engine: Engine, day: str) -> dict[str, tuple[str, int]]:
    """meter → (status, attempts) in headend_collection for ``day``."""
    with engine.connect() as c:
        rows = c.execute(
            text("SELECT meter_address, status, attempts FROM headend_collection WHERE day = :day"),
            {"day": day},
        )
        return {a: (s, n) for a, s, n in rows}


__all__ = [
    "DI_STATUS3",
    "DI_TRIP_COUNT",
    "MeterView",
    "address",
    "aged_state",
    "all_final",
    "archive",
    "attempts",
    "collection_rows",
    "jobs",
    "kill9",
    "look",
    "port_of",
    "select",
    "start_fleet",
    "start_headend",
    "stop",
    "wait_until",
]
