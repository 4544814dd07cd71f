"""Faults around ``feikong headend run``: the broker restarts, the database is locked,
30% of the meters are offline. Real processes, a real mosquitto, a real SQLite file.

The event contract these tests hold the head-end to (``headend/events.py``): every
event the running head-end publishes reaches the broker **at least once** (QoS 1;
events published while the broker is away wait in the publisher's queue and go out
after it reconnects with backoff). A subscriber whose MQTT session outlives the
outage (a persistent session, on a broker that keeps it) therefore gets every one.
The job table stays the record: a consumer that was away longer (or a head-end
killed with events still queued in memory) reconciles from it by job id.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import sqlite3
from collections import Counter
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import aiomqtt
from typer.testing import CliRunner

from feikong.cli import app
from headend.events import CommandFailed, CommandSucceeded, event_from_json
from headend.jobs import JobSpec, RetryPolicy
from headend.models import JobKind, JobState
from protocol.transport import TcpFrameServer
from tests.headend.jobs_rig import FIRST, SECOND, headend

from .headend_rig import (
    address,
    aged_state,
    all_final,
    archive,
    attempts,
    collection_rows,
    jobs,
    look,
    port_of,
    start_fleet,
    start_headend,
    stop,
    wait_until,
)

cli = CliRunner()
LOCK_S = 6.5
"""Longer than SQLite's busy timeout (5 s, headend.db): waiting alone does not cover it."""


def _queue(url: str, meter: str, command: str, job_id: str, *extra: str) -> None:
    args = ["headend", "command", meter, command, "--db", url, "--id", job_id, *extra]
    if command == "trip":
        args += ["--reason", "arrears"]
    result = cli.invoke(app, args)
    assert result.exit_code == 0, result.output


class DurableSubscriber:
    """An event consumer with a persistent MQTT session (clean_session False, QoS 1):
    the broker keeps its subscription and queues its messages while it is away."""

    def __init__(self, port: int, prefix: str) -> None:
        self.port = port
        self.prefix = prefix
        self.events: list[Any] = []
        self.connects = 0
        self._task: asyncio.Task[None] | None = None
        self.subscribed = asyncio.Event()

    async def _run(self) -> None:
        while True:
            try:
                async with aiomqtt.Client(
                    "127.0.0.1",
                    self.port,
                    identifier="feikong-test-durable-consumer",
                    clean_session=False,
                    timeout=5,
                ) as client:
                    await client.subscribe(f"{self.prefix}/#", qos=1)
                    self.connects += 1
                    self.subscribed.set()
                    async for message in client.messages:
                        assert isinstance(message.payload, bytes)
                        self.events.append(event_from_json(message.payload))
            except aiomqtt.MqttError:
                self.subscribed.clear()
                await asyncio.sleep(0.1)  # the broker is away: try again soon

    async def __aenter__(self) -> DurableSubscriber:
        self._task = asyncio.create_task(self._run())
        await asyncio.wait_for(self.subscribed.wait(), 10)
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


def _persistent(broker: Any, directory: Path) -> None:
    """Restart ``broker`` with persistence on, so sessions survive its restarts."""
    broker.stop()
    store = directory / "mosquitto-data"
    store.mkdir()
    broker.config.write_text(
        f"listener {broker.port} {broker.host}\nallow_anonymous true\n"
        f"persistence true\npersistence_location {store}/\nlog_dest stderr\n"
    )
    broker.start()


async def test_broker_restart_with_meters_and_events_on_mqtt(
    private_mosquitto: Any, tmp_path: Path
) -> None:
    broker = private_mosquitto
    _persistent(broker, tmp_path)
    meters = [address(n) for n in range(1, 5)]
    line, events = "fk/meters", "fk/events"
    fleet, _ = await start_fleet(len(meters), listen=f"{broker.url}/{line}")
    try:
        engine = archive(tmp_path, meters, mqtt=(broker.port, line), concurrency=4)
        url = str(engine.url)
        async with DurableSubscriber(broker.port, events) as consumer:
            headend = await start_headend(
                url, "--mqtt", f"{broker.url}/{events}", "--settle", "0.2", "--timeout", "1.0"
            )
            try:
                for m in meters[:2]:
                    _queue(url, m, "trip", f"before-{m[-1]}")
                await wait_until(lambda: all_final(engine), 30, "the trips before the outage")

                broker.stop()  # every connection drops: meters, head-end, consumer
                for m in meters[2:]:
                    _queue(url, m, "trip", f"during-{m[-1]}")
                for m in meters[:2]:
                    _queue(url, m, "permit-close", f"permit-{m[-1]}")

                def noticed() -> bool:
                    return any(
                        o == "failed" for rows in attempts(engine).values() for _, o, _ in rows
                    )

                await wait_until(noticed, 30, "an attempt to fail while the broker is away")
                broker.start()  # same port, same persistent store
                await wait_until(lambda: all_final(engine), 40, "every job after the outage")
                status = cli.invoke(app, ["headend", "status", "--db", url, "--json"])
                mqtt = json.loads(status.stdout)["head_end"]["mqtt"]
            finally:
                code = await stop(headend)
                _, err = await headend.communicate()
            assert code == 0, err.decode()[-2000:]

            done = jobs(engine)
            log = attempts(engine)
            for job_id, job in done.items():
                assert job.state is JobState.SUCCEEDED, (job_id, job.state, job.reason)
            failed_attempts = sum(o == "failed" for rows in log.values() for _, o, _ in rows)
            assert failed_attempts >= 1
            # tries that could not reach the broker do not count; those at the meters
            # are bounded by --attempts (3)
            assert all(job.attempts <= 3 for job in done.values())

            # at least once: one outcome per job, one JobStarted per attempt of the log
            def outcomes() -> Counter[str]:
                return Counter(
                    e.job_id for e in consumer.events if type(e).__name__ == "CommandSucceeded"
                )

            await wait_until(lambda: set(outcomes()) == set(done), 15, "every outcome event")
            started = Counter(e.job_id for e in consumer.events if type(e).__name__ == "JobStarted")
            assert started == Counter({j: len(rows) for j, rows in log.items()})
            assert consumer.connects >= 2
        assert mqtt["connected"] is True and mqtt["last_error"]  # it lost and regained it
        assert "reconnecting in" in err.decode()  # the backoff, logged
        print(
            f"broker restart: {len(done)} jobs succeeded, {failed_attempts} attempt(s) failed "
            f"during the outage; events received {len(consumer.events)} "
            f"(duplicates: {sum(n - 1 for n in outcomes().values())})"
        )
    finally:
        await stop(fleet)


# --------------------------------------------------------------------------- database locked


class WriteLock:
    """Another connection holding a write transaction on the SQLite file (BEGIN IMMEDIATE)."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, isolation_level=None, timeout=10)

    def __enter__(self) -> WriteLock:
        self.db.execute("BEGIN IMMEDIATE")
        return self

    def __exit__(self, *_: object) -> None:
        self.db.execute("COMMIT")
        self.db.close()


async def test_database_locked_during_command_execution(tmp_path: Path) -> None:
    meters = [address(n) for n in range(1, 5)]
    fleet, fleet_url = await start_fleet(len(meters))
    try:
        port = port_of(fleet_url)
        engine = archive(tmp_path, meters, port=port)
        url = str(engine.url)
        headend = await start_headend(url, "--settle", "1.0", "--timeout", "1.0")
        try:
            for m in meters:
                _queue(url, m, "trip", f"trip-{m[-1]}")

            def some_running() -> bool:
                return any(j.state is JobState.RUNNING for j in jobs(engine).values())

            await wait_until(some_running, 20, "a trip to start")
            with WriteLock(tmp_path / "feikong.db"):
                await asyncio.sleep(LOCK_S)  # the fault: the lock held this long
            await wait_until(lambda: all_final(engine), 30, "every trip after the lock")
        finally:
            code = await stop(headend)
            _, err = await headend.communicate()
        assert code == 0, err.decode()[-3000:]
        for job_id, job in jobs(engine).items():
            assert job.state is JobState.SUCCEEDED, (job_id, job.state, job.reason)
        views = await look(port, meters)
        assert {m: v.trips for m, v in views.items()} == dict.fromkeys(meters, 1)
        log = attempts(engine)
        assert all(len(rows) == 1 for rows in log.values()), log  # waited, not re-sent
        # a job step that met the lock said so, waited, and was recorded once it lifted
        assert re.search(
            r"job trip-\d: cannot .* \(database is locked\).* retrying in", err.decode()
        )
        # and no event reported lost: the status counts none dropped, the log warns of none
        status = json.loads(cli.invoke(app, ["headend", "status", "--db", url, "--json"]).stdout)
        assert status["head_end"]["events_dropped"] == 0 and "dropped" not in err.decode()
    finally:
        await stop(fleet)


# --------------------------------------------------------------------------- 30% offline


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rate(url: str, day: str) -> dict[str, Any]:
    result = cli.invoke(app, ["headend", "status", "--db", url, "--date", day, "--json"])
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)["collection"]
    return dict(row)


async def test_thirty_percent_offline_collection_recollects_them_when_back(
    tmp_path: Path,
) -> None:
    count, offline = 10, [address(n) for n in (8, 9, 10)]  # 30%
    state = tmp_path / "fleet.json"
    await aged_state(state, count)

    def only_offline(path: Path, first: str, last: str) -> Path:
        path.write_text(
            f'[[meter]]\nrange = ["{first}", "{last}"]\nfaults = {{ offline = true }}\n'
        )
        return path

    port = _free_port()
    listen = f"tcp://127.0.0.1:{port}"
    scenario = only_offline(tmp_path / "offline.toml", offline[0], offline[-1])
    fleet, _ = await start_fleet(count, listen=listen, scenario=scenario, state=state)
    meters = [address(n) for n in range(1, count + 1)]
    engine = archive(tmp_path, meters, port=port, concurrency=4)
    url = str(engine.url)
    day = date.today().isoformat()
    rounds = 3
    headend = await start_headend(
        *(url, "--collect-at", "00:00", "--timeout", "0.5"),  # started later: catches up now
        *("--recollect-rounds", str(rounds), "--recollect-interval-min", "0.04"),  # 2.4 s
    )
    try:

        def first_round() -> bool:
            return len(collection_rows(engine, day)) == count

        await wait_until(first_round, 30, "the first collection round")
        rows = collection_rows(engine, day)
        assert {a for a, (s, _) in rows.items() if s == "missing"} == set(offline)
        assert all(rows[a] == ("collected", 1) for a in meters if a not in offline)
        rate = _rate(url, day)  # the truth: 7 of 10
        assert (rate["collected"], rate["missing"], rate["meters"]) == (7, 3, 10), rate

        # two of them come back (their state kept in the file); the last one never does
        await stop(fleet)
        scenario = only_offline(tmp_path / "still.toml", offline[-1], offline[-1])
        fleet, _ = await start_fleet(count, listen=listen, scenario=scenario, state=state)

        def rounds_over() -> bool:
            status = cli.invoke(app, ["headend", "status", "--db", url, "--json"])
            return bool(json.loads(status.stdout)["head_end"]["collections"])

        await wait_until(rounds_over, 40, "the 补抄 rounds to end")
        rows = collection_rows(engine, day)
        rate = _rate(url, day)
    finally:
        code = await stop(headend)
        await stop(fleet)
    assert code == 0
    assert all(rows[a] == ("collected", 1) for a in meters if a not in offline), rows
    assert all(rows[a][0] == "collected" for a in offline[:2]), rows
    # the one that never came back: tried once in the first round and once per 补抄 round
    assert rows[offline[-1]] == ("missing", 1 + rounds)
    assert (rate["collected"], rate["missing"], rate["meters"]) == (9, 1, 10), rate
    # one request timed out per failed try, no more: retries are bounded
    status = json.loads(cli.invoke(app, ["headend", "status", "--db", url, "--json"]).stdout)
    (channel,) = status["head_end"]["channels"]
    failed_tries = sum(n - (s == "collected") for s, n in rows.values())
    assert channel["timeouts"] == failed_tries, (channel, rows)
    tries = {a: rows[a] for a in offline}
    print(f"30% offline: {tries}; rate {rate['collected']}/{rate['meters']}; {channel}")


COLLECT_LOCK_S = 6.5
"""From the head-end's start: the collection's write waits out the busy timeout (5 s)
and fails; the lock is gone before the first 补抄 round."""


async def test_database_locked_during_the_daily_collection(tmp_path: Path) -> None:
    count = 6
    state = tmp_path / "fleet.json"
    await aged_state(state, count)
    fleet, fleet_url = await start_fleet(count, state=state)
    meters = [address(n) for n in range(1, count + 1)]
    engine = archive(tmp_path, meters, port=port_of(fleet_url))
    url = str(engine.url)
    day = date.today().isoformat()
    try:
        with WriteLock(tmp_path / "feikong.db"):  # locked before the collection starts
            headend = await start_headend(
                *(url, "--collect-at", "00:00", "--timeout", "0.5"),  # catches up at once
                *("--recollect-rounds", "2", "--recollect-interval-min", "0.03"),  # 1.8 s
            )
            assert headend.stdout is not None
            line = await asyncio.wait_for(headend.stdout.readline(), 20)
            assert b"head-end running" in line, line
            await asyncio.sleep(COLLECT_LOCK_S)  # the fault: the lock held this long
        try:

            def collected() -> bool:
                rows = collection_rows(engine, day)
                return len(rows) == count and all(s == "collected" for s, _ in rows.values())

            await wait_until(collected, 30, "every meter collected after the lock")
            rate = _rate(url, day)
        finally:
            code = await stop(headend)
            _, err = await headend.communicate()
        assert code == 0, err.decode()[-3000:]
        assert (rate["collected"], rate["meters"]) == (count, count), rate
        with engine.connect() as c:
            stored = c.exec_driver_sql(
                "SELECT count(*) FROM headend_reading WHERE freeze_date = ?", (day,)
            ).scalar()
        assert stored == count  # one reading per meter and day, none twice
        # the first pass met the lock beyond the busy timeout: said so; 补抄 stored it all
        assert "could not be stored: the database is locked" in err.decode()
        status = json.loads(cli.invoke(app, ["headend", "status", "--db", url, "--json"]).stdout)
        (entry,) = status["head_end"]["collections"]
        assert "database is locked" in entry["error"] and "first" not in entry
        assert entry["recollect"]["collected"] == count and entry["recollect"]["missing"] == 0
    finally:
        await stop(fleet)


# ---------------------------------------------------------------- the order of a meter's jobs


async def test_a_trip_waiting_for_its_retry_does_not_overtake_a_later_permit_close(
    tmp_path: Path,
) -> None:
    """A trip fails (the meter does not answer) and waits 30 s for its next try; the
    customer pays meanwhile and a permit-close is queued while the meter answers again.
    The commands must reach the meter in the order they were given: the trip, then the
    permit-close — not the permit-close first and then the late trip, which would leave
    a customer who paid without power."""
    async with headend(tmp_path, timeout=0.1, retry=RetryPolicy(base_s=30)) as he:
        he.gateway.silenced.add(FIRST)
        he.runner.submit(JobSpec(JobKind.TRIP, FIRST, id="trip", params={"reason": "arrears"}))

        def first_try_failed() -> bool:
            return [a.outcome for a in he.runner.store.attempts("trip")] == ["failed"]

        await he.run_until(first_try_failed)
        he.gateway.silenced.clear()  # the meter is back; the customer pays a second later
        await he.clock.advance(1)
        he.runner.submit(JobSpec(JobKind.PERMIT_CLOSE, FIRST, id="permit"))
        await he.run_until(
            lambda: he.outcome("trip") is not None and he.outcome("permit") is not None
        )
        trip, permit = he.runner.store.require("trip"), he.runner.store.require("permit")
        assert trip.state is permit.state is JobState.SUCCEEDED
        assert trip.finished_at is not None and permit.finished_at is not None
        assert trip.finished_at <= permit.finished_at  # in the order given
        meter = he.meter(FIRST)
        assert not meter.relay.open_reasons  # permitted to close: no trip left standing


class _SilentOnce(set[str]):
    """``Gateway.silenced`` that swallows the next request only (then the meter answers)."""

    def __init__(self) -> None:
        super().__init__()
        self.left = 1

    def __contains__(self, address: object) -> bool:
        if self.left:
            self.left -= 1
            return True
        return False


async def test_in_one_session_a_permit_close_waits_behind_the_trip_it_follows(
    tmp_path: Path,
) -> None:
    """The same in one channel session (a meter's due jobs are bundled): the trip's
    first request goes unanswered, so the permit-close given after it must not be
    carried out before the trip's retry."""
    async with headend(tmp_path, timeout=0.1, retry=RetryPolicy(base_s=30), start=False) as he:
        he.runner.submit(JobSpec(JobKind.TRIP, FIRST, id="trip", params={"reason": "arrears"}))
        await he.clock.advance(1)
        he.runner.submit(JobSpec(JobKind.PERMIT_CLOSE, FIRST, id="permit"))
        he.gateway.silenced = _SilentOnce()
        await he.runner.start()
        await he.run_until(lambda: he.outcome("permit") is not None)
        trip, permit = he.runner.store.require("trip"), he.runner.store.require("permit")
        assert trip.state is permit.state is JobState.SUCCEEDED
        assert [a.outcome for a in he.runner.store.attempts("trip")] == ["failed", "succeeded"]
        assert trip.finished_at is not None and permit.finished_at is not None
        assert trip.finished_at <= permit.finished_at
        assert not he.meter(FIRST).relay.open_reasons


# ---------------------------------------------------------------- a channel down for long


async def test_a_channel_down_for_longer_than_the_retries_keeps_the_job_until_its_deadline(
    tmp_path: Path,
) -> None:
    """The gateway (or the broker) is down for minutes: the tries that cannot reach the
    channel are logged but do not use up the job's attempts; the job is carried out
    when the channel is back, or expires at its deadline with the reason."""
    async with headend(tmp_path, timeout=0.1, retry=RetryPolicy(base_s=20, max_s=120)) as he:
        gateway = he.gateway
        assert gateway.server is not None
        port = gateway.server.port
        await gateway.server.stop()  # the gateway goes down
        start = he.clock.now()
        spec = JobSpec(
            JobKind.TRIP,
            FIRST,
            id="trip",
            deadline=start + timedelta(minutes=30),
            params={"reason": "arrears"},
        )
        he.runner.submit(spec)
        late = JobSpec(
            JobKind.GUARANTEE_ON, SECOND, id="late", deadline=start + timedelta(minutes=1)
        )
        he.runner.submit(late)
        await he.run_until(lambda: he.outcome("late") is not None)
        expired = he.outcome("late")
        assert isinstance(expired, CommandFailed) and expired.expired
        assert expired.error == "link-error" and "deadline" in expired.reason

        await he.run_until(lambda: he.clock.now() - start >= timedelta(minutes=5))
        await asyncio.wait_for(he.runner.wait_quiet(), 10)  # the try under way ends
        tries = he.runner.store.attempts("trip")
        assert len(tries) > spec.max_attempts  # more tries than attempts: none counted
        assert all(t.outcome == "failed" for t in tries)
        assert he.runner.store.require("trip").state is JobState.QUEUED
        gateway.server = TcpFrameServer(gateway.handle, "127.0.0.1", port)
        await gateway.server.start()  # back, five minutes later
        done = await he.finish("trip")
        assert isinstance(done, CommandSucceeded) and done.relay == "open"
        assert he.runner.store.require("trip").attempts == 1  # the one that reached the meter
        # the backoff grew (20, 40, 80, 120 s at most): failed tries at 0, 20, 60, 140,
        # 260 and 380 s; the seventh, at 500 s, reached the meter
        tries = he.runner.store.attempts("trip")
        offsets = [(t.started_at - start).total_seconds() for t in tries]
        assert offsets == [0, 20, 60, 140, 260, 380, 500]
