"""Settings hierarchy, operators and roles, and the audit log (branch ``settings``).

Revision ID: s0001
Revises:
Create Date: 2026-11-28 05:00:00

The audit log and the settings history are append-only: triggers refuse UPDATE and
DELETE on them (and TRUNCATE on PostgreSQL). The audit chain head starts at entry 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "s0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("settings",)
depends_on: str | Sequence[str] | None = None

_ = (sa, sqlmodel)

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_GENESIS = "0" * 64
_APPEND_ONLY = ("prepaid_audit", "prepaid_setting_change")
_ROLES = (
    "operator",
    "approver-l1",
    "approver-l2",
    "fault-handler",
    "customer-service",
    "admin",
    "auditor",
)


def _append_only(table: str) -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: rows are never "
                f"changed or deleted'); END"
            )
    elif dialect == "postgresql":
        op.execute(
            f"CREATE FUNCTION {table}_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
            f"BEGIN RAISE EXCEPTION '{table} is append-only: rows are never changed or "
            f"deleted'; END $$"
        )
        op.execute(
            f"CREATE TRIGGER {table}_no_change BEFORE UPDATE OR DELETE ON {table} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {table}_append_only()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {table}_append_only()"
        )


def _drop_append_only(table: str) -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for verb in ("update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_{verb}")
    elif dialect == "postgresql":
        op.execute(f"DROP TRIGGER IF EXISTS {table}_no_change ON {table}")
        op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
        op.execute(f"DROP FUNCTION IF EXISTS {table}_append_only()")


def upgrade() -> None:
    op.create_table(
        "prepaid_setting",
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("scope_key", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=255), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("updated_by", sa.String(length=64), nullable=False),
        sa.CheckConstraint(
            "level IN ('default', 'line', 'area', 'customer')", name="ck_prepaid_setting_level"
        ),
        sa.PrimaryKeyConstraint("level", "scope_key", "name"),
    )
    op.create_index("ix_prepaid_setting_name", "prepaid_setting", ["name", "level"])
    op.create_table(
        "prepaid_setting_change",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("scope_key", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("old_value", sa.String(length=255), nullable=True),
        sa.Column("new_value", sa.String(length=255), nullable=True),
        sa.Column("changed_by", sa.String(length=64), nullable=False),
        sa.Column("comment", sa.Text(), server_default="", nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_prepaid_setting_change_scope",
        "prepaid_setting_change",
        ["level", "scope_key", "name"],
    )
    op.create_index("ix_prepaid_setting_change_at", "prepaid_setting_change", ["at"])
    op.create_table(
        "prepaid_operator",
        sa.Column("login", sa.String(length=32), nullable=False),
        sa.Column("display_name", sa.String(length=64), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("supply_unit", sa.String(length=16), nullable=True),
        sa.Column("disabled", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("last_login_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("login"),
    )
    op.create_table(
        "prepaid_operator_role",
        sa.Column("login", sa.String(length=32), nullable=False),
        sa.Column("role", sa.String(length=24), nullable=False),
        sa.CheckConstraint(
            "role IN (" + ", ".join(f"'{r}'" for r in _ROLES) + ")",
            name="ck_prepaid_operator_role_role",
        ),
        sa.ForeignKeyConstraint(
            ["login"], ["prepaid_operator.login"], name="fk_prepaid_operator_role_login"
        ),
        sa.PrimaryKeyConstraint("login", "role"),
    )
    op.create_table(
        "prepaid_audit",
        sa.Column("id", _ID, autoincrement=False, nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("target", sa.String(length=200), nullable=False),
        sa.Column("details", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_prepaid_audit_actor", "prepaid_audit", ["actor", "at"])
    op.create_index("ix_prepaid_audit_target", "prepaid_audit", ["target", "at"])
    op.create_index("ix_prepaid_audit_action", "prepaid_audit", ["action", "at"])
    op.create_index("ix_prepaid_audit_at", "prepaid_audit", ["at"])
    head = op.create_table(
        "prepaid_audit_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last_id", sa.BigInteger(), nullable=False),
        sa.Column("last_hash", sa.String(length=64), nullable=False),
        sa.CheckConstraint("id = 1", name="ck_prepaid_audit_head_single"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.bulk_insert(head, [{"id": 1, "last_id": 0, "last_hash": _GENESIS}])
    for table in _APPEND_ONLY:
        _append_only(table)


def downgrade() -> None:
    for table in _APPEND_ONLY:
        _drop_append_only(table)
    op.drop_table("prepaid_audit_head")
    op.drop_index("ix_prepaid_audit_at", table_name="prepaid_audit")
    op.drop_index("ix_prepaid_audit_action", table_name="prepaid_audit")
    op.drop_index("ix_prepaid_audit_target", table_name="prepaid_audit")
    op.drop_index("ix_prepaid_audit_actor", table_name="prepaid_audit")
    op.drop_table("prepaid_audit")
    op.drop_table("prepaid_operator_role")
    op.drop_table("prepaid_operator")
    op.drop_index("ix_prepaid_setting_change_at", table_name="prepaid_setting_change")
    op.drop_index("ix_prepaid_setting_change_scope", table_name="prepaid_setting_change")
    op.drop_table("prepaid_setting_change")
    op.drop_index("ix_prepaid_setting_name", table_name="prepaid_setting")
    op.drop_table("prepaid_setting")
