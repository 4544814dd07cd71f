"""The fee-control overview's stored counts (branch ``console``).

Revision ID: o0002
Revises: o0001
Create Date: 2026-11-29 02:50:00

Counting customers, balances in warning and in arrears and the day's readings per
supply unit is a pass over every account (tens of seconds at 15 million): the rating
and an explicit refresh store the counts per (day, unit) with the time they were
counted (``prepaid.statistics.refresh_overview``), and the dashboard reads them.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "o0002"
down_revision: str | Sequence[str] | None = "o0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "prepaid_overview_snapshot",
        sa.Column("day", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("supply_unit_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("customers", sa.Integer(), nullable=False),
        sa.Column("in_warning", sa.Integer(), nullable=False),
        sa.Column("in_arrears", sa.Integer(), nullable=False),
        sa.Column("meters_read", sa.Integer(), nullable=False),
        sa.Column("computed_at", sa.DateTime(), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.ForeignKeyConstraint(["supply_unit_id"], ["prepaid_supply_unit.id"]),
        sa.PrimaryKeyConstraint("day", "supply_unit_id"),
    )


def downgrade() -> None:
    op.drop_table("prepaid_overview_snapshot")
