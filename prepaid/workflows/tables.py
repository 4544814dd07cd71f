"""Tables of the fee-control workflows (Alembic branch ``workflows``).

- ``prepaid_disconnection``: one disconnection episode (停电流程) of one customer,
  from the request through both approvals, the notice, the trips and their
  repetition to its end; at most one active episode per account (a partial unique
  index). ``due_at`` / ``next_action`` say what the workflow does next and when;
  ``job_id`` is the head-end job in flight.
- ``prepaid_disconnection_event``: its history (who, when, what, comment, job).
- ``prepaid_reconnection``: a reconnection (复电) after payment: the permit-close or
  direct-close job (``after_job``: held back until that trip's outcome is in), or the
  on-site work order.
- ``prepaid_guarantee_meter``: the power-guarantee command (3AH / 3BH) last sent to
  each guaranteed customer's meter and its outcome.
- ``prepaid_handler_contact``: fault handlers' phone numbers, for the SMS that tells
  them of a new work order.
"""

from __future__ import annotations

import enum
from typing import Final

import sqlalchemy as sa
from sqlmodel import SQLModel

__all__ = [
    "ACTIVE_STATES",
    "DisconnectionState",
    "NextAction",
    "ReconnectionMethod",
    "ReconnectionState",
    "disconnection_event_table",
    "disconnection_table",
    "guarantee_meter_table",
    "handler_contact_table",
    "reconnection_table",
]

metadata = SQLModel.metadata
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


class DisconnectionState(enum.StrEnum):
    """Where a disconnection episode (停电流程) stands."""

    REQUESTED = "requested"
    """停电申请: waiting for the level-1 approval."""
    APPROVED_L1 = "approved-l1"
    """一级审批通过: waiting for the level-2 approval."""
    APPROVED = "approved"
    """二级审批通过: the customer notice is being sent."""
    NOTIFIED = "notified"
    """已通知: the trip waits for its due time (and the end of protected hours)."""
    TRIPPING = "tripping"
    """跳闸中: a trip command is with the head-end."""
    DISCONNECTED = "disconnected"
    """已停电: tripped; the relay is checked at the repeat interval while arrears last."""
    FAILED = "failed"
    """停电失败: remote trips failed; a work order is with a fault handler."""
    ON_SITE = "disconnected-on-site"
    """现场停电: the fault handler disconnected on site."""
    REJECTED = "rejected"
    """审批不通过 (final)."""
    CANCELLED = "cancelled"
    """撤销 (final): paid, power guarantee, or cancelled by an operator before any trip."""
    ENDED = "ended"
    """结束 (final): reconnected after payment (see ``prepaid_reconnection``)."""

    @property
    def active(self) -> bool:
        return self in ACTIVE_STATES

    @property
    def tripped(self) -> bool:
        """The customer's power may be off (a trip or an on-site disconnection happened)."""
        return self in (DisconnectionState.DISCONNECTED, DisconnectionState.ON_SITE)


ACTIVE_STATES: Final = frozenset(
    {
        DisconnectionState.REQUESTED,
        DisconnectionState.APPROVED_L1,
        DisconnectionState.APPROVED,
        DisconnectionState.NOTIFIED,
        DisconnectionState.TRIPPING,
        DisconnectionState.DISCONNECTED,
        DisconnectionState.FAILED,
        DisconnectionState.ON_SITE,
    }
)
_ACTIVE_SQL: Final = "state IN (" + ", ".join(f"'{s.value}'" for s in sorted(ACTIVE_STATES)) + ")"


class NextAction(enum.StrEnum):
    """What an episode does at its ``due_at``."""

    NOTICE = "notice"
    TRIP = "trip"
    CHECK = "check"
    """Read the relay: a customer who closed it again by hand is tripped again."""


class ReconnectionState(enum.StrEnum):
    WAITING = "waiting"
    """Auto reconnect is off for the area: an operator issues it (feikong reconnect)."""
    SENT = "sent"
    """The permit-close / close command is with the head-end."""
    DONE = "done"
    FAILED = "failed"
    """The command failed: an on-site reconnection work order is open."""
    ON_SITE = "on-site"
    """Disconnected on site: reconnected on site (work order)."""
    CANCELLED_ONLY = "cancelled-only"
    """Nothing had been tripped: the disconnection was only cancelled."""


class ReconnectionMethod(enum.StrEnum):
    PERMIT_CLOSE = "permit-close"
    """合闸允许: the customer closes the breaker by hand."""
    CLOSE = "close"
    """直接合闸: the meter closes (remotely closable switches, where configured)."""
    ON_SITE = "on-site"
    NONE = "none"


def _in(column: str, values: type[enum.StrEnum], table: str) -> sa.CheckConstraint:
    allowed = ", ".join(f"'{v.value}'" for v in values)
    return sa.CheckConstraint(f"{column} IN ({allowed})", name=f"ck_{table}_{column}")


disconnection_table = sa.Table(
    "prepaid_disconnection",
    metadata,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    sa.Column("number", sa.String(24), nullable=False),
    sa.Column("account_id", sa.Integer(), sa.ForeignKey("prepaid_account.id"), nullable=False),
    sa.Column("customer_no", sa.String(20), nullable=False),
    sa.Column("meter_address", sa.String(12), nullable=False),
    sa.Column("supply_unit", sa.String(16), nullable=True),
    sa.Column("line", sa.String(24), nullable=True),
    sa.Column("area", sa.String(24), nullable=True),
    sa.Column("state", sa.String(24), nullable=False),
    sa.Column("origin", sa.String(8), nullable=False),
    sa.Column("reason", sa.Text(), nullable=False),
    sa.Column("balance_fen", sa.BigInteger(), nullable=False),
    sa.Column("threshold_fen", sa.BigInteger(), nullable=False),
    sa.Column("requested_by", sa.String(64), nullable=False),
    sa.Column("requested_at", sa.DateTime(), nullable=False),
    sa.Column("l1_by", sa.String(64), nullable=True),
    sa.Column("l1_at", sa.DateTime(), nullable=True),
    sa.Column("l2_by", sa.String(64), nullable=True),
    sa.Column("l2_at", sa.DateTime(), nullable=True),
    sa.Column("earliest_at", sa.DateTime(), nullable=True),
    sa.Column("planned_at", sa.DateTime(), nullable=True),
    sa.Column("notice_message_id", sa.Integer(), nullable=True),
    sa.Column("notified_at", sa.DateTime(), nullable=True),
    sa.Column("due_at", sa.DateTime(), nullable=True),
    sa.Column("next_action", sa.String(8), nullable=True),
    sa.Column("job_id", sa.String(64), nullable=True),
    sa.Column("job_kind", sa.String(8), nullable=True),
    sa.Column("job_at", sa.DateTime(), nullable=True),
    sa.Column("trips", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("checks", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("last_relay", sa.String(8), nullable=True),
    sa.Column("first_trip_at", sa.DateTime(), nullable=True),
    sa.Column("last_trip_at", sa.DateTime(), nullable=True),
    sa.Column("trip_energy_ckwh", sa.BigInteger(), nullable=True),
    sa.Column("work_order", sa.String(24), nullable=True),
    sa.Column("ended_at", sa.DateTime(), nullable=True),
    sa.Column("end_reason", sa.Text(), nullable=True),
    sa.Column("updated_at", sa.DateTime(), nullable=False),
    sa.UniqueConstraint("number", name="uq_prepaid_disconnection_number"),
    _in("state", DisconnectionState, "prepaid_disconnection"),
    sa.Index(
        "uq_prepaid_disconnection_active",
        "account_id",
        unique=True,
        sqlite_where=sa.text(_ACTIVE_SQL),
        postgresql_where=sa.text(_ACTIVE_SQL),
    ),
    sa.Index("ix_prepaid_disconnection_due", "state", "due_at"),
    sa.Index("ix_prepaid_disconnection_job", "job_id"),
    sa.Index("ix_prepaid_disconnection_account", "account_id", "id"),
)

disconnection_event_table = sa.Table(
    "prepaid_disconnection_event",
    metadata,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    sa.Column(
        "disconnection_id",
        _ID,
        sa.ForeignKey("prepaid_disconnection.id", name="fk_prepaid_disconnection_event_episode"),
        nullable=False,
    ),
    sa.Column("at", sa.DateTime(), nullable=False),
    sa.Column("actor", sa.String(64), nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("from_state", sa.String(24), nullable=True),
    sa.Column("to_state", sa.String(24), nullable=False),
    sa.Column("comment", sa.Text(), nullable=False, server_default=""),
    sa.Column("job_id", sa.String(64), nullable=True),
    sa.Index("ix_prepaid_disconnection_event_episode", "disconnection_id", "id"),
    sa.Index("ix_prepaid_disconnection_event_at", "at"),  # migration w0003
)

reconnection_table = sa.Table(
    "prepaid_reconnection",
    metadata,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    sa.Column("number", sa.String(24), nullable=False),
    sa.Column(
        "disconnection_id",
        _ID,
        sa.ForeignKey("prepaid_disconnection.id", name="fk_prepaid_reconnection_episode"),
        nullable=False,
    ),
    sa.Column("account_id", sa.Integer(), nullable=False),
    sa.Column("customer_no", sa.String(20), nullable=False),
    sa.Column("meter_address", sa.String(12), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("method", sa.String(16), nullable=False),
    sa.Column("trigger", sa.String(64), nullable=False),
    sa.Column("balance_fen", sa.BigInteger(), nullable=False),
    sa.Column("job_id", sa.String(64), nullable=True),
    sa.Column("after_job", sa.String(64), nullable=True),
    sa.Column("work_order", sa.String(24), nullable=True),
    sa.Column("error", sa.Text(), nullable=True),
    sa.Column("created_by", sa.String(64), nullable=False),
    sa.Column("created_at", sa.DateTime(), nullable=False),
    sa.Column("updated_at", sa.DateTime(), nullable=False),
    sa.Column("done_at", sa.DateTime(), nullable=True),
    sa.UniqueConstraint("number", name="uq_prepaid_reconnection_number"),
    sa.UniqueConstraint("disconnection_id", name="uq_prepaid_reconnection_episode"),
    _in("state", ReconnectionState, "prepaid_reconnection"),
    _in("method", ReconnectionMethod, "prepaid_reconnection"),
    sa.Index("ix_prepaid_reconnection_job", "job_id"),
    sa.Index("ix_prepaid_reconnection_account", "account_id"),
)

guarantee_meter_table = sa.Table(
    "prepaid_guarantee_meter",
    metadata,
    sa.Column(
        "account_id",
        sa.Integer(),
        sa.ForeignKey("prepaid_account.id"),
        primary_key=True,
        autoincrement=False,
    ),
    sa.Column("meter_address", sa.String(12), nullable=False),
    sa.Column("wanted_on", sa.Boolean(), nullable=False),
    sa.Column("state", sa.String(12), nullable=False),
    sa.Column("job_id", sa.String(64), nullable=True),
    sa.Column("reason", sa.Text(), nullable=True),
    sa.Column("updated_at", sa.DateTime(), nullable=False),
    sa.Index("ix_prepaid_guarantee_meter_job", "job_id"),
)

handler_contact_table = sa.Table(
    "prepaid_handler_contact",
    metadata,
    sa.Column(
        "login",
        sa.String(32),
        sa.ForeignKey("prepaid_operator.login", name="fk_prepaid_handler_contact_login"),
        primary_key=True,
    ),
    sa.Column("phone", sa.String(32), nullable=False),
    sa.Column("updated_at", sa.DateTime(), nullable=False),
    sa.Column("updated_by", sa.String(64), nullable=False),
)
