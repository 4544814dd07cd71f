"""Card sales of local fee control (售电记录, branch ``vending``).

Revision ID: v0001
Revises:
Create Date: 2026-11-28 11:30:00

A sale names a customer (``prepaid_account``, branch ``accounts``); its money is
credited through the CIS ledger (branch ``cis``).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "v0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("vending",)
depends_on: str | Sequence[str] | None = ("a0001", "c0001")

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "prepaid_vend_sale",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("sale_id", sa.String(length=59), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("customer_no", sa.String(length=20), nullable=False),
        sa.Column("meter_address", sa.String(length=12), nullable=False),
        sa.Column("card_type", sa.String(length=12), nullable=False),
        sa.Column("purchase_count", sa.Integer(), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("serial", sa.String(length=32), nullable=False),
        sa.Column("sold_by", sa.String(length=64), nullable=False),
        sa.Column("sold_at", sa.DateTime(), nullable=False),
        sa.Column("credited_at", sa.DateTime(), nullable=True),
        sa.Column("balance_fen", sa.BigInteger(), nullable=True),
        sa.CheckConstraint("amount_fen > 0", name="ck_prepaid_vend_sale_amount_fen"),
        sa.CheckConstraint(
            "card_type IN ('open', 'purchase', 'replacement')",
            name="ck_prepaid_vend_sale_card_type",
        ),
        sa.ForeignKeyConstraint(["account_id"], ["prepaid_account.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("sale_id", name="uq_prepaid_vend_sale_sale_id"),
        sa.UniqueConstraint("account_id", "purchase_count", name="uq_prepaid_vend_sale_count"),
    )


def downgrade() -> None:
    op.drop_table("prepaid_vend_sale")
