"""Where a line, area or customer sits: its parents in the hierarchy and its supply unit.

The settings store asks a :class:`ScopeDirectory` to complete a scope (a customer's
area and line) and to find the supply unit an operator must work for.
:class:`AccountsDirectory` reads the accounts tables (``prepaid_account``,
``prepaid_transformer_area``, ``prepaid_feeder_line``, ``prepaid_supply_unit``);
:class:`OpenDirectory` knows nothing and accepts any key (tests, or settings written
before the accounts are loaded).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ._catalog import Level
from ._errors import SettingsError
from ._model import Scope

__all__ = [
    "ACCOUNT_TABLES",
    "AccountsDirectory",
    "OpenDirectory",
    "Placement",
    "ScopeDirectory",
    "UnknownScopeError",
]


class UnknownScopeError(SettingsError, LookupError):
    """A line, area or customer the accounts do not know."""


@dataclass(frozen=True, slots=True)
class Placement:
    """A level's key placed in the hierarchy: its full scope and its supply unit."""

    scope: Scope
    supply_unit: str | None = None


class ScopeDirectory(Protocol):
    def place(self, level: Level, key: str | None) -> Placement:
        """The scope (with parents) and supply unit of ``key`` at ``level``."""
        ...

    def place_many(self, level: Level, keys: Sequence[str]) -> dict[str, Placement]:
        """:meth:`place` for many keys at once; keys it does not know are left out."""
        ...


def _alone(level: Level, key: str | None) -> Scope:
    if level is Level.LINE:
        return Scope(line=key)
    if level is Level.AREA:
        return Scope(area=key)
    if level is Level.CUSTOMER:
        return Scope(customer=key)
    return Scope()


class OpenDirectory:
    """Knows no parents and no supply units; every key is accepted as it is."""

    def place(self, level: Level, key: str | None) -> Placement:
        return Placement(_alone(level, key))

    def place_many(self, level: Level, keys: Sequence[str]) -> dict[str, Placement]:
        return {key: Placement(_alone(level, key)) for key in keys}


_unit = sa.table("prepaid_supply_unit", sa.column("id"), sa.column("code"))
_line = sa.table(
    "prepaid_feeder_line", sa.column("id"), sa.column("code"), sa.column("supply_unit_id")
)
_area = sa.table(
    "prepaid_transformer_area", sa.column("id"), sa.column("code"), sa.column("feeder_line_id")
)
_account = sa.table(
    "prepaid_account",
    sa.column("id"),
    sa.column("customer_no"),
    sa.column("supply_unit_id"),
    sa.column("feeder_line_id"),
    sa.column("transformer_area_id"),
)


ACCOUNT_TABLES = (_account, _area, _line, _unit)
"""Light views of the accounts tables (account, area, line, unit) for set-based queries."""


class AccountsDirectory:
    """Places keys using the accounts tables; an unknown key is refused (a typo, usually)."""

    _CHUNK = 500

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @staticmethod
    def _query(level: Level) -> tuple[sa.Select[Any], Any]:
        """(query of key, line, area, unit; the key column) for one level."""
        if level is Level.LINE:
            query = sa.select(
                _line.c.code.label("key"),
                _line.c.code.label("line"),
                sa.null().label("area"),
                _unit.c.code.label("unit"),
            ).select_from(_line.join(_unit, _unit.c.id == _line.c.supply_unit_id))
            return query, _line.c.code
        if level is Level.AREA:
            query = sa.select(
                _area.c.code.label("key"),
                _line.c.code.label("line"),
                _area.c.code.label("area"),
                _unit.c.code.label("unit"),
            ).select_from(
                _area.join(_line, _line.c.id == _area.c.feeder_line_id).join(
                    _unit, _unit.c.id == _line.c.supply_unit_id
                )
            )
            return query, _area.c.code
        area = _area.alias("a")
        own_line = _line.alias("l1")
        area_line = _line.alias("l2")
        query = sa.select(
            _account.c.customer_no.label("key"),
            sa.func.coalesce(own_line.c.code, area_line.c.code).label("line"),
            area.c.code.label("area"),
            _unit.c.code.label("unit"),
        ).select_from(
            _account.join(_unit, _unit.c.id == _account.c.supply_unit_id)
            .outerjoin(area, area.c.id == _account.c.transformer_area_id)
            .outerjoin(own_line, own_line.c.id == _account.c.feeder_line_id)
            .outerjoin(area_line, area_line.c.id == area.c.feeder_line_id)
        )
        return query, _account.c.customer_no

    def place_many(self, level: Level, keys: Sequence[str]) -> dict[str, Placement]:
        if level is Level.DEFAULT:
            return {key: Placement(Scope()) for key in keys}
        query, column = self._query(level)
        out: dict[str, Placement] = {}
        wanted = list(dict.fromkeys(keys))
        with self.engine.connect() as conn:
            for i in range(0, len(wanted), self._CHUNK):
                for row in conn.execute(query.where(column.in_(wanted[i : i + self._CHUNK]))):
                    scope = Scope(
                        line=row.line,
                        area=row.area,
                        customer=row.key if level is Level.CUSTOMER else None,
                    )
                    out[row.key] = Placement(scope, row.unit)
        return out

    def place(self, level: Level, key: str | None) -> Placement:
        if level is Level.DEFAULT or not key:
            return Placement(Scope())
        found = self.place_many(level, [key]).get(key)
        if found is None:
            what = {
                Level.LINE: "feeder line",
                Level.AREA: "transformer area",
                Level.CUSTOMER: "customer",
            }[level]
            raise UnknownScopeError(
                f"no {what} {key!r} in the accounts: check the {level.value} code "
                "(feikong settings takes codes as the accounts have them)"
            )
        return found
