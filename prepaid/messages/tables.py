"""The outbox tables (SQLModel): one row per message, one per send attempt.

- :class:`MessageRow` (``prepaid_message``, 消息) — a rendered message to one
  recipient, with the recipient's details as they were when it was written, its
  delivery status and attempt count. ``episode_key`` is unique: one message per
  episode (e.g. one dunning SMS per arrears episode), enforced by the database so that
  two writers at once still make one message.
- :class:`AttemptRow` (``prepaid_message_attempt``) — every hand-over to a gateway and
  what came of it (the message's delivery history).

Times are the shared clock's naive local time (the clock the workflows run on).
The schema is owned by Alembic (``prepaid/migrations``, branch ``messages``).
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, Column, DateTime, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from ._recipient import Channel

__all__ = ["MANUAL_STATUSES", "AttemptRow", "MessageRow", "MessageStatus"]


class MessageStatus(enum.StrEnum):
    """Where a message is (发送状态).

    ``queued`` → ``sending`` (claimed by a dispatcher) → ``sent`` (the gateway accepted
    it) / ``delivered`` (the gateway or sink confirmed it) / ``failed`` (after the
    retries; ``error`` says why). ``invalid-number``: an SMS not sent because the phone
    number is invalid — the customer is on the paper / manual list, like ``paper``
    (the customer is notified on paper). ``printed``: its paper notice was rendered in
    a batch (``batch_no``).
    """

    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    FAILED = "failed"
    INVALID_NUMBER = "invalid-number"
    PAPER = "paper"
    PRINTED = "printed"


#: statuses whose customers need a paper notice or a visit (纸质通知 / 人工催费)
MANUAL_STATUSES = (MessageStatus.INVALID_NUMBER, MessageStatus.PAPER)


def _in(table: str, column: str, values: type[enum.StrEnum]) -> CheckConstraint:
    # Constant SQL: the allowed values come from our own enums, never from input.
    allowed = ", ".join(f"'{v.value}'" for v in values)
    return CheckConstraint(f"{column} IN ({allowed})", name=f"ck_{table}_{column}")


def _ts(nullable: bool = False) -> Any:
    return Field(default=None, sa_type=DateTime(timezone=False), nullable=nullable)


class MessageRow(SQLModel, table=True):
    """One message to one recipient (see the module docstring)."""

    __tablename__ = "prepaid_message"
    __table_args__ = (
        UniqueConstraint("episode_key", name="uq_prepaid_message_episode_key"),
        _in("prepaid_message", "status", MessageStatus),
        _in("prepaid_message", "channel", Channel),
        CheckConstraint("attempts >= 0", name="ck_prepaid_message_attempts"),
        Index("ix_prepaid_message_status", "status", "id"),
        Index("ix_prepaid_message_area", "area", "kind", "status"),
        Index("ix_prepaid_message_customer_no", "customer_no", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    episode_key: str = Field(max_length=255)
    kind: str = Field(max_length=32)
    episode: str = Field(max_length=128)
    customer_no: str = Field(max_length=32)
    name: str = Field(default="", max_length=128)
    phone_raw: str | None = Field(default=None, max_length=64)
    phone: str | None = Field(default=None, max_length=11)
    address: str = Field(default="", max_length=255)
    area: str = Field(default="", max_length=64)
    channel: str = Field(default=Channel.SMS.value, max_length=8)
    lang: str = Field(default="zh", max_length=2)
    title: str = Field(default="", max_length=255)
    body: str = Field(sa_column=Column(Text, nullable=False))  # without the signature
    text: str = Field(sa_column=Column(Text, nullable=False))  # what the SMS carries
    fields: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    segments: int = 1
    status: str = Field(default=MessageStatus.QUEUED.value, max_length=16)
    attempts: int = 0
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    gateway: str | None = Field(default=None, max_length=64)
    gateway_ref: str | None = Field(default=None, max_length=128)
    batch_no: str | None = Field(default=None, max_length=64)
    created_at: datetime = _ts()
    updated_at: datetime = _ts()
    claimed_at: datetime | None = _ts(nullable=True)
    sent_at: datetime | None = _ts(nullable=True)
    delivered_at: datetime | None = _ts(nullable=True)


class AttemptRow(SQLModel, table=True):
    """One hand-over of a message to a gateway and its outcome."""

    __tablename__ = "prepaid_message_attempt"
    __table_args__ = (Index("ix_prepaid_message_attempt_message", "message_id", "attempt"),)

    id: int | None = Field(default=None, primary_key=True)
    message_id: int = Field(foreign_key="prepaid_message.id")
    attempt: int
    at: datetime = _ts()
    gateway: str = Field(max_length=64)
    outcome: str = Field(max_length=16)
    http_status: int | None = None
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
