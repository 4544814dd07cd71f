"""``feikong bench trips``: a burst of trip jobs through the head-end's service interface.

A fleet of ``--meters`` simulated meters runs in another process (``feikong
meter-sim`` behind one TCP gateway per ``--gateways``, started as ``feikong bench
reads`` starts it). This process builds the archive (a temporary SQLite file unless
``--db``), runs a :class:`headend.service.HeadEnd` as ``feikong headend run`` does and
submits one trip (拉闸) per meter at once through its :class:`HeadendService` — the
interface the prepaid platform uses. Each job is the full authenticated control
sequence of :mod:`headend.control`: identity authentication (03H), the 1CH trip,
the settle delay, status word 3 for the actual relay state and the energy at the
trip. The head-end and the fleet share one clock speed (``--speed``, an
:class:`~protocol.clock.AcceleratedClock` started at the meters' own time), so the
3-second settle delay costs 3/speed real seconds; the jobs' deadline is 30 real
minutes (``--deadline-s``), as it is at speed 1.

After the burst every meter's trip count (1D000001, the meter's own trip records)
is read back: a meter tripped more than once is a **duplicate**. It prints
``key=value`` lines::

    jobs=10000 succeeded=10000 failed=0
    jobs_per_s=…           (jobs / wall time from the first submission to the last outcome)
    p50_ms=… p99_ms=…      (job latency: submission → CommandSucceeded / CommandFailed)
    duplicates=0           (meters whose trip count is above 1, or with more than one
                            accepted 1CH trip in the command log)
    not_tripped=0          (meters whose trip count is 0 although their job succeeded)
    peak_rss_mib=…         (this process: the head-end) fleet_peak_rss_mib=…
    headend_cpu_us_per_job=… fleet_cpu_us_per_job=…
    load_1m=… load_1m_after=…
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import resource
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from .cmd_bench_reads import (
    _build_archive,
    _cpu_s,
    _Fleet,
    _loop_name,
    _ms,
    _run,
    _self_cpu_s,
    _start_fleets,
    _stop,
    _uvloop_installed,
)
from .output import fail, print_figures

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

__all__ = ["TripsBenchResult", "register", "run_trips_bench"]

DI_TRIP_COUNT = 0x1D000001
"""跳闸总次数: how many times the meter's relay opened (its trip records)."""
_CONTROL = 0x1C
_CONTROL_OK = 0x9C


@dataclass(frozen=True, slots=True)
class TripsBenchResult:
    jobs: int
    succeeded: int
    failed: int
    expired: int
    elapsed_s: float
    submit_s: float
    p50_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    duplicates: int
    double_jobs: int
    repeated_commands: int
    not_tripped: int
    tripped_meters: int
    attempts: int
    peak_rss_mib: float
    fleet_peak_rss_mib: float
    headend_cpu_s: float
    fleet_cpu_s: float
    speed: float
    settle_s: float
    max_meters: int
    gateways: int
    concurrency: int
    failures: dict[str, int]
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]
    loop: str

    @property
    def jobs_per_s(self) -> float:
        return self.jobs / self.elapsed_s if self.elapsed_s else 0.0

    def lines(self) -> list[tuple[str, Any]]:
        per_job = 1e6 / self.jobs if self.jobs else 0.0
        return [
            ("jobs", self.jobs),
            ("succeeded", self.succeeded),
            ("failed", self.failed),
            ("expired", self.expired),
            ("jobs_per_s", round(self.jobs_per_s, 1)),
            ("elapsed_s", round(self.elapsed_s, 3)),
            ("submit_s", round(self.submit_s, 3)),
            ("p50_ms", self.p50_ms),
            ("p99_ms", self.p99_ms),
            ("max_ms", self.max_ms),
            ("duplicates", self.duplicates),
            ("double_jobs", self.double_jobs),
            ("repeated_trip_commands", self.repeated_commands),
            ("tripped_meters", self.tripped_meters),
            ("not_tripped", self.not_tripped),
            ("attempts", self.attempts),
            ("failures", ",".join(f"{k}:{v}" for k, v in sorted(self.failures.items())) or "-"),
            ("peak_rss_mib", round(self.peak_rss_mib, 1)),
            ("fleet_peak_rss_mib", round(self.fleet_peak_rss_mib, 1)),
            ("headend_cpu_us_per_job", round(self.headend_cpu_s * per_job, 1)),
            ("fleet_cpu_us_per_job", round(self.fleet_cpu_s * per_job, 1)),
            ("speed", self.speed),
            ("settle_s", self.settle_s),
            ("settle_real_ms", round(1000 * self.settle_s / self.speed, 1)),
            ("max_meters", self.max_meters),
            ("gateways", self.gateways),
            ("concurrency", self.concurrency),
            ("loop", self.loop),
            ("load_1m", round(self.load_before[0], 2)),
            ("load_1m_after", round(self.load_after[0], 2)),
        ]


def register(bench_app: typer.Typer) -> None:
    """Add ``trips`` to the ``feikong bench`` group."""
    bench_app.command("trips")(trips_command)


def trips_command(
    meters: Annotated[
        int, typer.Option("--meters", min=1, help="Meters in the fleet; one trip job each.")
    ] = 10000,
    max_meters: Annotated[
        int,
        typer.Option(
            "--max-meters",
            min=1,
            help="Meters with a job in progress at once (the head-end's max_meters).",
        ),
    ] = 512,
    concurrency: Annotated[
        int,
        typer.Option("--concurrency", min=1, help="Sessions in flight per gateway channel."),
    ] = 512,
    gateways: Annotated[
        int,
        typer.Option("--gateways", min=1, max=16, help="Fleet processes (gateway endpoints)."),
    ] = 1,
    speed: Annotated[
        float,
        typer.Option(
            "--speed",
            min=1.0,
            help="Clock speed of the fleet and the head-end (the 3 s settle delay takes "
            "3/speed real seconds).",
        ),
    ] = 60.0,
    settle: Annotated[
        float, typer.Option("--settle", min=0.0, help="Settle delay, clock seconds.")
    ] = 3.0,
    deadline_s: Annotated[
        float | None,
        typer.Option(
            "--deadline-s",
            min=1.0,
            help="Job deadline, clock seconds (default: 30 real minutes at --speed).",
        ),
    ] = None,
    timeout: Annotated[
        float, typer.Option("--timeout", min=0.01, help="Response timeout, real seconds.")
    ] = 5.0,
    db: Annotated[
        str | None,
        typer.Option("--db", help="Database URL (default: a temporary SQLite file)."),
    ] = None,
    start_timeout: Annotated[
        float, typer.Option("--start-timeout", min=1.0, help="Seconds to wait for the fleet.")
    ] = 600.0,
    profile: Annotated[
        Path | None,
        typer.Option("--profile", help="Write a cProfile of the burst to this file."),
    ] = None,
    loop: Annotated[
        str, typer.Option("--loop", help="uvloop or asyncio (default: uvloop when installed).")
    ] = "auto",
    twice: Annotated[
        int,
        typer.Option(
            "--twice",
            min=0,
            help="Self-check: this many meters get a second trip job under another id; "
            "duplicates= must then count them.",
        ),
    ] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Trip every simulated meter at once through the head-end service; print jobs/s."""
    from headend.errors import HeadendError
    from protocol.errors import ProtocolError

    if loop not in ("auto", "uvloop", "asyncio"):
        fail(f"--loop must be uvloop or asyncio, got {escape(loop)!r}", 2)
    use_uvloop = _uvloop_installed() if loop == "auto" else loop == "uvloop"
    if use_uvloop and not _uvloop_installed():
        fail("--loop uvloop: uvloop is not installed (pip install uvloop)", 2)
    try:
        result = _run(
            use_uvloop,
            run_trips_bench(
                meters,
                max_meters=max_meters,
                concurrency=concurrency,
                gateways=gateways,
                speed=speed,
                settle_s=settle,
                deadline_s=deadline_s,
                timeout=timeout,
                db=db,
                start_timeout=start_timeout,
                profile=profile,
                twice=twice,
            ),
        )
    except (RuntimeError, HeadendError, ProtocolError) as exc:
        fail(escape(str(exc)))
    print_figures(result.lines(), as_json)


# --------------------------------------------------------------------------- helpers


def _peak_rss_mib(pid: int) -> float:
    """VmHWM of a live process, MiB (0 if it cannot be read)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


async def _meter_now(port: int, address: str) -> datetime:
    """The meter's date and time (04000101 + 04000102)."""
    from protocol.client import MasterClient
    from protocol.transport import TcpTransport

    transport = TcpTransport("127.0.0.1", port, response_timeout=5.0)
    client = MasterClient(transport)
    try:
        day = (await client.read(address, 0x04000101)).value
        now = (await client.read(address, 0x04000102)).value
        return datetime.combine(day, now)
    finally:
        await transport.close()


_HEX = re.compile(r"^(TX|RX) ((?:[0-9A-F]{2} ?)+)$")


def _accepted_trips(frames_hex: str | None) -> int:
    """1CH commands the meter accepted (9CH replies) in one attempt's command log."""
    count = 0
    for line in (frames_hex or "").splitlines():
        match = _HEX.match(line.strip())
        if match is None or match[1] != "RX":
            continue
        raw = bytes.fromhex(match[2])
        start = raw.find(0x68)
        if start >= 0 and len(raw) > start + 8 and raw[start + 8] == _CONTROL_OK:
            count += 1
    return count


def _command_log(engine: Engine, prefix: str) -> tuple[Counter[str], Counter[str], int]:
    """Per meter: succeeded trip jobs, accepted 1CH trips; and the attempts, from the DB."""
    from sqlalchemy import text

    jobs: Counter[str] = Counter()
    accepted: Counter[str] = Counter()
    attempts = 0
    with engine.connect() as c:
        for (address,) in c.execute(
            text(
                "SELECT meter_address FROM headend_job "
                "WHERE kind = 'trip' AND state = 'succeeded' AND id LIKE :p"
            ),
            {"p": f"{prefix}%"},
        ):
            jobs[address] += 1
        rows = c.execute(
            text(
                "SELECT j.meter_address, a.frames_hex FROM headend_job_attempt a "
                "JOIN headend_job j ON j.id = a.job_id WHERE j.id LIKE :p"
            ),
            {"p": f"{prefix}%"},
        )
        for address, frames in rows:
            attempts += 1
            accepted[address] += _accepted_trips(frames)
    return jobs, accepted, attempts


async def _trip_counts(
    engine: Engine, addresses: list[str], timeout: float, clock: Any
) -> dict[str, int | None]:
    """Every meter's own trip count (1D000001), read through a fresh channel pool."""
    from headend.channels import ChannelPool

    pool = ChannelPool.from_archive(engine, timeout=timeout, clock=clock, pipeline=32)
    counts: dict[str, int | None] = {}
    limit = asyncio.Semaphore(256)

    async def one(address: str) -> None:
        async with limit:
            try:
                async with pool.session(address) as client:
                    counts[address] = int((await client.read(address, DI_TRIP_COUNT)).value)
            except Exception:  # reported as unknown: counted apart, never as a success
                counts[address] = None

    try:
        await asyncio.gather(*(one(a) for a in addresses))
    finally:
        await pool.aclose()
    return counts


# --------------------------------------------------------------------------- the run


async def run_trips_bench(
    meters: int,
    *,
    max_meters: int = 512,
    concurrency: int = 512,
    gateways: int = 1,
    speed: float = 60.0,
    settle_s: float = 3.0,
    deadline_s: float | None = None,
    timeout: float = 5.0,
    db: str | None = None,
    start_timeout: float = 600.0,
    profile: Path | None = None,
    twice: int = 0,
) -> TripsBenchResult:
    """Run the benchmark (see the module docstring)."""
    import cProfile

    from headend.control import ControlSettings
    from headend.db import migrate, open_database
    from headend.events import CommandFailed, CommandSucceeded, Event
    from headend.service import HeadEnd, HeadEndSettings
    from protocol.clock import AcceleratedClock

    gateways = min(gateways, meters)
    load_before = os.getloadavg()
    tmp: tempfile.TemporaryDirectory[str] | None = None
    if db is None:
        tmp = tempfile.TemporaryDirectory(prefix="feikong-bench-trips-")
        db = f"sqlite:///{tmp.name}/bench.db"
    fleets: list[_Fleet] = []
    prefix = f"bench-trip-{os.getpid()}-{int(time.time())}-"
    try:
        fleets = await _start_fleets(meters, gateways, speed, start_timeout)
        engine = open_database(db)
        migrate(engine)
        _build_archive(engine, fleets, concurrency)
        meter_now = await _meter_now(fleets[0].port, f"{fleets[0].first:012d}")
        clock = AcceleratedClock(start=meter_now, speed=speed)  # the head-end follows the fleet
        settings = HeadEndSettings(
            timeout_s=timeout,
            max_meters=max_meters,
            poll_s=speed,  # the database poll stays once a real second, as at speed 1
            status_every_s=10.0 * speed,
            control=ControlSettings(settle_s=settle_s),
        )
        addresses = [f"{n:012d}" for f in fleets for n in range(f.first, f.first + f.count)]
        # the bench's self-check: ``twice`` meters get a second trip under another id
        jobs = [(f"{prefix}{a}", a) for a in addresses]
        jobs += [(f"{prefix}again-{a}", a) for a in addresses[:twice]]
        ended: dict[str, float] = {}
        outcomes: dict[str, Event] = {}
        all_done = asyncio.Event()

        def on_end(event: Event) -> None:
            job_id = getattr(event, "job_id", None)
            if job_id is None or not job_id.startswith(prefix) or job_id in ended:
                return
            ended[job_id] = time.perf_counter()
            outcomes[job_id] = event
            if len(ended) == len(jobs):
                all_done.set()

        head = HeadEnd(engine, clock=clock, settings=settings)
        head.bus.on(on_end, (CommandSucceeded, CommandFailed))
        deadline = timedelta(seconds=deadline_s if deadline_s is not None else 1800.0 * speed)
        profiler = cProfile.Profile() if profile is not None else None
        async with head:
            fleet_cpu0 = sum(_cpu_s(f.proc.pid) for f in fleets)
            cpu0 = _self_cpu_s()
            if profiler is not None:
                profiler.enable()
            submitted: dict[str, float] = {}
            start = time.perf_counter()
            for job_id, address in jobs:
                submitted[job_id] = time.perf_counter()
                head.service.trip(
                    address, "arrears", job_id=job_id, deadline=clock.now() + deadline
                )
            submit_s = time.perf_counter() - start
            # every job ends with exactly one outcome; wait (real time) with a generous bound
            wait_s = max(60.0, deadline.total_seconds() / speed + 60.0)
            try:
                await asyncio.wait_for(all_done.wait(), wait_s)
            except TimeoutError:
                raise RuntimeError(
                    f"{len(jobs) - len(ended)} of {len(jobs)} trip jobs had no "
                    f"outcome after {wait_s:g} s"
                ) from None
            elapsed = max(ended.values()) - start
            if profiler is not None:
                profiler.disable()
            headend_cpu = _self_cpu_s() - cpu0
            fleet_cpu = sum(_cpu_s(f.proc.pid) for f in fleets) - fleet_cpu0
        if profiler is not None and profile is not None:
            profiler.dump_stats(str(profile))
        jobs_ok, accepted, attempts = _command_log(engine, prefix)
        counts = await _trip_counts(engine, addresses, timeout, clock)
        fleet_rss = sum(_peak_rss_mib(f.proc.pid) for f in fleets)
        engine.dispose()
    finally:
        for fleet in fleets:
            await _stop(fleet.proc)
        if tmp is not None:
            tmp.cleanup()
    latencies = [ended[j] - submitted[j] for j in ended]
    succeeded_ids = {j for j, e in outcomes.items() if isinstance(e, CommandSucceeded)}
    failures: Counter[str] = Counter()
    expired = 0
    for event in outcomes.values():
        if isinstance(event, CommandFailed):
            failures[event.error or "failed"] += 1
            expired += bool(event.expired)
    succeeded_addresses = {outcomes[j].address for j in succeeded_ids}
    duplicate_meters = {a for a, n in counts.items() if n is not None and n > 1}
    duplicate_meters |= {a for a, n in jobs_ok.items() if n > 1}
    duplicate_meters |= {a for a, n in accepted.items() if n > 1}
    not_tripped = sum(1 for a in succeeded_addresses if counts.get(a) == 0)
    unknown = sum(1 for a in addresses if counts.get(a) is None)
    if unknown:
        failures["trip-count-unread"] += unknown
    return TripsBenchResult(
        jobs=len(jobs),
        succeeded=len(succeeded_ids),
        failed=len(outcomes) - len(succeeded_ids),
        expired=expired,
        elapsed_s=elapsed,
        submit_s=submit_s,
        p50_ms=_ms(latencies, 0.50),
        p99_ms=_ms(latencies, 0.99),
        max_ms=_ms(latencies, 1.0),
        duplicates=len(duplicate_meters),
        double_jobs=sum(1 for n in jobs_ok.values() if n > 1),
        repeated_commands=sum(1 for n in accepted.values() if n > 1),
        not_tripped=not_tripped,
        tripped_meters=sum(1 for n in counts.values() if n == 1),
        attempts=attempts,
        peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        fleet_peak_rss_mib=fleet_rss,
        headend_cpu_s=headend_cpu,
        fleet_cpu_s=fleet_cpu,
        speed=speed,
        settle_s=settle_s,
        max_meters=max_meters,
        gateways=len(fleets),
        concurrency=concurrency,
        failures=dict(failures),
        load_before=load_before,
        load_after=os.getloadavg(),
        loop=_loop_name() if _has_loop() else "asyncio",
    )


def _has_loop() -> bool:
    with contextlib.suppress(RuntimeError):
        asyncio.get_running_loop()
        return True
    return False
