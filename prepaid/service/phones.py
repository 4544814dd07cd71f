"""Invalid phone numbers (无效号码查询): which customers cannot get an SMS, and why.

The accounts' numbers are checked with :func:`prepaid.messages.check_phone` (too
short, too long, letters, other characters, empty, a prefix that is not a mainland
mobile's 13–19). The database first drops every number already written as 11 clean
digits starting 13–19 (SQLite ``GLOB``, PostgreSQL ``~``), so only the few others are
read and classified in Python; the list is exported as CSV (UTF-8 with BOM for
Excel) by :func:`export_invalid_phones`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.sql.elements import ColumnElement

from ..messages import PhoneCheck, Recipient, check_phone, export_invalid_csv
from ..settings import SettingsStore
from ._population import FETCH_CHUNK, Population, Selection, chunks

__all__ = ["InvalidPhone", "export_invalid_phones", "invalid_phones", "problem_counts"]

_CLEAN_SQLITE: Final = "1[3-9]" + "[0-9]" * 9
_CLEAN_PG: Final = "^1[3-9][0-9]{9}$"


@dataclass(frozen=True, slots=True)
class InvalidPhone:
    """A customer whose phone number cannot receive an SMS, and what is wrong with it."""

    recipient: Recipient
    check: PhoneCheck
    supply_unit: str
    line: str

    def to_dict(self) -> dict[str, Any]:
        r = self.recipient
        return {
            "customer_no": r.customer_no,
            "name": r.name,
            "phone": self.check.raw,
            "problem": self.check.problem.value if self.check.problem else None,
            "detail": self.check.detail,
            "address": r.address,
            "area": r.area,
            "line": self.line,
            "supply_unit": self.supply_unit,
        }


def _clean(column: ColumnElement[Any], dialect: str) -> ColumnElement[bool]:
    if dialect == "postgresql":
        return column.op("~", is_comparison=True)(_CLEAN_PG)
    return column.op("GLOB", is_comparison=True)(_CLEAN_SQLITE)


def invalid_phones(
    engine: Engine,
    *,
    settings: SettingsStore,
    selection: Selection | None = None,
    active_only: bool = True,
) -> Iterator[InvalidPhone]:
    """Every chosen account whose phone cannot get an SMS, in account order (streamed)."""
    pop = Population(settings)
    a = pop.account
    statement = (
        sa.select(
            a.c.customer_no,
            a.c.name,
            a.c.phone,
            a.c.address,
            sa.func.coalesce(pop.area, "").label("area"),
            sa.func.coalesce(pop.line, "").label("line"),
            pop.unit_t.c.code.label("unit"),
        )
        .select_from(pop.from_(state=False))
        .where(
            sa.not_(_clean(sa.func.coalesce(a.c.phone, ""), engine.dialect.name)),
            pop.chosen(selection),
        )
        .order_by(a.c.id)
    )
    if active_only:
        statement = statement.where(a.c.active.is_(True))
    with engine.connect() as connection:
        for rows in chunks(connection, statement, FETCH_CHUNK):
            for r in rows:
                check = check_phone(r.phone)
                if check.valid:  # spaces, +86 …: usable as they are
                    continue
                yield InvalidPhone(
                    Recipient(r.customer_no, r.name, r.phone, r.address, r.area),
                    check,
                    r.unit,
                    r.line,
                )


def problem_counts(found: list[InvalidPhone]) -> dict[str, int]:
    """How many invalid numbers of each problem (empty, too-short, letters, …)."""
    return dict(Counter(p.check.problem.value for p in found if p.check.problem))


def export_invalid_phones(found: list[InvalidPhone], path: Path) -> int:
    """Write the list as CSV (customer_no, name, phone, problem, detail, address, area)."""
    return export_invalid_csv(((p.recipient, p.check) for p in found), path)
