"""The built-in CIS ledger: accounts, movements, rejections, settled charges (branch ``cis``).

Revision ID: c0001
Revises:
Depends on: a0001 (``prepaid_cis_settled`` references ``prepaid_account``)
Create Date: 2026-11-28 04:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "c0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("cis",)
depends_on: str | Sequence[str] | None = "a0001"

_ = (sa, sqlmodel)

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "prepaid_cis_account",
        sa.Column("account_no", sa.String(length=32), nullable=False),
        sa.Column("balance_fen", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("account_no"),
    )
    op.create_table(
        "prepaid_cis_movement",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("account_no", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("operation_id", sa.String(length=64), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("balance_after_fen", sa.BigInteger(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(), nullable=False),
        sa.Column("source", sa.String(length=128), nullable=False),
        sa.CheckConstraint(
            "kind IN ('payment', 'refund', 'settlement', 'opening')",
            name="ck_prepaid_cis_movement_kind",
        ),
        sa.CheckConstraint(
            "(kind = 'payment' AND amount_fen > 0) OR (kind = 'refund' AND amount_fen < 0) "
            "OR kind IN ('settlement', 'opening')",
            name="ck_prepaid_cis_movement_sign",
        ),
        sa.ForeignKeyConstraint(
            ["account_no"],
            ["prepaid_cis_account.account_no"],
            name="fk_prepaid_cis_movement_account",
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("kind", "operation_id", name="uq_prepaid_cis_movement_operation"),
    )
    with op.batch_alter_table("prepaid_cis_movement", schema=None) as batch_op:
        batch_op.create_index("ix_prepaid_cis_movement_account", ["account_no", "id"], unique=False)
    op.create_table(
        "prepaid_cis_rejection",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("operation_id", sa.String(length=64), nullable=True),
        sa.Column("account_no", sa.String(length=32), nullable=True),
        sa.Column("amount_fen", sa.BigInteger(), nullable=True),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("source", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("prepaid_cis_rejection", schema=None) as batch_op:
        batch_op.create_index("ix_prepaid_cis_rejection_at", ["at"], unique=False)
    op.create_table(
        "prepaid_cis_settled",
        sa.Column("account_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("through_day", sa.Integer(), nullable=False),
        sa.Column("settled_fen", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["prepaid_account.id"], name="fk_prepaid_cis_settled_account"
        ),
        sa.PrimaryKeyConstraint("account_id"),
    )


def downgrade() -> None:
    op.drop_table("prepaid_cis_settled")
    with op.batch_alter_table("prepaid_cis_rejection", schema=None) as batch_op:
        batch_op.drop_index("ix_prepaid_cis_rejection_at")
    op.drop_table("prepaid_cis_rejection")
    with op.batch_alter_table("prepaid_cis_movement", schema=None) as batch_op:
        batch_op.drop_index("ix_prepaid_cis_movement_account")
    op.drop_table("prepaid_cis_movement")
    op.drop_table("prepaid_cis_account")
