"""The head-end's tables (SQLModel): archive, readings, jobs and the command log.

Every table name starts with ``headend_`` so that other packages (``prepaid``) can
keep their own tables and migration trees in the same database.

- :class:`Channel` — a communication channel (通道): a TCP endpoint, a TCP gateway
  (DTU / concentrator relaying to RS-485 meters), a serial port, or an MQTT topic.
- :class:`Meter` — the meter archive (电表档案).
- :class:`Reading` — collected data (采集数据), one row per (meter, DI, freeze date).
- :class:`Job` — a queued read or control command (任务).
- :class:`JobAttempt` — the command log (命令日志): every attempt of every job.
"""

from __future__ import annotations

import enum
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
)
from sqlmodel import Field, SQLModel

__all__ = [
    "BAUD_RATES",
    "PARITIES",
    "BreakerType",
    "Channel",
    "ChannelKind",
    "Job",
    "JobAttempt",
    "JobKind",
    "JobState",
    "Meter",
    "MeterKind",
    "Reading",
    "RunnerStatus",
    "metadata",
    "utcnow",
]

metadata = SQLModel.metadata

BAUD_RATES: tuple[int, ...] = (300, 600, 1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200)
PARITIES: tuple[str, ...] = ("N", "E", "O")


def utcnow() -> datetime:
    return datetime.now(UTC)


class ChannelKind(enum.StrEnum):
    TCP = "tcp"
    GATEWAY = "gateway"
    SERIAL = "serial"
    MQTT = "mqtt"


class MeterKind(enum.StrEnum):
    """远程费控 (remote: the master station rates and trips) or 本地费控 (local: card)."""

    REMOTE = "remote"
    LOCAL = "local"


class BreakerType(enum.StrEnum):
    """外置断路器 / 外置、可远程合闸 / 内置负荷开关."""

    EXTERNAL = "external"
    EXTERNAL_REMOTE_CLOSE = "external-remote-close"
    INTERNAL = "internal"


class JobKind(enum.StrEnum):
    READ = "read"
    TRIP = "trip"
    PERMIT_CLOSE = "permit-close"
    CLOSE = "close"
    GUARANTEE_ON = "guarantee-on"
    GUARANTEE_OFF = "guarantee-off"
    COLLECT = "collect"


class JobState(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    EXPIRED = "expired"


def _in(table: str, column: str, values: type[enum.StrEnum]) -> CheckConstraint:
    # Constant SQL: the allowed values come from our own enums, never from input.
    allowed = ", ".join(f"'{v.value}'" for v in values)
    return CheckConstraint(f"{column} IN ({allowed})", name=f"ck_{table}_{column}")


def _ts(nullable: bool = False) -> Any:
    return Field(
        default_factory=utcnow if not nullable else None,
        sa_type=DateTime(timezone=True),
        nullable=nullable,
    )


class Channel(SQLModel, table=True):
    """A communication channel (通道) that one or more meters are reached through.

    tcp / gateway: ``host`` and ``port``; serial: ``serial_port``, ``baud``,
    ``parity``; mqtt: broker ``host`` / ``port`` and ``mqtt_topic``.
    ``concurrency`` is how many requests may be in flight on it at once.
    """

    __tablename__ = "headend_channel"
    __table_args__ = (
        _in("headend_channel", "kind", ChannelKind),
        CheckConstraint("concurrency >= 1", name="ck_headend_channel_concurrency"),
        UniqueConstraint("name", name="uq_headend_channel_name"),
    )

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=64)
    kind: str = Field(max_length=16)
    host: str | None = Field(default=None, max_length=255)
    port: int | None = None
    serial_port: str | None = Field(default=None, max_length=255)
    baud: int | None = None
    parity: str | None = Field(default=None, max_length=1)
    mqtt_topic: str | None = Field(default=None, max_length=255)
    concurrency: int = 1
    updated_at: datetime = _ts()

    @property
    def url(self) -> str:
        """The transport URL (``tcp://…``, ``serial://…?baud=&parity=``, ``mqtt://…/topic``)."""
        if self.kind == ChannelKind.SERIAL:
            return f"serial://{self.serial_port}?baud={self.baud}&parity={self.parity}"
        if self.kind == ChannelKind.MQTT:
            return f"mqtt://{self.host}:{self.port}/{self.mqtt_topic}"
        return f"tcp://{self.host}:{self.port}"


class Meter(SQLModel, table=True):
    """One meter of the archive (电表档案), keyed by its 12-digit communication address."""

    __tablename__ = "headend_meter"
    __table_args__ = (
        _in("headend_meter", "kind", MeterKind),
        _in("headend_meter", "breaker_type", BreakerType),
        Index("ix_headend_meter_channel_id", "channel_id"),
        Index("ix_headend_meter_customer_no", "customer_no"),
    )

    address: str = Field(primary_key=True, max_length=12)
    meter_number: str = Field(max_length=32)
    kind: str = Field(max_length=16)
    channel_id: int = Field(foreign_key="headend_channel.id")
    key_ref: str | None = Field(default=None, max_length=64)
    breaker_type: str = Field(max_length=32)
    customer_no: str | None = Field(default=None, max_length=32)
    supply_unit: str | None = Field(default=None, max_length=64)
    reading_segment: str | None = Field(default=None, max_length=64)
    active: bool = True
    updated_at: datetime = _ts()


class Reading(SQLModel, table=True):
    """A collected value: stored once per (meter, DI, freeze date).

    ``freeze_date`` is the date of the frozen data (日冻结), or the collection date
    for a current value. ``value`` is the decoded value as text (a Decimal) or, when
    it has no numeric decoding, the raw data field as hex; ``energy_ckwh`` is an
    energy register in 0.01 kWh.
    """

    __tablename__ = "headend_reading"

    meter_address: str = Field(
        sa_column=Column(
            String(12), ForeignKey("headend_meter.address"), primary_key=True, nullable=False
        )
    )
    di: int = Field(sa_column=Column(BigInteger, primary_key=True, nullable=False))
    freeze_date: date = Field(sa_column=Column(Date, primary_key=True, nullable=False))
    value: str = Field(max_length=255)
    energy_ckwh: int | None = Field(default=None, sa_type=BigInteger)
    collected_at: datetime = _ts()


class Job(SQLModel, table=True):
    """A read or control command for one meter; its id is the idempotency key."""

    __tablename__ = "headend_job"
    __table_args__ = (
        _in("headend_job", "kind", JobKind),
        _in("headend_job", "state", JobState),
        Index("ix_headend_job_state_priority", "state", "priority"),
        Index("ix_headend_job_meter_address", "meter_address"),
        Index("ix_headend_job_state_kind", "state", "kind"),
    )

    id: str = Field(primary_key=True, max_length=64)
    kind: str = Field(max_length=16)
    meter_address: str = Field(foreign_key="headend_meter.address", max_length=12)
    priority: int = 0
    deadline: datetime | None = _ts(nullable=True)
    state: str = Field(default=JobState.QUEUED.value, max_length=16)
    reason: str | None = Field(default=None, sa_type=Text)
    created_at: datetime = _ts()
    updated_at: datetime = _ts()
    result: dict[str, Any] | None = Field(default=None, sa_type=JSON(none_as_null=True))
    # What was asked (e.g. the trip reason), the retry state and the last failure's
    # short name: the job runner (headend.jobs) resumes from these after a restart.
    params: dict[str, Any] | None = Field(default=None, sa_type=JSON(none_as_null=True))
    attempts: int = 0
    max_attempts: int = 3
    next_attempt_at: datetime | None = _ts(nullable=True)
    finished_at: datetime | None = _ts(nullable=True)
    error: str | None = Field(default=None, max_length=64)


class RunnerStatus(SQLModel, table=True):
    """The last snapshot a running head-end recorded (channel health, queue sizes)."""

    __tablename__ = "headend_runner_status"

    name: str = Field(primary_key=True, max_length=64)
    data: dict[str, Any] = Field(sa_type=JSON)
    updated_at: datetime = _ts()


class JobAttempt(SQLModel, table=True):
    """One attempt at a job (the command log, 命令日志): every attempt is kept."""

    __tablename__ = "headend_job_attempt"
    __table_args__ = (UniqueConstraint("job_id", "attempt_no", name="uq_headend_job_attempt_no"),)

    id: int | None = Field(default=None, primary_key=True)
    job_id: str = Field(foreign_key="headend_job.id", max_length=64)
    attempt_no: int
    started_at: datetime = _ts()
    ended_at: datetime | None = _ts(nullable=True)
    outcome: str | None = Field(default=None, max_length=32)
    error: str | None = Field(default=None, sa_type=Text)
    frames_hex: str | None = Field(default=None, sa_type=Text)
