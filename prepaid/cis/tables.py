"""The built-in ledger's tables (``prepaid_cis_*``), as SQLAlchemy Core.

- ``prepaid_cis_account``: one row per CIS account — its balance in fen. It is the
  running total of the account's movements (:meth:`LedgerCis.audit` checks that), and
  the CIS balance the real-time balance is computed from.
- ``prepaid_cis_movement``: one row per movement of money (账户流水): payments (+),
  refunds (−), settled charges (−). ``(kind, operation_id)`` is unique: a payment id is
  credited once.
- ``prepaid_cis_rejection``: every refused operation (mismatched duplicate, refund over
  the balance, bad CSV row) with the reason, for the operators and the audit.
- ``prepaid_cis_settled``: per platform account (``prepaid_account.id``), through which
  day (a day number, as in ``prepaid_charge.day``) its charges are settled into the
  CIS, and how much that was in total.
- ``prepaid_cis_posted``: the payments and refunds already added to the rating state's
  copy of the real-time balance (``prepaid_rating_state.balance_fen``), once each, so
  a retry after a crash between the CIS and the platform adds nothing twice.

The tables sit in the prepaid package's metadata (``SQLModel.metadata``) so that
Alembic's autogenerate sees them; the schema is created by the branch ``cis`` of
``prepaid/migrations``.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import SQLModel

from prepaid import models as _models  # prepaid_account, which prepaid_cis_settled references

__all__ = ["account", "metadata", "movement", "posted", "rejection", "settled"]

metadata = SQLModel.metadata
_ = _models

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

account = sa.Table(
    "prepaid_cis_account",
    metadata,
    sa.Column("account_no", sa.String(32), primary_key=True),
    sa.Column("balance_fen", sa.BigInteger(), nullable=False),
    sa.Column("updated_at", sa.DateTime(), nullable=False),
)

movement = sa.Table(
    "prepaid_cis_movement",
    metadata,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    sa.Column(
        "account_no",
        sa.String(32),
        sa.ForeignKey("prepaid_cis_account.account_no", name="fk_prepaid_cis_movement_account"),
        nullable=False,
    ),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("operation_id", sa.String(64), nullable=False),
    sa.Column("amount_fen", sa.BigInteger(), nullable=False),
    sa.Column("balance_after_fen", sa.BigInteger(), nullable=False),
    sa.Column("occurred_at", sa.DateTime(), nullable=False),
    sa.Column("recorded_at", sa.DateTime(), nullable=False),
    sa.Column("source", sa.String(128), nullable=False),
    sa.UniqueConstraint("kind", "operation_id", name="uq_prepaid_cis_movement_operation"),
    sa.CheckConstraint(
        "kind IN ('payment', 'refund', 'settlement', 'opening')",
        name="ck_prepaid_cis_movement_kind",
    ),
    sa.CheckConstraint(
        "(kind = 'payment' AND amount_fen > 0) OR (kind = 'refund' AND amount_fen < 0) "
        "OR kind IN ('settlement', 'opening')",
        name="ck_prepaid_cis_movement_sign",
    ),
    sa.Index("ix_prepaid_cis_movement_account", "account_no", "id"),
)

rejection = sa.Table(
    "prepaid_cis_rejection",
    metadata,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    sa.Column("at", sa.DateTime(), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("operation_id", sa.String(64), nullable=True),
    sa.Column("account_no", sa.String(32), nullable=True),
    sa.Column("amount_fen", sa.BigInteger(), nullable=True),
    sa.Column("reason", sa.String(500), nullable=False),
    sa.Column("source", sa.String(128), nullable=False),
    sa.Index("ix_prepaid_cis_rejection_at", "at"),
)

settled = sa.Table(
    "prepaid_cis_settled",
    metadata,
    sa.Column(
        "account_id",
        sa.Integer(),
        sa.ForeignKey("prepaid_account.id", name="fk_prepaid_cis_settled_account"),
        primary_key=True,
        autoincrement=False,
    ),
    sa.Column("through_day", sa.Integer(), nullable=False),
    sa.Column("settled_fen", sa.BigInteger(), nullable=False),
    sa.Column("updated_at", sa.DateTime(), nullable=False),
)

posted = sa.Table(
    "prepaid_cis_posted",
    metadata,
    sa.Column("kind", sa.String(16), primary_key=True),
    sa.Column("operation_id", sa.String(64), primary_key=True),
    sa.Column(
        "account_id",
        sa.Integer(),
        sa.ForeignKey("prepaid_account.id", name="fk_prepaid_cis_posted_account"),
        nullable=False,
    ),
    sa.Column("amount_fen", sa.BigInteger(), nullable=False),
    sa.Column("posted_at", sa.DateTime(), nullable=False),
    sa.Column("done_at", sa.DateTime(), nullable=True),
)
"""``done_at``: when what follows the posting of a payment was done — the re-rating of its
account and its ``on_payment`` event (for a refund: at once). ``NULL``: posted, but a
crash came before that; the payment's redelivery finishes it (``prepaid.balance``)."""
