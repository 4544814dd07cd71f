"""The outbox (发件箱) and the invalid-number list (无效号码) for the console, read a page at
a time; custom SMS go through :func:`prepaid.service.send_custom_sms` (role, record,
audit there)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from itertools import islice

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from prepaid.messages import MessageStatus
from prepaid.messages.tables import MessageRow
from prepaid.service import InvalidPhone, Selection
from prepaid.service.phones import invalid_phones
from prepaid.settings import SettingsStore

from ._paging import PAGE_SIZE, Page, page_of

__all__ = [
    "OutboxRow",
    "invalid_phone_list",
    "outbox_counts",
    "outbox_page",
    "parse_selection",
]

_M: sa.Table = MessageRow.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """One message as the outbox table shows it."""

    id: int
    created_at: datetime
    kind: str
    customer_no: str
    phone: str
    status: str
    attempts: int
    error: str
    text: str


def outbox_page(
    engine: Engine,
    *,
    status: MessageStatus | None = None,
    kind: str | None = None,
    customer_no: str | None = None,
    before: int | None = None,
    size: int = PAGE_SIZE,
) -> Page[OutboxRow]:
    """One page of stored messages, newest first."""
    query = sa.select(
        _M.c.id,
        _M.c.created_at,
        _M.c.kind,
        _M.c.customer_no,
        _M.c.phone_raw,
        _M.c.status,
        _M.c.attempts,
        _M.c.error,
        _M.c.text,
    )
    if status is not None:
        query = query.where(_M.c.status == status.value)
    if kind:
        query = query.where(_M.c.kind == kind)
    if customer_no:
        query = query.where(_M.c.customer_no == customer_no)
    if before is not None:
        query = query.where(_M.c.id < before)
    query = query.order_by(_M.c.id.desc()).limit(size + 1)
    with engine.connect() as conn:
        rows = [
            OutboxRow(
                int(r.id),
                r.created_at,
                r.kind,
                r.customer_no,
                r.phone_raw or "",
                r.status,
                int(r.attempts),
                r.error or "",
                r.text,
            )
            for r in conn.execute(query)
        ]
    return page_of(rows, [r.id for r in rows], before, size)


def outbox_counts(engine: Engine) -> dict[str, int]:
    """Messages per delivery status."""
    query = sa.select(_M.c.status, sa.func.count()).group_by(_M.c.status)
    with engine.connect() as conn:
        return {str(status): int(n) for status, n in conn.execute(query)}


def invalid_phone_list(
    engine: Engine, settings: SettingsStore, *, limit: int | None = 1000
) -> list[InvalidPhone]:
    """Active customers whose number cannot get an SMS (the first ``limit`` of them)."""
    found: Iterator[InvalidPhone] = invalid_phones(engine, settings=settings)
    return list(found if limit is None else islice(found, limit))


def _codes(text: str) -> list[str]:
    return [c for c in (part.strip() for part in text.replace("，", ",").split(",")) if c]


def parse_selection(
    *, areas: str = "", lines: str = "", units: str = "", customers: str = ""
) -> Selection:
    """The customers a custom SMS goes to, from comma-separated codes (a union)."""
    return Selection.of(
        supply_units=_codes(units),
        lines=_codes(lines),
        areas=_codes(areas),
        customers=_codes(customers),
    )
