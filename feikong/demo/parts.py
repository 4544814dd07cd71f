"""Entry points of the demo's processes: ``python -m feikong.demo.parts PART CONFIG.json``.

Each part is the product's own component on the demo's shared clock
(:class:`~feikong.demo.clock.SharedClock`, from the config file):

- ``meter-sim FLEET`` — a meter fleet (:class:`meter_sim.fleet.Fleet`) on one TCP
  gateway: ``bench`` drives the breakers served by ``feikong breaker-sim`` over Modbus,
  ``main`` has its breakers in-process; the opening registers come from a state file
  (:class:`meter_sim.state.StateKeeper`);
- ``headend`` — the head-end (:class:`headend.service.HeadEnd`): daily collection,
  jobs queued by the platform, outcomes recorded in the database;
- ``platform`` — the prepaid platform (:class:`feikong.demo.platform.PlatformDay`).

``feikong meter-sim`` and ``feikong headend run`` have a ``--speed`` but no epoch, so
two of them started a second apart would disagree on the simulated time; these entry
points take the whole clock. The head-end also polls its job table and records its
status every *real* fraction of a second rather than every clock second, which at a
speed of 30,000 would be a busy loop. Each part runs until SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import logging
import os
import signal
import sys
import time as time_module
from datetime import time
from pathlib import Path
from typing import Any

from .clock import SharedClock

__all__ = ["main"]

log = logging.getLogger(__name__)


async def _until_stopped() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, stop.set)
    await stop.wait()


async def _origin(clock: SharedClock) -> None:
    """Wait for the start of simulated time (the runner sets it a few seconds ahead, so
    that every part starts on the same simulated moment)."""
    await asyncio.sleep(max(0.0, clock.real_seconds_until(clock.origin)))


async def _meter_sim(config: dict[str, Any], clock: SharedClock, fleet_name: str) -> None:
    from meter_sim.fleet import Fleet
    from meter_sim.runner import FleetServers, TcpGateway
    from meter_sim.state import StateKeeper
    from protocol.security import TEST_MASTER_KEY

    from .district import meter_configs

    part = config["meter_sim"][fleet_name]
    await _origin(clock)
    meters = json.loads(Path(part["meters_file"]).read_text(encoding="utf-8"))
    if not meters:  # every area of the district is in the other fleet
        print(f"meter-sim ({fleet_name}): no meters", flush=True)
        await _until_stopped()
        return
    fleet = Fleet(
        meter_configs(meters, part["permit_close_delay_s"]),
        clock,
        master_key=TEST_MASTER_KEY,
        breakers=part["breakers"],
    )
    keeper = StateKeeper(fleet, part["state_file"], 3600.0)  # only read: the opening registers
    keeper.load()
    servers = FleetServers(fleet, TcpGateway("127.0.0.1", int(part["port"])))
    await servers.start()
    print(
        f"meter-sim ({fleet_name}): {len(fleet)} meters on {servers.describe()}, "
        f"breakers {part['breakers']}",
        flush=True,
    )
    try:
        await _until_stopped()
    finally:
        await servers.stop()
        await fleet.aclose()


async def _headend(config: dict[str, Any], clock: SharedClock) -> None:
    from headend.control import ControlSettings
    from headend.db import open_database
    from headend.events import CommandFailed, CommandSucceeded, Event
    from headend.service import HeadEnd, HeadEndSettings

    part = config["headend"]
    engine = open_database(config["db"])
    collect_at = time.fromisoformat(part["collect_at"])
    settings = HeadEndSettings(
        timeout_s=float(part["timeout_s"]),
        collect_at=None,  # the loop below: every day in turn, none skipped when late
        recollect_rounds=int(part["recollect_rounds"]),
        recollect_interval_s=float(part["recollect_interval_s"]),
        status_every_s=clock.speed * 2.0,  # every 2 real seconds
        poll_s=clock.speed * 0.04,  # the job table every 40 real ms
        control=ControlSettings(settle_s=3.0),
    )
    await _origin(clock)
    head = HeadEnd(engine, clock=clock, settings=settings)

    def show(event: Event) -> None:
        if isinstance(event, CommandSucceeded | CommandFailed):
            print(event.to_json(), flush=True)

    head.bus.on(show)
    async with head:
        print(f"head-end: {len(head.pool)} meters, collection at {part['collect_at']}", flush=True)
        daily = asyncio.create_task(_collect_daily(head, clock, collect_at))
        try:
            await _until_stopped()
        finally:
            daily.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await daily


async def _collect_daily(head: Any, clock: SharedClock, at: time) -> None:
    """The daily collection (日冻结采集) of every simulated day, in order, with its 补抄
    rounds (:meth:`HeadEnd.collect`). When a busy machine makes one run past the next
    day's collection time, the next day is collected at once after it rather than
    skipped (the head-end's own schedule collects only the current day)."""
    from datetime import datetime, timedelta

    day = clock.origin.date() + timedelta(days=1)
    while True:
        when = datetime.combine(day, at)
        wait = (when - clock.now()).total_seconds()
        if wait > 0:
            await clock.sleep(wait)
        await head.collect(day)
        day += timedelta(days=1)


def _platform(config: dict[str, Any], clock: SharedClock) -> None:
    from prepaid.db import open_database

    from .platform import PlatformOptions, run_platform

    engine = open_database(config["db"])
    options = PlatformOptions.from_dict(config["platform"])
    print(f"platform: {options.days} days from {options.start}", flush=True)
    run_platform(engine, clock, options)
    print("platform: done", flush=True)


_IMPORTS = {
    "meter-sim": ("meter_sim.fleet", "meter_sim.runner", "meter_sim.state", "meter_sim.factory"),
    "headend": ("headend.service", "headend.collection", "headend.control"),
    "platform": ("prepaid.workflows", "prepaid.rating", "prepaid.service.daily", "numpy"),
}


def _wait_clock(config_path: Path, parent: int) -> SharedClock:
    """The shared clock, once the runner has written it (``clock.json`` next to the config):
    the heavy imports are done by then, so every part is ready when the time starts."""
    path = config_path.with_name("clock.json")
    while not path.exists():
        if os.getppid() != parent:  # the runner is gone
            raise SystemExit(1)
        time_module.sleep(0.05)
    return SharedClock.from_dict(json.loads(path.read_text(encoding="utf-8")))


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) not in (2, 3) or args[0] not in ("meter-sim", "headend", "platform"):
        print(
            "usage: python -m feikong.demo.parts meter-sim|headend|platform CONFIG.json [FLEET]",
            file=sys.stderr,
        )
        return 2
    part, path = args[:2]
    config = json.loads(Path(path).read_text(encoding="utf-8"))
    logging.basicConfig(
        level=config.get("log_level", "WARNING"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    parent = os.getppid()
    for module in _IMPORTS[part]:
        importlib.import_module(module)
    clock = _wait_clock(Path(path), parent)
    try:
        if part == "meter-sim":
            asyncio.run(_meter_sim(config, clock, args[2] if len(args) == 3 else "main"))
        elif part == "headend":
            asyncio.run(_headend(config, clock))
        else:
            _platform(config, clock)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
