"""``feikong bench reads``: the head-end collects every meter's daily freeze, flat out.

A fleet of ``--meters`` simulated meters runs in other processes (``feikong
meter-sim``, one per ``--gateways`` TCP gateway endpoint, meters split between
them). Its clock runs fast enough that a daily freeze is taken a few seconds
after start and slowly enough that the next one is far off, so the whole
collection reads one day. This process builds the archive (bulk insert into
``--db``, a temporary SQLite file by default), waits for the fleet's first
freeze, and runs :func:`headend.collection.collect_day` through a
:class:`headend.channels.ChannelPool` (``--concurrency`` requests in flight per
gateway, ``--pipeline`` of them per TCP connection), storing every reading.
It prints ``key=value`` lines::

    meters=10000 collected=10000 missing=0
    reads=10000            (meters whose daily freeze was collected and stored)
    frames=10000           (11H requests: one 0506FF block per meter, three for a
                            meter that refuses the block)
    reads_per_s=…          (reads / collection wall time: daily freezes a second)
    frames_per_s=…
    p50_ms=… p99_ms=…      (request latency through the pool)
    headend_cpu_us_per_read=…  fleet_cpu_us_per_read=…  (CPU time of each side)
    headend_cpu_us_per_frame=…  fleet_cpu_us_per_frame=…
    load_1m=… load_1m_after=…  (``uptime`` load before and after the run)

Both processes run on uvloop when it is installed (``--loop asyncio`` to compare).
"""

from __future__ import annotations

import asyncio
import cProfile
import gc
import math
import os
import re
import resource
import signal
import sys
import tempfile
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.markup import escape

from ._gc import serving_gc
from .output import fail, print_figures

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

__all__ = ["ReadsBenchResult", "register", "run_reads_bench"]

_SERVING = re.compile(r"tcp://127\.0\.0\.1:(\d+)")
_DAY_S = 86_400
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True, slots=True)
class ReadsBenchResult:
    meters: int
    collected: int
    missing: int
    frames: int
    elapsed_s: float
    p50_ms: float | None
    p99_ms: float | None
    headend_cpu_s: float
    fleet_cpu_s: float
    readings_written: int
    fleet_start_s: float
    freeze_wait_s: float
    archive_s: float
    day: date
    gateways: int
    concurrency: int
    pipeline: int | None
    connections: int
    speed: float
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float] = (0.0, 0.0, 0.0)
    loop: str = "asyncio"

    @property
    def reads(self) -> int:
        """Daily freezes collected and stored (one a meter)."""
        return self.collected

    @property
    def reads_per_s(self) -> float:
        return self.reads / self.elapsed_s if self.elapsed_s else 0.0

    @property
    def frames_per_s(self) -> float:
        return self.frames / self.elapsed_s if self.elapsed_s else 0.0

    @property
    def meters_per_s(self) -> float:
        return self.meters / self.elapsed_s if self.elapsed_s else 0.0

    def lines(self) -> list[tuple[str, Any]]:
        per_read = 1e6 / self.reads if self.reads else 0.0
        per_frame = 1e6 / self.frames if self.frames else 0.0
        return [
            ("meters", self.meters),
            ("collected", self.collected),
            ("missing", self.missing),
            ("reads", self.reads),
            ("frames", self.frames),
            ("reads_per_s", round(self.reads_per_s)),
            ("frames_per_s", round(self.frames_per_s)),
            ("meters_per_s", round(self.meters_per_s)),
            ("p50_ms", self.p50_ms),
            ("p99_ms", self.p99_ms),
            ("elapsed_s", round(self.elapsed_s, 3)),
            ("readings_written", self.readings_written),
            ("headend_cpu_us_per_read", round(self.headend_cpu_s * per_read, 1)),
            ("fleet_cpu_us_per_read", round(self.fleet_cpu_s * per_read, 1)),
            ("headend_cpu_us_per_frame", round(self.headend_cpu_s * per_frame, 1)),
            ("fleet_cpu_us_per_frame", round(self.fleet_cpu_s * per_frame, 1)),
            ("loop", self.loop),
            ("day", self.day.isoformat()),
            ("gateways", self.gateways),
            ("concurrency", self.concurrency),
            ("pipeline", self.pipeline if self.pipeline is not None else "auto"),
            ("connections", self.connections),
            ("fleet_speed", round(self.speed)),
            ("fleet_start_s", round(self.fleet_start_s, 1)),
            ("freeze_wait_s", round(self.freeze_wait_s, 1)),
            ("archive_s", round(self.archive_s, 2)),
            ("load_1m", round(self.load_before[0], 2)),
            ("load_1m_after", round(self.load_after[0], 2)),
        ]


def register(bench_app: typer.Typer) -> None:
    """Add ``reads`` to the ``feikong bench`` group."""
    bench_app.command("reads")(reads_command)


def reads_command(
    meters: Annotated[int, typer.Option("--meters", min=1, help="Meters in the fleet.")] = 10000,
    pipeline: Annotated[
        int,
        typer.Option(
            "--pipeline",
            min=1,
            help="Requests in flight per TCP connection (1: a connection per request).",
        ),
    ] = 32,
    concurrency: Annotated[
        int, typer.Option("--concurrency", min=1, help="Requests in flight per gateway.")
    ] = 256,
    gateways: Annotated[
        int,
        typer.Option("--gateways", min=1, max=16, help="Fleet processes (gateway endpoints)."),
    ] = 1,
    db: Annotated[
        str | None,
        typer.Option("--db", help="Database URL (default: a temporary SQLite file)."),
    ] = None,
    timeout: Annotated[
        float, typer.Option("--timeout", min=0.01, help="Response timeout, seconds.")
    ] = 5.0,
    day_s: Annotated[
        float | None,
        typer.Option(
            "--day-s",
            min=2.0,
            help="Real seconds a fleet day lasts (the collection must fit in one day); "
            "default: 30 s or 1 s per 2000 meters, whichever is longer.",
        ),
    ] = None,
    profile: Annotated[
        Path | None,
        typer.Option("--profile", help="Write a cProfile of the collection to this file."),
    ] = None,
    start_timeout: Annotated[
        float, typer.Option("--start-timeout", min=1.0, help="Seconds to wait for the fleet.")
    ] = 600.0,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    loop: Annotated[
        str,
        typer.Option(
            "--loop",
            help="Event loop of the head-end and the fleet: uvloop or asyncio "
            "(default: uvloop when installed).",
        ),
    ] = "auto",
    frontends: Annotated[
        int | None,
        typer.Option(
            "--frontends",
            min=1,
            help="Rounds of 1..K sharded front-end processes with PostgreSQL and mosquitto "
            "(feikong/cmd_bench_frontends.py).",
        ),
    ] = None,
) -> None:
    """Collect every simulated meter's daily freeze over TCP and store it; print reads/s."""
    from headend.errors import HeadendError
    from protocol.errors import ProtocolError

    if frontends is not None:
        from .cmd_bench_frontends import frontends_command

        frontends_command(
            meters=meters,
            frontends=frontends,
            gateways=gateways,
            concurrency=concurrency,
            pipeline=pipeline,
            timeout=timeout,
            day_s=day_s,
            start_timeout=start_timeout,
            as_json=as_json,
        )
        return

    if loop not in ("auto", "uvloop", "asyncio"):
        fail(f"--loop must be uvloop or asyncio, got {escape(loop)!r}", 2)
    use_uvloop = _uvloop_installed() if loop == "auto" else loop == "uvloop"
    if use_uvloop and not _uvloop_installed():
        fail("--loop uvloop: uvloop is not installed (pip install uvloop)", 2)
    try:
        result = _run(
            use_uvloop,
            run_reads_bench(
                meters,
                pipeline=pipeline,
                concurrency=concurrency,
                gateways=gateways,
                db=db,
                timeout=timeout,
                day_s=day_s or max(30.0, meters / 2000),
                profile=profile,
                start_timeout=start_timeout,
            ),
        )
    except (RuntimeError, HeadendError, ProtocolError) as exc:
        fail(escape(str(exc)))
    print_figures(result.lines(), as_json)


def _uvloop_installed() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


_T = TypeVar("_T")


def _run(use_uvloop: bool, coro: Coroutine[Any, Any, _T]) -> _T:
    """Run the bench's coroutine on uvloop (when asked and installed) or asyncio."""
    if use_uvloop:
        import uvloop

        return uvloop.run(coro)
    return asyncio.run(coro)


def _loop_name() -> str:
    """``uvloop`` or ``asyncio``: the event loop this process runs on."""
    module = type(asyncio.get_running_loop()).__module__
    return "uvloop" if module.startswith("uvloop") else "asyncio"


# --------------------------------------------------------------------------- the fleet


@dataclass(slots=True)
class _Fleet:
    proc: asyncio.subprocess.Process
    port: int
    first: int
    count: int


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime + stime


def _self_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _start_fleet(first: int, count: int, speed: float, timeout: float) -> _Fleet:
    """A ``meter-sim`` process, on uvloop when this process runs on it."""
    # just the meter-sim command: the fleet needs nothing else of the CLI
    program = "import typer; from feikong.cmd_meter_sim import meter_sim_command as c; typer.run(c)"
    if _loop_name() == "uvloop":
        program = (
            "import asyncio, uvloop; asyncio.set_event_loop_policy(uvloop.EventLoopPolicy()); "
            + program
        )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        program,
        "--tcp",
        "127.0.0.1:0",
        "--first-address",
        str(first),
        "--count",
        str(count),
        "--speed",
        f"{speed:.6f}",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "COLUMNS": "500"},
    )
    assert proc.stdout is not None and proc.stderr is not None
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), timeout)).decode()
    except TimeoutError:
        await _stop(proc)
        raise RuntimeError(f"the fleet did not start within {timeout:g} s") from None
    match = _SERVING.search(line)
    if match is None:
        err = (await proc.stderr.read()).decode().strip()
        await _stop(proc)
        raise RuntimeError(f"the fleet did not start: {line.strip() or err}")
    return _Fleet(proc, int(match[1]), first, count)


async def _start_fleets(meters: int, gateways: int, speed: float, timeout: float) -> list[_Fleet]:
    """Meters 1..``meters`` shared out over ``gateways`` fleet processes, started at once;
    if one fails to start, the others are stopped and its error raised."""
    share = math.ceil(meters / gateways)
    starts = []
    for k in range(gateways):
        first = 1 + k * share
        count = min(share, meters - k * share)
        if count > 0:
            starts.append(_start_fleet(first, count, speed, timeout))
    results = await asyncio.gather(*starts, return_exceptions=True)
    errors = [e for e in results if not isinstance(e, _Fleet)]
    if errors:
        for fleet in results:
            if isinstance(fleet, _Fleet):
                await _stop(fleet.proc)
        raise RuntimeError(str(errors[0]))
    return [f for f in results if isinstance(f, _Fleet)]


async def _stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 60)
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def _first_freeze(port: int, address: str, timeout: float) -> tuple[date, datetime]:
    """Wait until the meter has taken a daily freeze; its date and the meter's time now."""
    from protocol.client import MasterClient
    from protocol.errors import AbnormalReplyError
    from protocol.transport import TcpTransport

    transport = TcpTransport("127.0.0.1", port, response_timeout=5.0)
    client = MasterClient(transport)
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                frozen = (await client.read(address, 0x05060001)).value
                day = (await client.read(address, 0x04000101)).value
                now = (await client.read(address, 0x04000102)).value
                return frozen.date(), datetime.combine(day, now)
            except AbnormalReplyError:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"the fleet took no daily freeze within {timeout:g} s"
                    ) from None
                await asyncio.sleep(0.2)
    finally:
        await transport.close()


# --------------------------------------------------------------------------- the archive


def _build_archive(engine: Engine, fleets: list[_Fleet], concurrency: int) -> None:
    """Channels ``bench-gw-K`` and every meter, written in bulk (existing rows updated)."""
    from sqlalchemy import Table, select
    from sqlalchemy.dialects import postgresql, sqlite

    from headend.models import Channel, Meter, utcnow

    channels: Table = Channel.__table__  # type: ignore[attr-defined]
    meter_table: Table = Meter.__table__  # type: ignore[attr-defined]
    now = utcnow()
    with engine.begin() as connection:
        insert: Any = (
            postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
        )
        ids: list[int] = []
        for k, fleet in enumerate(fleets):
            row = {
                "name": f"bench-gw-{k + 1}",
                "kind": "gateway",
                "host": "127.0.0.1",
                "port": fleet.port,
                "concurrency": concurrency,
                "updated_at": now,
            }
            stmt = insert(channels).values(row)
            stmt = stmt.on_conflict_do_update(
                index_elements=["name"],
                set_={"port": fleet.port, "concurrency": concurrency, "updated_at": now},
            )
            connection.execute(stmt)
            ids.append(
                connection.execute(
                    select(channels.c.id).where(channels.c.name == row["name"])
                ).scalar_one()
            )
        upsert = insert(meter_table)
        upsert = upsert.on_conflict_do_update(
            index_elements=["address"],
            set_={"channel_id": upsert.excluded.channel_id, "active": True},
        )
        for fleet, channel_id in zip(fleets, ids, strict=True):
            rows: list[dict[str, Any]] = []
            for n in range(fleet.first, fleet.first + fleet.count):
                address = f"{n:012d}"
                rows.append(
                    {
                        "address": address,
                        "meter_number": address,
                        "kind": "remote",
                        "channel_id": channel_id,
                        "breaker_type": "external",
                        "supply_unit": f"unit-{n % 10}",
                        "reading_segment": f"seg-{n % 100:02d}",
                        "active": True,
                        "updated_at": now,
                    }
                )
                if len(rows) == 5000:
                    connection.execute(upsert, rows)
                    rows = []
            if rows:
                connection.execute(upsert, rows)


# --------------------------------------------------------------------------- the run


async def run_reads_bench(
    meters: int,
    *,
    pipeline: int | None = None,
    concurrency: int = 256,
    gateways: int = 1,
    db: str | None = None,
    timeout: float = 5.0,
    day_s: float = 30.0,
    profile: Path | None = None,
    start_timeout: float = 600.0,
) -> ReadsBenchResult:
    """Run the benchmark (see the module docstring)."""
    from headend.channels import ChannelPool
    from headend.collection import collect_day
    from headend.db import migrate, open_database
    from protocol.clock import AcceleratedClock

    gateways = min(gateways, meters)
    load_before = os.getloadavg()
    # The fleet clock starts at real local time: choose its speed so that its first
    # midnight comes within ``day_s`` real seconds and the next one ``day_s`` later.
    speed = _DAY_S / day_s
    tmp: tempfile.TemporaryDirectory[str] | None = None
    if db is None:
        tmp = tempfile.TemporaryDirectory(prefix="feikong-bench-")
        db = f"sqlite:///{tmp.name}/bench.db"
    fleets: list[_Fleet] = []
    t0 = time.monotonic()
    try:
        fleets = await _start_fleets(meters, gateways, speed, start_timeout)
        fleet_start_s = time.monotonic() - t0

        t1 = time.monotonic()
        engine = open_database(db)
        migrate(engine)
        _build_archive(engine, fleets, concurrency)
        archive_s = time.monotonic() - t1

        t2 = time.monotonic()
        day, meter_now = await _first_freeze(fleets[0].port, f"{fleets[0].first:012d}", 2 * day_s)
        if len(fleets) > 1:
            # Each fleet's clock starts with its process: one that started later takes its
            # freeze later. Collect the day every fleet has frozen.
            for fleet in fleets[1:]:
                other, _ = await _first_freeze(fleet.port, f"{fleet.first:012d}", 2 * day_s)
                day = min(day, other)
            _, meter_now = await _first_freeze(fleets[0].port, f"{fleets[0].first:012d}", day_s)
        freeze_wait_s = time.monotonic() - t2
        clock = AcceleratedClock(start=meter_now, speed=speed)  # the head-end follows the fleet

        pool = ChannelPool.from_archive(
            engine, timeout=timeout, clock=clock, pipeline=pipeline, latency_window=4 * meters
        )
        profiler = cProfile.Profile() if profile is not None else None
        # The set-up (archive, pool) leaves garbage and young objects that would cost the
        # collection a full GC pass; a head-end that has been running has none: start clean.
        gc.collect()
        fleet_cpu0 = sum(_cpu_s(f.proc.pid) for f in fleets)
        cpu0 = _self_cpu_s()
        start = time.perf_counter()
        try:
            if profiler is not None:
                profiler.enable()
            with serving_gc():  # as feikong headend collect runs
                report = await collect_day(engine, pool, day)
            if profiler is not None:
                profiler.disable()
            elapsed = time.perf_counter() - start
            headend_cpu = _self_cpu_s() - cpu0
            fleet_cpu = sum(_cpu_s(f.proc.pid) for f in fleets) - fleet_cpu0
            health = pool.health()
        finally:
            await pool.aclose()
        if profiler is not None and profile is not None:
            profiler.dump_stats(str(profile))
        latencies = pool.latencies()
        engine.dispose()
    finally:
        for fleet in fleets:
            await _stop(fleet.proc)
        if tmp is not None:
            tmp.cleanup()
    return ReadsBenchResult(
        meters=report.meters,
        collected=report.collected,
        missing=report.missing,
        frames=report.requests,
        elapsed_s=elapsed,
        p50_ms=_ms(latencies, 0.50),
        p99_ms=_ms(latencies, 0.99),
        headend_cpu_s=headend_cpu,
        fleet_cpu_s=fleet_cpu,
        readings_written=report.readings_written,
        fleet_start_s=fleet_start_s,
        freeze_wait_s=freeze_wait_s,
        archive_s=archive_s,
        day=day,
        gateways=len(fleets),
        concurrency=concurrency,
        pipeline=pipeline,
        connections=sum(h.connections for h in health),
        speed=speed,
        load_before=load_before,
        load_after=os.getloadavg(),
        loop=_loop_name(),
    )


def _ms(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[max(1, math.ceil(fraction * len(ordered))) - 1] * 1000, 3)
