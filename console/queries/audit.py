"""The audit log (审计日志) for the console: a page at a time, filtered by actor, action and
target (exact, or a prefix ending in ``*``), newest first."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from prepaid.audit import AuditEntry, audit_table
from prepaid.audit import _entry as _audit_entry  # the log's own row mapping

from ._paging import PAGE_SIZE, Page, page_of

__all__ = ["audit_page"]


def audit_page(
    engine: Engine,
    *,
    actor: str = "",
    action: str = "",
    target: str = "",
    before: int | None = None,
    size: int = PAGE_SIZE,
) -> Page[AuditEntry]:
    """One page of audit entries matching the filters (empty: any), newest first."""
    query = sa.select(audit_table)
    if actor.strip():
        query = query.where(audit_table.c.actor == actor.strip())
    for column, pattern in ((audit_table.c.action, action), (audit_table.c.target, target)):
        pattern = pattern.strip()
        if pattern.endswith("*"):
            prefix = pattern[:-1]
            query = query.where(sa.func.substr(column, 1, len(prefix)) == prefix)
        elif pattern:
            query = query.where(column == pattern)
    if before is not None:
        query = query.where(audit_table.c.id < before)
    query = query.order_by(audit_table.c.id.desc()).limit(size + 1)
    with engine.connect() as conn:
        rows = [_audit_entry(r) for r in conn.execute(query)]
    return page_of(rows, [r.id for r in rows], before, size)
