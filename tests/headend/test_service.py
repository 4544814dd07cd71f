"""The service interface for prepaid, end to end: job ids at once, outcomes as events.

Simulated meters over real TCP, a stepped clock; the caller sees no DL/T 645.
"""

from __future__ import annotations

import asyncio
from datetime import time, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from breaker_sim import BreakerState
from headend.collection import success_rates
from headend.control import KeyRing
from headend.errors import JobError
from headend.events import (
    CommandFailed,
    CommandSucceeded,
    EventBus,
    JobQueued,
    ReadingCollected,
    ReadingMissing,
)
from headend.jobs import JobStore
from headend.models import JobState, Reading
from headend.service import HeadEnd, HeadendService, HeadEndSettings
from protocol import decode_value

from .fleet_rig import KEY
from .jobs_rig import FIRST, SECOND, THIRD, headend


async def test_trip_and_permit_close_through_the_service(tmp_path: Path) -> None:
    async with headend(tmp_path) as he:
        service = HeadendService(he.runner)
        job_id = service.trip(FIRST, "arrears", job_id="bill-2026-03-0042")
        # the id comes back at once; nothing has been sent yet
        assert job_id == "bill-2026-03-0042"
        assert service.job(job_id).state is JobState.QUEUED
        assert [type(e) for e in he.events] == [JobQueued]

        done = await he.finish(job_id)
        assert isinstance(done, CommandSucceeded)
        assert (done.command, done.relay, done.reason) == ("trip", "open", "arrears")
        register = decode_value(0x00010000, he.meter(FIRST).read_value(0x00010000)).value
        assert done.energy_ckwh == int(register * 100)
        assert he.breaker(FIRST).state is BreakerState.OPEN_LOCKED
        # asking again with the same id does not trip twice
        assert service.trip(FIRST, "arrears", job_id="bill-2026-03-0042") == job_id
        assert he.breaker(FIRST).trip_count == 1

        relay = service.read(FIRST, "relay")
        await he.finish(relay)
        (reading,) = [e for e in he.events if isinstance(e, ReadingCollected)]
        assert (reading.job_id, reading.quantity, reading.value) == (relay, "relay", "open")

        permit = service.permit_close(FIRST, reason="paid")
        event = await he.finish(permit)
        assert isinstance(event, CommandSucceeded) and event.command == "permit-close"
        assert event.reason == "paid"
        record = await service.wait(permit, timeout=1)
        assert record.state is JobState.SUCCEEDED


async def test_an_energy_read_is_published_and_stored(tmp_path: Path) -> None:
    async with headend(tmp_path) as he:
        service = HeadendService(he.runner)
        await he.clock.advance(6 * 3600)
        job_id = service.read(SECOND, "energy")
        done = await he.finish(job_id)
        assert isinstance(done, CommandSucceeded) and done.command == "read"
        (event,) = [e for e in he.events if isinstance(e, ReadingCollected)]
        register = decode_value(0x00010000, he.meter(SECOND).read_value(0x00010000)).value
        assert event.value == str(register) and event.unit == "kWh"
        assert event.energy_ckwh == int(register * 100) and event.job_id == job_id
        assert event.di == "00010000"
        with he.engine.connect() as c:
            row = c.execute(select(Reading.__table__)).mappings().one()  # type: ignore[attr-defined]
        assert row["meter_address"] == SECOND and Decimal(row["value"]) == register
        assert row["freeze_date"] == he.clock.now().date()


async def test_a_read_of_a_silent_meter_reports_the_reading_missing(tmp_path: Path) -> None:
    async with headend(tmp_path, timeout=0.1) as he:
        he.gateway.silenced.add(THIRD)
        service = HeadendService(he.runner, read_attempts=2)
        job_id = service.read(THIRD, "voltage")
        failed = await he.finish(job_id)
        assert isinstance(failed, CommandFailed) and failed.attempts == 2
        (missing,) = [e for e in he.events if isinstance(e, ReadingMissing)]
        assert (missing.job_id, missing.quantity, missing.di) == (job_id, "voltage", "02010100")
        assert "did not answer" in missing.reason


async def test_bad_calls_are_refused_before_anything_is_queued(tmp_path: Path) -> None:
    async with headend(tmp_path, start=False) as he:
        service = HeadendService(he.runner)
        with pytest.raises(JobError, match="readable quantities: energy, relay"):
            service.read(FIRST, "balance")
        with pytest.raises(JobError, match="needs a reason"):
            service.trip(FIRST, "  ")
        assert he.runner.store.counts() == {}


async def test_default_deadlines_and_guarantee(tmp_path: Path) -> None:
    async with headend(tmp_path) as he:
        service = HeadendService(he.runner, control_deadline_s=120)
        job_id = service.guarantee(FIRST, True)
        job = service.job(job_id)
        assert job.deadline == he.clock.now() + timedelta(seconds=120)
        assert job.priority == 10 and job.max_attempts == 3
        event = await he.finish(job_id)
        assert isinstance(event, CommandSucceeded) and event.guarantee is True
        off = await he.finish(service.guarantee(FIRST, False))
        assert isinstance(off, CommandSucceeded) and off.guarantee is False


async def test_the_head_end_collects_daily_at_the_set_time(tmp_path: Path) -> None:
    """HeadEnd runs B's daily collection at ``collect_at`` on the clock, and records status."""
    async with headend(tmp_path, start=False) as he:
        bus = EventBus()
        collected = bus.subscribe(ReadingCollected)
        settings = HeadEndSettings(
            collect_at=time(1, 0), recollect_rounds=0, poll_s=None, status_every_s=6 * 3600
        )
        head = HeadEnd(
            he.engine, clock=he.clock, keys=KeyRing(KEY), bus=bus, pool=he.pool, settings=settings
        )
        first = head.next_collection()
        async with head:
            # started at 08:00, after today's collection time: it catches up on today
            catch_up = await asyncio.wait_for(first, 10)
            assert catch_up["day"] == he.clock.now().date().isoformat()
            day = he.clock.now().date() + timedelta(days=1)
            done = head.next_collection()
            await he.clock.advance(17 * 3600 + 5)  # 08:00 → 01:00:05 the next day
            summary = await asyncio.wait_for(done, 10)
            assert summary["first"]["collected"] == 3
            got = [await collected.get() for _ in range(3)]
            assert {e.address for e in got} == {FIRST, SECOND, THIRD}
            assert all(e.freeze_date == day for e in got)
            (rate,) = success_rates(he.engine, day)
            assert (rate.meters, rate.collected) == (3, 3)
            job_id = head.service.trip(FIRST, "arrears")
            assert head.runner.store.require(job_id).state is JobState.QUEUED
        status = JobStore(he.engine).load_status("runner")
        assert status is not None
        data, _ = status
        assert data["running"] is False and data["channels"][0]["name"] == "gw"
        assert data["collections"][-1]["day"] == day.isoformat()
        assert data["collections"][-1]["first"]["collected"] == 3


async def test_a_meter_added_to_the_archive_while_running_is_reached(tmp_path: Path) -> None:
    async with headend(tmp_path, count=3, start=False) as he:
        with he.engine.begin() as c:
            c.exec_driver_sql("DELETE FROM headend_meter WHERE address = ?", (THIRD,))
        settings = HeadEndSettings(poll_s=None, status_every_s=3600)
        head = HeadEnd(he.engine, clock=he.clock, keys=KeyRing(KEY), settings=settings)
        assert THIRD not in head.pool
        head.bus.on(he.events.append)
        async with head:
            he.runner = head.runner  # drive this head-end's runner
            he.rig.load_archive(he.engine)  # the meter is imported while the head-end runs
            event = await he.finish(head.service.trip(THIRD, "arrears"))
            assert isinstance(event, CommandSucceeded) and event.relay == "open"
            assert THIRD in head.pool
