"""Scale-out (水平扩展): head-end front-end processes, each owning one shard of the meters.

A province's meters are split into ``K`` **shards** by a stable hash of the meter
address (:func:`shard_of`: CRC-32 of the 12 digits, modulo ``K``). A
**front-end** (前置机) process runs one shard ``i/K`` (:class:`Frontend`): it opens
channels only to the channels its meters use, runs only its meters' jobs, collects
only its meters' daily freezes, writes readings and job results to the shared
database (PostgreSQL; readings are idempotent by meter, DI and freeze date) and
publishes its jobs' events on MQTT (``feikong/events/{kind}``, as the single head-end;
per-meter events of the daily collection only with ``reading_events``).

Coordination goes through the MQTT broker (mosquitto), topics under ``ROOT``
(default ``feikong/headend``):

``ROOT/shard/{i}/jobs``
    Work for shard ``i``, JSON: ``{"type": "job", "id": …, "address": …}`` (a job
    queued in the database, to run now) or ``{"type": "collect", "day":
    "YYYY-MM-DD", "rounds": N, "request": …}`` (collect the shard's daily freezes,
    then ``N`` 补抄 rounds). Front-ends subscribe with the **shared subscription**
    ``$share/shard{i}/ROOT/shard/{i}/jobs``: each message reaches one subscriber of
    the group, whichever replicas of the shard are connected.
``ROOT/shard/{i}/status``
    What the shard's front-ends say: ``standby``, ``active``, ``collected`` (with the
    collection's figures), ``down`` (also the broker's will message when a
    front-end dies without saying goodbye).

A shard may run several replicas (on other machines): exactly one is **active**.
Leadership is a PostgreSQL session advisory lock (:class:`ShardLease`), held on a
connection of its own: when the active process dies its connection closes and the
lock is free at once. A standby tries to take the lock every ``standby_poll_s``
seconds and at once when it hears the active's ``down``; having it, it puts the
shard's jobs left ``running`` back in the queue (the dead process's attempts are
kept as ``interrupted``), loads the shard's queued jobs, resumes a collection left
unfinished (re-reading only the meters not collected yet), subscribes to the
shard's jobs, and announces ``active``. The database is the truth: a job id lost
on MQTT (no front-end subscribed at that moment) is found by the runner's poll of
the database within ``poll_s``.

:class:`ShardDispatcher` is the other side: it announces jobs to their shard
(:meth:`~ShardDispatcher.announce`, :meth:`~ShardDispatcher.submit`), asks every
shard to collect a day (:meth:`~ShardDispatcher.collect`) and waits for their
reports, and relays the ``job-queued`` events of other processes (the prepaid
platform's :class:`~headend.service.HeadendService`) to the right shard
(:meth:`~ShardDispatcher.relay`; dispatchers share ``$share/dispatchers/…``, so
several may run).

Limit: a serial RS-485 bus can be opened by one process only, so all meters of a
serial channel must be in one shard; hashing by address does not ensure that —
put serial buses behind TCP gateways, or run them from one front-end (``K = 1``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import resource
import threading
import time
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from datetime import time as time_of_day
from typing import Any, Final, Self

from sqlalchemy import Table, select, text
from sqlalchemy.engine import Connection, Engine

from protocol.clock import Clock, RealClock

from . import models
from .channels import ChannelPool
from .collection import CollectionReport, CollectionState, CollectionStatus, collect_day
from .control import ControlSettings, KeyRing, control_handlers
from .errors import HeadendError
from .events import EventBus, EventKind, JobQueued, MqttEventPublisher, MqttSettings
from .jobs import JobRecord, JobRunner, JobSpec, JobStore, RetryPolicy
from .models import JobKind
from .service import read_handler

__all__ = [
    "ROOT",
    "Frontend",
    "FrontendSettings",
    "Shard",
    "ShardDispatcher",
    "ShardError",
    "ShardLease",
    "ShardLeaseLostError",
    "ShardMessageError",
    "ShardTopics",
    "shard_meters",
    "shard_of",
]

log = logging.getLogger(__name__)

ROOT: Final = "feikong/headend"
"""Default root of the shard topics."""
_LOCK_CLASS: Final = 0x66_6B_68_65  # "fkhe": the advisory-lock namespace of shards
_MAX_SHARDS: Final = 4096


class ShardError(HeadendError):
    """A shard cannot be used as given (e.g. ``--shard 3/2``)."""


class ShardMessageError(ShardError):
    """A message on a shard topic is not valid JSON of a known type."""


class ShardLeaseLostError(ShardError):
    """The active front-end lost its database connection, and with it the shard's lock."""


def shard_of(address: str, count: int) -> int:
    """The shard (0 … ``count``-1) of a meter: CRC-32 of its address modulo ``count``.

    Stable across processes, machines and Python versions (unlike ``hash()``).
    """
    return zlib.crc32(address.encode("ascii")) % count


@dataclass(frozen=True, slots=True)
class Shard:
    """Shard ``index`` of ``count`` (written ``i/K``)."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if not 1 <= self.count <= _MAX_SHARDS or not 0 <= self.index < self.count:
            raise ShardError(
                f"shard {self.index}/{self.count} does not exist: give i/K with "
                f"0 <= i < K <= {_MAX_SHARDS} (e.g. 0/2 and 1/2 for two front-ends)"
            )

    @classmethod
    def parse(cls, value: str) -> Shard:
        """``"i/K"`` → :class:`Shard`; :class:`ShardError` if malformed."""
        index, slash, count = value.strip().partition("/")
        if not slash or not index.isdigit() or not count.isdigit():
            raise ShardError(f"a shard is written i/K (e.g. 0/2), got {value!r}")
        return cls(int(index), int(count))

    def owns(self, address: str) -> bool:
        """True if meter ``address`` belongs to this shard."""
        return zlib.crc32(address.encode("ascii")) % self.count == self.index

    @property
    def status_name(self) -> str:
        """The key of this shard's entry in ``headend_runner_status``."""
        return f"shard-{self.index}-of-{self.count}"

    @property
    def lock_key(self) -> int:
        """The second key of the shard's advisory lock (signed 32 bits)."""
        return self.count * _MAX_SHARDS + self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


@dataclass(frozen=True, slots=True)
class ShardTopics:
    """The MQTT topics of the shards (see the module doc)."""

    root: str = ROOT

    def jobs(self, index: int) -> str:
        return f"{self.root}/shard/{index}/jobs"

    def shared_jobs(self, index: int) -> str:
        """The shared subscription of shard ``index``'s replicas."""
        return f"$share/shard{index}/{self.jobs(index)}"

    def status(self, index: int) -> str:
        return f"{self.root}/shard/{index}/status"

    def every_status(self) -> str:
        return f"{self.root}/shard/+/status"


def _message(payload: Any) -> dict[str, Any]:
    """A shard message as a dict; :class:`ShardMessageError` if it is not one."""
    try:
        data = json.loads(bytes(payload) if not isinstance(payload, str) else payload)
    except (TypeError, ValueError) as exc:
        raise ShardMessageError(f"a shard message must be JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        raise ShardMessageError('a shard message must be a JSON object with a "type"')
    return data


def _dumps(data: dict[str, Any]) -> str:
    return json.dumps(data, separators=(",", ":"), default=str)


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _client(settings: MqttSettings, role: str, will: Any = None) -> Any:
    import aiomqtt

    return aiomqtt.Client(
        settings.host,
        settings.port,
        username=settings.username,
        password=settings.password,
        identifier=f"feikong-{role}-{uuid.uuid4().hex[:12]}",
        will=will,
        keepalive=10,
        timeout=10,
        max_queued_outgoing_messages=100_000,
    )


# --------------------------------------------------------------------------- the archive


_METER: Final[Table] = models.Meter.__table__  # type: ignore[attr-defined]
_CHANNEL: Final[Table] = models.Channel.__table__  # type: ignore[attr-defined]
_STATUS: Final[Table] = CollectionStatus.__table__  # type: ignore[attr-defined]


def shard_meters(
    engine: Engine, shard: Shard, *, active_only: bool = False
) -> list[tuple[str, int]]:
    """(address, channel id) of the shard's meters, in address order.

    The archive is streamed and hashed here (the database knows no CRC-32): about
    two seconds per million archive rows on PostgreSQL (measured on 2 shared cores).
    """
    m = _METER.c
    query = select(m.address, m.channel_id).order_by(m.address)
    if active_only:
        query = query.where(m.active.is_(True))
    owns = shard.owns
    with engine.connect() as c:
        rows = c.execute(query.execution_options(yield_per=50_000))
        return [(a, ch) for a, ch in rows if owns(a)]


def _collected(engine: Engine, day: date) -> set[str]:
    s = _STATUS.c
    query = select(s.meter_address).where(s.day == day, s.status == CollectionState.COLLECTED.value)
    with engine.connect() as c:
        return set(c.execute(query.execution_options(yield_per=50_000)).scalars())


def _shard_pool(engine: Engine, meters: list[tuple[str, int]], **kw: Any) -> ChannelPool:
    """A channel pool with the channels of ``meters`` and those meters only."""
    pool = ChannelPool(**kw)
    wanted = {channel_id for _, channel_id in meters}
    with engine.connect() as c:
        for row in c.execute(select(_CHANNEL).where(_CHANNEL.c.id.in_(wanted))).mappings():
            pool.add_channel(models.Channel(**row))
    for address, channel_id in meters:
        pool.assign(address, channel_id)
    return pool


# --------------------------------------------------------------------------- leadership


class ShardLease:
    """Leadership of a shard: a PostgreSQL session advisory lock on its own connection.

    :meth:`try_acquire` takes it if free; :meth:`check` raises
    :class:`ShardLeaseLostError` when the connection (and so the lock) is gone;
    :meth:`release` gives it up. On another database (SQLite) there is no lock:
    every front-end of a shard is active, so run exactly one per shard there.
    """

    def __init__(self, engine: Engine, shard: Shard) -> None:
        self.engine = engine
        self.shard = shard
        self.locking = engine.dialect.name == "postgresql"
        self._connection: Connection | None = None
        self._lock = threading.Lock()  # check() and release() may run in two threads
        self.held = False

    def _statement(self, function: str, c: Connection) -> bool:
        query = text(f"SELECT {function}(:cls, :key)")
        value = c.execute(query, {"cls": _LOCK_CLASS, "key": self.shard.lock_key}).scalar()
        c.commit()
        return bool(value)

    def try_acquire(self) -> bool:
        """Take the shard's lock if nobody holds it; True if held now."""
        with self._lock:
            return self._try_acquire()

    def _try_acquire(self) -> bool:
        if self.held:
            return True
        if not self.locking:
            log.warning(
                "shard %s: %s has no advisory locks; this front-end is active without a "
                "lease (run one front-end per shard, or use PostgreSQL for standbys)",
                self.shard,
                self.engine.dialect.name,
            )
            self.held = True
            return True
        if self._connection is None:
            self._connection = self.engine.connect()
        try:
            self.held = self._statement("pg_try_advisory_lock", self._connection)
        except Exception:
            self._drop()
            raise
        return self.held

    def check(self) -> None:
        """Raise :class:`ShardLeaseLostError` if the lock's connection is gone."""
        with self._lock:
            self._check()

    def _check(self) -> None:
        if not self.held or not self.locking:
            return
        assert self._connection is not None
        try:
            self._connection.execute(text("SELECT 1")).scalar()
            self._connection.commit()
        except Exception as exc:
            self.held = False
            self._drop()
            raise ShardLeaseLostError(
                f"shard {self.shard}: the connection holding the shard's lock failed ({exc}); "
                "another replica may have taken over, so this one stops (restart it to "
                "stand by again)"
            ) from exc

    def release(self) -> None:
        """Give the lock back (a standby takes over) and close its connection."""
        with self._lock:
            self._release()

    def _release(self) -> None:
        if self.held and self.locking and self._connection is not None:
            with contextlib.suppress(Exception):
                self._statement("pg_advisory_unlock", self._connection)
        self.held = False
        self._drop()

    def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                connection.invalidate()  # never back into the pool: the lock dies with it
            with contextlib.suppress(Exception):
                connection.close()


# --------------------------------------------------------------------------- the front-end


@dataclass(frozen=True, slots=True)
class FrontendSettings:
    """How a front-end runs (every default in one place)."""

    timeout_s: float = 2.0
    """Response timeout of every channel (real seconds)."""
    pipeline: int | None = None
    """Requests per TCP connection (``None``: the channel's whole concurrency)."""
    poll_s: float = 1.0
    """How often the database is checked for the shard's queued jobs (clock seconds)."""
    standby_poll_s: float = 1.0
    """How often a standby tries to take the shard's lock (clock seconds)."""
    lease_check_s: float = 2.0
    """How often the active front-end checks the connection holding the lock."""
    collect_at: time_of_day | None = None
    """Daily collection time of the shard (head-end clock); ``None``: only on request."""
    recollect_rounds: int = 3
    recollect_interval_s: float = 3600.0
    max_meters: int = 64
    reading_events: bool = False
    """Publish a ``reading-collected`` / ``reading-missing`` event per meter of the daily
    collection. Off by default: the readings are in the database, and the shard's
    ``collected`` status sums them up; at a province's scale one MQTT message per meter
    and day is load without a consumer (job outcomes are always published)."""
    control: ControlSettings = field(default_factory=ControlSettings)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    topics: ShardTopics = field(default_factory=ShardTopics)


@dataclass(frozen=True, slots=True)
class _CollectRequest:
    day: date
    rounds: int
    request: str
    resume: bool = False


class Frontend:
    """One front-end process of shard ``shard`` (see the module doc).

    ``await run()`` stands by until the shard's lock is free, then serves until
    cancelled (or raises :class:`ShardLeaseLostError`). ``state`` is ``standby``,
    ``active`` or ``stopped``; ``active`` is set once it serves.
    """

    def __init__(
        self,
        engine: Engine,
        shard: Shard,
        mqtt: MqttSettings | str,
        *,
        clock: Clock | None = None,
        keys: KeyRing | None = None,
        settings: FrontendSettings | None = None,
        bus: EventBus | None = None,
        replica: str | None = None,
    ) -> None:
        self.engine = engine
        self.shard = shard
        self.mqtt = MqttSettings.from_url(mqtt) if isinstance(mqtt, str) else mqtt
        self.clock: Clock = clock or RealClock()
        self.keys = keys or KeyRing()
        self.settings = settings or FrontendSettings()
        self.bus = bus or EventBus()
        self.replica = replica or f"{os.uname().nodename}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.topics = self.settings.topics
        self.lease = ShardLease(engine, shard)
        self.state = "standby"
        self.active = asyncio.Event()
        self.subscribed = asyncio.Event()
        """Set while the shard's jobs subscription is in place."""
        self.pool: ChannelPool | None = None
        self.runner: JobRunner | None = None
        self.publisher: MqttEventPublisher | None = None
        self.meters: list[tuple[str, int]] = []
        self.collections: list[dict[str, Any]] = []
        self.rejected = 0
        self.on_collected: Callable[[dict[str, Any]], None] | None = None
        """Called with the figures of each collection (as in the ``collected`` status)."""
        self._client: Any = None
        self._requests: asyncio.Queue[_CollectRequest] = asyncio.Queue()
        self._lease_poke = asyncio.Event()

    # -- MQTT -----------------------------------------------------------------------------

    def _status(self, kind: str, **extra: Any) -> dict[str, Any]:
        return {
            "type": kind,
            "shard": self.shard.index,
            "count": self.shard.count,
            "replica": self.replica,
            "pid": os.getpid(),
            "at": self.clock.now().isoformat(),
            **extra,
        }

    async def _say(self, kind: str, **extra: Any) -> None:
        client = self._client
        if client is None:
            return
        import aiomqtt

        try:
            await client.publish(
                self.topics.status(self.shard.index), _dumps(self._status(kind, **extra)), qos=1
            )
        except aiomqtt.MqttError as exc:
            log.warning("shard %s: cannot publish %s status: %s", self.shard, kind, exc)

    async def _mqtt(self) -> None:
        """The shard's MQTT session: status, the will, and (when active) the jobs."""
        import aiomqtt

        backoff = 0.5
        will = aiomqtt.Will(
            self.topics.status(self.shard.index), _dumps(self._status("down", will=True)), qos=1
        )
        while True:
            try:
                async with _client(self.mqtt, f"shard{self.shard.index}", will) as client:
                    backoff = 0.5
                    await client.subscribe(self.topics.status(self.shard.index), qos=1)
                    self._client = client
                    await self._say(self.state)
                    subscriber = asyncio.create_task(self._subscribe_when_active(client))
                    try:
                        async for message in client.messages:
                            await self._on_message(str(message.topic), message.payload)
                    finally:
                        subscriber.cancel()
                        with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                            await subscriber
                        self._client = None
                        self.subscribed.clear()
            except aiomqtt.MqttError as exc:
                log.warning(
                    "shard %s: MQTT %s:%d: %s; reconnecting in %.1f s",
                    self.shard,
                    self.mqtt.host,
                    self.mqtt.port,
                    exc,
                    backoff,
                )
                await self.clock.sleep(backoff)
                backoff = min(backoff * 2, 30.0)

    async def _subscribe_when_active(self, client: Any) -> None:
        await self.active.wait()
        await client.subscribe(self.topics.shared_jobs(self.shard.index), qos=1)
        self.subscribed.set()
        await self._say("active", meters=len(self.meters))

    async def _on_message(self, topic: str, payload: Any) -> None:
        try:
            data = _message(payload)
        except ShardMessageError as exc:
            self.rejected += 1
            log.warning("shard %s: ignored a message on %s: %s", self.shard, topic, exc)
            return
        kind = data["type"]
        if topic == self.topics.status(self.shard.index):
            if kind == "down" and data.get("replica") != self.replica:
                self._lease_poke.set()  # the active one is gone: try to take over now
            return
        try:
            if kind == "job":
                self._on_job(str(data["id"]), str(data.get("address", "")))
            elif kind == "collect":
                day = date.fromisoformat(str(data["day"]))
                rounds = int(data.get("rounds", self.settings.recollect_rounds))
                request = str(data.get("request") or uuid.uuid4().hex)
                self._requests.put_nowait(_CollectRequest(day, max(0, rounds), request))
            else:
                raise ShardMessageError(f"unknown shard message type {kind!r}")
        except (KeyError, ValueError, TypeError, ShardMessageError) as exc:
            self.rejected += 1
            log.warning("shard %s: ignored a %s message: %s", self.shard, kind, exc)

    def _on_job(self, job_id: str, address: str) -> None:
        if address and not self.shard.owns(address):
            self.rejected += 1
            owner = shard_of(address, self.shard.count)
            log.warning(
                "shard %s: job %s of meter %s belongs to shard %d/%d; the dispatcher must "
                "use the front-ends' shard count",
                self.shard,
                job_id,
                address,
                owner,
                self.shard.count,
            )
            return
        runner = self.runner
        if runner is not None and self.state == "active":
            runner.take([job_id])

    # -- life -----------------------------------------------------------------------------

    async def run(self) -> None:
        """Stand by, take the shard over, serve until cancelled (see the class doc)."""
        mqtt = asyncio.create_task(self._mqtt(), name=f"shard{self.shard.index}-mqtt")
        try:
            await self._acquire()
            await self._serve(mqtt)
        finally:
            mqtt.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await mqtt
            await asyncio.to_thread(self.lease.release)
            self.state = "stopped"

    async def _acquire(self) -> None:
        while not await asyncio.to_thread(self.lease.try_acquire):
            self._lease_poke.clear()
            waits = [
                asyncio.ensure_future(self._lease_poke.wait()),
                asyncio.ensure_future(self.clock.sleep(self.settings.standby_poll_s)),
            ]
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waits:
                    w.cancel()

    async def _serve(self, mqtt: asyncio.Task[None]) -> None:
        s = self.settings
        self.meters = await asyncio.to_thread(shard_meters, self.engine, self.shard)
        self.pool = _shard_pool(
            self.engine, self.meters, timeout=s.timeout_s, clock=self.clock, pipeline=s.pipeline
        )
        handlers = control_handlers(self.keys, s.control)
        handlers[JobKind.READ] = read_handler(self.engine)
        self.runner = JobRunner(
            self.engine,
            self.pool,
            handlers,
            bus=self.bus,
            clock=self.clock,
            retry=s.retry,
            max_meters=s.max_meters,
            poll_s=s.poll_s,
            accept=self.shard.owns,
        )
        self.publisher = MqttEventPublisher(self.bus, self.mqtt, clock=self.clock)
        self.publisher.start()
        tasks: list[asyncio.Task[Any]] = []
        try:
            await self.runner.start()  # recovers the shard's jobs a dead replica left running
            self._resume_collection()
            self.state = "active"
            self.active.set()
            log.info(
                "shard %s active (replica %s): %d meter(s), %d job(s) queued",
                self.shard,
                self.replica,
                len(self.meters),
                self.runner.queued,
            )
            tasks.append(asyncio.create_task(self._collector(), name="shard-collector"))
            if s.collect_at is not None:
                tasks.append(asyncio.create_task(self._daily(), name="shard-daily"))
            watchdog = asyncio.create_task(self._watch_lease(), name="shard-lease")
            tasks.append(watchdog)
            done, _ = await asyncio.wait({watchdog, mqtt}, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()
        finally:
            self.active.clear()
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, ShardLeaseLostError):
                    await task
            await self.runner.stop()
            with contextlib.suppress(TimeoutError):
                await self.publisher.drain(timeout=2.0)
            await self.publisher.stop()
            await self.pool.aclose()
            # give the shard away, then tell the standbys: one of them takes it at once
            await asyncio.to_thread(self.lease.release)
            await self._say("down")

    async def _watch_lease(self) -> None:
        while True:
            await self.clock.sleep(self.settings.lease_check_s)
            await asyncio.to_thread(self.lease.check)

    # -- collection -----------------------------------------------------------------------

    def _resume_collection(self) -> None:
        """A collection the previous active replica left unfinished goes on (missing only)."""
        assert self.runner is not None
        saved = self.runner.store.load_status(self.shard.status_name)
        if saved is None:
            return
        data = saved[0]
        if data.get("state") == "collecting":
            request = _CollectRequest(
                date.fromisoformat(str(data["day"])),
                int(data.get("rounds", 0)),
                str(data.get("request", "")),
                resume=True,
            )
            log.warning("shard %s: resuming the collection of %s", self.shard, request.day)
            self._requests.put_nowait(request)

    async def _collector(self) -> None:
        while True:
            request = await self._requests.get()
            await self.collect(
                request.day, rounds=request.rounds, request=request.request, resume=request.resume
            )

    async def _daily(self) -> None:
        at = self.settings.collect_at
        assert at is not None
        while True:
            now = self.clock.now()
            target = datetime.combine(now.date(), at)
            if target <= now:
                target += timedelta(days=1)
            await self.clock.sleep((target - now).total_seconds())
            self._requests.put_nowait(
                _CollectRequest(
                    self.clock.now().date(), self.settings.recollect_rounds, uuid.uuid4().hex
                )
            )

    async def collect(
        self, day: date, *, rounds: int = 0, request: str = "", resume: bool = False
    ) -> dict[str, Any]:
        """Collect the shard's daily freezes of ``day``, then up to ``rounds`` 补抄 rounds.

        Publishes a ``collected`` status with the figures (meters, reads, seconds,
        CPU seconds of this process) and returns it.
        """
        assert self.pool is not None and self.runner is not None
        store = self.runner.store
        state = {"state": "collecting", "day": day.isoformat(), "rounds": rounds}
        state.update(request=request, replica=self.replica)
        await asyncio.to_thread(store.save_status, self.shard.status_name, state, self.clock.now())
        cpu0, wall0 = _cpu_s(), time.perf_counter()
        bus = self.bus if self.settings.reading_events else None
        report: CollectionReport | None = None
        error: str | None = None
        meters = [a for a, _ in self.meters]
        try:
            for number in range(rounds + 1):
                if number > 0 or resume:
                    if number > 0:
                        await self.clock.sleep(self.settings.recollect_interval_s)
                    done = await asyncio.to_thread(_collected, self.engine, day)
                    missing = [a for a in meters if a not in done]
                    if not missing:
                        break
                    wanted = missing
                else:
                    wanted = meters
                this = await collect_day(self.engine, self.pool, day, bus=bus, meters=wanted)
                report = this if report is None else _merge(report, this)
                if this.missing == 0:
                    break
        except HeadendError as exc:
            error = str(exc)
            log.error("shard %s: collection of %s failed: %s", self.shard, day, exc)
        figures: dict[str, Any] = {
            "day": day.isoformat(),
            "request": request,
            "meters": len(meters),
            "collected": report.collected if report else 0,
            "missing": report.missing if report else 0,
            "reads": report.requests if report else 0,
            "readings_written": report.readings_written if report else 0,
            "reasons": dict(report.reasons) if report else {},
            "elapsed_s": round(time.perf_counter() - wall0, 4),
            "cpu_s": round(_cpu_s() - cpu0, 4),
            "resumed": resume,
            "error": error,
        }
        self.collections.append(figures)
        if self.on_collected is not None:
            self.on_collected(figures)
        done_state = {"state": "done", **figures}
        await asyncio.to_thread(
            store.save_status, self.shard.status_name, done_state, self.clock.now()
        )
        await self._say("collected", **figures)
        return figures


def _merge(a: CollectionReport, b: CollectionReport) -> CollectionReport:
    """``b`` re-read ``a``'s missing meters: add up what they did."""
    return CollectionReport(
        day=a.day,
        meters=a.meters,
        collected=a.collected + b.collected,
        missing=b.missing,
        readings_written=a.readings_written + b.readings_written,
        requests=a.requests + b.requests,
        elapsed_s=a.elapsed_s + b.elapsed_s,
        reasons=dict(b.reasons),
        unknown_meters=a.unknown_meters,
    )


# --------------------------------------------------------------------------- the dispatcher


class ShardDispatcher:
    """Routes work to the shards' front-ends over MQTT (see the module doc).

    ``async with ShardDispatcher(mqtt, count, engine=…) as d`` connects; it hears the
    shards' status messages from then on (:attr:`statuses`, :meth:`wait_collected`).
    ``engine`` is needed by :meth:`submit` and :meth:`announce_queued`.
    """

    def __init__(
        self,
        mqtt: MqttSettings | str,
        count: int,
        *,
        engine: Engine | None = None,
        topics: ShardTopics | None = None,
        clock: Clock | None = None,
    ) -> None:
        Shard(0, count)  # validates count
        self.mqtt = MqttSettings.from_url(mqtt) if isinstance(mqtt, str) else mqtt
        self.count = count
        self.engine = engine
        self.topics = topics or ShardTopics()
        self.clock: Clock = clock or RealClock()
        self.statuses: list[dict[str, Any]] = []
        self.announced = 0
        self.relayed = 0
        self._client: Any = None
        self._stack: contextlib.AsyncExitStack | None = None
        self._reader: asyncio.Task[None] | None = None
        self._heard = asyncio.Condition()
        self.relaying = asyncio.Event()
        """Set once :meth:`relay` is subscribed to the ``job-queued`` events."""

    async def __aenter__(self) -> Self:
        stack = contextlib.AsyncExitStack()
        self._client = await stack.enter_async_context(_client(self.mqtt, "dispatcher"))
        self._stack = stack
        await self._client.subscribe(self.topics.every_status(), qos=1)
        self._reader = asyncio.create_task(self._read(), name="dispatcher-reader")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        if self._stack is not None:
            await self._stack.aclose()
        self._client = None

    async def _read(self) -> None:
        import aiomqtt

        events_topic = f"{self.mqtt.prefix}/{EventKind.JOB_QUEUED.value}"
        async for message in self._client.messages:
            topic = str(message.topic)
            try:
                if topic == events_topic:
                    data = _message_event(message.payload)
                    await self.announce(data.job_id, data.address)
                    self.relayed += 1
                    continue
                status = _message(message.payload)
            except (HeadendError, aiomqtt.MqttError) as exc:
                log.warning("dispatcher: ignored a message on %s: %s", topic, exc)
                continue
            async with self._heard:
                self.statuses.append(status)
                self._heard.notify_all()

    def shard_of(self, address: str) -> int:
        return shard_of(address, self.count)

    async def announce(self, job_id: str, address: str) -> int:
        """Tell the meter's shard that job ``job_id`` is queued; returns the shard index."""
        index = shard_of(address, self.count)
        payload = _dumps({"type": "job", "id": job_id, "address": address})
        await self._client.publish(self.topics.jobs(index), payload, qos=1)
        self.announced += 1
        return index

    async def submit(self, spec: JobSpec) -> JobRecord:
        """Queue a job in the database and announce it to its shard."""
        if self.engine is None:
            raise ShardError("the dispatcher needs the database (engine) to submit jobs")
        store = JobStore(self.engine)
        job, _ = await asyncio.to_thread(store.submit, spec, self.clock.now())
        await self.announce(job.id, job.address)
        return job

    async def announce_queued(self) -> int:
        """Announce every queued job of the database to its shard (e.g. after an outage)."""
        if self.engine is None:
            raise ShardError("the dispatcher needs the database (engine) to find queued jobs")
        jobs = await asyncio.to_thread(JobStore(self.engine).queued)
        for job in jobs:
            await self.announce(job.id, job.address)
        return len(jobs)

    async def collect(self, day: date, *, rounds: int = 0) -> str:
        """Ask every shard to collect ``day`` (then ``rounds`` 补抄 rounds); the request id."""
        request = uuid.uuid4().hex
        payload = _dumps(
            {"type": "collect", "day": day.isoformat(), "rounds": rounds, "request": request}
        )
        for index in range(self.count):
            await self._client.publish(self.topics.jobs(index), payload, qos=1)
        return request

    async def wait_for(self, kind: str, shards: int | None = None, **match: Any) -> list[Any]:
        """Wait until ``shards`` (default: all) distinct shards said ``kind`` (with the
        ``match`` fields); returns one message per shard, by shard."""
        wanted = self.count if shards is None else shards
        async with self._heard:
            while True:
                found: dict[int, dict[str, Any]] = {}
                for status in self.statuses:
                    if status.get("type") == kind and all(
                        status.get(k) == v for k, v in match.items()
                    ):
                        found[int(status.get("shard", -1))] = status
                if len(found) >= wanted:
                    return [found[i] for i in sorted(found)]
                await self._heard.wait()

    async def wait_collected(self, request: str, timeout: float | None = None) -> list[Any]:
        """The ``collected`` report of every shard for collection ``request``."""
        return await asyncio.wait_for(self.wait_for("collected", request=request), timeout)

    async def relay(self) -> None:
        """Forward the ``job-queued`` events other processes publish to the jobs' shards,
        until cancelled (dispatchers share the subscription: run several if you like)."""
        topic = f"$share/dispatchers/{self.mqtt.prefix}/{EventKind.JOB_QUEUED.value}"
        await self._client.subscribe(topic, qos=1)
        self.relaying.set()
        await asyncio.Event().wait()


def _message_event(payload: Any) -> JobQueued:
    from .events import event_from_json

    event = event_from_json(bytes(payload) if not isinstance(payload, str) else payload)
    if not isinstance(event, JobQueued):
        raise ShardMessageError(f"expected a job-queued event, got {event.kind.value}")
    return event
