"""Payments posted but not followed up (re-rating, event) after a crash (branch ``cis``).

Revision ID: c0003
Revises: c0002
Create Date: 2026-11-29 02:30:00

``prepaid_cis_posted.done_at``: set once a payment's account was re-rated and its
``on_payment`` event sent; a redelivered payment whose posting has none finishes that.
Postings made before this revision are taken as done.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c0003"
down_revision: str | Sequence[str] | None = "c0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("prepaid_cis_posted") as batch:
        batch.add_column(sa.Column("done_at", sa.DateTime(), nullable=True))
    op.execute("UPDATE prepaid_cis_posted SET done_at = posted_at")


def downgrade() -> None:
    with op.batch_alter_table("prepaid_cis_posted") as batch:
        batch.drop_column("done_at")
