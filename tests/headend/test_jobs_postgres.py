"""Jobs on a real PostgreSQL: a trip with a retry, crash recovery and the status snapshot.

The server is the throw-away cluster of :mod:`tests.headend.test_postgres` (skipped
there, and so here, without the PostgreSQL server tools or psycopg).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from sqlalchemy import text

from breaker_sim import BreakerState
from headend.events import CommandSucceeded
from headend.jobs import JobSpec, JobStore
from headend.models import JobKind, JobState

from .jobs_rig import FIRST, SECOND, headend
from .test_postgres import pg_url

__all__ = ["pg_url"]


async def test_jobs_run_retry_and_recover_on_postgresql(tmp_path: Path, pg_url: str) -> None:
    async with headend(tmp_path, db_url=pg_url, start=False) as he:
        with he.engine.begin() as c:
            c.execute(text("TRUNCATE headend_job_attempt, headend_job, headend_runner_status"))
        store = he.runner.store
        he.runner.submit(JobSpec(JobKind.TRIP, FIRST, id="pg-trip", params={"reason": "arrears"}))
        he.runner.submit(JobSpec(JobKind.GUARANTEE_ON, SECOND, id="pg-crash"))
        assert store.start_attempt("pg-crash", he.clock.now()) == 1  # then the process died
        he.breaker(FIRST).set_fault("fails-to-trip")
        await he.runner.start()
        await he.run_until(lambda: store.require("pg-trip").error == "relay-not-open")
        he.breaker(FIRST).set_fault("none")
        trip = await he.finish("pg-trip")
        crash = await he.finish("pg-crash")
        assert isinstance(trip, CommandSucceeded) and trip.attempts == 2
        assert trip.reason == "arrears" and trip.energy_ckwh is not None
        assert isinstance(crash, CommandSucceeded) and crash.attempts == 1
        assert he.breaker(FIRST).state is BreakerState.OPEN_LOCKED
        assert [a.outcome for a in store.attempts("pg-crash")] == ["interrupted", "succeeded"]
        job = store.require("pg-trip")
        # times come back as the clock's naive local times, whatever the server's zone
        assert job.state is JobState.SUCCEEDED and job.created_at == datetime(2026, 3, 1, 8, 0)
        assert job.result is not None and job.result["relay"] == "open"
        assert store.counts() == {("succeeded", "trip"): 1, ("succeeded", "guarantee-on"): 1}
        JobStore(he.engine).save_status("runner", {"running": True}, he.clock.now())
        JobStore(he.engine).save_status("runner", {"running": False}, he.clock.now())
        saved = store.load_status("runner")
        assert saved is not None and saved[0] == {"running": False}
