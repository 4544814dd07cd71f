"""The tables of the notification workflows (SQLAlchemy Core; Alembic branch ``dunning``).

- ``prepaid_reminder`` — low-balance episodes (余额不足提醒): one row per account and
  episode; the episode is open (``closed_at`` NULL) while the real-time balance stays
  below the reminder amount. A partial unique index allows one open episode per
  account, so two runs at once still send one reminder.
- ``prepaid_dunning_batch`` / ``prepaid_dunning`` — dunning batches per transformer
  area (催费批次) and their records (催费记录); a record is a dunning episode, open
  while the balance stays below the dunning threshold (one open record per account).
- ``prepaid_tier_notice`` — tier reminders sent (阶梯提醒): one per account, tier
  cycle and tier.
- ``prepaid_monthly_bill`` — monthly bills sent (月度账单): one per account and month,
  with the readings, usage, charge and balance as sent.
- ``prepaid_sms_campaign`` — custom SMS (自定义短信): who sent what to whom.
- ``prepaid_anomaly_order`` — anomaly work orders (异常工单) for readings missing N
  consecutive days: one per account and gap (the first missing day).

Days are day numbers (days since 1970-01-01, as in :mod:`prepaid.models`); times are
the shared clock's naive local time; money is integer fen, energy 0.01 kWh.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import SQLModel

__all__ = [
    "anomaly_order",
    "dunning",
    "dunning_batch",
    "monthly_bill",
    "reminder",
    "sms_campaign",
    "tier_notice",
]

metadata = SQLModel.metadata
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_OPEN = sa.text("closed_at IS NULL")


def _account() -> sa.Column[int]:
    return sa.Column(
        "account_id",
        sa.Integer(),
        sa.ForeignKey("prepaid_account.id"),
        nullable=False,
    )


reminder = sa.Table(
    "prepaid_reminder",
    metadata,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    _account(),
    sa.Column("opened_at", sa.DateTime(), nullable=False),
    sa.Column("balance_fen", sa.BigInteger(), nullable=False),
    sa.Column("reminder_fen", sa.BigInteger(), nullable=False),
    sa.Column("channel", sa.String(8), nullable=False),
    sa.Column("message_id", sa.Integer(), nullable=True),
    sa.Column("opened_by", sa.String(32), nullable=False),
    sa.Column("closed_at", sa.DateTime(), nullable=True),
    sa.Column("closed_balance_fen", sa.BigInteger(), nullable=True),
    sa.CheckConstraint("channel IN ('sms', 'paper')", name="ck_prepaid_reminder_channel"),
    sa.Index(
        "ux_prepaid_reminder_open",
        "account_id",
        unique=True,
        sqlite_where=_OPEN,
        postgresql_where=_OPEN,
    ),
    sa.Index("ix_prepaid_reminder_account", "account_id", "id"),
)

dunning_batch = sa.Table(
    "prepaid_dunning_batch",
    metadata,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    sa.Column("batch_no", sa.String(64), nullable=False),
    sa.Column("area", sa.String(24), nullable=False),
    sa.Column("created_at", sa.DateTime(), nullable=False),
    sa.Column("created_by", sa.String(32), nullable=False),
    sa.Column("records", sa.Integer(), nullable=False),
    sa.Column("sms", sa.Integer(), nullable=False),
    sa.Column("paper", sa.Integer(), nullable=False),
    sa.Column("manual", sa.Integer(), nullable=False),
    sa.Column("printed_at", sa.DateTime(), nullable=True),
    sa.Column("notice_file", sa.String(255), nullable=True),
    sa.UniqueConstraint("batch_no", name="uq_prepaid_dunning_batch_no"),
    sa.Index("ix_prepaid_dunning_batch_area", "area", "created_at"),
)

dunning = sa.Table(
    "prepaid_dunning",
    metadata,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    sa.Column(
        "batch_id",
        _ID,
        sa.ForeignKey("prepaid_dunning_batch.id", name="fk_prepaid_dunning_batch"),
        nullable=False,
    ),
    _account(),
    sa.Column("customer_no", sa.String(20), nullable=False),
    sa.Column("balance_fen", sa.BigInteger(), nullable=False),
    sa.Column("threshold_fen", sa.BigInteger(), nullable=False),
    sa.Column("amount_due_fen", sa.BigInteger(), nullable=False),
    sa.Column("pay_by", sa.DateTime(), nullable=False),
    sa.Column("method", sa.String(8), nullable=False),
    sa.Column("phone_problem", sa.String(128), nullable=True),
    sa.Column("message_id", sa.Integer(), nullable=True),
    sa.Column("created_at", sa.DateTime(), nullable=False),
    sa.Column("closed_at", sa.DateTime(), nullable=True),
    sa.Column("closed_balance_fen", sa.BigInteger(), nullable=True),
    sa.CheckConstraint("method IN ('sms', 'paper', 'manual')", name="ck_prepaid_dunning_method"),
    sa.Index(
        "ux_prepaid_dunning_open",
        "account_id",
        unique=True,
        sqlite_where=_OPEN,
        postgresql_where=_OPEN,
    ),
    sa.Index("ix_prepaid_dunning_batch", "batch_id", "id"),
    sa.Index("ix_prepaid_dunning_due", "pay_by", sqlite_where=_OPEN, postgresql_where=_OPEN),
)

tier_notice = sa.Table(
    "prepaid_tier_notice",
    metadata,
    sa.Column("account_id", sa.Integer(), sa.ForeignKey("prepaid_account.id"), primary_key=True),
    sa.Column("cycle_start", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column("tier", sa.SmallInteger(), primary_key=True, autoincrement=False),
    sa.Column("cycle_end", sa.Integer(), nullable=False),
    sa.Column("period_start", sa.Integer(), nullable=False),
    sa.Column("usage_ckwh", sa.BigInteger(), nullable=False),
    sa.Column("price_e4", sa.Integer(), nullable=False),
    sa.Column("message_id", sa.Integer(), nullable=True),
    sa.Column("created_at", sa.DateTime(), nullable=False),
)

monthly_bill = sa.Table(
    "prepaid_monthly_bill",
    metadata,
    sa.Column("account_id", sa.Integer(), sa.ForeignKey("prepaid_account.id"), primary_key=True),
    sa.Column("month", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column("last_reading_ckwh", sa.BigInteger(), nullable=False),
    sa.Column("this_reading_ckwh", sa.BigInteger(), nullable=False),
    sa.Column("usage_ckwh", sa.BigInteger(), nullable=False),
    sa.Column("charge_fen", sa.BigInteger(), nullable=False),
    sa.Column("balance_fen", sa.BigInteger(), nullable=False),
    sa.Column("message_id", sa.Integer(), nullable=True),
    sa.Column("created_at", sa.DateTime(), nullable=False),
    sa.Index("ix_prepaid_monthly_bill_month", "month"),
)

sms_campaign = sa.Table(
    "prepaid_sms_campaign",
    metadata,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    sa.Column("created_at", sa.DateTime(), nullable=False),
    sa.Column("created_by", sa.String(32), nullable=False),
    sa.Column("text", sa.Text(), nullable=False),
    sa.Column("selection", sa.Text(), nullable=False),
    sa.Column("recipients", sa.Integer(), nullable=False),
    sa.Column("queued", sa.Integer(), nullable=False),
    sa.Column("invalid", sa.Integer(), nullable=False),
    sa.Column("skipped_paper", sa.Integer(), nullable=False),
)

anomaly_order = sa.Table(
    "prepaid_anomaly_order",
    metadata,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    _account(),
    sa.Column("meter_address", sa.String(12), nullable=False),
    sa.Column("gap_start", sa.Integer(), nullable=False),
    sa.Column("found_day", sa.Integer(), nullable=False),
    sa.Column("missing_days", sa.Integer(), nullable=False),
    sa.Column("work_order_id", sa.Integer(), nullable=True),
    sa.Column("work_order_no", sa.String(40), nullable=True),
    sa.Column("created_at", sa.DateTime(), nullable=False),
    sa.UniqueConstraint("account_id", "gap_start", name="uq_prepaid_anomaly_order_gap"),
    sa.Index("ix_prepaid_anomaly_order_wo", "work_order_id"),
)
