"""The settings tables (SQLAlchemy Core on the prepaid metadata; Alembic branch ``settings``).

- ``prepaid_setting``: one row per value set in the database, keyed (level, scope key,
  name); the scope key is a feeder-line code, a transformer-area code, a customer
  number, or ``""`` for the default level. ``value`` is the canonical text of the value
  (money in integer fen, durations in seconds), so SQL can cast it.
- ``prepaid_setting_change``: the history of every change (set or removed), never
  updated: who, when (the shared clock), old and new value, comment.

Keys are codes, not foreign keys: a line's or area's settings may be written before
its accounts are loaded, and survive their reload.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import SQLModel

__all__ = ["setting", "setting_change"]

metadata = SQLModel.metadata
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

setting = sa.Table(
    "prepaid_setting",
    metadata,
    sa.Column("level", sa.String(16), primary_key=True),
    sa.Column("scope_key", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(255), nullable=False),
    sa.Column("updated_at", sa.DateTime(), nullable=False),
    sa.Column("updated_by", sa.String(64), nullable=False),
    sa.CheckConstraint(
        "level IN ('default', 'line', 'area', 'customer')", name="ck_prepaid_setting_level"
    ),
    sa.Index("ix_prepaid_setting_name", "name", "level"),
)

setting_change = sa.Table(
    "prepaid_setting_change",
    metadata,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    sa.Column("at", sa.DateTime(), nullable=False),
    sa.Column("level", sa.String(16), nullable=False),
    sa.Column("scope_key", sa.String(64), nullable=False),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("old_value", sa.String(255), nullable=True),
    sa.Column("new_value", sa.String(255), nullable=True),
    sa.Column("changed_by", sa.String(64), nullable=False),
    sa.Column("comment", sa.Text(), nullable=False, server_default=""),
    sa.Index("ix_prepaid_setting_change_scope", "level", "scope_key", "name"),
    sa.Index("ix_prepaid_setting_change_at", "at"),
)
