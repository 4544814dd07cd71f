"""Indexes for the operator console's customer search by name and phone (branch ``console``).

Revision ID: o0001
Revises:
Create Date: 2026-11-28 11:40:00

The console finds customers among 15 million accounts by name or phone prefix, one
page at a time, ordered by (name, id) / (phone, id): without these indexes every
search would read the whole account table. On PostgreSQL the name and phone are
indexed in the "C" collation (byte order), which the console's prefix ranges use.
Customer number, meter and transformer area have their indexes already (branch
``accounts``).
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "o0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("console",)
depends_on: str | Sequence[str] | None = ("a0001",)

_INDEXES = (("ix_prepaid_account_name", "name"), ("ix_prepaid_account_phone", "phone"))


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for name, column in _INDEXES:
        if postgres:
            op.execute(f'CREATE INDEX {name} ON prepaid_account ({column} COLLATE "C", id)')
        else:
            op.create_index(name, "prepaid_account", [column, "id"])


def downgrade() -> None:
    for name, _ in _INDEXES:
        op.drop_index(name, table_name="prepaid_account")
