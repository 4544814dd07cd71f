"""``feikong bench fleet``: how many meters one process holds, and how fast it answers.

The fleet (real meters, in-process breakers, TCP gateway; its clock runs a day
a second by default, so daily freezes accumulate) runs in a separate
process — ``feikong meter-sim`` started as a subprocess — so its memory can be
read from ``/proc/PID/status`` (VmRSS) without this process's share. This
process then reads random meters over several concurrent TCP connections:
``00010000`` (forward active energy) and ``050601xx`` (daily freeze) 11H reads,
for ``--seconds`` seconds, and prints::

    meters=10000
    rss_mib=…          (the fleet process, after the reads)
    reads_per_s=…      (answered reads, normal or abnormal)
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from protocol.client import MasterClient
from protocol.errors import AbnormalReplyError, ResponseTimeoutError, TransportError
from protocol.transport import TcpTransport

from .output import console, fail

__all__ = ["FleetBenchResult", "register", "run_fleet_bench"]

READ_DIS = (0x00010000, 0x05060101, 0x05060102, 0x05060103)
_SERVING = re.compile(r"tcp://127\.0\.0\.1:(\d+)")


@dataclass(frozen=True, slots=True)
class FleetBenchResult:
    meters: int
    rss_mib: float
    reads_per_s: float
    reads: int
    abnormal: int
    timeouts: int
    start_s: float
    """Real seconds from starting the fleet process to its serving line."""


def register(bench_app: typer.Typer) -> None:
    """Add ``fleet`` to the ``feikong bench`` group."""
    bench_app.command("fleet")(fleet_command)


def fleet_command(
    meters: Annotated[int, typer.Option("--meters", min=1, help="Meters in the fleet.")] = 10000,
    seconds: Annotated[float, typer.Option("--seconds", min=0.1, help="How long to read.")] = 10.0,
    connections: Annotated[
        int, typer.Option("--connections", min=1, max=256, help="Concurrent TCP connections.")
    ] = 8,
    speed: Annotated[
        float,
        typer.Option(
            "--speed",
            min=1.0,
            help="Fleet clock speed (default: a day a second, so daily freezes exist).",
        ),
    ] = 86400.0,
    start_timeout: Annotated[
        float,
        typer.Option("--start-timeout", min=1.0, help="Seconds to wait for the fleet to start."),
    ] = 600.0,
) -> None:
    """Start a fleet of real meters in a subprocess and read them over TCP."""
    try:
        result = asyncio.run(run_fleet_bench(meters, seconds, connections, speed, start_timeout))
    except (RuntimeError, TransportError) as exc:
        fail(escape(str(exc)))
    for line in (
        f"meters={result.meters}",
        f"rss_mib={result.rss_mib:.0f}",
        f"reads_per_s={result.reads_per_s:.0f}",
        f"reads={result.reads}",
        f"abnormal={result.abnormal}",
        f"timeouts={result.timeouts}",
        f"start_s={result.start_s:.1f}",
    ):
        console.print(line, highlight=False)


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


async def run_fleet_bench(
    meters: int,
    seconds: float,
    connections: int,
    speed: float = 86400.0,
    start_timeout: float = 600.0,
) -> FleetBenchResult:
    """Run the benchmark (see the module docstring)."""
    t0 = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from feikong.cli import main; main()",
        "meter-sim",
        "--tcp",
        "127.0.0.1:0",
        "--first-address",
        "1",
        "--count",
        str(meters),
        "--speed",
        f"{speed:g}",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "COLUMNS": "500"},
    )
    try:
        assert proc.stdout is not None and proc.stderr is not None
        try:
            line = (await asyncio.wait_for(proc.stdout.readline(), start_timeout)).decode()
        except TimeoutError:
            raise RuntimeError(f"the fleet did not start within {start_timeout:g} s") from None
        match = _SERVING.search(line)
        if match is None:
            err = (await proc.stderr.read()).decode().strip()
            raise RuntimeError(f"the fleet did not start: {line.strip() or err}")
        start_s = time.monotonic() - t0
        port = int(match[1])
        reads, abnormal, timeouts = await _drive(port, meters, seconds, connections)
        rss = _rss_mib(proc.pid)
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 60)
            except TimeoutError:
                proc.kill()
                await proc.wait()
    return FleetBenchResult(
        meters=meters,
        rss_mib=rss,
        reads_per_s=reads / seconds,
        reads=reads,
        abnormal=abnormal,
        timeouts=timeouts,
        start_s=start_s,
    )


async def _drive(port: int, meters: int, seconds: float, connections: int) -> tuple[int, int, int]:
    counts = [0, 0, 0]
    deadline = time.monotonic() + seconds
    rng = random.Random(1)

    async def reader() -> None:
        transport = TcpTransport("127.0.0.1", port, response_timeout=5.0)
        client = MasterClient(transport)
        try:
            while time.monotonic() < deadline:
                address = f"{rng.randrange(1, meters + 1):012d}"
                try:
                    await client.read_raw(address, rng.choice(READ_DIS))
                except AbnormalReplyError:
                    counts[1] += 1
                except ResponseTimeoutError:
                    counts[2] += 1
                    continue
                counts[0] += 1
        finally:
            await transport.close()

    await asyncio.gather(*(reader() for _ in range(connections)))
    return counts[0], counts[1], counts[2]
