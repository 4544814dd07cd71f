"""``feikong headend run --shard i/K`` and ``feikong headend dispatch``: the scale-out.

``run --shard i/K --mqtt URL --db postgresql+psycopg://…`` runs one front-end of
shard ``i`` of ``K`` (:class:`headend.sharding.Frontend`): it stands by while
another replica of the shard is active, then serves the shard's meters::

    front-end 0/2 (replica host-4711-3fa2c1): standing by for the shard's lock
    front-end 0/2 active: 5012 meter(s) on 2 channel(s), 0 job(s) queued
    09:30:02 000000000017 trip done, relay open, energy 1234.56 kWh (job 8f2…)
    2026-03-02: shard 0/2 collected 5010 of 5012 meter(s), 2 missing, 10024 reads in 0.9 s

``dispatch --shards K`` routes work to the front-ends: ``--job ID`` announces
queued jobs to their shards, ``--queued`` every queued job of the database,
``--collect DATE`` asks every shard to collect a day (``--wait`` prints each
shard's report), ``--relay`` keeps forwarding the ``job-queued`` events that
other processes (the prepaid platform) publish.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import signal
import time
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from headend.errors import HeadendError

from .output import console, fail, print_json

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from headend.control import KeyRing
    from headend.events import Event
    from headend.service import HeadEndSettings
    from protocol.clock import Clock

__all__ = ["dispatch_command", "frontend_process_command", "mqtt_url", "run_frontend"]


def mqtt_url(value: str | None, option: str = "--mqtt") -> str:
    """``HOST:PORT`` or ``mqtt://HOST:PORT[/prefix]`` → an ``mqtt://`` URL (exit 2 if bad)."""
    from headend.events import MqttSettings

    if value is None:
        fail(f"{option} is needed: the shards are coordinated through an MQTT broker", 2)
    url = value if "://" in value else f"mqtt://{value}"
    try:
        MqttSettings.from_url(url)
    except HeadendError as exc:
        fail(escape(str(exc)), 2)
    return url


def run_frontend(
    engine: Engine,
    shard_text: str,
    mqtt: str | None,
    *,
    clock: Clock,
    keys: KeyRing,
    settings: HeadEndSettings,
    pipeline: int | None = None,
    reading_events: bool = False,
    poll_s: float | None = None,
) -> None:
    """Run a front-end of shard ``shard_text`` until Ctrl-C / SIGTERM (see the module doc).

    ``poll_s`` (clock seconds) is how often the database is polled for the shard's
    jobs and a standby tries the shard's lock (the lock is checked every 2 × ``poll_s``);
    by default about once a real second, however fast the clock runs.
    """
    from headend.sharding import Frontend, FrontendSettings, Shard, ShardLeaseLostError

    try:
        shard = Shard.parse(shard_text)
    except HeadendError as exc:
        fail(escape(str(exc)), 2)
    url = mqtt_url(mqtt)
    if poll_s is None:
        poll_s = float(getattr(clock, "speed", 1.0))
    front_settings = FrontendSettings(
        timeout_s=settings.timeout_s,
        pipeline=pipeline,
        collect_at=settings.collect_at,
        recollect_rounds=settings.recollect_rounds,
        recollect_interval_s=settings.recollect_interval_s,
        max_meters=settings.max_meters,
        control=settings.control,
        reading_events=reading_events,
        poll_s=poll_s,
        standby_poll_s=poll_s,
        lease_check_s=2 * poll_s,
    )
    front = Frontend(engine, shard, url, clock=clock, keys=keys, settings=front_settings)

    def say(line: str) -> None:
        console.print(line, highlight=False, markup=False, soft_wrap=True)

    def collected(c: dict[str, Any]) -> None:
        if c.get("error"):
            say(f"{c['day']}: shard {shard} collection failed: {c['error']}")
            return
        say(
            f"{c['day']}: shard {shard} collected {c['collected']} of {c['meters']} "
            f"meter(s), {c['missing']} missing, {c['reads']} reads in {c['elapsed_s']:.1f} s"
        )

    front.on_collected = collected

    async def main() -> int:
        from .cmd_headend import _outcome_line

        def show(event: Event) -> None:
            line = _outcome_line(event)
            if line is not None:
                say(line)

        front.bus.on(show)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(signum, stop.set)
        say(f"front-end {shard} (replica {front.replica}): standing by for the shard's lock")
        running = asyncio.create_task(front.run())
        stopping = asyncio.create_task(stop.wait())
        announced = asyncio.create_task(front.subscribed.wait())
        code = 0
        try:
            pending: set[asyncio.Future[Any]] = {running, stopping, announced}
            while True:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                if announced in done:
                    channels = len(front.pool.health()) if front.pool else 0
                    queued = front.runner.queued if front.runner else 0
                    say(
                        f"front-end {shard} active: {len(front.meters)} meter(s) on {channels} "
                        f"channel(s), {queued} job(s) queued; jobs on "
                        f"{front.topics.shared_jobs(shard.index)}, events to {url}"
                    )
                if running in done or stopping in done:
                    break
            if running.done():
                running.result()
        except ShardLeaseLostError as exc:
            say(f"error: {exc}")
            code = 3
        except HeadendError as exc:
            say(f"error: {exc}")
            code = 2
        finally:
            for task in (running, stopping, announced):
                task.cancel()
            for task in (running, stopping, announced):
                with contextlib.suppress(asyncio.CancelledError, HeadendError):
                    await task
        say(f"front-end {shard} stopped")
        return code

    code = asyncio.run(main())
    if code:
        raise typer.Exit(code)


def frontend_process_command(
    shard: Annotated[str, typer.Option("--shard", metavar="I/K", help="This process's shard.")],
    db: Annotated[str, typer.Option("--db", help="Database URL (PostgreSQL).")],
    mqtt: Annotated[str, typer.Option("--mqtt", help="MQTT broker, HOST:PORT or mqtt://…")],
    timeout: Annotated[float, typer.Option("--timeout", help="Response timeout, s.")] = 5.0,
    pipeline: Annotated[int | None, typer.Option("--pipeline", min=1)] = None,
    clock_start: Annotated[
        str | None, typer.Option("--clock-start", help="Clock time now (ISO), e.g. a fleet's.")
    ] = None,
    clock_epoch: Annotated[
        float | None,
        typer.Option("--clock-epoch", help="The Unix time at which --clock-start was read."),
    ] = None,
    speed: Annotated[float, typer.Option("--speed", help="Clock speed.")] = 1.0,
    reading_events: Annotated[
        bool, typer.Option("--reading-events/--no-reading-events", help="An event per meter.")
    ] = False,
    log_level: Annotated[str, typer.Option("--log-level")] = "WARNING",
) -> None:
    """One front-end process as the bench starts it (a clock that follows the fleet's)."""
    from headend.control import KeyRing
    from headend.db import open_database
    from headend.service import HeadEndSettings
    from protocol.clock import AcceleratedClock

    logging.basicConfig(level=getattr(logging, log_level.upper(), logging.WARNING))
    start = dt.datetime.fromisoformat(clock_start) if clock_start else None
    if start is not None and clock_epoch is not None:  # the time that passed since
        start += dt.timedelta(seconds=speed * (time.time() - clock_epoch))
    clock = AcceleratedClock(start=start, speed=speed)
    engine = open_database(db)
    run_frontend(
        engine,
        shard,
        mqtt,
        clock=clock,
        keys=KeyRing(),
        settings=HeadEndSettings(timeout_s=timeout, recollect_rounds=0),
        pipeline=pipeline,
        reading_events=reading_events,
    )


def _parse_day(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        fail(f"--collect wants a date YYYY-MM-DD, got {text!r}", 2)


def dispatch_command(
    shards: Annotated[int, typer.Option("--shards", min=1, help="K: the front-ends' shard count.")],
    mqtt: Annotated[
        str | None,
        typer.Option("--mqtt", envvar="FEIKONG_MQTT", help="MQTT broker, HOST:PORT or mqtt://…"),
    ] = None,
    db: Annotated[
        str | None,
        typer.Option("--db", envvar="FEIKONG_DB", help="Database URL (for --job, --queued)."),
    ] = None,
    job: Annotated[
        list[str] | None, typer.Option("--job", help="Announce this queued job (repeatable).")
    ] = None,
    queued: Annotated[
        bool, typer.Option("--queued", help="Announce every queued job of the database.")
    ] = False,
    collect: Annotated[
        str | None,
        typer.Option("--collect", metavar="YYYY-MM-DD", help="Ask every shard to collect a day."),
    ] = None,
    rounds: Annotated[int, typer.Option("--rounds", min=0, help="补抄 rounds after it.")] = 0,
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="Wait for every shard's report.")
    ] = True,
    wait_timeout: Annotated[
        float, typer.Option("--timeout", min=0.1, help="Seconds to wait for the reports.")
    ] = 3600.0,
    relay: Annotated[
        bool,
        typer.Option("--relay", help="Keep forwarding job-queued events to the shards."),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Route jobs and collections to the shards' front-ends over MQTT."""
    import aiomqtt

    from headend.jobs import JobStore
    from headend.sharding import ShardDispatcher

    url = mqtt_url(mqtt)
    day = _parse_day(collect) if collect is not None else None
    if not (job or queued or day or relay):
        fail("nothing to do: give --job ID, --queued, --collect DATE or --relay", 2)
    engine: Engine | None = None
    if job or queued:
        from .cmd_headend import _open

        engine = _open(db)

    async def main() -> dict[str, Any]:
        out: dict[str, Any] = {"announced": [], "collected": []}
        async with ShardDispatcher(url, shards, engine=engine) as dispatcher:
            if job:
                assert engine is not None
                store = JobStore(engine)
                for job_id in job:
                    record = store.require(job_id)
                    index = await dispatcher.announce(record.id, record.address)
                    out["announced"].append({"job": record.id, "shard": index})
            if queued:
                out["queued"] = await dispatcher.announce_queued()
            if day is not None:
                request = await dispatcher.collect(day, rounds=rounds)
                out["request"] = request
                if wait:
                    out["collected"] = await dispatcher.wait_collected(request, wait_timeout)
            if relay:
                console.print(
                    f"relaying job-queued events to {shards} shard(s) (Ctrl-C stops)",
                    highlight=False,
                    markup=False,
                )
                with contextlib.suppress(asyncio.CancelledError):
                    await dispatcher.relay()
        return out

    try:
        out = asyncio.run(main())
    except HeadendError as exc:
        fail(escape(str(exc)), 2)
    except TimeoutError:
        fail(f"not every shard reported within {wait_timeout:g} s; are all front-ends running?")
    except KeyboardInterrupt:
        raise typer.Exit(0) from None
    except aiomqtt.MqttError as exc:
        fail(escape(f"cannot use the MQTT broker at {url} ({exc}); is the broker running?"))
    if as_json:
        print_json(out)
        return
    for entry in out["announced"]:
        console.print(f"job {entry['job']} → shard {entry['shard']}/{shards}", highlight=False)
    if "queued" in out:
        console.print(f"{out['queued']} queued job(s) announced to their shards", highlight=False)
    reports = out["collected"]
    if reports:
        table = Table(title=f"collection of {day}")
        for column in ("shard", "meters", "collected", "missing", "reads", "seconds", "cpu s"):
            table.add_column(column, justify="right")
        for r in reports:
            table.add_row(
                f"{r['shard']}/{shards}",
                str(r["meters"]),
                str(r["collected"]),
                str(r["missing"]),
                str(r["reads"]),
                f"{r['elapsed_s']:.2f}",
                f"{r['cpu_s']:.2f}",
            )
        console.print(table)
        reasons: dict[str, int] = {}
        for r in reports:
            for reason, count in (r.get("reasons") or {}).items():
                reasons[reason] = reasons.get(reason, 0) + count
        for reason, count in sorted(reasons.items()):
            console.print(f"  {reason}  {count}", highlight=False)
    elif day is not None and not wait:
        console.print(f"collection of {day} asked of {shards} shard(s)", highlight=False)
