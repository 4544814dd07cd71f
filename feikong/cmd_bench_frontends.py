"""``feikong bench reads --frontends K``: the collection by K sharded front-end processes.

Everything runs on loopback, each part in its own process: the meter fleet
(``--gateways`` ``feikong meter-sim`` processes behind TCP gateways, as in ``bench
reads``), a throw-away PostgreSQL cluster (``initdb`` + ``pg_ctl``) and a mosquitto
broker (:mod:`feikong._servers`), and for each ``k`` = 1 … K a round with ``k``
front-end processes (:class:`headend.sharding.Frontend`, shards ``0/k`` …
``k-1/k``). A round starts the front-ends, waits until each is ``active``, asks
every shard to collect the fleet's latest daily freeze (:class:`ShardDispatcher`:
one ``collect`` message per shard topic) and waits for every shard's ``collected``
report; the wall time runs from the request to the last report. The readings of
the previous round are deleted first, so each round writes every reading.

It prints, per round, ``key=value`` lines::

    frontends=2 meters=20000 collected=20000 missing=0 reads=40000
    reads_per_s=…  meters_per_s=…  elapsed_s=…  slowest_shard_s=…
    frontend_cpu_us_per_read=…   (CPU of the front-end processes, per read)
    fleet_cpu_us_per_read=…  postgres_cpu_us_per_read=…  broker_cpu_us_per_read=…
    cpu_us_per_read=…            (everything, per read)

and the machine's core count and load average. On a machine with C cores the
aggregate figure cannot grow past what C cores do for front-ends, fleet, database
and broker together: CPU per read is the figure that carries to other machines.
"""

from __future__ import annotations

import asyncio
import math
import os
import resource
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.markup import escape

from .output import console, fail, print_json

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

__all__ = ["FrontendsRound", "frontends_command", "run_frontends_bench"]

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_FRONTEND = (
    "import typer; from feikong.cmd_headend_shards import frontend_process_command as c; "
    "typer.run(c)"
)


@dataclass(frozen=True, slots=True)
class FrontendsRound:
    """What one round (``frontends`` processes) measured."""

    frontends: int
    meters: int
    collected: int
    missing: int
    reads: int
    readings_written: int
    elapsed_s: float
    slowest_shard_s: float
    frontend_cpu_s: float
    fleet_cpu_s: float
    postgres_cpu_s: float
    broker_cpu_s: float
    start_s: float
    day: str
    shards: list[dict[str, Any]] = field(default_factory=list)

    def lines(self) -> list[tuple[str, Any]]:
        per = 1e6 / self.reads if self.reads else 0.0
        total = self.frontend_cpu_s + self.fleet_cpu_s + self.postgres_cpu_s + self.broker_cpu_s
        return [
            ("frontends", self.frontends),
            ("meters", self.meters),
            ("collected", self.collected),
            ("missing", self.missing),
            ("reads", self.reads),
            ("readings_written", self.readings_written),
            ("reads_per_s", round(self.reads / self.elapsed_s) if self.elapsed_s else 0),
            ("meters_per_s", round(self.meters / self.elapsed_s) if self.elapsed_s else 0),
            ("elapsed_s", round(self.elapsed_s, 3)),
            ("slowest_shard_s", round(self.slowest_shard_s, 3)),
            ("frontend_cpu_us_per_read", round(self.frontend_cpu_s * per, 1)),
            ("fleet_cpu_us_per_read", round(self.fleet_cpu_s * per, 1)),
            ("postgres_cpu_us_per_read", round(self.postgres_cpu_s * per, 1)),
            ("broker_cpu_us_per_read", round(self.broker_cpu_s * per, 1)),
            ("cpu_us_per_read", round(total * per, 1)),
            ("frontends_start_s", round(self.start_s, 1)),
            ("day", self.day),
        ]


# --------------------------------------------------------------------------- CPU


def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None  # gone


def _cpu_s(pid: int, *, children: bool = False) -> float:
    """User + system CPU seconds of ``pid`` (and of its reaped children)."""
    fields = _stat(pid)
    if fields is None:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / _TICKS


def _tree_cpu_s(root: int) -> float:
    """CPU of a server and its processes: the postmaster, its reaped and live children."""
    total = _cpu_s(root, children=True)
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields is not None and int(fields[1]) == root:
                total += (int(fields[11]) + int(fields[12])) / _TICKS
    return total


def _postmaster(data: Path) -> int:
    return int((data / "postmaster.pid").read_text().split()[0])


# --------------------------------------------------------------------------- the run


async def _start_frontends(
    k: int,
    pg_url: str,
    broker_port: int,
    clock_at: tuple[datetime, float],
    options: list[str],
    logs: Path,
) -> list[asyncio.subprocess.Process]:
    """Front-end processes of shards 0/k … k-1/k; their clock follows the fleet's (same
    start, same speed), their logs go to ``logs``."""
    fleet_time, epoch = clock_at
    procs = []
    for i in range(k):
        argv = ["--shard", f"{i}/{k}", "--db", pg_url, "--mqtt", f"127.0.0.1:{broker_port}"]
        argv += ["--clock-start", fleet_time.isoformat(), "--clock-epoch", repr(epoch)]
        procs.append(
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                _FRONTEND,
                *argv,
                *options,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=(logs / f"frontend-{i}-of-{k}.log").open("ab"),
            )
        )
    return procs


async def _stop_all(procs: list[asyncio.subprocess.Process]) -> None:
    for proc in procs:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            await asyncio.wait_for(proc.wait(), 30)
        except TimeoutError:
            proc.kill()
            await proc.wait()


def _clear(engine: Engine) -> None:
    from sqlalchemy import text

    with engine.begin() as c:
        c.execute(text("TRUNCATE headend_reading, headend_collection, headend_runner_status"))


async def run_frontends_bench(
    meters: int,
    frontends: int,
    *,
    gateways: int = 2,
    concurrency: int = 256,
    pipeline: int | None = 32,
    timeout: float = 5.0,
    day_s: float = 60.0,
    reading_events: bool = False,
    start_timeout: float = 600.0,
    only: bool = False,
    progress: Any = None,
) -> list[FrontendsRound]:
    """Rounds of 1 … ``frontends`` front-ends (or only ``frontends`` with ``only``)."""
    from headend.db import migrate, open_database
    from headend.sharding import ShardDispatcher

    from ._servers import Mosquitto, PostgresCluster
    from .cmd_bench_reads import _build_archive, _first_freeze, _Fleet, _start_fleet, _stop
    from .cmd_bench_reads import _cpu_s as fleet_cpu

    speed = 86_400 / day_s
    gateways = max(1, min(gateways, meters))
    rounds: list[FrontendsRound] = []
    fleets: list[_Fleet] = []
    say = progress or (lambda _: None)
    logs = Path(tempfile.mkdtemp(prefix="feikong-bench-frontends-"))
    with Mosquitto.start_new() as broker, PostgresCluster.start_new() as pg:
        say(
            f"PostgreSQL on 127.0.0.1:{pg.port}, mosquitto on 127.0.0.1:{broker.port}, "
            f"front-end logs in {logs} (removed after a good run)"
        )
        postmaster = _postmaster(pg.data)
        engine = open_database(pg.url)
        try:
            migrate(engine)
            share = math.ceil(meters / gateways)
            starts = [
                _start_fleet(1 + g * share, min(share, meters - g * share), speed, start_timeout)
                for g in range(gateways)
                if meters - g * share > 0
            ]
            results = await asyncio.gather(*starts, return_exceptions=True)
            fleets = [f for f in results if isinstance(f, _Fleet)]
            errors = [e for e in results if isinstance(e, BaseException)]
            if errors:
                raise RuntimeError(str(errors[0]))
            say(f"fleet: {meters} meters behind {len(fleets)} gateway process(es)")
            _build_archive(engine, fleets, concurrency)
            options = ["--timeout", str(timeout), "--speed", f"{speed:.6f}"]
            if pipeline is not None:
                options += ["--pipeline", str(pipeline)]
            if reading_events:
                options.append("--reading-events")
            series = [frontends] if only else list(range(1, frontends + 1))
            for k in series:
                _clear(engine)
                first = fleets[0]
                day, fleet_now = await _first_freeze(first.port, f"{first.first:012d}", 2 * day_s)
                t0 = time.monotonic()
                async with ShardDispatcher(broker.url, k) as dispatcher:
                    procs = await _start_frontends(
                        k, pg.url, broker.port, (fleet_now, time.time()), options, logs
                    )
                    try:
                        await _wait_active(dispatcher, k, procs, start_timeout, logs)
                        start_s = time.monotonic() - t0
                        # the collection covers the freeze that is current now
                        day, _ = await _first_freeze(first.port, f"{first.first:012d}", day_s)
                        rounds.append(
                            await _round(dispatcher, k, day.isoformat(), fleets, postmaster,
                                         broker.pid or 0, fleet_cpu, start_s, start_timeout)
                        )  # fmt: skip
                        say(f"{k} front-end(s): reads_per_s={rounds[-1].lines()[6][1]}")
                    finally:
                        await _stop_all(procs)
        finally:
            for fleet in fleets:
                await _stop(fleet.proc)
            engine.dispose()
    shutil.rmtree(logs, ignore_errors=True)  # kept only when something went wrong
    return rounds


async def _wait_active(
    dispatcher: Any, k: int, procs: list[asyncio.subprocess.Process], timeout: float, logs: Path
) -> None:
    waiting = asyncio.ensure_future(dispatcher.wait_for("active", k, count=k))
    died = [asyncio.ensure_future(p.wait()) for p in procs]
    try:
        done, _ = await asyncio.wait(
            [waiting, *died], timeout=timeout, return_when="FIRST_COMPLETED"
        )
        if waiting in done:
            return
        for i, proc in enumerate(procs):
            if proc.returncode is not None:
                log = logs / f"frontend-{i}-of-{k}.log"
                err = log.read_text(errors="replace").strip()[-1500:]
                raise RuntimeError(f"front-end {i}/{k} exited ({proc.returncode}): {err}")
        raise RuntimeError(
            f"the {k} front-end(s) were not all active within {timeout:g} s (logs in {logs})"
        )
    finally:
        waiting.cancel()
        for d in died:
            d.cancel()


async def _round(
    dispatcher: Any,
    k: int,
    day: str,
    fleets: list[Any],
    postmaster: int,
    broker_pid: int,
    fleet_cpu: Any,
    start_s: float,
    timeout: float,
) -> FrontendsRound:
    from datetime import date

    fleet0 = sum(fleet_cpu(f.proc.pid) for f in fleets)
    pg0 = _tree_cpu_s(postmaster)
    broker0 = _cpu_s(broker_pid)
    start = time.perf_counter()
    request = await dispatcher.collect(date.fromisoformat(day), rounds=0)
    reports = await dispatcher.wait_collected(request, timeout)
    elapsed = time.perf_counter() - start
    fleet1 = sum(fleet_cpu(f.proc.pid) for f in fleets)
    pg1 = _tree_cpu_s(postmaster)
    broker1 = _cpu_s(broker_pid)
    errors = [r["error"] for r in reports if r.get("error")]
    if errors:
        raise RuntimeError(f"a shard's collection failed: {errors[0]}")
    return FrontendsRound(
        frontends=k,
        meters=sum(r["meters"] for r in reports),
        collected=sum(r["collected"] for r in reports),
        missing=sum(r["missing"] for r in reports),
        reads=sum(r["reads"] for r in reports),
        readings_written=sum(r["readings_written"] for r in reports),
        elapsed_s=elapsed,
        slowest_shard_s=max(r["elapsed_s"] for r in reports),
        frontend_cpu_s=sum(r["cpu_s"] for r in reports),
        fleet_cpu_s=fleet1 - fleet0,
        postgres_cpu_s=pg1 - pg0,
        broker_cpu_s=broker1 - broker0,
        start_s=start_s,
        day=day,
        shards=list(reports),
    )


def _self_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --------------------------------------------------------------------------- the command


def frontends_command(
    *,
    meters: int,
    frontends: int,
    gateways: int,
    concurrency: int,
    pipeline: int | None,
    timeout: float,
    day_s: float | None,
    start_timeout: float,
    as_json: bool,
    reading_events: bool = False,
    only: bool = False,
) -> None:
    """``feikong bench reads --frontends K`` (see the module doc)."""
    from headend.errors import HeadendError

    from ._servers import ServerStartError, ServerUnavailableError

    load_before = os.getloadavg()
    cpu0 = _self_cpu_s()
    # SIGTERM stops the bench like Ctrl-C: the servers and processes it started stop too
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)

    def progress(line: str) -> None:
        if not as_json:
            console.print(f"# {line}", highlight=False, markup=False)

    try:
        rounds = asyncio.run(
            run_frontends_bench(
                meters,
                frontends,
                gateways=gateways,
                concurrency=concurrency,
                pipeline=pipeline,
                timeout=timeout,
                day_s=day_s or max(60.0, meters / 1000),
                reading_events=reading_events,
                start_timeout=start_timeout,
                only=only,
                progress=progress,
            )
        )
    except ServerUnavailableError as exc:
        fail(escape(str(exc)), 2)
    except (RuntimeError, HeadendError, ServerStartError, TimeoutError) as exc:
        fail(escape(str(exc) or type(exc).__name__))
    finally:
        signal.signal(signal.SIGTERM, previous)
    summary: list[tuple[str, Any]] = [
        ("cores", os.cpu_count()),
        ("gateways", gateways),
        ("reading_events", reading_events),
        ("load_1m_before", load_before[0]),
        ("load_1m_after", os.getloadavg()[0]),
        ("bench_cpu_s", round(_self_cpu_s() - cpu0, 2)),
    ]
    if as_json:
        print_json(
            {
                "rounds": [dict(r.lines()) | {"shards": r.shards} for r in rounds],
                **dict(summary),
            }
        )
        return
    for r in rounds:
        console.print(" ".join(f"{k}={v}" for k, v in r.lines()), highlight=False, soft_wrap=True)
    console.print(" ".join(f"{k}={v}" for k, v in summary), highlight=False, soft_wrap=True)
