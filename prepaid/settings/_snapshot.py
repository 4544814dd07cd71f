"""Resolution in memory: the defaults plus every override, read once.

A :class:`SettingsSnapshot` answers any number of lookups without the database. The
overrides are few (lines: thousands, areas: a few hundred thousand, customers with a
setting of their own: some), so a snapshot of a province fits in memory; resolving
millions of accounts then costs one dictionary lookup per account and one resolution
per (line, area) group (:meth:`SettingsSnapshot.resolve_column`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ._catalog import CATALOG, Level, spec_of
from ._defaults import Defaults
from ._model import EffectiveSettings, Resolved, Scope, Source

__all__ = ["Override", "SettingsSnapshot"]

_MISSING: Any = object()

Override = tuple[Level, str, str, Any]
"""(level, key, setting name, value): one value set in the database."""


class SettingsSnapshot:
    """The defaults and every override (or those of some settings), resolved in memory."""

    def __init__(self, defaults: Defaults, overrides: Iterable[Override] = ()) -> None:
        self.defaults = defaults
        self._default: dict[str, Resolved] = {n: defaults.resolved(n) for n in CATALOG}
        self._by_name: dict[str, dict[Level, dict[str, Any]]] = {
            name: {Level.LINE: {}, Level.AREA: {}, Level.CUSTOMER: {}} for name in CATALOG
        }
        for level, key, name, value in overrides:
            if level is Level.DEFAULT:
                self._default[name] = Resolved(CATALOG[name], value, Source(Level.DEFAULT))
            else:
                self._by_name[name][level][key] = value

    # -- one scope ---------------------------------------------------------------------

    def lookup(self, name: str, scope: Scope) -> Resolved:
        """The value of ``name`` in force at ``scope``, and where it comes from."""
        spec = spec_of(name)
        levels = self._by_name[spec.name]
        for level, key in scope.chain():
            value = levels[level].get(key, _MISSING)
            if value is not _MISSING:
                return Resolved(spec, value, Source(level, key))
        return self._default[spec.name]

    def resolve(self, scope: Scope) -> EffectiveSettings:
        """Every setting in force at ``scope``."""
        return EffectiveSettings.from_resolved(
            scope, {name: self.lookup(name, scope) for name in CATALOG}
        )

    def resolved_all(self, scope: Scope) -> dict[str, Resolved]:
        return {name: self.lookup(name, scope) for name in CATALOG}

    # -- many accounts -----------------------------------------------------------------

    def default_value(self, name: str) -> Any:
        return self._default[spec_of(name).name].value

    def overrides_at(self, name: str, level: Level) -> Mapping[str, Any]:
        """``{key: value}`` of ``name`` set at ``level`` (read-only view)."""
        if level is Level.DEFAULT:
            resolved = self._default[spec_of(name).name]
            return {} if resolved.source.file else {"": resolved.value}
        return self._by_name[spec_of(name).name][level]

    def group_value(self, name: str, line: str | None, area: str | None) -> Any:
        """The value for the accounts of (line, area) that have no customer override."""
        levels = self._by_name[spec_of(name).name]
        if area:
            value = levels[Level.AREA].get(area, _MISSING)
            if value is not _MISSING:
                return value
        if line:
            value = levels[Level.LINE].get(line, _MISSING)
            if value is not _MISSING:
                return value
        return self._default[spec_of(name).name].value

    def resolve_groups(
        self, name: str, groups: Iterable[tuple[str | None, str | None]]
    ) -> dict[tuple[str | None, str | None], Any]:
        """``{(line, area): value}`` for each group (before customer overrides)."""
        return {(line, area): self.group_value(name, line, area) for line, area in groups}

    def resolve_column(
        self,
        name: str,
        lines: Sequence[str | None],
        areas: Sequence[str | None],
        customers: Sequence[str | None],
    ) -> list[Any]:
        """The value of ``name`` for each account given as three parallel columns.

        Set-based: each distinct (line, area) is resolved once, then customer
        overrides are applied by one dictionary lookup per account. Equal, account by
        account, to :meth:`lookup` with ``Scope(line, area, customer)``.
        """
        if not len(lines) == len(areas) == len(customers):
            raise ValueError(
                f"resolve_column wants columns of one length, got {len(lines)} lines, "
                f"{len(areas)} areas, {len(customers)} customers"
            )
        spec = spec_of(name)
        per_customer = self._by_name[spec.name][Level.CUSTOMER]
        groups: dict[tuple[str | None, str | None], Any] = {}
        out: list[Any] = []
        append = out.append
        missing = _MISSING
        for line, area, customer in zip(lines, areas, customers, strict=True):
            value = per_customer.get(customer, missing) if per_customer and customer else missing
            if value is missing:
                key = (line, area)
                value = groups.get(key, missing)
                if value is missing:
                    value = groups[key] = self.group_value(spec.name, line, area)
            append(value)
        return out
