"""Payments and refunds posted to the rating state's real-time balance, once each (branch ``cis``).

Revision ID: c0002
Revises: c0001
Create Date: 2026-11-28 05:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "c0002"
down_revision: str | Sequence[str] | None = "c0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ = (sa, sqlmodel)


def upgrade() -> None:
    op.create_table(
        "prepaid_cis_posted",
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("operation_id", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("posted_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["prepaid_account.id"], name="fk_prepaid_cis_posted_account"
        ),
        sa.PrimaryKeyConstraint("kind", "operation_id"),
    )


def downgrade() -> None:
    op.drop_table("prepaid_cis_posted")
