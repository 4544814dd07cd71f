"""Job scheduling: request parameters, attempt counts, backoff time, and runner status.

``headend_job`` gains what the job runner (``headend.jobs``) needs to survive a
restart: ``params`` (what was asked, e.g. the trip reason), ``attempts`` and
``max_attempts``, ``next_attempt_at`` (not before this time: the retry backoff),
``finished_at`` and ``error`` (the short name of the last failure).
``headend_runner_status`` keeps the last snapshot a running head-end recorded
(channel health, queue sizes) for ``feikong headend status`` in another process.

Revision ID: 0002_jobs
Revises: 0001
Create Date: 2026-11-28 04:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0002_jobs"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = ("jobs",)
depends_on: str | Sequence[str] | None = None

_ = (sa, sqlmodel)


def upgrade() -> None:
    with op.batch_alter_table("headend_job", schema=None) as batch_op:
        batch_op.add_column(sa.Column("params", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(
            sa.Column("max_attempts", sa.Integer(), nullable=False, server_default="3")
        )
        batch_op.add_column(sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("error", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True)
        )
        batch_op.create_index("ix_headend_job_state_kind", ["state", "kind"], unique=False)
    op.create_table(
        "headend_runner_status",
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("headend_runner_status")
    with op.batch_alter_table("headend_job", schema=None) as batch_op:
        batch_op.drop_index("ix_headend_job_state_kind")
        batch_op.drop_column("error")
        batch_op.drop_column("finished_at")
        batch_op.drop_column("next_attempt_at")
        batch_op.drop_column("max_attempts")
        batch_op.drop_column("attempts")
        batch_op.drop_column("params")
