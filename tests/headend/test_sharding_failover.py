"""A shard's standby takes over when the active front-end process is killed.

Two ``feikong headend run --shard 0/1`` processes share a real PostgreSQL and a real
mosquitto: one holds the shard's lock and runs the jobs, the other stands by. The
active one is killed (SIGKILL: no goodbye) while its jobs are on the wire; the
standby hears the broker's will message, takes the lock, puts the interrupted jobs
back in the queue and finishes them.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiomqtt
from sqlalchemy.engine import Engine

from headend.jobs import JobSpec, JobStore
from headend.models import JobKind, JobState
from headend.sharding import ShardDispatcher, ShardTopics
from protocol.clock import AcceleratedClock
from tests.conftest import Mosquitto

from .fleet_rig import Rig
from .test_sharding import pg, pg_url

__all__ = ["pg", "pg_url"]

LATENCY_S = 1.5
"""Each meter takes this long to answer: the jobs are in flight when the kill comes."""


def _frontend(pg_url: str, broker: Mosquitto, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "feikong", "headend", "run", "--shard", "0/1",
             "--db", pg_url, "--mqtt", f"127.0.0.1:{broker.port}", "--timeout", "5"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "COLUMNS": "200"},
        )  # fmt: skip


async def _next(messages: Any, want: Any) -> dict[str, Any]:
    """The next MQTT message (as JSON) for which ``want(topic, data)`` holds."""
    async for message in messages:
        data = json.loads(message.payload)
        if want(str(message.topic), data):
            return dict(data)
    raise AssertionError("the broker connection ended")


async def test_killing_the_active_front_end_lets_the_standby_finish_its_jobs(
    pg: Engine, pg_url: str, private_mosquitto: Mosquitto, tmp_path: Path
) -> None:
    rig = Rig()
    procs: list[subprocess.Popen[bytes]] = []
    status = ShardTopics().status(0)
    try:
        gateway = await rig.gateway("gw", 1, 4, latency=LATENCY_S)
        rig.load_archive(pg)
        async with aiomqtt.Client("127.0.0.1", private_mosquitto.port) as watch:
            await watch.subscribe(status, qos=1)
            await watch.subscribe("feikong/events/#", qos=1)
            msgs = watch.messages
            procs = [_frontend(pg_url, private_mosquitto, tmp_path / f"fe{i}.log") for i in (0, 1)]
            seen: dict[str, set[int]] = {"active": set(), "standby": set()}

            def said(topic: str, data: dict[str, Any]) -> bool:
                if topic == status and data["type"] in seen:
                    seen[data["type"]].add(data["pid"])
                return len(seen["active"]) == 1 and len(seen["standby"]) == 2

            await asyncio.wait_for(_next(msgs, said), 60)
            (active_pid,) = seen["active"]
            active = next(p for p in procs if p.pid == active_pid)
            standby = next(p for p in procs if p.pid != active_pid)

            clock = AcceleratedClock(start=rig.clock.now(), speed=1.0)
            async with ShardDispatcher(private_mosquitto.url, 1, engine=pg, clock=clock) as d:
                for n, address in enumerate(gateway.addresses):
                    spec = JobSpec(JobKind.READ, address, id=f"read-{n}", params={"what": "energy"})
                    await d.submit(spec)
            started: set[str] = set()

            def on_the_wire(topic: str, data: dict[str, Any]) -> bool:
                if topic.endswith("/job-started"):
                    started.add(data["job_id"])
                return len(started) == 4

            await asyncio.wait_for(_next(msgs, on_the_wire), 30)
            active.send_signal(signal.SIGKILL)
            active.wait()
            loop = asyncio.get_running_loop()
            killed_at = loop.time()

            def took_over(topic: str, data: dict[str, Any]) -> bool:
                return topic == status and data["type"] == "active"

            takeover = await asyncio.wait_for(_next(msgs, took_over), 30)
            assert takeover["pid"] == standby.pid
            takeover_s = loop.time() - killed_at
            print(f"takeover_s={takeover_s:.2f}")  # for docs/DEPLOYMENT.md (pytest -s)
            assert takeover_s < 5, f"the standby took {takeover_s:.1f} s to take over"
            succeeded: set[str] = set()

            def finished(topic: str, data: dict[str, Any]) -> bool:
                if topic.endswith("/command-succeeded"):
                    succeeded.add(data["job_id"])
                return len(succeeded) == 4

            await asyncio.wait_for(_next(msgs, finished), 30)
        store = JobStore(pg)
        for n in range(4):
            job = store.require(f"read-{n}")
            assert (job.state, job.attempts) == (JobState.SUCCEEDED, 1), job
            outcomes = [a.outcome for a in store.attempts(job.id)]
            assert outcomes == ["interrupted", "succeeded"]  # the dead one's attempt is kept
        assert standby.poll() is None
        standby.send_signal(signal.SIGTERM)
        assert standby.wait(timeout=20) == 0
        log = (tmp_path / f"fe{procs.index(standby)}.log").read_text()
        assert "standing by for the shard's lock" in log and "front-end 0/1 active" in log
        assert "read done" in log  # the outcomes are printed
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        await rig.aclose()
