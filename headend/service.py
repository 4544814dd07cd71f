"""The head-end's service interface (主站服务接口) and the running head-end.

:class:`HeadendService` is what the prepaid platform uses: it never sees
DL/T 645. Each call queues a job and returns its id at once; the outcome arrives
on the event bus (in-process, or over MQTT in another process):

=============================  ===========================================================
call                           events
=============================  ===========================================================
``read(address, what)``        :class:`~headend.events.ReadingCollected`, then
                               :class:`~headend.events.CommandSucceeded`; or
                               :class:`~headend.events.ReadingMissing` and
                               :class:`~headend.events.CommandFailed`
``trip(address, reason)``      ``CommandSucceeded`` (``relay="open"``, ``energy_ckwh`` =
                               the reading at the trip) or ``CommandFailed``
``permit_close(address)``      ``CommandSucceeded`` / ``CommandFailed``
``close(address)``             ``CommandSucceeded`` (``relay="closed"``) / ``CommandFailed``
``guarantee(address, on)``     ``CommandSucceeded`` (``guarantee``) / ``CommandFailed``
=============================  ===========================================================

Every job ends with exactly one ``CommandSucceeded`` or ``CommandFailed``
carrying its ``job_id``. A caller-supplied ``job_id`` is an idempotency key
(e.g. the prepaid order that caused a trip): asking again returns the same job.

:class:`HeadEnd` is the head-end as ``feikong headend run`` runs it: the channel
pool from the archive, the job runner with the control and read handlers, the
event bus (copied to MQTT when configured), the daily collection at a set time
with re-collection (补抄) rounds, and a status snapshot in the database for
``feikong headend status``.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import dataclasses
import enum
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Final

from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from protocol.clock import Clock, RealClock
from protocol.codes import StatusWord3, names
from protocol.di import format_di

from .channels import ChannelPool
from .control import ControlSettings, KeyRing, control_handlers
from .errors import HeadendError, JobError
from .events import CommandFailed, CommandSucceeded, EventBus, MqttEventPublisher, ReadingCollected
from .jobs import (
    Handler,
    JobContext,
    JobOutcome,
    JobRecord,
    JobRunner,
    JobSpec,
    JobStore,
    RetryPolicy,
)
from .models import JobKind
from .readings import NewReading, store_readings

__all__ = [
    "CONTROL_PRIORITY",
    "HeadEnd",
    "HeadEndSettings",
    "HeadendService",
    "Quantity",
    "QueuedHeadendService",
    "read_handler",
]

log = logging.getLogger(__name__)

CONTROL_PRIORITY: Final = 10
"""Control commands go before reads (priority 0) in a meter's queue."""
STATUS_NAME: Final = "runner"


class Quantity(enum.StrEnum):
    """What :meth:`HeadendService.read` can read (召测), named without DL/T 645."""

    ENERGY = "energy"
    """Forward active energy, total (正向有功总电能), kWh — stored as today's reading."""
    RELAY = "relay"
    """The relay state, ``open`` / ``closed`` (status word 3 bit4)."""
    VOLTAGE = "voltage"
    """Phase A voltage, V."""
    CURRENT = "current"
    """Phase A current, A."""
    POWER = "power"
    """Total active power, kW."""
    REMAINING = "remaining"
    """The remaining amount (剩余金额) of a local fee-control meter, yuan."""


_DI: Final[Mapping[Quantity, int]] = {
    Quantity.ENERGY: 0x00010000,
    Quantity.RELAY: 0x04000503,
    Quantity.VOLTAGE: 0x02010100,
    Quantity.CURRENT: 0x02020100,
    Quantity.POWER: 0x02030000,
    Quantity.REMAINING: 0x00900200,
}
_UNIT: Final[Mapping[Quantity, str | None]] = {
    Quantity.ENERGY: "kWh",
    Quantity.RELAY: None,
    Quantity.VOLTAGE: "V",
    Quantity.CURRENT: "A",
    Quantity.POWER: "kW",
    Quantity.REMAINING: "yuan",
}


def _quantity(what: Quantity | str) -> Quantity:
    try:
        return Quantity(what)
    except ValueError:
        known = ", ".join(q.value for q in Quantity)
        raise JobError(f"cannot read {what!r}; readable quantities: {known}") from None


def read_handler(engine: Engine) -> Handler:
    """The handler of read jobs: one quantity, stored (numbers) and published."""

    async def handle(ctx: JobContext) -> JobOutcome:
        what = _quantity(str(ctx.job.params.get("what", "")))
        di = _DI[what]
        address = ctx.meter.address
        value = (await ctx.client.read(address, di)).value
        now = ctx.clock.now()
        result: dict[str, Any] = {
            "what": what.value,
            "di": format_di(di),
            "read_at": now.isoformat(),
        }
        energy: int | None = None
        if what is Quantity.RELAY:
            word = StatusWord3(int(value))
            text = "open" if word & StatusWord3.RELAY_OPEN else "closed"
            result.update(
                value=text,
                relay=text,
                guarantee=bool(word & StatusWord3.GUARANTEED),
                status_word3=f"{int(word):04X}",
                status_bits=names(word),
            )
        else:
            number = Decimal(value)
            text = str(number)
            if what is Quantity.ENERGY:
                energy = int(number * 100)
            result.update(value=text, unit=_UNIT[what], energy_ckwh=energy)
            # store_readings is a short bulk write; the job runner's loop tolerates it
            store_readings(
                engine, [NewReading(address, di, now.date(), number, energy, now)], replace=True
            )
        event = ReadingCollected(
            address=address,
            at=now,
            di=format_di(di),
            value=text,
            quantity=what.value,
            unit=_UNIT[what],
            energy_ckwh=energy,
            job_id=ctx.job.id,
        )
        return JobOutcome(result, (event,))

    return handle


# --------------------------------------------------------------------------- the service


@dataclass(frozen=True, slots=True)
class _Defaults:
    control_deadline_s: float = 1800.0
    read_deadline_s: float = 600.0
    control_attempts: int = 3
    read_attempts: int = 3


class _ServiceCalls(abc.ABC):
    """The calls of the service interface; a subclass says where a job goes
    (:meth:`_store_job`) and what time it is (:attr:`clock`)."""

    clock: Clock
    defaults: _Defaults

    @abc.abstractmethod
    def _store_job(self, spec: JobSpec) -> JobRecord:
        """Put the job where the head-end runs it; the stored record."""

    def _trip_deadline(self, now: datetime, deadline: datetime) -> datetime:
        return deadline

    def _submit(
        self,
        kind: JobKind,
        address: str,
        params: dict[str, Any],
        job_id: str | None,
        deadline: datetime | None,
        priority: int,
    ) -> str:
        is_read = kind is JobKind.READ
        if deadline is None:
            now = self.clock.now()
            seconds = self.defaults.read_deadline_s if is_read else self.defaults.control_deadline_s
            deadline = now + timedelta(seconds=seconds)
            if kind is JobKind.TRIP:
                deadline = self._trip_deadline(now, deadline)
        attempts = self.defaults.read_attempts if is_read else self.defaults.control_attempts
        spec = JobSpec(
            kind=kind,
            address=address,
            id=job_id,
            priority=priority,
            deadline=deadline,
            max_attempts=attempts,
            params=params,
        )
        return self._store_job(spec).id

    def read(
        self,
        address: str,
        what: Quantity | str = Quantity.ENERGY,
        *,
        job_id: str | None = None,
        deadline: datetime | None = None,
        priority: int = 0,
    ) -> str:
        """Read ``what`` (a :class:`Quantity`) from a meter now (实时召测)."""
        quantity = _quantity(what)
        params = {"what": quantity.value, "di": format_di(_DI[quantity])}
        return self._submit(JobKind.READ, address, params, job_id, deadline, priority)

    def trip(
        self,
        address: str,
        reason: str,
        *,
        job_id: str | None = None,
        deadline: datetime | None = None,
        priority: int = CONTROL_PRIORITY,
    ) -> str:
        """Trip (拉闸) the meter's relay, e.g. for arrears; the reason travels with the events."""
        if not reason.strip():
            raise JobError("a trip needs a reason (e.g. 'arrears'); it is kept in the command log")
        return self._submit(
            JobKind.TRIP, address, {"reason": reason.strip()}, job_id, deadline, priority
        )

    def permit_close(
        self,
        address: str,
        *,
        reason: str | None = None,
        job_id: str | None = None,
        deadline: datetime | None = None,
        priority: int = CONTROL_PRIORITY,
    ) -> str:
        """Permit the customer to close (合闸允许), e.g. after a payment."""
        params = {"reason": reason} if reason else {}
        return self._submit(JobKind.PERMIT_CLOSE, address, params, job_id, deadline, priority)

    def close(
        self,
        address: str,
        *,
        reason: str | None = None,
        job_id: str | None = None,
        deadline: datetime | None = None,
        priority: int = CONTROL_PRIORITY,
    ) -> str:
        """Close the relay directly (直接合闸; only remotely closable breakers)."""
        params = {"reason": reason} if reason else {}
        return self._submit(JobKind.CLOSE, address, params, job_id, deadline, priority)

    def guarantee(
        self,
        address: str,
        on: bool,
        *,
        reason: str | None = None,
        job_id: str | None = None,
        deadline: datetime | None = None,
        priority: int = CONTROL_PRIORITY,
    ) -> str:
        """Put the meter under power guarantee (保电: it must not trip) or release it."""
        kind = JobKind.GUARANTEE_ON if on else JobKind.GUARANTEE_OFF
        params = {"reason": reason} if reason else {}
        return self._submit(kind, address, params, job_id, deadline, priority)


class HeadendService(_ServiceCalls):
    """The narrow interface the prepaid platform uses (see the module doc).

    Every call returns the job id at once; the job runs on ``runner``. Give
    ``job_id`` to make a call idempotent; ``deadline`` (clock time) overrides the
    default (30 min for commands, 10 min for reads).
    """

    def __init__(
        self,
        runner: JobRunner,
        *,
        control_deadline_s: float = 1800.0,
        read_deadline_s: float = 600.0,
        control_attempts: int = 3,
        read_attempts: int = 3,
    ) -> None:
        self.runner = runner
        self.clock = runner.clock
        self.defaults = _Defaults(
            control_deadline_s, read_deadline_s, control_attempts, read_attempts
        )

    @property
    def bus(self) -> EventBus:
        """Where the outcomes arrive."""
        return self.runner.bus

    def _store_job(self, spec: JobSpec) -> JobRecord:
        job, _ = self.runner.submit(spec)
        return job

    def job(self, job_id: str) -> JobRecord:
        """The job as stored (state, attempts, result); JobNotFoundError if unknown."""
        return self.runner.store.require(job_id)

    async def wait(self, job_id: str, *, timeout: float | None = None) -> JobRecord:
        """Wait (real seconds) until the job has ended; returns it as stored."""
        return await wait_for_job(self.runner.store, self.bus, job_id, timeout=timeout)


class QueuedHeadendService(_ServiceCalls):
    """The same interface for a process without a head-end (排队到主站): each call
    writes the job to the head-end's job table, where a running ``feikong headend run``
    (or a shard of it) carries it out; outcomes are read back by id (:meth:`job`) or
    arrive as events from that process (over MQTT, or from the job table).

    ``trip_window_end(now)``: when the trips allowed now must be done by (e.g. the
    start of the next protected hours) — a trip the head-end could only carry out
    later expires instead of running at a forbidden time.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        clock: Clock | None = None,
        control_deadline_s: float = 1800.0,
        read_deadline_s: float = 600.0,
        control_attempts: int = 3,
        read_attempts: int = 3,
        trip_window_end: Callable[[datetime], datetime] | None = None,
    ) -> None:
        self.store = JobStore(engine)
        self.clock = clock or RealClock()
        self.defaults = _Defaults(
            control_deadline_s, read_deadline_s, control_attempts, read_attempts
        )
        self.trip_window_end = trip_window_end

    def _trip_deadline(self, now: datetime, deadline: datetime) -> datetime:
        if self.trip_window_end is None:
            return deadline
        return min(deadline, self.trip_window_end(now))

    def _store_job(self, spec: JobSpec) -> JobRecord:
        job, _ = self.store.submit(spec, self.clock.now())
        return job

    def job(self, job_id: str) -> JobRecord:
        """The job as stored (state, attempts, result); JobNotFoundError if unknown."""
        return self.store.require(job_id)


async def wait_for_job(
    store: JobStore,
    bus: EventBus,
    job_id: str,
    *,
    timeout: float | None = None,
    poll_s: float = 0.5,
) -> JobRecord:
    """Wait until job ``job_id`` ends: on the bus, or seen in the database (another
    process ran it). Raises TimeoutError after ``timeout`` real seconds."""
    loop = asyncio.get_running_loop()
    end = None if timeout is None else loop.time() + timeout
    with contextlib.closing(bus.subscribe((CommandSucceeded, CommandFailed))) as sub:
        while True:
            job = store.require(job_id)
            if job.done:
                return job
            wait = poll_s if end is None else min(poll_s, end - loop.time())
            if wait <= 0:
                raise TimeoutError(f"job {job_id} is still {job.state.value}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(sub.get(), wait)


# --------------------------------------------------------------------------- the head-end


@dataclass(frozen=True, slots=True)
class HeadEndSettings:
    """How ``feikong headend run`` runs (every default in one place)."""

    timeout_s: float = 2.0
    """Response timeout of every channel (real seconds)."""
    collect_at: time | None = None
    """Daily collection time (日冻结采集), head-end clock; ``None``: no daily collection."""
    recollect_rounds: int = 3
    """补抄 rounds after the daily collection while meters are missing."""
    recollect_interval_s: float = 3600.0
    status_every_s: float = 10.0
    """How often the status snapshot (channel health, queues) is written to the database."""
    poll_s: float | None = 1.0
    """How often the database is checked for jobs queued by other processes (``None``:
    never; only jobs submitted through this head-end's service run)."""
    max_meters: int = 64
    control: ControlSettings = field(default_factory=ControlSettings)
    retry: RetryPolicy = field(default_factory=RetryPolicy)


def _database_trouble(what: str, exc: SQLAlchemyError) -> str:
    """Log and word a database failure that stopped ``what``."""
    text = (
        f"{what} could not be stored: the database is locked or unreachable "
        f"({getattr(exc, 'orig', None) or exc}); the meters not stored are read again "
        "by the next 补抄 round"
    )
    log.error("%s", text)
    return text


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


class HeadEnd:
    """A running head-end (see the module doc); ``async with`` starts and stops it."""

    def __init__(
        self,
        engine: Engine,
        *,
        clock: Clock | None = None,
        keys: KeyRing | None = None,
        bus: EventBus | None = None,
        pool: ChannelPool | None = None,
        mqtt: str | None = None,
        settings: HeadEndSettings | None = None,
    ) -> None:
        self.engine = engine
        self.clock: Clock = clock or RealClock()
        self.keys = keys or KeyRing()
        self.bus = bus or EventBus()
        self.settings = settings or HeadEndSettings()
        self.pool = pool or ChannelPool.from_archive(
            engine, timeout=self.settings.timeout_s, clock=self.clock
        )
        handlers = control_handlers(self.keys, self.settings.control)
        handlers[JobKind.READ] = read_handler(engine)
        self.runner = JobRunner(
            engine,
            self.pool,
            handlers,
            bus=self.bus,
            clock=self.clock,
            retry=self.settings.retry,
            max_meters=self.settings.max_meters,
            poll_s=self.settings.poll_s,
            resolve=self._route,
        )
        self.service = HeadendService(self.runner)
        self.publisher = MqttEventPublisher(self.bus, mqtt, clock=self.clock) if mqtt else None
        self.started_at: datetime | None = None
        self.collections: list[dict[str, Any]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._collection_waiters: list[asyncio.Future[dict[str, Any]]] = []

    def _route(self, address: str) -> bool:
        """Teach the pool a meter (and its channel) added to the archive since it was built."""
        from .models import Channel, Meter

        with Session(self.engine) as session:
            meter = session.get(Meter, address)
            if meter is None:
                return False
            channel = session.get(Channel, meter.channel_id)
            if channel is None:
                return False
            if channel.name not in {h.name for h in self.pool.health()}:
                self.pool.add_channel(channel)
            self.pool.assign(address, meter.channel_id)
        log.info("meter %s added to the channel pool (channel %s)", address, channel.name)
        return True

    async def start(self) -> None:
        self.started_at = self.clock.now()
        if self.publisher is not None:
            self.publisher.start()
        await self.runner.start()
        self._tasks.append(asyncio.create_task(self._status_loop(), name="headend-status"))
        if self.settings.collect_at is not None:
            self._tasks.append(asyncio.create_task(self._daily(), name="headend-collection"))
        log.info("head-end running: %d meter(s) reachable", len(self.pool))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        await self.runner.stop()
        if self.publisher is not None:
            with contextlib.suppress(TimeoutError):
                await self.publisher.drain(timeout=2.0)  # the last outcomes reach the broker
            await self.publisher.stop()
        await self.pool.aclose()
        self.save_status(running=False)

    async def __aenter__(self) -> HeadEnd:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    # -- status ---------------------------------------------------------------------------

    def snapshot(self, *, running: bool = True) -> dict[str, Any]:
        """Channel health, queues and the last collections, JSON-ready."""
        health = [
            {k: _jsonable(v) for k, v in dataclasses.asdict(h).items()} for h in self.pool.health()
        ]
        publisher = self.publisher
        return {
            "running": running,
            "pid": os.getpid(),
            "started_at": _jsonable(self.started_at),
            "clock": self.clock.now().isoformat(),
            "channels": health,
            "queued": self.runner.queued,
            "meters_busy": self.runner.running,
            "events_published": self.bus.published,
            "events_dropped": self.bus.dropped,
            "mqtt": None
            if publisher is None
            else {
                "broker": f"{publisher.settings.host}:{publisher.settings.port}",
                "connected": publisher.connected.is_set(),
                "sent": publisher.sent,
                "last_error": publisher.last_error,
            },
            "collections": self.collections[-7:],
        }

    def save_status(self, *, running: bool = True) -> None:
        self._write_status(self.snapshot(running=running), self.clock.now())

    async def _save_status_aside(self) -> None:
        """Save the status from a worker thread: a locked database (the busy timeout is
        5 s) must not stop the event loop, and with it every channel, for a snapshot."""
        await asyncio.to_thread(self._write_status, self.snapshot(), self.clock.now())

    def _write_status(self, data: dict[str, Any], now: datetime) -> None:
        try:
            self.runner.store.save_status(STATUS_NAME, data, now)
        except SQLAlchemyError as exc:  # locked or unreachable: the next round retries
            log.warning(
                "cannot record the head-end status (%s); the next round tries again",
                getattr(exc, "orig", None) or exc,
            )
        except Exception:  # a bug must not stop the head-end: logged with its traceback
            log.exception("cannot record the head-end status")

    async def _status_loop(self) -> None:
        """Record the status every ``status_every_s``, and soon after each job ends."""
        # A flag, not a subscription: a queue of one would "drop" (and count, and warn
        # about) every job end after the first of a burst, as if events were lost.
        ended = asyncio.Event()
        off = self.bus.on(lambda _: ended.set(), (CommandSucceeded, CommandFailed))
        try:
            while True:
                await self._save_status_aside()
                period = asyncio.ensure_future(self.clock.sleep(self.settings.status_every_s))
                job_end = asyncio.ensure_future(ended.wait())
                try:
                    await asyncio.wait({period, job_end}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    period.cancel()
                    job_end.cancel()
                if not ended.is_set():
                    continue
                await self.clock.sleep(min(1.0, self.settings.status_every_s))
                ended.clear()
        finally:
            off()

    # -- daily collection -----------------------------------------------------------------

    def _next_collection(self, now: datetime) -> datetime:
        at = self.settings.collect_at
        assert at is not None
        target = datetime.combine(now.date(), at)
        return target if target > now else target + timedelta(days=1)

    async def _daily(self) -> None:
        from .collection import success_rates

        at = self.settings.collect_at
        assert at is not None
        now = self.clock.now()
        if datetime.combine(now.date(), at) <= now:
            # Started after today's collection time: catch up on what is not collected.
            rates = success_rates(self.engine, now.date())
            if rates and rates[0].pending + rates[0].missing > 0:
                await self.collect(now.date(), catch_up=True)
        while True:
            now = self.clock.now()
            await self.clock.sleep((self._next_collection(now) - now).total_seconds())
            await self.collect(self.clock.now().date())

    async def collect(self, day: date, *, catch_up: bool = False) -> None:
        """The daily collection of ``day``, then 补抄 rounds while meters are missing.

        A round that the database stops (SQLite locked by another connection beyond
        its busy timeout, PostgreSQL unreachable) is logged and recorded with the
        reason, and the 补抄 rounds still follow: they read again every meter whose
        reading was not stored, so nothing read is lost for the day.
        """
        from .collection import collect_day, recollect_missing

        s = self.settings
        entry: dict[str, Any] = {"day": day.isoformat()}
        again_needed = False
        try:
            if catch_up:
                report = await recollect_missing(self.engine, self.pool, day, bus=self.bus)
            else:
                report = await collect_day(self.engine, self.pool, day, bus=self.bus)
            entry["first"] = report.to_dict()
            log.info("collection of %s: %d/%d collected", day, report.collected, report.meters)
            again_needed = report.missing > 0
        except HeadendError as exc:
            log.error("collection of %s failed: %s", day, exc)
            entry["error"] = str(exc)
        except SQLAlchemyError as exc:
            entry["error"] = _database_trouble(f"the collection of {day}", exc)
            again_needed = True
        for number in range(1, s.recollect_rounds + 1) if again_needed else ():
            await self.clock.sleep(s.recollect_interval_s)
            try:
                again = await recollect_missing(self.engine, self.pool, day, bus=self.bus)
            except HeadendError as exc:
                log.error("补抄 of %s failed: %s", day, exc)
                entry["recollect_error"] = str(exc)
                break
            except SQLAlchemyError as exc:
                entry["recollect_error"] = _database_trouble(f"补抄 round {number} of {day}", exc)
                continue
            entry["recollect"] = {**again.to_dict(), "rounds": number}
            log.info("补抄 of %s: %d still missing", day, again.missing)
            if again.missing == 0:
                break
        self.collections.append(entry)
        await self._save_status_aside()
        waiters, self._collection_waiters = self._collection_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(entry)

    def next_collection(self) -> asyncio.Future[dict[str, Any]]:
        """A future of the summary of the next collection (with its 补抄 rounds) to end."""
        waiter: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._collection_waiters.append(waiter)
        return waiter
