"""Work orders (工单) and their history (branch ``workflows``).

Revision ID: w0001
Revises:
Create Date: 2026-11-28 09:00:00

Work orders name a customer (``prepaid_account``, branch ``accounts``) and are
assigned to an operator (``prepaid_operator``, branch ``settings``).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "w0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("workflows",)
depends_on: str | Sequence[str] | None = ("a0001", "s0001")

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_KINDS = ("disconnection-failure", "reconnection-failure", "anomaly", "other")
_STATES = ("open", "assigned", "result-recorded", "closed", "cancelled")


def _in(column: str, values: Sequence[str]) -> str:
    return f"{column} IN (" + ", ".join(f"'{v}'" for v in values) + ")"


def upgrade() -> None:
    op.create_table(
        "prepaid_work_order",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("number", sa.String(length=24), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("reference", sa.String(length=64), nullable=True),
        sa.Column("account_id", sa.Integer(), nullable=True),
        sa.Column("customer_no", sa.String(length=20), nullable=True),
        sa.Column("meter_address", sa.String(length=12), nullable=True),
        sa.Column("supply_unit", sa.String(length=16), nullable=True),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("assignee", sa.String(length=32), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("result", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("due_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("closed_at", sa.DateTime(), nullable=True),
        sa.CheckConstraint(_in("kind", _KINDS), name="ck_prepaid_work_order_kind"),
        sa.CheckConstraint(_in("state", _STATES), name="ck_prepaid_work_order_state"),
        sa.ForeignKeyConstraint(["account_id"], ["prepaid_account.id"]),
        sa.ForeignKeyConstraint(["assignee"], ["prepaid_operator.login"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("number", name="uq_prepaid_work_order_number"),
        sa.UniqueConstraint("kind", "reference", name="uq_prepaid_work_order_reference"),
    )
    op.create_index("ix_prepaid_work_order_state", "prepaid_work_order", ["state", "kind"])
    op.create_index("ix_prepaid_work_order_assignee", "prepaid_work_order", ["assignee", "state"])
    op.create_index("ix_prepaid_work_order_account", "prepaid_work_order", ["account_id"])
    op.create_table(
        "prepaid_work_order_event",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("work_order_id", _ID, nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=24), nullable=False),
        sa.Column("from_state", sa.String(length=16), nullable=True),
        sa.Column("to_state", sa.String(length=16), nullable=False),
        sa.Column("comment", sa.Text(), server_default="", nullable=False),
        sa.ForeignKeyConstraint(
            ["work_order_id"],
            ["prepaid_work_order.id"],
            name="fk_prepaid_work_order_event_order",
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_prepaid_work_order_event_order",
        "prepaid_work_order_event",
        ["work_order_id", "id"],
    )


def downgrade() -> None:
    op.drop_index("ix_prepaid_work_order_event_order", table_name="prepaid_work_order_event")
    op.drop_table("prepaid_work_order_event")
    op.drop_index("ix_prepaid_work_order_account", table_name="prepaid_work_order")
    op.drop_index("ix_prepaid_work_order_assignee", table_name="prepaid_work_order")
    op.drop_index("ix_prepaid_work_order_state", table_name="prepaid_work_order")
    op.drop_table("prepaid_work_order")
