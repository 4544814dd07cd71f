"""Disconnection episodes, reconnections, power-guarantee commands, handler phones.

Revision ID: w0002
Revises: w0001
Create Date: 2026-11-28 10:00:00

At most one active disconnection episode per account: a partial unique index
(SQLite and PostgreSQL both have them).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "w0002"
down_revision: str | Sequence[str] | None = "w0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_STATES = (
    "requested",
    "approved-l1",
    "approved",
    "notified",
    "tripping",
    "disconnected",
    "failed",
    "disconnected-on-site",
    "rejected",
    "cancelled",
    "ended",
)
_ACTIVE = _STATES[:8]
_RECONNECTION_STATES = ("waiting", "sent", "done", "failed", "on-site", "cancelled-only")
_METHODS = ("permit-close", "close", "on-site", "none")


def _in(column: str, values: Sequence[str]) -> str:
    return f"{column} IN (" + ", ".join(f"'{v}'" for v in values) + ")"


def upgrade() -> None:
    op.create_table(
        "prepaid_disconnection",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("number", sa.String(length=24), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("customer_no", sa.String(length=20), nullable=False),
        sa.Column("meter_address", sa.String(length=12), nullable=False),
        sa.Column("supply_unit", sa.String(length=16), nullable=True),
        sa.Column("line", sa.String(length=24), nullable=True),
        sa.Column("area", sa.String(length=24), nullable=True),
        sa.Column("state", sa.String(length=24), nullable=False),
        sa.Column("origin", sa.String(length=8), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("balance_fen", sa.BigInteger(), nullable=False),
        sa.Column("threshold_fen", sa.BigInteger(), nullable=False),
        sa.Column("requested_by", sa.String(length=64), nullable=False),
        sa.Column("requested_at", sa.DateTime(), nullable=False),
        sa.Column("l1_by", sa.String(length=64), nullable=True),
        sa.Column("l1_at", sa.DateTime(), nullable=True),
        sa.Column("l2_by", sa.String(length=64), nullable=True),
        sa.Column("l2_at", sa.DateTime(), nullable=True),
        sa.Column("earliest_at", sa.DateTime(), nullable=True),
        sa.Column("planned_at", sa.DateTime(), nullable=True),
        sa.Column("notice_message_id", sa.Integer(), nullable=True),
        sa.Column("notified_at", sa.DateTime(), nullable=True),
        sa.Column("due_at", sa.DateTime(), nullable=True),
        sa.Column("next_action", sa.String(length=8), nullable=True),
        sa.Column("job_id", sa.String(length=64), nullable=True),
        sa.Column("job_kind", sa.String(length=8), nullable=True),
        sa.Column("job_at", sa.DateTime(), nullable=True),
        sa.Column("trips", sa.Integer(), server_default="0", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("checks", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_relay", sa.String(length=8), nullable=True),
        sa.Column("first_trip_at", sa.DateTime(), nullable=True),
        sa.Column("last_trip_at", sa.DateTime(), nullable=True),
        sa.Column("trip_energy_ckwh", sa.BigInteger(), nullable=True),
        sa.Column("work_order", sa.String(length=24), nullable=True),
        sa.Column("ended_at", sa.DateTime(), nullable=True),
        sa.Column("end_reason", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint(_in("state", _STATES), name="ck_prepaid_disconnection_state"),
        sa.ForeignKeyConstraint(["account_id"], ["prepaid_account.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("number", name="uq_prepaid_disconnection_number"),
    )
    active = sa.text(_in("state", sorted(_ACTIVE)))
    op.create_index(
        "uq_prepaid_disconnection_active",
        "prepaid_disconnection",
        ["account_id"],
        unique=True,
        sqlite_where=active,
        postgresql_where=active,
    )
    op.create_index("ix_prepaid_disconnection_due", "prepaid_disconnection", ["state", "due_at"])
    op.create_index("ix_prepaid_disconnection_job", "prepaid_disconnection", ["job_id"])
    op.create_index(
        "ix_prepaid_disconnection_account", "prepaid_disconnection", ["account_id", "id"]
    )
    op.create_table(
        "prepaid_disconnection_event",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("disconnection_id", _ID, nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("from_state", sa.String(length=24), nullable=True),
        sa.Column("to_state", sa.String(length=24), nullable=False),
        sa.Column("comment", sa.Text(), server_default="", nullable=False),
        sa.Column("job_id", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["disconnection_id"],
            ["prepaid_disconnection.id"],
            name="fk_prepaid_disconnection_event_episode",
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_prepaid_disconnection_event_episode",
        "prepaid_disconnection_event",
        ["disconnection_id", "id"],
    )
    op.create_table(
        "prepaid_reconnection",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("number", sa.String(length=24), nullable=False),
        sa.Column("disconnection_id", _ID, nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("customer_no", sa.String(length=20), nullable=False),
        sa.Column("meter_address", sa.String(length=12), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("trigger", sa.String(length=64), nullable=False),
        sa.Column("balance_fen", sa.BigInteger(), nullable=False),
        sa.Column("job_id", sa.String(length=64), nullable=True),
        sa.Column("after_job", sa.String(length=64), nullable=True),
        sa.Column("work_order", sa.String(length=24), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("done_at", sa.DateTime(), nullable=True),
        sa.CheckConstraint(
            _in("state", _RECONNECTION_STATES), name="ck_prepaid_reconnection_state"
        ),
        sa.CheckConstraint(_in("method", _METHODS), name="ck_prepaid_reconnection_method"),
        sa.ForeignKeyConstraint(
            ["disconnection_id"],
            ["prepaid_disconnection.id"],
            name="fk_prepaid_reconnection_episode",
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("number", name="uq_prepaid_reconnection_number"),
        sa.UniqueConstraint("disconnection_id", name="uq_prepaid_reconnection_episode"),
    )
    op.create_index("ix_prepaid_reconnection_job", "prepaid_reconnection", ["job_id"])
    op.create_index("ix_prepaid_reconnection_account", "prepaid_reconnection", ["account_id"])
    op.create_table(
        "prepaid_guarantee_meter",
        sa.Column("account_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("meter_address", sa.String(length=12), nullable=False),
        sa.Column("wanted_on", sa.Boolean(), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("job_id", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["prepaid_account.id"]),
        sa.PrimaryKeyConstraint("account_id"),
    )
    op.create_index("ix_prepaid_guarantee_meter_job", "prepaid_guarantee_meter", ["job_id"])
    op.create_table(
        "prepaid_handler_contact",
        sa.Column("login", sa.String(length=32), nullable=False),
        sa.Column("phone", sa.String(length=32), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("updated_by", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["login"], ["prepaid_operator.login"], name="fk_prepaid_handler_contact_login"
        ),
        sa.PrimaryKeyConstraint("login"),
    )


def downgrade() -> None:
    op.drop_table("prepaid_handler_contact")
    op.drop_index("ix_prepaid_guarantee_meter_job", table_name="prepaid_guarantee_meter")
    op.drop_table("prepaid_guarantee_meter")
    op.drop_index("ix_prepaid_reconnection_account", table_name="prepaid_reconnection")
    op.drop_index("ix_prepaid_reconnection_job", table_name="prepaid_reconnection")
    op.drop_table("prepaid_reconnection")
    op.drop_index(
        "ix_prepaid_disconnection_event_episode", table_name="prepaid_disconnection_event"
    )
    op.drop_table("prepaid_disconnection_event")
    op.drop_index("ix_prepaid_disconnection_account", table_name="prepaid_disconnection")
    op.drop_index("ix_prepaid_disconnection_job", table_name="prepaid_disconnection")
    op.drop_index("ix_prepaid_disconnection_due", table_name="prepaid_disconnection")
    op.drop_index("uq_prepaid_disconnection_active", table_name="prepaid_disconnection")
    op.drop_table("prepaid_disconnection")
