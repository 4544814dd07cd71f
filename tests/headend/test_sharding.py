"""Scale-out: front-ends sharded by meter address on a real mosquitto and PostgreSQL.

The servers are the throw-away PostgreSQL cluster of :mod:`tests.headend.test_postgres`
and a mosquitto of the test's own (``private_mosquitto``); the meters are the rig's
simulated fleet behind real TCP gateways. The front-ends here run in the test's
process (two shards, one event loop); the failover test runs them as real
processes (``feikong headend run --shard``) and kills one.
"""

from __future__ import annotations

import asyncio
import contextlib
import zlib
from collections.abc import AsyncIterator, Iterator
from datetime import date

import aiomqtt
import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from headend.db import migrate, open_database
from headend.events import CommandSucceeded, Event, EventBus, MqttEventPublisher
from headend.jobs import JobRunner, JobSpec, JobStore
from headend.models import JobKind
from headend.sharding import (
    Frontend,
    FrontendSettings,
    Shard,
    ShardDispatcher,
    ShardError,
    ShardTopics,
    shard_of,
)
from protocol.client import MasterClient
from protocol.clock import AcceleratedClock
from protocol.frame import Frame
from tests.conftest import Mosquitto

from .fleet_rig import Rig
from .test_postgres import pg_url

__all__ = ["pg_url"]

DAY = date(2026, 3, 2)
TABLES = (
    "headend_job_attempt, headend_job, headend_reading, headend_collection, "
    "headend_runner_status, headend_meter, headend_channel"
)


@pytest.fixture
def pg(pg_url: str) -> Iterator[Engine]:
    engine = open_database(pg_url)
    migrate(engine)
    with engine.begin() as c:
        c.execute(text(f"TRUNCATE {TABLES} CASCADE"))
    yield engine
    engine.dispose()


def test_the_shard_of_a_meter_is_crc32_of_its_address_modulo_k() -> None:
    # zlib.crc32 is the standard CRC-32 (IEEE 802.3): crc32(b"123456789") = 0xCBF43926.
    assert zlib.crc32(b"123456789") == 0xCBF43926
    assert shard_of("000000000001", 1) == 0
    assert shard_of("123456789012", 2) == zlib.crc32(b"123456789012") % 2
    split = [shard_of(f"{n:012d}", 4) for n in range(1, 4001)]
    assert all(900 < split.count(i) < 1100 for i in range(4))  # a hash spreads meters evenly
    assert Shard.parse(" 1/2 ") == Shard(1, 2)
    for bad in ("2/2", "1", "a/2", "0/0", "-1/2"):
        with pytest.raises(ShardError, match="i/K"):
            Shard.parse(bad)


@contextlib.asynccontextmanager
async def _running(frontend: Frontend) -> AsyncIterator[Frontend]:
    task = asyncio.create_task(frontend.run())
    try:
        await asyncio.wait_for(frontend.subscribed.wait(), 20)
        yield frontend
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_two_shards_collect_a_day_once_and_a_job_goes_to_its_shard(
    pg: Engine, private_mosquitto: Mosquitto
) -> None:
    rig = Rig()
    try:
        await rig.gateway("gw-a", 1, 24)
        await rig.gateway("gw-b", 101, 24)
        rig.load_archive(pg)
        await rig.clock.advance(17 * 3600)  # past 00:00 of 2 March: the freeze
        clock = AcceleratedClock(start=rig.clock.now(), speed=1.0)
        settings = FrontendSettings(timeout_s=2.0, poll_s=0.5, reading_events=False)
        fronts = [
            Frontend(pg, Shard(i, 2), private_mosquitto.url, clock=clock, settings=settings)
            for i in range(2)
        ]
        addresses = [a for g in rig.gateways for a in g.addresses]
        async with (
            _running(fronts[0]),
            _running(fronts[1]),
            ShardDispatcher(private_mosquitto.url, 2, engine=pg, clock=clock) as dispatcher,
        ):
            assert sorted(a for f in fronts for a, _ in f.meters) == sorted(addresses)
            assert all(shard_of(a, 2) == f.shard.index for f in fronts for a, _ in f.meters)

            request = await dispatcher.collect(DAY)
            reports = await dispatcher.wait_collected(request, timeout=30)
            assert [r["shard"] for r in reports] == [0, 1]
            assert [r["collected"] for r in reports] == [len(f.meters) for f in fronts]
            assert sum(r["readings_written"] for r in reports) == 48
            assert all(r["meters"] <= r["reads"] <= 2 * r["meters"] for r in reports)

            again = await dispatcher.wait_collected(await dispatcher.collect(DAY), timeout=30)
            assert sum(r["collected"] for r in again) == 48
            assert sum(r["readings_written"] for r in again) == 0  # stored once
            with pg.connect() as c:
                rows = c.execute(
                    text(
                        "SELECT count(*), count(DISTINCT meter_address) FROM headend_reading "
                        "WHERE freeze_date = :d"
                    ),
                    {"d": DAY},
                ).one()
            assert tuple(rows) == (48, 48)

            # A read job reaches the meter's shard only, and runs there.
            seen: list[list[Event]] = [[], []]
            for i, f in enumerate(fronts):
                f.bus.on(seen[i].append, CommandSucceeded)
            address = addresses[5]
            owner = shard_of(address, 2)
            async with fronts[owner].bus.subscribe(CommandSucceeded) as outcomes:
                job = await dispatcher.submit(_read(address, "read-one"))
                done = await asyncio.wait_for(outcomes.get(), 20)
            assert (job.id, done.address) == ("read-one", address)
            assert [e.address for e in seen[owner]] == [address]
            assert seen[1 - owner] == []
            assert dispatcher.announced == 1
    finally:
        await rig.aclose()


async def test_a_message_for_another_shard_or_not_json_is_refused_and_counted(
    pg: Engine, private_mosquitto: Mosquitto
) -> None:
    rig = Rig()
    try:
        await rig.gateway("gw-a", 1, 6)
        rig.load_archive(pg)
        clock = AcceleratedClock(start=rig.clock.now(), speed=1.0)
        front = Frontend(
            pg,
            Shard(0, 2),
            private_mosquitto.url,
            clock=clock,
            settings=FrontendSettings(poll_s=60),
        )  # jobs come by MQTT only
        other = next(a for a in rig.gateways[0].addresses if shard_of(a, 2) == 1)
        topics = ShardTopics()
        async with _running(front), aiomqtt.Client("127.0.0.1", private_mosquitto.port) as c:
            await c.publish(topics.jobs(0), f'{{"type":"job","id":"x","address":"{other}"}}', qos=1)
            await c.publish(topics.jobs(0), b"\xff not json", qos=1)
            await c.publish(topics.jobs(0), '{"type":"collect","day":"yesterday"}', qos=1)
            mine = next(a for a in rig.gateways[0].addresses if shard_of(a, 2) == 0)
            async with front.bus.subscribe(CommandSucceeded) as outcomes:
                job, _ = JobStore(pg).submit(_read(mine, "mine"), clock.now())
                await c.publish(
                    topics.jobs(0), f'{{"type":"job","id":"mine","address":"{mine}"}}', qos=1
                )
                done = await asyncio.wait_for(outcomes.get(), 20)
            # messages on one topic arrive in order: the three before were handled first
            assert isinstance(done, CommandSucceeded)
            assert (done.job_id, front.rejected) == (job.id, 3)
    finally:
        await rig.aclose()


def _read(address: str, job_id: str) -> JobSpec:
    return JobSpec(JobKind.READ, address, id=job_id, params={"what": "energy"})


async def test_a_collection_cut_off_by_a_stop_is_resumed_by_the_next_active_front_end(
    pg: Engine, private_mosquitto: Mosquitto
) -> None:
    rig = Rig()
    try:
        gateway = await rig.gateway("gw-a", 1, 40, latency=0.02)
        rig.load_archive(pg)
        await rig.clock.advance(17 * 3600)  # past 00:00 of 2 March: the freeze
        clock = AcceleratedClock(start=rig.clock.now(), speed=1.0)
        settings = FrontendSettings(poll_s=0.5)
        first, second = (
            Frontend(pg, Shard(0, 1), private_mosquitto.url, clock=clock, settings=settings)
            for _ in range(2)
        )
        on_the_wire = asyncio.Event()

        def seen(frame: Frame) -> Frame:
            on_the_wire.set()
            return frame

        gateway.tamper[gateway.addresses[0]] = seen
        async with (
            ShardDispatcher(private_mosquitto.url, 1, clock=clock) as dispatcher,
            _running(first),
        ):
            await dispatcher.collect(DAY)
            await asyncio.wait_for(on_the_wire.wait(), 20)
        # the first front-end stopped during the collection: it never reported
        assert first.collections == [] and first.state == "stopped"
        done: asyncio.Future[dict[str, object]] = asyncio.get_running_loop().create_future()
        second.on_collected = done.set_result
        async with _running(second):
            report = await asyncio.wait_for(done, 20)
        assert (report["resumed"], report["collected"], report["missing"]) == (True, 40, 0)
        with pg.connect() as c:
            stored = c.execute(
                text("SELECT count(*) FROM headend_reading WHERE freeze_date = :d"), {"d": DAY}
            ).scalar()
        assert stored == 40
    finally:
        await rig.aclose()


async def test_the_relay_sends_a_job_queued_elsewhere_to_its_shard(
    pg: Engine, private_mosquitto: Mosquitto
) -> None:
    rig = Rig()
    try:
        await rig.gateway("gw-a", 1, 8)
        rig.load_archive(pg)
        clock = AcceleratedClock(start=rig.clock.now(), speed=1.0)
        # the front-ends poll the database once a minute: the job must come by MQTT
        settings = FrontendSettings(poll_s=60)
        fronts = [
            Frontend(pg, Shard(i, 2), private_mosquitto.url, clock=clock, settings=settings)
            for i in range(2)
        ]
        # another process (the prepaid platform) queues a job and publishes job-queued
        platform_bus = EventBus()
        platform = JobRunner(pg, _NoSessions(), {}, bus=platform_bus, clock=clock)
        address = rig.gateways[0].addresses[3]
        owner = fronts[shard_of(address, 2)]
        async with (
            _running(fronts[0]),
            _running(fronts[1]),
            ShardDispatcher(private_mosquitto.url, 2) as dispatcher,
            MqttEventPublisher(platform_bus, private_mosquitto.url) as publisher,
            owner.bus.subscribe(CommandSucceeded) as outcomes,
        ):
            relay = asyncio.create_task(dispatcher.relay())
            await asyncio.wait_for(dispatcher.relaying.wait(), 10)
            await publisher.wait_connected()
            platform.submit(_read(address, "from-the-platform"))
            done = await asyncio.wait_for(outcomes.get(), 20)
            relay.cancel()
        assert isinstance(done, CommandSucceeded)
        assert (done.job_id, done.address, dispatcher.relayed) == ("from-the-platform", address, 1)
    finally:
        await rig.aclose()


class _NoSessions:
    """The platform's runner only queues jobs (it never runs one)."""

    def session(self, address: str) -> contextlib.AbstractAsyncContextManager[MasterClient]:
        raise AssertionError(f"the platform must not talk to meter {address}")


async def test_a_standby_takes_over_at_once_when_the_active_one_stops_cleanly(
    pg: Engine, private_mosquitto: Mosquitto
) -> None:
    rig = Rig()
    try:
        await rig.gateway("gw-a", 1, 4)
        rig.load_archive(pg)
        clock = AcceleratedClock(start=rig.clock.now(), speed=1.0)
        # a standby that would try the lock only once a minute by itself
        settings = FrontendSettings(standby_poll_s=60)
        active, standby = (
            Frontend(pg, Shard(0, 1), private_mosquitto.url, clock=clock, settings=settings)
            for _ in range(2)
        )
        async with _running(active), ShardDispatcher(private_mosquitto.url, 1) as dispatcher:
            waiting = asyncio.create_task(standby.run())
            await asyncio.wait_for(dispatcher.wait_for("standby", replica=standby.replica), 10)
        assert standby.state == "standby"  # the lock is taken
        # the active one has stopped (Ctrl-C): its "down" wakes the standby
        await asyncio.wait_for(standby.subscribed.wait(), 10)
        assert standby.state == "active"
        waiting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiting
    finally:
        await rig.aclose()
