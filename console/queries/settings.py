"""The settings hierarchy (费控参数) and the power-guarantee registry (保电登记) for the console.

Values are resolved and changed through :class:`prepaid.settings.SettingsStore`
(validation, consistency, role and audit there); every value shown says where it
comes from (:class:`prepaid.settings.Source`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from prepaid.settings import AccountsDirectory, Level, Resolved, Scope, SettingsStore

from ..context import ConsoleContext

__all__ = [
    "GUARANTEE",
    "GuaranteeEntry",
    "guarantee_registry",
    "resolved_at",
    "scope_of",
    "settings_store",
]

GUARANTEE: Final = "power_guarantee"

_ACCOUNT = sa.table(
    "prepaid_account",
    sa.column("customer_no"),
    sa.column("name"),
    sa.column("power_guarantee"),
    sa.column("active"),
)


def settings_store(ctx: ConsoleContext) -> SettingsStore:
    """The settings of the console's database (codes placed by the accounts)."""
    return SettingsStore(ctx.engine, clock=ctx.clock, directory=AccountsDirectory(ctx.engine))


def scope_of(level: Level, key: str) -> Scope:
    """The scope a level and code name: ``(AREA, "A1")`` → ``Scope(area="A1")``."""
    key = key.strip()
    if level is Level.DEFAULT:
        return Scope()
    if not key:
        raise ValueError(f"give the {level.value}'s code to show its settings")
    if level is Level.LINE:
        return Scope(line=key)
    if level is Level.AREA:
        return Scope(area=key)
    return Scope(customer=key)


def resolved_at(store: SettingsStore, scope: Scope) -> tuple[Scope, list[Resolved]]:
    """Every setting in force at ``scope`` (parents completed), in catalog order."""
    effective = store.resolve(scope)
    return effective.scope, list(effective.resolved())


@dataclass(frozen=True, slots=True)
class GuaranteeEntry:
    """A place under power guarantee: a line, area or customer set in the settings, or a
    customer whose account record says so (``level`` ``"account"``, changed in the CIS)."""

    level: str
    key: str
    set_by: str
    set_at: datetime | None

    @property
    def removable(self) -> bool:
        return self.level != "account"


def guarantee_registry(
    store: SettingsStore, engine: Engine, *, limit: int = 1000
) -> list[GuaranteeEntry]:
    """Every line, area and customer under power guarantee, then the flagged accounts."""
    entries = [
        GuaranteeEntry(s.level.value, s.key or "-", s.updated_by, s.updated_at)
        for s in store.overrides(name=GUARANTEE)
        if s.value is True
    ]
    rank = {lv.value: lv.rank for lv in Level}
    entries.sort(key=lambda e: (rank.get(e.level, 9), e.key))
    query = (
        sa.select(_ACCOUNT.c.customer_no)
        .where(_ACCOUNT.c.power_guarantee.is_(True), _ACCOUNT.c.active.is_(True))
        .order_by(_ACCOUNT.c.customer_no)
        .limit(limit)
    )
    with engine.connect() as conn:
        entries += [
            GuaranteeEntry("account", str(c), "CIS", None) for c in conn.execute(query).scalars()
        ]
    return entries
