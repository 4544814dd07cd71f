"""PostgreSQL: room in the rating-state pages for in-place (HOT) daily updates.

Every account's state row is rewritten once a day. With pages 80 % full, PostgreSQL
writes the new row version on the same page and skips the primary-key index (a
heap-only tuple update): the daily rating writes less. Other databases: nothing.

Revision ID: a0002
Revises: a0001
Create Date: 2026-11-28 05:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "a0002"
down_revision: str | Sequence[str] | None = "a0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ = (sa, sqlmodel)

_TABLES = ("prepaid_rating_state", "prepaid_rating_tou")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in _TABLES:
        op.execute(f"ALTER TABLE {table} SET (fillfactor = 80)")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in _TABLES:
        op.execute(f"ALTER TABLE {table} RESET (fillfactor)")
