"""Jobs (任务): every head-end operation runs as a persisted, retried, asynchronous job.

A job is one operation on one meter — a read, a trip, a permit-close, … — with

- an **id**, which is also its idempotency key: submitting an id that exists
  returns the existing job and never runs it twice (:meth:`JobStore.submit`);
- a **priority** (higher runs first) and an optional **deadline**: a job still
  unfinished at its deadline ends ``expired`` and is reported as
  :class:`~headend.events.CommandFailed` with ``expired=True``;
- **retries** with exponential backoff timed by the shared clock
  (:class:`RetryPolicy`), up to ``max_attempts``; a failure that retrying cannot
  cure (a wrong key, a refusal) ends the job at once; tries that fail because the
  channel itself is down (a broker or gateway restarting: :data:`CHANNEL_DOWN`)
  do not count when the job has a deadline — it waits for the channel until then;
- every **attempt** recorded as a ``headend_job_attempt`` row (start and end
  time, outcome, error, and the frames exchanged in hex: the command log, 命令日志),
  and the job's **result** stored with it.

:class:`JobRunner` executes them. A meter's jobs run one at a time (and the
channel pool, :class:`~headend.channels.ChannelPool`, enforces each channel's
concurrency); the due jobs of one meter are bundled into one channel session.
Jobs live in the database (SQLite by default, PostgreSQL by URL), so a job
queued before a crash runs after the restart, and a job left ``running`` by a
crash is retried: its interrupted attempt is kept, marked ``interrupted``, and
does not count against ``max_attempts``. (Control commands are safe to retry:
success is judged by reading the meter's status word, not by remembering what
was sent.) Several processes may share the database: a job is claimed with a
conditional update, so only one of them runs each attempt.

What a job *does* is a handler (``kind`` → async function of a
:class:`JobContext`); :mod:`headend.control` provides the control commands and
:mod:`headend.service` the reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import uuid
from collections.abc import Awaitable, Callable, Collection, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Protocol, TypeVar

from sqlalchemy import JSON, DateTime, Integer, String, Text, column, func, select, table
from sqlalchemy.engine import Connection, Engine, RowMapping
from sqlalchemy.exc import IntegrityError, OperationalError

from protocol.client import MasterClient
from protocol.clock import Clock, RealClock
from protocol.errors import AbnormalReplyError, ProtocolError, ResponseTimeoutError, TransportError
from protocol.frame import Frame, encode_frame

from .channels import ChannelError, UnknownMeterError
from .errors import JobConflictError, JobError, JobFailure, JobNotFoundError
from .events import (
    CommandFailed,
    CommandSucceeded,
    Event,
    EventBus,
    JobQueued,
    JobStarted,
    ReadingMissing,
)
from .events import MeterAlarm as MeterAlarmEvent
from .models import JobKind, JobState

__all__ = [
    "CONTROL_KINDS",
    "FINAL_STATES",
    "AttemptOutcome",
    "AttemptRecord",
    "FrameLog",
    "Handler",
    "JobContext",
    "JobOutcome",
    "JobRecord",
    "JobRunner",
    "JobSpec",
    "JobStore",
    "MeterInfo",
    "RetryPolicy",
    "SessionPool",
    "from_db_time",
    "to_db_time",
]

log = logging.getLogger(__name__)

CONTROL_KINDS: Final = frozenset(
    {
        JobKind.TRIP,
        JobKind.PERMIT_CLOSE,
        JobKind.CLOSE,
        JobKind.GUARANTEE_ON,
        JobKind.GUARANTEE_OFF,
    }
)
FINAL_STATES: Final = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.EXPIRED})
MAX_ID_LENGTH: Final = 64
CHANNEL_DOWN: Final = frozenset({"link-error", "channel-unavailable"})
"""Failure codes of a channel that is down: with a deadline, the job waits for it."""
DB_RETRY_FIRST_S: Final = 0.5
DB_RETRY_MAX_S: Final = 30.0
"""Backoff (clock seconds) of a job's database write while the database is busy."""
_T = TypeVar("_T")


class AttemptOutcome:
    """Values of ``headend_job_attempt.outcome``."""

    SUCCEEDED: Final = "succeeded"
    FAILED: Final = "failed"
    INTERRUPTED: Final = "interrupted"
    """The head-end stopped (or crashed) during the attempt; it does not count."""


# --------------------------------------------------------------------------- time in the DB


def to_db_time(when: datetime | None) -> datetime | None:
    """A clock time (naive local, as :class:`~protocol.clock.Clock` gives) as aware UTC."""
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.astimezone()
    return when.astimezone(UTC)


def from_db_time(when: datetime | None) -> datetime | None:
    """A stored time back as naive local clock time (SQLite returns naive UTC)."""
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone().replace(tzinfo=None)


# --------------------------------------------------------------------------- tables

# Lightweight table clauses: just the columns the job runner reads and writes
# (including those migration 0002_jobs adds to headend_job).
_TS = DateTime(timezone=True)
_job = table(
    "headend_job",
    column("id", String),
    column("kind", String),
    column("meter_address", String),
    column("priority", Integer),
    column("deadline", _TS),
    column("state", String),
    column("reason", Text),
    column("created_at", _TS),
    column("updated_at", _TS),
    column("result", JSON),
    column("params", JSON),
    column("attempts", Integer),
    column("max_attempts", Integer),
    column("next_attempt_at", _TS),
    column("finished_at", _TS),
    column("error", String),
)
_attempt = table(
    "headend_job_attempt",
    column("id", Integer),
    column("job_id", String),
    column("attempt_no", Integer),
    column("started_at", _TS),
    column("ended_at", _TS),
    column("outcome", String),
    column("error", Text),
    column("frames_hex", Text),
)
_meter = table(
    "headend_meter",
    column("address", String),
    column("meter_number", String),
    column("kind", String),
    column("key_ref", String),
    column("breaker_type", String),
    column("customer_no", String),
    column("active", Integer),
)
_status = table(
    "headend_runner_status",
    column("name", String),
    column("data", JSON),
    column("updated_at", _TS),
)


# --------------------------------------------------------------------------- values


@dataclass(frozen=True, slots=True)
class JobSpec:
    """A job to submit. ``id`` defaults to a fresh UUID; give one to make retries of
    the *submission* idempotent (e.g. the prepaid order number of a trip)."""

    kind: JobKind
    address: str
    id: str | None = None
    priority: int = 0
    deadline: datetime | None = None
    """Clock time after which the job is given up (``None``: never)."""
    max_attempts: int = 3
    params: Mapping[str, Any] = field(default_factory=dict)
    """What the handler needs, JSON-serialisable (e.g. ``{"reason": "arrears"}``)."""


@dataclass(frozen=True, slots=True)
class JobRecord:
    """A job as stored. Times are clock times (naive local)."""

    id: str
    kind: JobKind
    address: str
    priority: int
    state: JobState
    deadline: datetime | None
    attempts: int
    max_attempts: int
    next_attempt_at: datetime | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    reason: str | None
    error: str | None
    params: dict[str, Any]
    result: dict[str, Any] | None

    @property
    def done(self) -> bool:
        return self.state in FINAL_STATES

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in self.__slots__:
            value = getattr(self, name)
            out[name] = value.isoformat() if isinstance(value, datetime) else value
        return out

    @classmethod
    def from_row(cls, row: RowMapping) -> JobRecord:
        return cls(
            id=row["id"],
            kind=JobKind(row["kind"]),
            address=row["meter_address"],
            priority=row["priority"],
            state=JobState(row["state"]),
            deadline=from_db_time(row["deadline"]),
            attempts=row["attempts"] or 0,
            max_attempts=row["max_attempts"] or 1,
            next_attempt_at=from_db_time(row["next_attempt_at"]),
            created_at=from_db_time(row["created_at"]) or datetime.min,
            updated_at=from_db_time(row["updated_at"]) or datetime.min,
            finished_at=from_db_time(row["finished_at"]),
            reason=row["reason"],
            error=row["error"],
            params=dict(row["params"] or {}),
            result=row["result"],
        )


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """One attempt at a job: one line of the command log."""

    job_id: str
    attempt_no: int
    started_at: datetime
    ended_at: datetime | None
    outcome: str | None
    error: str | None
    frames_hex: str | None

    @property
    def frames(self) -> list[str]:
        """The frames exchanged, one ``"TX …"`` / ``"RX …"`` line each."""
        return (self.frames_hex or "").splitlines()

    def to_dict(self) -> dict[str, Any]:
        return {
            "attempt": self.attempt_no,
            "started_at": self.started_at.isoformat(),
            "ended_at": self.ended_at.isoformat() if self.ended_at else None,
            "outcome": self.outcome,
            "error": self.error,
            "frames": self.frames,
        }


@dataclass(frozen=True, slots=True)
class MeterInfo:
    """What a handler needs of the meter archive (电表档案)."""

    address: str
    meter_number: str
    kind: str
    key_ref: str | None
    breaker_type: str
    active: bool


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff between attempts, in clock seconds.

    After attempt ``n`` fails, the next waits ``min(max_s, base_s * factor**(n-1))``.
    """

    base_s: float = 2.0
    factor: float = 2.0
    max_s: float = 300.0

    def delay(self, attempt: int) -> float:
        return float(min(self.max_s, self.base_s * self.factor ** max(0, attempt - 1)))


# --------------------------------------------------------------------------- the store


def _validate(spec: JobSpec) -> str:
    job_id = spec.id if spec.id is not None else uuid.uuid4().hex
    if not job_id or len(job_id) > MAX_ID_LENGTH or not job_id.isprintable():
        raise JobError(
            f"job id {job_id!r} must be 1..{MAX_ID_LENGTH} printable characters; "
            "omit it to get a generated one"
        )
    if spec.max_attempts < 1:
        raise JobError(f"max_attempts must be at least 1, got {spec.max_attempts}")
    if len(spec.address) != 12 or not spec.address.isdigit():
        raise JobError(f"meter address must be 12 digits, got {spec.address!r}")
    return job_id


class JobStore:
    """The jobs and the command log in the database (the repository of this module)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- submitting and reading -----------------------------------------------------

    def submit(self, spec: JobSpec, now: datetime) -> tuple[JobRecord, bool]:
        """Store ``spec`` as a queued job; returns ``(job, created)``.

        An id that exists returns that job (``created`` False) when it is the same
        operation (kind and meter); otherwise :class:`JobConflictError`. A meter
        not in the archive raises :class:`~headend.channels.UnknownMeterError`.
        """
        job_id = _validate(spec)
        existing = self.get(job_id)
        if existing is not None:
            return self._same(existing, spec), False
        stamp = to_db_time(now)
        row = {
            "id": job_id,
            "kind": JobKind(spec.kind).value,
            "meter_address": spec.address,
            "priority": spec.priority,
            "deadline": to_db_time(spec.deadline),
            "state": JobState.QUEUED.value,
            "reason": None,
            "created_at": stamp,
            "updated_at": stamp,
            "result": None,
            "params": dict(spec.params),
            "attempts": 0,
            "max_attempts": spec.max_attempts,
            "next_attempt_at": None,
            "finished_at": None,
            "error": None,
        }
        try:
            with self.engine.begin() as c:
                known = c.execute(
                    select(_meter.c.address).where(_meter.c.address == spec.address)
                ).first()
                if known is None:
                    raise UnknownMeterError(
                        f"meter {spec.address} is not in the archive; import it "
                        "(feikong headend import-archive) before sending it commands"
                    )
                c.execute(_job.insert().values(**row))
        except IntegrityError:
            existing = self.get(job_id)  # submitted at the same moment by someone else
            if existing is None:
                raise
            return self._same(existing, spec), False
        job = self.get(job_id)
        assert job is not None
        return job, True

    @staticmethod
    def _same(job: JobRecord, spec: JobSpec) -> JobRecord:
        if job.kind != spec.kind or job.address != spec.address:
            raise JobConflictError(
                f"job id {job.id!r} is already a {job.kind.value} of meter {job.address}; "
                f"it cannot also be a {JobKind(spec.kind).value} of meter {spec.address} "
                "(use a new id)"
            )
        return job

    def get(self, job_id: str) -> JobRecord | None:
        with self.engine.connect() as c:
            row = c.execute(select(_job).where(_job.c.id == job_id)).mappings().first()
        return None if row is None else JobRecord.from_row(row)

    def require(self, job_id: str) -> JobRecord:
        job = self.get(job_id)
        if job is None:
            raise JobNotFoundError(f"no job has id {job_id!r}")
        return job

    def attempts(self, job_id: str) -> list[AttemptRecord]:
        """Every attempt at a job, oldest first."""
        query = select(_attempt).where(_attempt.c.job_id == job_id).order_by(_attempt.c.attempt_no)
        with self.engine.connect() as c:
            rows = c.execute(query).mappings().all()
        return [
            AttemptRecord(
                job_id=r["job_id"],
                attempt_no=r["attempt_no"],
                started_at=from_db_time(r["started_at"]) or datetime.min,
                ended_at=from_db_time(r["ended_at"]),
                outcome=r["outcome"],
                error=r["error"],
                frames_hex=r["frames_hex"],
            )
            for r in rows
        ]

    def queued(self, ids: Collection[str] | None = None) -> list[JobRecord]:
        """Queued jobs (all, or those of ``ids``)."""
        query = select(_job).where(_job.c.state == JobState.QUEUED.value)
        if ids is not None:
            query = query.where(_job.c.id.in_(list(ids)))
        with self.engine.connect() as c:
            return [JobRecord.from_row(r) for r in c.execute(query).mappings()]

    def counts(self) -> dict[tuple[str, str], int]:
        """Number of jobs by (state, kind)."""
        query = select(_job.c.state, _job.c.kind, func.count()).group_by(_job.c.state, _job.c.kind)
        with self.engine.connect() as c:
            return {(s, k): n for s, k, n in c.execute(query)}

    def recent(self, limit: int = 20) -> list[JobRecord]:
        query = select(_job).order_by(_job.c.updated_at.desc()).limit(limit)
        with self.engine.connect() as c:
            return [JobRecord.from_row(r) for r in c.execute(query).mappings()]

    def meter(self, address: str) -> MeterInfo:
        with self.engine.connect() as c:
            row = c.execute(select(_meter).where(_meter.c.address == address)).mappings().first()
        if row is None:
            raise UnknownMeterError(f"meter {address} is not in the archive any more")
        return MeterInfo(
            address=row["address"],
            meter_number=row["meter_number"],
            kind=row["kind"],
            key_ref=row["key_ref"],
            breaker_type=row["breaker_type"],
            active=bool(row["active"]),
        )

    # -- the life of an attempt ------------------------------------------------------

    def start_attempt(self, job_id: str, now: datetime) -> int | None:
        """Claim a queued job (state → running) and open its next attempt.

        Returns the attempt number, or ``None`` if the job is no longer queued
        (another process claimed it, or it ended).
        """
        stamp = to_db_time(now)
        with self.engine.begin() as c:
            claimed = c.execute(
                _job.update()
                .where(_job.c.id == job_id, _job.c.state == JobState.QUEUED.value)
                .values(
                    state=JobState.RUNNING.value,
                    attempts=_job.c.attempts + 1,
                    updated_at=stamp,
                    next_attempt_at=None,
                )
            ).rowcount
            if claimed != 1:
                return None
            last = c.execute(
                select(func.max(_attempt.c.attempt_no)).where(_attempt.c.job_id == job_id)
            ).scalar()
            number = int(last or 0) + 1
            c.execute(
                _attempt.insert().values(
                    job_id=job_id, attempt_no=number, started_at=stamp, ended_at=None
                )
            )
        return number

    @staticmethod
    def _end_attempt(
        c: Connection,
        job_id: str,
        number: int,
        stamp: datetime | None,
        outcome: str,
        error: str | None,
        frames: str | None,
    ) -> None:
        c.execute(
            _attempt.update()
            .where(_attempt.c.job_id == job_id, _attempt.c.attempt_no == number)
            .values(ended_at=stamp, outcome=outcome, error=error, frames_hex=frames or None)
        )

    def retry_later(
        self,
        job_id: str,
        number: int,
        now: datetime,
        next_at: datetime,
        error: str,
        message: str,
        frames: str | None,
        *,
        counted: bool = True,
    ) -> JobRecord:
        """End a failed attempt; the job waits in the queue until ``next_at``.

        ``counted=False``: the attempt stays in the command log but does not count
        against ``max_attempts`` (the channel was down: the meter was not reached).
        """
        stamp = to_db_time(now)
        with self.engine.begin() as c:
            self._end_attempt(c, job_id, number, stamp, AttemptOutcome.FAILED, message, frames)
            c.execute(
                _job.update()
                .where(_job.c.id == job_id)
                .values(
                    state=JobState.QUEUED.value,
                    attempts=_job.c.attempts if counted else _job.c.attempts - 1,
                    next_attempt_at=to_db_time(next_at),
                    updated_at=stamp,
                    error=error,
                    reason=message,
                )
            )
        return self.require(job_id)

    def finish(
        self,
        job_id: str,
        now: datetime,
        state: JobState,
        *,
        attempt: int | None = None,
        error: str | None = None,
        reason: str | None = None,
        result: Mapping[str, Any] | None = None,
        frames: str | None = None,
        only_if_queued: bool = False,
    ) -> JobRecord | None:
        """End a job in a final state (closing its attempt, if one is open).

        With ``only_if_queued`` (expiring a job that is waiting) nothing happens,
        and ``None`` is returned, unless the job is still queued.
        """
        stamp = to_db_time(now)
        with self.engine.begin() as c:
            if attempt is not None:
                outcome = (
                    AttemptOutcome.SUCCEEDED
                    if state is JobState.SUCCEEDED
                    else AttemptOutcome.FAILED
                )
                self._end_attempt(
                    c, job_id, attempt, stamp, outcome, reason if error else None, frames
                )
            update = _job.update().where(_job.c.id == job_id)
            if only_if_queued:
                update = update.where(_job.c.state == JobState.QUEUED.value)
            values: dict[str, Any] = {
                "state": state.value,
                "updated_at": stamp,
                "finished_at": stamp,
                "next_attempt_at": None,
                "reason": reason,
                "error": error,
            }
            if result is not None:
                values["result"] = dict(result)
            if c.execute(update.values(**values)).rowcount != 1:
                return None
        return self.require(job_id)

    def interrupt(self, job_id: str, number: int, now: datetime, frames: str | None) -> None:
        """The head-end is stopping during an attempt: keep it as interrupted, requeue."""
        stamp = to_db_time(now)
        with self.engine.begin() as c:
            self._end_attempt(
                c,
                job_id,
                number,
                stamp,
                AttemptOutcome.INTERRUPTED,
                "the head-end stopped during this attempt; it will be retried",
                frames,
            )
            c.execute(
                _job.update()
                .where(_job.c.id == job_id, _job.c.state == JobState.RUNNING.value)
                .values(
                    state=JobState.QUEUED.value,
                    attempts=_job.c.attempts - 1,
                    updated_at=stamp,
                    next_attempt_at=None,
                )
            )

    def recover(self, now: datetime, accept: Callable[[str], bool] | None = None) -> list[str]:
        """After a crash: jobs left ``running`` go back to the queue, to be retried.

        Their open attempts are closed as ``interrupted`` (kept in the log, not
        counted). ``accept(address)`` limits it to the meters of one runner (a
        shard). Returns the ids of the recovered jobs.
        """
        stamp = to_db_time(now)
        with self.engine.begin() as c:
            running = c.execute(
                select(_job.c.id, _job.c.meter_address).where(
                    _job.c.state == JobState.RUNNING.value
                )
            )
            ids = [i for i, address in running if accept is None or accept(address)]
            if not ids:
                return []
            c.execute(
                _attempt.update()
                .where(_attempt.c.job_id.in_(ids), _attempt.c.ended_at.is_(None))
                .values(
                    ended_at=stamp,
                    outcome=AttemptOutcome.INTERRUPTED,
                    error="the head-end stopped during this attempt (crash or kill); retried",
                )
            )
            c.execute(
                _job.update()
                .where(_job.c.id.in_(ids))
                .values(
                    state=JobState.QUEUED.value,
                    attempts=func.max(_job.c.attempts - 1, 0)
                    if c.dialect.name == "sqlite"
                    else func.greatest(_job.c.attempts - 1, 0),
                    next_attempt_at=None,
                    updated_at=stamp,
                )
            )
        log.warning("recovered %d job(s) left running by a crash: %s", len(ids), ", ".join(ids))
        return ids

    # -- runner status (for `feikong headend status` in another process) -------------

    def save_status(self, name: str, data: Mapping[str, Any], now: datetime) -> None:
        stamp = to_db_time(now)
        with self.engine.begin() as c:
            done = c.execute(
                _status.update()
                .where(_status.c.name == name)
                .values(data=dict(data), updated_at=stamp)
            ).rowcount
            if not done:
                c.execute(_status.insert().values(name=name, data=dict(data), updated_at=stamp))

    def load_status(self, name: str) -> tuple[dict[str, Any], datetime] | None:
        with self.engine.connect() as c:
            row = c.execute(select(_status).where(_status.c.name == name)).mappings().first()
        if row is None:
            return None
        return dict(row["data"]), from_db_time(row["updated_at"]) or datetime.min


# --------------------------------------------------------------------------- the runner


class SessionPool(Protocol):
    """What the runner needs of :class:`~headend.channels.ChannelPool`."""

    def session(self, address: str) -> AbstractAsyncContextManager[MasterClient]: ...


class FrameLog:
    """The frames of one attempt, as ``TX``/``RX`` hex lines (for the command log)."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, direction: str, frame: Frame) -> None:
        self.lines.append(f"{direction} {encode_frame(frame, 0).hex(' ').upper()}")

    def text(self) -> str | None:
        return "\n".join(self.lines) or None


class _RecordingTransport:
    """Wraps the session's transport, logging every frame (duck-types ``Transport``)."""

    def __init__(self, inner: Any, frames: FrameLog) -> None:
        self._inner = inner
        self._frames = frames

    async def request(self, frame: Frame, *, timeout: float | None = None) -> Frame:
        self._frames.add("TX", frame)
        reply: Frame = await self._inner.request(frame, timeout=timeout)
        self._frames.add("RX", reply)
        return reply

    async def send(self, frame: Frame) -> None:
        self._frames.add("TX", frame)
        await self._inner.send(frame)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


@dataclass(slots=True)
class JobContext:
    """What a handler gets for one attempt."""

    job: JobRecord
    attempt: int
    meter: MeterInfo
    client: MasterClient
    """A client on the meter's channel session; every frame is logged with the attempt."""
    clock: Clock
    """Sleep on this clock (not asyncio) so tests and the runner can see the wait."""
    bus: EventBus


@dataclass(frozen=True, slots=True)
class JobOutcome:
    """What a successful handler returns: the result to store, and events to publish
    (before the :class:`~headend.events.CommandSucceeded` the runner publishes)."""

    result: dict[str, Any]
    events: tuple[Event, ...] = ()


Handler = Callable[[JobContext], Awaitable[JobOutcome]]


class _RunnerClock:
    """The runner's view of the clock: it knows which of its tasks are waiting on it."""

    def __init__(self, runner: JobRunner) -> None:
        self._runner = runner

    def now(self) -> datetime:
        return self._runner.clock.now()

    async def sleep(self, seconds: float) -> None:
        await self._runner._tracked_sleep(seconds)


class JobRunner:
    """Executes queued jobs (see the module doc); ``async with`` starts and stops it.

    ``handlers`` maps each job kind to its handler. ``max_meters`` is how many
    meters may have a job in progress at once (each channel's own limit is the
    pool's business); ``bundle`` is how many due jobs of one meter share one
    session. ``poll_s`` (clock seconds) is how often the database is checked for
    jobs queued by other processes (``None``: only jobs submitted here).
    ``only`` restricts the runner to those job ids (``feikong headend command --wait``).
    ``resolve(address)`` is asked once when the pool does not know a meter (added to
    the archive after the pool was built); it returns True if it could add it.
    ``accept(address)`` limits the runner to the meters it serves (one shard of the
    archive, :mod:`headend.sharding`): other meters' jobs are left to their own
    runner, also when recovering after a crash.
    """

    def __init__(
        self,
        engine: Engine,
        pool: SessionPool,
        handlers: Mapping[JobKind, Handler],
        *,
        bus: EventBus | None = None,
        clock: Clock | None = None,
        retry: RetryPolicy | None = None,
        max_meters: int = 64,
        bundle: int = 8,
        poll_s: float | None = 1.0,
        only: Collection[str] | None = None,
        stop_grace_s: float = 5.0,
        resolve: Callable[[str], bool] | None = None,
        accept: Callable[[str], bool] | None = None,
    ) -> None:
        if max_meters < 1 or bundle < 1:
            raise JobError(f"max_meters and bundle must be >= 1, got {max_meters}, {bundle}")
        self.store = JobStore(engine)
        self.pool = pool
        self.handlers = dict(handlers)
        self.bus = bus or EventBus()
        self.clock: Clock = clock or RealClock()
        self.retry = retry or RetryPolicy()
        self.max_meters = max_meters
        self.bundle = bundle
        self.poll_s = poll_s
        self.only = set(only) if only is not None else None
        self.stop_grace_s = stop_grace_s
        self.resolve = resolve
        self.accept = accept
        self._handler_clock = _RunnerClock(self)
        self._queued: dict[str, JobRecord] = {}
        self._busy: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._dispatcher: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._quiet = asyncio.Event()
        self._dispatcher_idle = False
        self._sleeping = 0
        self._dues: dict[int, datetime] = {}
        self._tokens = itertools.count()
        self.started_attempts = 0

    # -- submitting -------------------------------------------------------------------

    def submit(self, spec: JobSpec) -> tuple[JobRecord, bool]:
        """Queue a job (idempotent by id); it runs as soon as it is due. See JobStore.submit."""
        job, created = self.store.submit(spec, self.clock.now())
        if created:
            self.bus.publish(
                JobQueued(
                    address=job.address,
                    at=job.created_at,
                    job_id=job.id,
                    command=job.kind.value,
                    priority=job.priority,
                )
            )
        if job.state is JobState.QUEUED and self._ours(job):
            self._queued[job.id] = job
            self._poke()
        return job, created

    def take(self, job_ids: Collection[str]) -> int:
        """Queue now the listed jobs that are queued in the database and this runner's
        (jobs another process submitted and announced, e.g. over MQTT); returns how
        many were added. Without it they are found at the next poll."""
        added = 0
        for job in self.store.queued(job_ids):
            if job.id not in self._queued and self._ours(job):
                self._queued[job.id] = job
                added += 1
        if added:
            self._poke()
        return added

    def _ours(self, job: JobRecord) -> bool:
        if self.only is not None and job.id not in self.only:
            return False
        return self.accept is None or self.accept(job.address)

    # -- life cycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Recover jobs a crash left running, load the queue, start dispatching."""
        if self._dispatcher is not None:
            return
        self.store.recover(self.clock.now(), self.accept)
        self._refresh()
        self._dispatcher = asyncio.create_task(self._dispatch(), name="job-dispatcher")

    async def stop(self, grace_s: float | None = None) -> None:
        """Stop dispatching; running attempts get ``grace_s`` real seconds to finish,
        then are cancelled (recorded as interrupted and requeued for the next start)."""
        grace = self.stop_grace_s if grace_s is None else grace_s
        task, self._dispatcher = self._dispatcher, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._tasks and grace > 0:
            await asyncio.wait(set(self._tasks), timeout=grace)
        for t in list(self._tasks):
            t.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def __aenter__(self) -> JobRunner:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    @property
    def running(self) -> int:
        """Meters with a job in progress."""
        return len(self._tasks)

    @property
    def queued(self) -> int:
        """Jobs waiting in this runner's queue."""
        return len(self._queued)

    # -- quiescence (for stepping a SteppedClock in tests and the demo) -----------------

    @property
    def quiet(self) -> bool:
        """True when every task of the runner waits on the clock (nothing on the wire)."""
        return self._dispatcher_idle and self._sleeping == len(self._tasks)

    async def wait_quiet(self) -> None:
        """Return once :attr:`quiet` holds (advance the clock to make progress then)."""
        while not self.quiet:
            self._quiet.clear()
            await self._quiet.wait()

    def next_wakeup(self) -> datetime | None:
        """The earliest clock time a runner task waits for (``None``: none waits on the clock)."""
        return min(self._dues.values(), default=None)

    def _check_quiet(self) -> None:
        if self.quiet:
            self._quiet.set()

    def _poke(self) -> None:
        self._dispatcher_idle = False
        self._wake.set()

    async def _tracked_sleep(self, seconds: float) -> None:
        token = next(self._tokens)
        self._dues[token] = self.clock.now() + timedelta(seconds=max(0.0, seconds))
        self._sleeping += 1
        self._check_quiet()
        try:
            await self.clock.sleep(seconds)
        finally:
            self._sleeping -= 1
            del self._dues[token]

    async def _idle(self, seconds: float | None) -> None:
        """Wait until poked or ``seconds`` of clock time pass."""
        if self._wake.is_set():
            self._wake.clear()
            return
        token = next(self._tokens)
        if seconds is not None:
            self._dues[token] = self.clock.now() + timedelta(seconds=max(0.0, seconds))
        waits: list[asyncio.Task[Any]] = [asyncio.ensure_future(self._wake.wait())]
        if seconds is not None:
            waits.append(asyncio.ensure_future(self.clock.sleep(seconds)))
        self._dispatcher_idle = True
        self._check_quiet()
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._dispatcher_idle = False
            self._dues.pop(token, None)
            for w in waits:
                w.cancel()
            self._wake.clear()

    # -- dispatching --------------------------------------------------------------------

    def refresh(self) -> None:
        """Pick up the jobs other processes queued in the database now, without waiting
        for the next poll."""
        self._refresh()
        self._poke()

    def _refresh(self) -> None:
        """Load queued jobs from the database (ours and other processes')."""
        for job in self.store.queued(self.only):
            if job.id not in self._queued and self._ours(job):
                self._queued[job.id] = job

    async def _dispatch(self) -> None:
        last_poll = self.clock.now()
        while True:
            now = self.clock.now()
            try:
                if self.poll_s is not None and (now - last_poll).total_seconds() >= self.poll_s:
                    self._refresh()
                    last_poll = now
                self._expire_overdue(now)
            except OperationalError as exc:
                # Busy or unreachable database: the jobs stay queued in it (an expiry not
                # recorded is retried, the job being found again by the next poll).
                log.warning("job dispatcher: the database is busy or unreachable: %s", exc)
            self._start_due(now)
            wait: float | None = None
            upcoming = [
                t
                for j in self._queued.values()
                if j.address not in self._busy
                for t in (j.next_attempt_at, j.deadline)
                if t is not None and t > now
            ]
            if upcoming:
                wait = (min(upcoming) - now).total_seconds()
            if self.poll_s is not None:
                wait = self.poll_s if wait is None else min(wait, self.poll_s)
            await self._idle(wait)

    def _expire_overdue(self, now: datetime) -> None:
        for job in [j for j in self._queued.values() if j.deadline and j.deadline <= now]:
            if job.address in self._busy:
                continue  # the meter's task checks deadlines itself
            del self._queued[job.id]
            last = f" (last error: {job.reason})" if job.reason else ""
            reason = (
                f"the deadline {job.deadline:%Y-%m-%d %H:%M:%S} passed before the "
                f"{job.kind.value} could be done{last}"
            )
            ended = self.store.finish(
                job.id,
                now,
                JobState.EXPIRED,
                error=job.error or "expired",
                reason=reason,
                only_if_queued=True,
            )
            if ended is not None:
                self._publish_failure(ended, now, expired=True)

    def _start_due(self, now: datetime) -> None:
        # A control job waiting for its retry holds back the control jobs given after
        # it for the same meter: commands reach a meter in the order they were given
        # (a trip retried after a later permit-close would cut off a customer who paid).
        waiting: dict[str, tuple[datetime, str]] = {}
        for j in self._queued.values():
            if (
                j.kind in CONTROL_KINDS
                and j.next_attempt_at is not None
                and j.next_attempt_at > now
            ):
                first = waiting.get(j.address)
                if first is None or (j.created_at, j.id) < first:
                    waiting[j.address] = (j.created_at, j.id)
        due = [
            j
            for j in self._queued.values()
            if j.address not in self._busy
            and (j.next_attempt_at is None or j.next_attempt_at <= now)
            and not (
                j.kind in CONTROL_KINDS
                and j.address in waiting
                and (j.created_at, j.id) > waiting[j.address]
            )
        ]
        if not due:
            return
        due.sort(key=lambda j: (-j.priority, j.created_at, j.id))
        by_meter: dict[str, list[JobRecord]] = {}
        for job in due:
            by_meter.setdefault(job.address, []).append(job)
        for address, jobs in by_meter.items():
            if len(self._tasks) >= self.max_meters:
                break
            batch = jobs[: self.bundle]
            for job in batch:
                del self._queued[job.id]
            self._busy.add(address)
            task = asyncio.create_task(self._run_meter(address, batch), name=f"jobs-{address}")
            self._tasks.add(task)
            task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("job task %s failed", task.get_name(), exc_info=task.exception())
        self._poke()
        self._check_quiet()

    # -- running one meter's batch --------------------------------------------------------

    async def _run_meter(self, address: str, batch: list[JobRecord]) -> None:
        pending = list(batch)
        resolved = False
        try:
            while pending:
                opened = False
                try:
                    async with self.pool.session(address) as client:
                        opened = True
                        while pending:
                            job = pending.pop(0)
                            await self._run_job(job, client)
                            if job.kind in CONTROL_KINDS and job.id in self._queued:
                                # it waits for a retry: the later commands wait behind it
                                for later in pending:
                                    if later.kind in CONTROL_KINDS:
                                        self._queued[later.id] = later
                                pending = [j for j in pending if j.kind not in CONTROL_KINDS]
                except (ChannelError, TransportError) as exc:
                    if (
                        not opened
                        and not resolved
                        and isinstance(exc, UnknownMeterError)
                        and self.resolve is not None
                    ):
                        resolved = True
                        if self.resolve(address):
                            continue  # the pool knows the meter now: open the session again
                    if not opened:
                        # No session at all: the first job records the failed attempt.
                        await self._run_job(pending.pop(0), None, open_error=exc)
                    elif not isinstance(exc, ResponseTimeoutError):
                        log.info("meter %s: the channel session ended: %s", address, exc)
                    # The rest wait for the next round (and get their own attempts).
                    for job in pending:
                        self._queued[job.id] = job
                    pending = []
        finally:
            self._busy.discard(address)

    async def _run_job(
        self,
        job: JobRecord,
        client: MasterClient | None,
        *,
        open_error: ChannelError | TransportError | None = None,
    ) -> None:
        now = self.clock.now()
        if job.deadline is not None and job.deadline <= now:
            self._queued[job.id] = job
            self._expire_overdue(now)
            return
        number = await self._persist(job.id, "claim", lambda: self.store.start_attempt(job.id, now))
        if number is None:
            return  # claimed elsewhere or already over
        self.started_attempts += 1
        job = await self._persist(job.id, "read", lambda: self.store.require(job.id))
        self.bus.publish(
            JobStarted(
                address=job.address, at=now, job_id=job.id, command=job.kind.value, attempt=number
            )
        )
        frames = FrameLog()
        try:
            failure: JobFailure | None = None
            link_error: TransportError | None = None
            outcome: JobOutcome | None = None
            try:
                meter = self.store.meter(job.address)
                if not meter.active:
                    raise JobFailure(
                        "meter-inactive",
                        f"meter {job.address} is marked inactive in the archive; "
                        "activate it there to send it commands",
                        retryable=False,
                    )
                handler = self.handlers.get(job.kind)
                if handler is None:
                    raise JobFailure(
                        "no-handler",
                        f"this head-end cannot run {job.kind.value} jobs",
                        retryable=False,
                    )
                if open_error is not None:
                    raise open_error
                assert client is not None
                recording = MasterClient(
                    _RecordingTransport(client.transport, frames),  # type: ignore[arg-type]
                    timeout=client.timeout,
                )
                context = JobContext(job, number, meter, recording, self._handler_clock, self.bus)
                outcome = await handler(context)
            except JobFailure as exc:
                failure = exc
            except ResponseTimeoutError as exc:
                failure = JobFailure(
                    "no-reply",
                    f"meter {job.address} did not answer ({exc}); check that it is powered "
                    "and its channel works",
                )
            except TransportError as exc:
                link_error = exc if open_error is None else None
                failure = JobFailure(
                    "link-error", f"the channel to meter {job.address} failed: {exc}"
                )
            except UnknownMeterError as exc:
                failure = JobFailure("unknown-meter", str(exc), retryable=False)
            except ChannelError as exc:
                failure = JobFailure("channel-unavailable", str(exc))
            except AbnormalReplyError as exc:
                failure = JobFailure(
                    "refused", f"meter {job.address} refused: {exc}", retryable=False
                )
            except ProtocolError as exc:
                failure = JobFailure("protocol-error", f"meter {job.address}: {exc}")
            except Exception as exc:
                log.exception("job %s (%s of %s) crashed", job.id, job.kind.value, job.address)
                failure = JobFailure(
                    "internal-error",
                    f"the head-end failed on this job ({type(exc).__name__}: {exc}); "
                    "see the head-end log",
                    retryable=False,
                )
            await self._record(job, number, outcome, failure, frames)
            if link_error is not None:
                raise link_error
        except asyncio.CancelledError:
            try:
                self.store.interrupt(job.id, number, self.clock.now(), frames.text())
            except OperationalError as exc:  # left running: the next start recovers it
                log.warning("job %s: cannot record the interruption: %s", job.id, exc)
            raise

    async def _persist(self, job_id: str, what: str, call: Callable[[], _T]) -> _T:
        """A database step of a job's life; while the database is busy (SQLite locked
        by another connection beyond its busy timeout) or unreachable, wait with
        backoff and try again, so that an outcome the meter has acted on is never
        lost and the job is never left ``running``."""
        delay = DB_RETRY_FIRST_S
        while True:
            try:
                return call()
            except OperationalError as exc:
                log.warning(
                    "job %s: cannot %s it in the database (%s); it may be locked by another "
                    "connection or unreachable: retrying in %.1f s",
                    job_id,
                    what,
                    exc.orig if exc.orig is not None else exc,
                    delay,
                )
                await self._tracked_sleep(delay)
                delay = min(delay * 2, DB_RETRY_MAX_S)

    async def _record(
        self,
        job: JobRecord,
        number: int,
        outcome: JobOutcome | None,
        failure: JobFailure | None,
        frames: FrameLog,
    ) -> None:
        now = self.clock.now()
        if outcome is not None and failure is None:
            done = await self._persist(
                job.id,
                "record the success of",
                lambda: self.store.finish(
                    job.id,
                    now,
                    JobState.SUCCEEDED,
                    attempt=number,
                    result=outcome.result,
                    frames=frames.text(),
                ),
            )
            assert done is not None
            for event in outcome.events:
                self.bus.publish(event)
            self._publish_success(done, now)
            return
        assert failure is not None
        message = str(failure)
        log.info("job %s attempt %d failed (%s): %s", job.id, number, failure.code, message)
        if failure.alarm:
            self.bus.publish(
                MeterAlarmEvent(
                    address=job.address, at=now, alarm=failure.alarm, detail=message, job_id=job.id
                )
            )
        # The channel itself down (a broker or gateway restarting): the job waits for
        # it until its deadline, these tries not counting against max_attempts.
        waits = failure.retryable and failure.code in CHANNEL_DOWN and job.deadline is not None
        backoff = self.retry.delay(number if waits else job.attempts)
        next_at = now + timedelta(seconds=backoff)
        if failure.retryable and (waits or job.attempts < job.max_attempts):
            if job.deadline is None or next_at < job.deadline:
                updated = await self._persist(
                    job.id,
                    "record the failed attempt of",
                    lambda: self.store.retry_later(
                        job.id,
                        number,
                        now,
                        next_at,
                        failure.code,
                        message,
                        frames.text(),
                        counted=not waits,
                    ),
                )
                self._queued[job.id] = updated
                return
            state = JobState.EXPIRED
            reason = (
                f"{message}; the next try ({next_at:%H:%M:%S}) would be after the deadline "
                f"{job.deadline:%Y-%m-%d %H:%M:%S}"
            )
        else:
            state = JobState.FAILED
            reason = message
            if failure.retryable:
                reason = f"{message} (gave up after {job.attempts} attempt(s))"
        ended = await self._persist(
            job.id,
            "record the failure of",
            lambda: self.store.finish(
                job.id,
                now,
                state,
                attempt=number,
                error=failure.code,
                reason=reason,
                frames=frames.text(),
            ),
        )
        if ended is not None:
            self._publish_failure(ended, now, expired=state is JobState.EXPIRED)

    # -- events ---------------------------------------------------------------------------

    def _publish_success(self, job: JobRecord, now: datetime) -> None:
        result = job.result or {}
        info = result.get("info") or ()
        self.bus.publish(
            CommandSucceeded(
                address=job.address,
                at=now,
                job_id=job.id,
                command=job.kind.value,
                attempts=job.attempts,
                relay=result.get("relay"),
                guarantee=result.get("guarantee"),
                energy_ckwh=result.get("energy_ckwh"),
                reason=job.params.get("reason"),
                info=tuple(str(i) for i in info),
            )
        )

    def _publish_failure(self, job: JobRecord, now: datetime, *, expired: bool) -> None:
        if job.kind is JobKind.READ:
            self.bus.publish(
                ReadingMissing(
                    address=job.address,
                    at=now,
                    di=str(job.params.get("di", "")),
                    reason=job.reason or "failed",
                    quantity=job.params.get("what"),
                    job_id=job.id,
                )
            )
        self.bus.publish(
            CommandFailed(
                address=job.address,
                at=now,
                job_id=job.id,
                command=job.kind.value,
                reason=job.reason or "failed",
                attempts=job.attempts,
                error=job.error,
                expired=expired,
            )
        )
