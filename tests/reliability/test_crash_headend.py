"""kill -9 of ``feikong headend run`` while trips and permit-closes execute, then restart.

Real processes: the meters are a ``feikong meter-sim`` fleet in its own process on
a TCP gateway; the head-end is ``feikong headend run`` on a SQLite file; jobs are
queued by ``feikong headend command`` (as the prepaid platform or an operator
would). The head-end is killed with SIGKILL when some jobs have succeeded, some
are executing (authenticated, 1CH sent, waiting the settle delay before reading
status word 3) and some are still queued, then started again.

What must hold afterwards:

- every job ends ``succeeded``, or ``failed`` / ``expired`` with its reason (a job
  whose deadline passed while the head-end was down expires at the restart and is
  never sent);
- a job that had succeeded before the kill is not run again (its command log is
  unchanged: no attempt after the restart);
- a job that was executing is *resumed*: its interrupted attempt stays in the
  command log (outcome ``interrupted``, not counted against ``max_attempts``) and
  a new attempt confirms it from status word 3;
- every meter was tripped exactly once: its own trip counter (跳闸总次数,
  1D000001, counting openings of the relay) is 1, although a trip that was
  executing at the kill was sent to it again after the restart.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from pathlib import Path

from typer.testing import CliRunner

from feikong.cli import app
from headend.jobs import AttemptOutcome, JobSpec, JobStore
from headend.models import JobKind, JobState

from .headend_rig import (
    address,
    all_final,
    archive,
    attempts,
    jobs,
    kill9,
    look,
    port_of,
    start_fleet,
    start_headend,
    stop,
    wait_until,
)

cli = CliRunner()
METERS = [address(n) for n in range(1, 9)]


def _queue(url: str, meter: str, command: str, job_id: str) -> None:
    args = ["headend", "command", meter, command, "--db", url, "--id", job_id]
    if command == "trip":
        args += ["--reason", "arrears"]
    result = cli.invoke(app, args)
    assert result.exit_code == 0, result.output


async def test_kill9_during_trips_and_permit_closes_then_restart(tmp_path: Path) -> None:
    fleet, fleet_url = await start_fleet(len(METERS))
    try:
        port = port_of(fleet_url)
        engine = archive(tmp_path, METERS, port=port, concurrency=4)
        url = str(engine.url)
        for m in METERS:  # the trip of each meter, then its permit-close (a payment)
            _queue(url, m, "trip", f"trip-{m[-2:]}")
        for m in METERS:
            _queue(url, m, "permit-close", f"permit-{m[-2:]}")
        run = ("--settle", "1.5", "--timeout", "1.0")
        headend = await start_headend(url, *run)

        async def in_the_middle() -> bool:
            """Some jobs done, some queued, and a trip executed by its meter (relay open)
            but not yet confirmed (the head-end waits the settle delay): the worst moment."""
            now = jobs(engine)
            states = {j.state for j in now.values()}
            if not {JobState.SUCCEEDED, JobState.QUEUED} <= states:
                return False
            trips = [j.address for j in now.values() if j.state is JobState.RUNNING]
            trips = [a for a in trips if now[f"trip-{a[-2:]}"].state is JobState.RUNNING]
            if not trips:
                return False
            executed = [a for a, v in (await look(port, trips)).items() if v.relay_open]
            # still unconfirmed now that the meter is seen tripped (the look takes time)
            store = JobStore(engine)
            return any(store.require(f"trip-{a[-2:]}").state is JobState.RUNNING for a in executed)

        deadline = asyncio.get_running_loop().time() + 30
        while not await in_the_middle():  # the state of two other processes: polled
            assert asyncio.get_running_loop().time() < deadline, jobs(engine)
            await asyncio.sleep(0.02)
        await kill9(headend)

        at_kill = jobs(engine)
        log_at_kill = attempts(engine)
        done_before = {i for i, j in at_kill.items() if j.state is JobState.SUCCEEDED}
        running = {i for i, j in at_kill.items() if j.state is JobState.RUNNING}
        queued = {i for i, j in at_kill.items() if j.state is JobState.QUEUED}
        assert done_before and running and queued, at_kill
        # trips that reached the meter (relay open) but were not recorded as done
        before = await look(port, METERS)
        executed_unrecorded = {
            i for i in running if i.startswith("trip-") and before[at_kill[i].address].relay_open
        }
        assert executed_unrecorded  # the kill came between the meter's trip and its record

        # queued while the head-end is down, with a deadline that passes before it is back
        late = JobSpec(
            JobKind.GUARANTEE_ON,
            METERS[0],
            id="late",
            deadline=datetime.now() + timedelta(seconds=0.5),
        )
        JobStore(engine).submit(late, datetime.now())

        headend = await start_headend(url, *run)
        try:
            await wait_until(lambda: all_final(engine), 40, "every job to end after the restart")
        finally:
            code = await stop(headend)
        assert code == 0

        after = jobs(engine)
        log_after = attempts(engine)
        expired = after.pop("late")  # failed at its deadline, with the reason, never sent
        assert expired.state is JobState.EXPIRED and "late" not in log_after
        assert expired.reason is not None and "deadline" in expired.reason
        for job_id, job in after.items():
            assert job.state is JobState.SUCCEEDED, (job_id, job.state, job.reason)
        # succeeded before the kill: not run again, command log untouched
        for job_id in done_before:
            assert log_after[job_id] == log_at_kill[job_id]
            assert [o for _, o, _ in log_after[job_id]] == [AttemptOutcome.SUCCEEDED]
        # executing at the kill: resumed; the interrupted attempt is kept and not counted
        for job_id in running:
            outcomes = [o for _, o, _ in log_after[job_id]]
            assert outcomes == [AttemptOutcome.INTERRUPTED, AttemptOutcome.SUCCEEDED], outcomes
            assert "crash or kill" in (log_after[job_id][0][2] or "")
            assert after[job_id].attempts == 1
        for job_id in queued:
            assert [o for _, o, _ in log_after[job_id]] == [AttemptOutcome.SUCCEEDED]
        # the meters: each tripped once, and each permitted to close again
        meters = await look(port, METERS)
        assert {m: v.trips for m, v in meters.items()} == dict.fromkeys(METERS, 1)
        assert not any(v.trip_command for v in meters.values())
        assert not any(v.guaranteed for v in meters.values())  # the expired job never ran
        print(
            f"at the kill: {len(done_before)} succeeded, {len(running)} running "
            f"({len(executed_unrecorded)} trips already executed on the meter), "
            f"{len(queued)} queued; after the restart all {len(after)} succeeded"
        )
    finally:
        await stop(fleet)
