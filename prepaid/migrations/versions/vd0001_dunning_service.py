"""Reminders, dunning, tier notices, monthly bills, custom SMS, anomaly orders (branch ``dunning``).

Revision ID: d0001
Revises:
Create Date: 2026-11-28 10:00:00

The rows name accounts (``prepaid_account``, branch ``accounts``), messages of the
outbox (``prepaid_message``, branch ``messages``) and work orders
(``prepaid_work_order``, branch ``workflows``). One open low-balance episode and one
open dunning record per account: partial unique indexes (``WHERE closed_at IS NULL``).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "d0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("dunning",)
depends_on: str | Sequence[str] | None = ("m0001", "w0001")

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_OPEN = sa.text("closed_at IS NULL")


def upgrade() -> None:
    op.create_table(
        "prepaid_reminder",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("opened_at", sa.DateTime(), nullable=False),
        sa.Column("balance_fen", sa.BigInteger(), nullable=False),
        sa.Column("reminder_fen", sa.BigInteger(), nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=True),
        sa.Column("opened_by", sa.String(length=32), nullable=False),
        sa.Column("closed_at", sa.DateTime(), nullable=True),
        sa.Column("closed_balance_fen", sa.BigInteger(), nullable=True),
        sa.CheckConstraint("channel IN ('sms', 'paper')", name="ck_prepaid_reminder_channel"),
        sa.ForeignKeyConstraint(["account_id"], ["prepaid_account.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ux_prepaid_reminder_open",
        "prepaid_reminder",
        ["account_id"],
        unique=True,
        sqlite_where=_OPEN,
        postgresql_where=_OPEN,
    )
    op.create_index("ix_prepaid_reminder_account", "prepaid_reminder", ["account_id", "id"])

    op.create_table(
        "prepaid_dunning_batch",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("batch_no", sa.String(length=64), nullable=False),
        sa.Column("area", sa.String(length=24), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=32), nullable=False),
        sa.Column("records", sa.Integer(), nullable=False),
        sa.Column("sms", sa.Integer(), nullable=False),
        sa.Column("paper", sa.Integer(), nullable=False),
        sa.Column("manual", sa.Integer(), nullable=False),
        sa.Column("printed_at", sa.DateTime(), nullable=True),
        sa.Column("notice_file", sa.String(length=255), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("batch_no", name="uq_prepaid_dunning_batch_no"),
    )
    op.create_index(
        "ix_prepaid_dunning_batch_area", "prepaid_dunning_batch", ["area", "created_at"]
    )
    op.create_table(
        "prepaid_dunning",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("batch_id", _ID, nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("customer_no", sa.String(length=20), nullable=False),
        sa.Column("balance_fen", sa.BigInteger(), nullable=False),
        sa.Column("threshold_fen", sa.BigInteger(), nullable=False),
        sa.Column("amount_due_fen", sa.BigInteger(), nullable=False),
        sa.Column("pay_by", sa.DateTime(), nullable=False),
        sa.Column("method", sa.String(length=8), nullable=False),
        sa.Column("phone_problem", sa.String(length=128), nullable=True),
        sa.Column("message_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("closed_at", sa.DateTime(), nullable=True),
        sa.Column("closed_balance_fen", sa.BigInteger(), nullable=True),
        sa.CheckConstraint(
            "method IN ('sms', 'paper', 'manual')", name="ck_prepaid_dunning_method"
        ),
        sa.ForeignKeyConstraint(
            ["batch_id"], ["prepaid_dunning_batch.id"], name="fk_prepaid_dunning_batch"
        ),
        sa.ForeignKeyConstraint(["account_id"], ["prepaid_account.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ux_prepaid_dunning_open",
        "prepaid_dunning",
        ["account_id"],
        unique=True,
        sqlite_where=_OPEN,
        postgresql_where=_OPEN,
    )
    op.create_index("ix_prepaid_dunning_batch", "prepaid_dunning", ["batch_id", "id"])
    op.create_index(
        "ix_prepaid_dunning_due",
        "prepaid_dunning",
        ["pay_by"],
        sqlite_where=_OPEN,
        postgresql_where=_OPEN,
    )

    op.create_table(
        "prepaid_tier_notice",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("cycle_start", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("tier", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("cycle_end", sa.Integer(), nullable=False),
        sa.Column("period_start", sa.Integer(), nullable=False),
        sa.Column("usage_ckwh", sa.BigInteger(), nullable=False),
        sa.Column("price_e4", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["prepaid_account.id"]),
        sa.PrimaryKeyConstraint("account_id", "cycle_start", "tier"),
    )

    op.create_table(
        "prepaid_monthly_bill",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("month", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last_reading_ckwh", sa.BigInteger(), nullable=False),
        sa.Column("this_reading_ckwh", sa.BigInteger(), nullable=False),
        sa.Column("usage_ckwh", sa.BigInteger(), nullable=False),
        sa.Column("charge_fen", sa.BigInteger(), nullable=False),
        sa.Column("balance_fen", sa.BigInteger(), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["prepaid_account.id"]),
        sa.PrimaryKeyConstraint("account_id", "month"),
    )
    op.create_index("ix_prepaid_monthly_bill_month", "prepaid_monthly_bill", ["month"])

    op.create_table(
        "prepaid_sms_campaign",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=32), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("selection", sa.Text(), nullable=False),
        sa.Column("recipients", sa.Integer(), nullable=False),
        sa.Column("queued", sa.Integer(), nullable=False),
        sa.Column("invalid", sa.Integer(), nullable=False),
        sa.Column("skipped_paper", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )

    op.create_table(
        "prepaid_anomaly_order",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("meter_address", sa.String(length=12), nullable=False),
        sa.Column("gap_start", sa.Integer(), nullable=False),
        sa.Column("found_day", sa.Integer(), nullable=False),
        sa.Column("missing_days", sa.Integer(), nullable=False),
        sa.Column("work_order_id", sa.Integer(), nullable=True),
        sa.Column("work_order_no", sa.String(length=40), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["prepaid_account.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("account_id", "gap_start", name="uq_prepaid_anomaly_order_gap"),
    )
    op.create_index("ix_prepaid_anomaly_order_wo", "prepaid_anomaly_order", ["work_order_id"])


def downgrade() -> None:
    op.drop_index("ix_prepaid_anomaly_order_wo", table_name="prepaid_anomaly_order")
    op.drop_table("prepaid_anomaly_order")
    op.drop_table("prepaid_sms_campaign")
    op.drop_index("ix_prepaid_monthly_bill_month", table_name="prepaid_monthly_bill")
    op.drop_table("prepaid_monthly_bill")
    op.drop_table("prepaid_tier_notice")
    op.drop_index("ix_prepaid_dunning_due", table_name="prepaid_dunning")
    op.drop_index("ix_prepaid_dunning_batch", table_name="prepaid_dunning")
    op.drop_index("ux_prepaid_dunning_open", table_name="prepaid_dunning")
    op.drop_table("prepaid_dunning")
    op.drop_index("ix_prepaid_dunning_batch_area", table_name="prepaid_dunning_batch")
    op.drop_table("prepaid_dunning_batch")
    op.drop_index("ix_prepaid_reminder_account", table_name="prepaid_reminder")
    op.drop_index("ux_prepaid_reminder_open", table_name="prepaid_reminder")
    op.drop_table("prepaid_reminder")
