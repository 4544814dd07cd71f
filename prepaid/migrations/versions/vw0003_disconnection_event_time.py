"""Disconnection history by time (branch ``workflows``).

Revision ID: w0003
Revises: w0002
Create Date: 2026-11-28 11:45:00

The fee-control overview (``prepaid.statistics``) counts a day's trips and failed trips
from the history: an index on ``at`` keeps that a range scan however long the history.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "w0003"
down_revision: str | Sequence[str] | None = "w0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_prepaid_disconnection_event_at", "prepaid_disconnection_event", ["at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_prepaid_disconnection_event_at", table_name="prepaid_disconnection_event")
