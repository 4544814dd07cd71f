"""Collection status: one row per (meter, day) of daily-freeze collection (采集状态).

Revision ID: 0002_collection
Revises: 0001
Create Date: 2026-11-28 04:30:00

The first revision of the ``collection`` branch (head-end features branch off the
initial schema; :func:`headend.db.migrate` upgrades every branch head).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_collection"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = ("collection",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "headend_collection",
        sa.Column("meter_address", sa.String(length=12), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_attempt_at", sa.DateTime(), nullable=False),
        sa.Column("freeze_time", sa.DateTime(), nullable=True),
        sa.CheckConstraint(
            "status IN ('collected', 'missing')", name="ck_headend_collection_status"
        ),
        sa.CheckConstraint("attempts >= 1", name="ck_headend_collection_attempts"),
        sa.ForeignKeyConstraint(["meter_address"], ["headend_meter.address"]),
        sa.PrimaryKeyConstraint("meter_address", "day"),
    )
    with op.batch_alter_table("headend_collection", schema=None) as batch_op:
        batch_op.create_index("ix_headend_collection_day_status", ["day", "status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("headend_collection", schema=None) as batch_op:
        batch_op.drop_index("ix_headend_collection_day_status")
    op.drop_table("headend_collection")
