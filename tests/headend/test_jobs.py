"""Jobs: retries with backoff, deadlines, idempotent ids, one meter at a time, restarts.

Simulated meters over real TCP; the clock is stepped (no sleeps): a retry that
waits minutes takes milliseconds.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from breaker_sim import BreakerState
from headend.channels import UnknownMeterError
from headend.control import KeyRing, control_handlers
from headend.errors import JobConflictError, JobError
from headend.events import CommandFailed, CommandSucceeded, JobQueued, JobStarted
from headend.jobs import JobRunner, JobSpec, RetryPolicy
from headend.models import JobKind, JobState
from protocol.frame import decode_frame

from .fleet_rig import KEY
from .jobs_rig import FIRST, SECOND, THIRD, HeadEnd, headend


async def test_a_meter_that_never_answers_is_retried_with_backoff_then_fails(
    tmp_path: Path,
) -> None:
    async with headend(tmp_path, timeout=0.1, retry=RetryPolicy(base_s=30, factor=2)) as he:
        he.gateway.silenced.add(FIRST)
        start = he.clock.now()
        he.runner.submit(JobSpec(JobKind.TRIP, FIRST, id="mute", max_attempts=4))
        event = await he.finish("mute")

        assert isinstance(event, CommandFailed) and not event.expired
        assert event.error == "no-reply" and event.attempts == 4
        assert "did not answer" in event.reason and "gave up after 4 attempt(s)" in event.reason
        attempts = he.runner.store.attempts("mute")
        assert [a.attempt_no for a in attempts] == [1, 2, 3, 4]
        assert all(a.outcome == "failed" and "did not answer" in (a.error or "") for a in attempts)
        # each attempt sent the identity authentication and got nothing back
        assert all([line[:5] for line in a.frames] == ["TX 68"] for a in attempts)
        # backoff on the clock: 30 s, 60 s, 120 s between the attempts
        offsets = [(a.started_at - start).total_seconds() for a in attempts]
        assert offsets == [0, 30, 90, 210]
        started = [e.attempt for e in he.events if isinstance(e, JobStarted)]
        assert started == [1, 2, 3, 4]
        assert he.runner.store.require("mute").state is JobState.FAILED


async def test_the_deadline_cuts_retries_short_and_the_job_expires(tmp_path: Path) -> None:
    async with headend(tmp_path, timeout=0.1, retry=RetryPolicy(base_s=2)) as he:
        he.gateway.silenced.add(FIRST)
        deadline = he.clock.now() + timedelta(seconds=5)
        he.runner.submit(JobSpec(JobKind.TRIP, FIRST, id="d", deadline=deadline, max_attempts=9))
        event = await he.finish("d")
        assert isinstance(event, CommandFailed) and event.expired
        # tries at 0 s and 2 s; the third would be at 6 s, after the deadline
        assert event.attempts == 2 and "after the deadline" in event.reason
        job = he.runner.store.require("d")
        assert job.state is JobState.EXPIRED and job.error == "no-reply"


async def test_a_job_still_queued_at_its_deadline_expires_without_an_attempt(
    tmp_path: Path,
) -> None:
    async with headend(tmp_path, start=False) as he:
        deadline = he.clock.now() + timedelta(minutes=10)
        he.runner.submit(JobSpec(JobKind.TRIP, FIRST, id="late", deadline=deadline))
        await he.clock.advance(11 * 60)  # the head-end was down for 11 minutes
        await he.runner.start()
        event = await he.finish("late")
        assert isinstance(event, CommandFailed) and event.expired and event.attempts == 0
        assert "deadline" in event.reason and "passed before the trip could be done" in event.reason
        assert he.runner.store.attempts("late") == []
        assert he.breaker(FIRST).state is BreakerState.CLOSED


async def test_job_ids_are_idempotency_keys(tmp_path: Path) -> None:
    async with headend(tmp_path) as he:
        first, created = he.runner.submit(JobSpec(JobKind.TRIP, FIRST, id="order-7"))
        again, created_again = he.runner.submit(JobSpec(JobKind.TRIP, FIRST, id="order-7"))
        assert created and not created_again and again.id == first.id
        assert isinstance(await he.finish("order-7"), CommandSucceeded)
        # submitted once more after it finished: the finished job, not a second trip
        done, created_late = he.runner.submit(JobSpec(JobKind.TRIP, FIRST, id="order-7"))
        assert not created_late and done.state is JobState.SUCCEEDED
        await he.runner.wait_quiet()
        assert he.breaker(FIRST).trip_count == 1
        assert len(he.runner.store.attempts("order-7")) == 1
        assert sum(isinstance(e, JobQueued) for e in he.events) == 1
        assert sum(isinstance(e, CommandSucceeded) for e in he.events) == 1
        with pytest.raises(JobConflictError, match="already a trip of meter 000000000001"):
            he.runner.submit(JobSpec(JobKind.CLOSE, FIRST, id="order-7"))


async def test_bad_submissions_are_refused_with_the_reason(tmp_path: Path) -> None:
    async with headend(tmp_path, start=False) as he:
        with pytest.raises(UnknownMeterError, match="not in the archive"):
            he.runner.submit(JobSpec(JobKind.TRIP, "999999999999"))
        with pytest.raises(JobError, match="12 digits"):
            he.runner.submit(JobSpec(JobKind.TRIP, "12345"))
        with pytest.raises(JobError, match=r"1\.\.64 printable"):
            he.runner.submit(JobSpec(JobKind.TRIP, FIRST, id="x" * 65))
        with pytest.raises(JobError, match="max_attempts"):
            he.runner.submit(JobSpec(JobKind.TRIP, FIRST, max_attempts=0))
        assert he.runner.store.counts() == {}


async def test_a_meters_jobs_run_one_at_a_time_in_one_session_by_priority(
    tmp_path: Path,
) -> None:
    async with headend(tmp_path, latency=0.01, start=False) as he:
        sessions: list[str] = []
        real_session = he.pool.session

        def counting(address: str) -> Any:
            sessions.append(address)
            return real_session(address)

        he.pool.session = counting  # type: ignore[method-assign]
        seen: list[tuple[str, int]] = []
        real_handle = he.gateway.fleet.handle

        async def spy(frame: Any) -> Any:
            seen.append((str(frame.address), frame.control))
            return await real_handle(frame)

        he.gateway.fleet.handle = spy  # type: ignore[method-assign]
        he.runner.submit(JobSpec(JobKind.GUARANTEE_ON, FIRST, id="low", priority=0))
        he.runner.submit(JobSpec(JobKind.GUARANTEE_OFF, FIRST, id="mid", priority=5))
        he.runner.submit(JobSpec(JobKind.TRIP, FIRST, id="high", priority=9))
        he.runner.submit(JobSpec(JobKind.TRIP, SECOND, id="other"))
        await he.runner.start()
        await he.run_until(lambda: all(he.outcome(i) for i in ("low", "mid", "high", "other")))

        started = [e.job_id for e in he.events if isinstance(e, JobStarted) and e.address == FIRST]
        assert started == ["high", "mid", "low"]
        assert sessions.count(FIRST) == 1  # the three jobs were bundled into one session
        ours = [c for a, c in seen if a == FIRST]
        # one job's exchange never interleaves with another's: 03 1C 11 (11) per job
        assert ours == [0x03, 0x1C, 0x11, 0x11, 0x03, 0x1C, 0x11, 0x03, 0x1C, 0x11]
        # while the other meter's job ran alongside
        assert he.gateway.peak >= 2 and he.gateway.peak_per_meter == 1


@asynccontextmanager
async def second_runner(he: HeadEnd) -> AsyncIterator[JobRunner]:
    """A new head-end process on the same database (same channels and clock)."""
    runner = JobRunner(
        he.engine,
        he.pool,
        control_handlers(KeyRing(KEY)),
        bus=he.bus,
        clock=he.clock,
        poll_s=None,
        stop_grace_s=0,
    )
    he.runner = runner
    await runner.start()
    try:
        yield runner
    finally:
        await runner.stop()


async def test_jobs_queued_before_a_crash_run_after_the_restart(tmp_path: Path) -> None:
    async with headend(tmp_path, start=False) as he:
        he.runner.submit(JobSpec(JobKind.TRIP, FIRST, id="before-crash"))
        he.runner.submit(JobSpec(JobKind.GUARANTEE_ON, SECOND, id="also"))
        # the process dies here: the runner never started, nothing ran
        async with second_runner(he):
            await he.run_until(lambda: bool(he.outcome("before-crash") and he.outcome("also")))
        assert isinstance(he.outcome("before-crash"), CommandSucceeded)
        assert he.breaker(FIRST).state is BreakerState.OPEN_LOCKED


async def test_a_job_left_running_by_a_crash_is_retried(tmp_path: Path) -> None:
    async with headend(tmp_path, start=False) as he:
        he.runner.submit(JobSpec(JobKind.TRIP, FIRST, id="mid-flight", max_attempts=1))
        # a head-end claimed it and died during the attempt
        assert he.runner.store.start_attempt("mid-flight", he.clock.now()) == 1
        assert he.runner.store.require("mid-flight").state is JobState.RUNNING
        async with second_runner(he):
            event = await he.finish("mid-flight")
        assert isinstance(event, CommandSucceeded)
        # the interrupted attempt is kept in the log and did not use up max_attempts=1
        attempts = he.runner.store.attempts("mid-flight")
        assert [a.outcome for a in attempts] == ["interrupted", "succeeded"]
        assert he.runner.store.require("mid-flight").attempts == 1


async def test_stopping_during_an_attempt_requeues_the_job(tmp_path: Path) -> None:
    async with headend(tmp_path, timeout=5.0) as he:
        he.gateway.silenced.add(FIRST)  # the attempt hangs waiting for a reply
        he.runner.submit(JobSpec(JobKind.TRIP, FIRST, id="stop"))
        while not any(isinstance(e, JobStarted) for e in he.events):
            await asyncio.sleep(0)
        await asyncio.wait_for(he.runner.stop(grace_s=0), 2)
        job = he.runner.store.require("stop")
        assert job.state is JobState.QUEUED and job.attempts == 0
        (attempt,) = he.runner.store.attempts("stop")
        assert attempt.outcome == "interrupted" and attempt.ended_at is not None
        assert decode_frame(bytes.fromhex(attempt.frames[0][3:]))[0].control == 0x03
        he.gateway.silenced.clear()
        async with second_runner(he):
            assert isinstance(await he.finish("stop"), CommandSucceeded)


async def test_counts_by_state_and_kind(tmp_path: Path) -> None:
    async with headend(tmp_path, start=False) as he:
        he.runner.submit(JobSpec(JobKind.TRIP, FIRST))
        he.runner.submit(JobSpec(JobKind.TRIP, SECOND))
        he.runner.submit(JobSpec(JobKind.GUARANTEE_ON, THIRD))
        assert he.runner.store.counts() == {("queued", "trip"): 2, ("queued", "guarantee-on"): 1}
