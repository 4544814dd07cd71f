"""A head-end under test: the fleet rig's gateways, a migrated database, the channel pool,
the event bus and a job runner on the rig's stepped clock.

:meth:`HeadEnd.run_until` drives time: whenever every runner task waits on the
clock (nothing on the wire), it advances the stepped clock to the next wake-up.
Real time passes only for real I/O (and for the response timeout of a meter
that does not answer), so retries with minutes of backoff take milliseconds.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from headend.channels import ChannelPool
from headend.control import ControlSettings, KeyRing, control_handlers
from headend.db import migrate, open_database
from headend.events import CommandFailed, CommandSucceeded, Event, EventBus
from headend.jobs import Handler, JobRunner, RetryPolicy
from headend.models import JobKind
from headend.service import read_handler
from meter_sim.config import MeterConfig
from meter_sim.scenario import FleetSpec
from protocol import Address

from .fleet_rig import KEY, Gateway, Rig

FIRST = "000000000001"
SECOND = "000000000002"
THIRD = "000000000003"


@dataclasses.dataclass
class HeadEnd:
    rig: Rig
    gateway: Gateway
    engine: Engine
    pool: ChannelPool
    bus: EventBus
    runner: JobRunner
    events: list[Event]

    @property
    def clock(self) -> Any:
        return self.rig.clock

    def breaker(self, address: str) -> Any:
        return self.gateway.fleet.breakers[Address(address)]

    def meter(self, address: str) -> Any:
        return self.gateway.fleet.meters[Address(address)]

    def outcome(self, job_id: str) -> CommandSucceeded | CommandFailed | None:
        for event in self.events:
            if isinstance(event, CommandSucceeded | CommandFailed) and event.job_id == job_id:
                return event
        return None

    async def run_until(self, done: Callable[[], bool], *, max_steps: int = 500) -> None:
        """Advance the clock whenever the runner is quiet, until ``done()``."""
        for _ in range(max_steps):
            if done():
                return
            await asyncio.wait_for(self.runner.wait_quiet(), 10)
            if done():
                return
            due = self.runner.next_wakeup()
            assert due is not None, "the runner waits for nothing and the condition is unmet"
            await self.clock.advance(max(0.0, (due - self.clock.now()).total_seconds()))
        raise AssertionError(f"condition not met after {max_steps} clock steps")

    async def finish(self, job_id: str) -> CommandSucceeded | CommandFailed:
        await self.run_until(lambda: self.outcome(job_id) is not None)
        event = self.outcome(job_id)
        assert event is not None
        return event


@asynccontextmanager
async def headend(
    tmp_path: Path,
    *,
    count: int = 3,
    configs: list[MeterConfig] | None = None,
    keys: KeyRing | None = None,
    settings: ControlSettings | None = None,
    retry: RetryPolicy | None = None,
    handlers: Mapping[JobKind, Handler] | None = None,
    timeout: float = 0.3,
    latency: float = 0.0,
    start: bool = True,
    db_url: str | None = None,
) -> AsyncIterator[HeadEnd]:
    """A head-end over ``count`` simulated meters (000000000001…) on one TCP gateway."""
    rig = Rig()
    engine = open_database(db_url or f"sqlite:///{tmp_path / 'headend.db'}")
    migrate(engine)
    try:
        if configs is None:
            configs = FleetSpec(first_address=1, count=count, seed=7).configs()
        gateway = await rig.gateway("gw", 1, len(configs), configs=configs, latency=latency)
        rig.load_archive(engine)
        pool = ChannelPool.from_archive(engine, timeout=timeout, clock=rig.clock)
        bus = EventBus()
        events: list[Event] = []
        bus.on(events.append)
        if handlers is None:
            handlers = {
                **control_handlers(keys or KeyRing(KEY), settings),
                JobKind.READ: read_handler(engine),
            }
        runner = JobRunner(
            engine,
            pool,
            handlers,
            bus=bus,
            clock=rig.clock,
            retry=retry,
            poll_s=None,
            stop_grace_s=0,
        )
        he = HeadEnd(rig, gateway, engine, pool, bus, runner, events)
        if start:
            await runner.start()
        try:
            yield he
        finally:
            await runner.stop()
            await pool.aclose()
    finally:
        await rig.aclose()
        engine.dispose()
