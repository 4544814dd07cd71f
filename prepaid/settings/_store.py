"""The settings store: values set in the database, their history, and resolution."""

from __future__ import annotations

import enum
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql.elements import ColumnElement

from protocol.clock import Clock

from ..audit import AuditLog
from ..users import Action, Operator, PermissionDeniedError, require
from ._catalog import CATALOG, CONSISTENCY, Level, SettingSpec, spec_of
from ._defaults import Defaults, load_defaults
from ._directory import ACCOUNT_TABLES, OpenDirectory, Placement, ScopeDirectory
from ._errors import InconsistentSettingsError, InvalidSettingError, SettingsError
from ._model import EffectiveSettings, Resolved, Scope, consistency_problems, describe
from ._snapshot import Override, SettingsSnapshot
from .tables import setting, setting_change

__all__ = ["ABSENT", "SettingChange", "SettingsStore", "StoredSetting"]

log = logging.getLogger(__name__)


class _Absent(enum.Enum):
    ABSENT = "absent"

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Final = _Absent.ABSENT
"""No value at a level (before a first set, after an unset) in a :class:`SettingChange`."""

_CONSISTENCY_NAMES = frozenset(n for pair in CONSISTENCY for n in pair)


@dataclass(frozen=True, slots=True)
class StoredSetting:
    """A value set in the database at one level and key."""

    spec: SettingSpec
    level: Level
    key: str | None
    value: Any
    updated_at: datetime
    updated_by: str

    @property
    def where(self) -> str:
        return describe(self.level, self.key)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.spec.name,
            "level": self.level.value,
            "key": self.key,
            "value": self.spec.kind.to_json(self.value),
            "text": self.spec.kind.show(self.value),
            "updated_at": self.updated_at.isoformat(),
            "updated_by": self.updated_by,
        }


@dataclass(frozen=True, slots=True)
class SettingChange:
    """One change of a setting (set, changed or removed); ``old``/``new`` :data:`ABSENT`
    when there was no value at that level (``None`` is a value: e.g. no protected hours)."""

    spec: SettingSpec
    level: Level
    key: str | None
    old: Any
    new: Any
    at: datetime
    by: str
    comment: str = ""
    changed: bool = True

    @property
    def where(self) -> str:
        return describe(self.level, self.key)

    def _text(self, value: Any) -> str | None:
        return None if value is ABSENT else self.spec.kind.show(value)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.spec.name,
            "level": self.level.value,
            "key": self.key,
            "old": self._text(self.old),
            "new": self._text(self.new),
            "at": self.at.isoformat(),
            "by": self.by,
            "comment": self.comment,
            "changed": self.changed,
        }


def _level(level: Level | str, name: str, key: str | None) -> Level:
    if isinstance(level, Level):
        return level
    try:
        return Level(str(level).strip().lower())
    except ValueError:
        raise InvalidSettingError(
            name,
            f"{level} {key or ''}".strip(),
            "expected a level: default, line, area or customer",
        ) from None


def _same(old: Any, new: Any) -> bool:
    """No change: both absent, or both present and equal (``None`` is a value)."""
    if old is ABSENT or new is ABSENT:
        return old is new
    return bool(old == new)


def _scope_key(level: Level, key: str | None) -> str:
    return "" if level is Level.DEFAULT else (key or "")


def _merge(given: Scope | None, placed: Scope) -> Scope:
    if given is None:
        return placed
    return Scope(
        line=given.line or placed.line,
        area=given.area or placed.area,
        customer=given.customer or placed.customer,
    )


class SettingsStore:
    """Settings in a prepaid database: resolve them, change them (validated, audited).

    ``defaults`` (default: :func:`load_defaults`) are the values nobody set;
    ``directory`` places lines, areas and customers (parents, supply unit); the
    default, :class:`OpenDirectory`, knows no parents.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        clock: Clock,
        audit: AuditLog | None = None,
        defaults: Defaults | None = None,
        directory: ScopeDirectory | None = None,
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.audit = audit or AuditLog(engine, clock)
        self.defaults = defaults or load_defaults()
        self.directory: ScopeDirectory = directory or OpenDirectory()

    # -- reading ---------------------------------------------------------------------

    @staticmethod
    def _override(row: Any) -> Override:
        spec = CATALOG.get(row.name)
        level = Level(row.level)
        if spec is None:  # a setting removed from the code: ignored, not fatal
            raise KeyError(row.name)
        return (level, row.scope_key, spec.name, spec.kind.load(row.value))

    def _overrides(self, conn: Connection, query: sa.Select[Any]) -> list[Override]:
        out = []
        for row in conn.execute(query):
            try:
                out.append(self._override(row))
            except KeyError:
                continue
        return out

    def snapshot(self, names: Iterable[str] | None = None) -> SettingsSnapshot:
        """Every value set in the database (of ``names``, if given), for lookups in memory."""
        query = sa.select(setting.c.level, setting.c.scope_key, setting.c.name, setting.c.value)
        if names is not None:
            query = query.where(setting.c.name.in_([spec_of(n).name for n in names]))
        with self.engine.connect() as conn:
            return SettingsSnapshot(self.defaults, self._overrides(conn, query))

    def complete(self, scope: Scope) -> Scope:
        """``scope`` with its missing parents filled in from the directory."""
        level = scope.level
        if (
            level in (Level.DEFAULT, Level.LINE)
            or (level is Level.AREA and scope.line)
            or (scope.area and scope.line)
        ):
            return scope
        return _merge(scope, self.directory.place(level, scope.key_at(level)).scope)

    def _scope_snapshot(self, conn: Connection, scope: Scope) -> SettingsSnapshot:
        pairs = [(Level.DEFAULT, ""), *scope.chain()]
        query = sa.select(
            setting.c.level, setting.c.scope_key, setting.c.name, setting.c.value
        ).where(
            sa.or_(
                *(
                    sa.and_(setting.c.level == level.value, setting.c.scope_key == key)
                    for level, key in pairs
                )
            )
        )
        return SettingsSnapshot(self.defaults, self._overrides(conn, query))

    def resolve(self, scope: Scope) -> EffectiveSettings:
        """Every setting in force at ``scope`` (parents completed from the directory)."""
        scope = self.complete(scope)
        with self.engine.connect() as conn:
            return self._scope_snapshot(conn, scope).resolve(scope)

    def lookup(self, name: str, scope: Scope) -> Resolved:
        """One setting in force at ``scope`` and where it comes from."""
        scope = self.complete(scope)
        with self.engine.connect() as conn:
            return self._scope_snapshot(conn, scope).lookup(name, scope)

    def overrides(
        self, *, name: str | None = None, level: Level | None = None, key: str | None = None
    ) -> list[StoredSetting]:
        """Values set in the database, by setting, level and key."""
        query = sa.select(setting).order_by(setting.c.name, setting.c.level, setting.c.scope_key)
        if name:
            query = query.where(setting.c.name == spec_of(name).name)
        if level is not None:
            query = query.where(setting.c.level == level.value)
        if key is not None:
            query = query.where(setting.c.scope_key == key)
        out = []
        with self.engine.connect() as conn:
            for row in conn.execute(query):
                spec = CATALOG.get(row.name)
                if spec is None:
                    continue
                lvl = Level(row.level)
                out.append(
                    StoredSetting(
                        spec,
                        lvl,
                        None if lvl is Level.DEFAULT else row.scope_key,
                        spec.kind.load(row.value),
                        row.updated_at,
                        row.updated_by,
                    )
                )
        return out

    def history(
        self,
        *,
        name: str | None = None,
        level: Level | None = None,
        key: str | None = None,
        limit: int | None = None,
    ) -> list[SettingChange]:
        """Past changes, newest first."""
        query = sa.select(setting_change).order_by(setting_change.c.id.desc())
        if name:
            query = query.where(setting_change.c.name == spec_of(name).name)
        if level is not None:
            query = query.where(setting_change.c.level == level.value)
        if key is not None:
            query = query.where(setting_change.c.scope_key == key)
        if limit is not None:
            query = query.limit(limit)
        out = []
        with self.engine.connect() as conn:
            for row in conn.execute(query):
                spec = CATALOG.get(row.name)
                if spec is None:
                    continue
                lvl = Level(row.level)
                out.append(
                    SettingChange(
                        spec,
                        lvl,
                        None if lvl is Level.DEFAULT else row.scope_key,
                        ABSENT if row.old_value is None else spec.kind.load(row.old_value),
                        ABSENT if row.new_value is None else spec.kind.load(row.new_value),
                        row.at,
                        row.changed_by,
                        row.comment or "",
                    )
                )
        return out

    # -- set-based SQL ---------------------------------------------------------------

    def sql_value(
        self,
        name: str,
        *,
        line: ColumnElement[Any] | None,
        area: ColumnElement[Any] | None,
        customer: ColumnElement[Any] | None,
    ) -> ColumnElement[str]:
        """A SQL expression of the stored text of ``name`` in force for each row.

        ``line``, ``area`` and ``customer`` are the columns (codes) of the query the
        expression goes into, e.g. ``select(account.c.customer_no, store.sql_value(
        "reminder_amount", line=line.c.code, area=area.c.code,
        customer=account.c.customer_no))``. The database resolves it (customer over
        area over line over default) with three primary-key lookups per row; the
        default is read now and bound as a constant.
        """
        spec = spec_of(name)
        default = self.snapshot([spec.name]).default_value(spec.name)
        parts: list[ColumnElement[Any]] = []
        for level, column in ((Level.CUSTOMER, customer), (Level.AREA, area), (Level.LINE, line)):
            if column is None:
                continue
            parts.append(
                sa.select(setting.c.value)
                .where(
                    setting.c.level == level.value,
                    setting.c.scope_key == column,
                    setting.c.name == spec.name,
                )
                .scalar_subquery()
            )
        parts.append(sa.literal(spec.kind.dump(default), sa.String()))
        return sa.func.coalesce(*parts)

    def sql_fen(
        self,
        name: str,
        *,
        line: ColumnElement[Any] | None,
        area: ColumnElement[Any] | None,
        customer: ColumnElement[Any] | None,
    ) -> ColumnElement[int]:
        """:meth:`sql_value` of a money setting, as an integer number of fen."""
        spec = spec_of(name)
        if spec.field.endswith("_fen") is False:
            raise InvalidSettingError(spec.name, "SQL", "not an amount of money; use sql_value")
        return sa.cast(
            self.sql_value(spec.name, line=line, area=area, customer=customer), sa.BigInteger()
        )

    def account_values(self, name: str) -> sa.Select[Any]:
        """``SELECT account_id, value`` of ``name`` for every account (``prepaid_account``).

        Each account's line is its own or its area's. Money settings come as integer
        fen, the others as their stored text. Join it into a bulk statement (e.g. the
        daily rating's) with ``.subquery()`` on ``account_id``.
        """
        spec = spec_of(name)
        account, area, line, _ = ACCOUNT_TABLES
        area_a = area.alias("s_area")
        own_line = line.alias("s_line1")
        area_line = line.alias("s_line2")
        line_code = sa.func.coalesce(own_line.c.code, area_line.c.code)
        if spec.field.endswith("_fen"):
            value: ColumnElement[Any] = self.sql_fen(
                spec.name, line=line_code, area=area_a.c.code, customer=account.c.customer_no
            )
        else:
            value = self.sql_value(
                spec.name, line=line_code, area=area_a.c.code, customer=account.c.customer_no
            )
        return sa.select(account.c.id.label("account_id"), value.label("value")).select_from(
            account.outerjoin(area_a, area_a.c.id == account.c.transformer_area_id)
            .outerjoin(own_line, own_line.c.id == account.c.feeder_line_id)
            .outerjoin(area_line, area_line.c.id == area_a.c.feeder_line_id)
        )

    # -- changing --------------------------------------------------------------------

    def _place(
        self, spec: SettingSpec, level: Level, key: str | None, parents: Scope | None
    ) -> Placement:
        where = describe(level, key)
        if level not in spec.levels:
            allowed = ", ".join(lv.value for lv in Level if lv in spec.levels)
            raise InvalidSettingError(
                spec.name,
                where,
                f"{spec.name} cannot be set per {level.value}; it is set at: {allowed}",
            )
        if level is Level.DEFAULT:
            if key:
                raise InvalidSettingError(
                    spec.name, "default", "the default level takes no key; leave --key out"
                )
            return Placement(Scope())
        if not key or not key.strip() or len(key) > 64:
            raise InvalidSettingError(
                spec.name,
                level.value,
                f"a {level.value} setting needs the {level.value}'s code (--key), 1..64 characters",
            )
        placed = self.directory.place(level, key)
        return Placement(_merge(parents, placed.scope), placed.supply_unit)

    def _authorise(
        self, user: Operator, spec: SettingSpec, level: Level, placement: Placement
    ) -> None:
        action = Action.GUARANTEE if spec.name == "power_guarantee" else Action.EDIT_SETTINGS
        require(user, action, supply_unit=placement.supply_unit)
        if level is Level.DEFAULT and user.supply_unit is not None:
            raise PermissionDeniedError(
                f"{user.login} works for supply unit {user.supply_unit}; the default applies "
                "to every unit and is set by an operator without a unit scope"
            )

    def _check_consistency(
        self,
        conn: Connection,
        changes: list[tuple[SettingSpec, Any]],
        level: Level,
        key: str | None,
        scope: Scope,
    ) -> None:
        changed = [(spec, new) for spec, new in changes if spec.name in _CONSISTENCY_NAMES]
        if not changed:
            return
        rows = self._overrides(
            conn,
            sa.select(setting.c.level, setting.c.scope_key, setting.c.name, setting.c.value).where(
                setting.c.name.in_(sorted(_CONSISTENCY_NAMES))
            ),
        )
        skey = _scope_key(level, key)
        names = {spec.name for spec, _ in changed}
        rows = [r for r in rows if not (r[0] is level and r[1] == skey and r[2] in names)]
        rows += [(level, skey, spec.name, new) for spec, new in changed if new is not ABSENT]
        snap = SettingsSnapshot(self.defaults, rows)
        name = ", ".join(spec.name for spec, _ in changed)
        where = describe(level, key)
        problems = consistency_problems(snap.resolved_all(scope))
        if problems:
            raise InconsistentSettingsError(name, where, problems[0][1])
        # Scopes below this one that have values of their own must stay consistent too.
        seen = {scope}
        for below_level in Level:
            if below_level.rank <= level.rank:
                continue
            keys = sorted({k for lv, k, _, _ in rows if lv is below_level})
            for placed in self.directory.place_many(below_level, keys).values():
                below = placed.scope
                if below in seen or (level is not Level.DEFAULT and below.key_at(level) != key):
                    continue
                seen.add(below)
                problems = consistency_problems(snap.resolved_all(below))
                if problems:
                    raise InconsistentSettingsError(name, where, f"for {below}: {problems[0][1]}")

    def _write(
        self,
        changes: list[tuple[SettingSpec, Any]],
        level: Level,
        key: str | None,
        *,
        user: Operator,
        comment: str,
        parents: Scope | None,
    ) -> list[SettingChange]:
        """Apply ``changes`` (setting, new value or ABSENT) at one level and key, atomically."""
        placement = None
        for spec, _ in changes:
            placement = self._place(spec, level, key, parents)
            self._authorise(user, spec, level, placement)
        assert placement is not None, "no change given"
        skey = _scope_key(level, key)
        now = self.clock.now()
        out: list[SettingChange] = []
        with self.engine.begin() as conn:
            olds: dict[str, Any] = {}
            for spec, _ in changes:
                row = conn.execute(
                    sa.select(setting.c.value).where(
                        setting.c.level == level.value,
                        setting.c.scope_key == skey,
                        setting.c.name == spec.name,
                    )
                ).first()
                olds[spec.name] = ABSENT if row is None else spec.kind.load(row.value)
            effective = [(spec, new) for spec, new in changes if not _same(olds[spec.name], new)]
            self._check_consistency(conn, effective, level, key, placement.scope)
            for spec, new in changes:
                old = olds[spec.name]
                if _same(old, new):
                    out.append(
                        SettingChange(
                            spec,
                            level,
                            key or None,
                            old,
                            new,
                            now,
                            user.login,
                            comment,
                            changed=False,
                        )
                    )
                    continue
                self._store_one(conn, spec, level, skey, old, new, now, user, comment)
                out.append(
                    SettingChange(spec, level, key or None, old, new, now, user.login, comment)
                )
        return out

    def _store_one(
        self,
        conn: Connection,
        spec: SettingSpec,
        level: Level,
        skey: str,
        old: Any,
        new: Any,
        now: datetime,
        user: Operator,
        comment: str,
    ) -> None:
        where_row = sa.and_(
            setting.c.level == level.value,
            setting.c.scope_key == skey,
            setting.c.name == spec.name,
        )
        if new is ABSENT:
            conn.execute(sa.delete(setting).where(where_row))
        elif old is ABSENT:
            conn.execute(
                sa.insert(setting).values(
                    level=level.value,
                    scope_key=skey,
                    name=spec.name,
                    value=spec.kind.dump(new),
                    updated_at=now,
                    updated_by=user.login,
                )
            )
        else:
            conn.execute(
                sa.update(setting)
                .where(where_row)
                .values(value=spec.kind.dump(new), updated_at=now, updated_by=user.login)
            )
        conn.execute(
            sa.insert(setting_change).values(
                at=now,
                level=level.value,
                scope_key=skey,
                name=spec.name,
                old_value=None if old is ABSENT else spec.kind.dump(old),
                new_value=None if new is ABSENT else spec.kind.dump(new),
                changed_by=user.login,
                comment=comment,
            )
        )
        self.audit.record(
            user,
            "settings.set" if new is not ABSENT else "settings.unset",
            f"setting:{level.value}:{skey or '*'}:{spec.name}",
            {
                "name": spec.name,
                "level": level.value,
                "key": skey or None,
                "old": None if old is ABSENT else spec.kind.show(old),
                "new": None if new is ABSENT else spec.kind.show(new),
                "comment": comment,
            },
            connection=conn,
        )

    def set(
        self,
        name: str,
        value: object,
        *,
        level: Level | str,
        key: str | None = None,
        user: Operator,
        comment: str = "",
        parents: Scope | None = None,
    ) -> SettingChange:
        """Set ``name`` to ``value`` at ``level`` (and ``key``), checked, recorded and audited.

        ``value`` is text as typed (``"20.50"``, ``"1d"``, ``"18:00-08:00"``) or a
        value of the setting's type. Refused with :class:`InvalidSettingError` (bad
        value, level not allowed), :class:`InconsistentSettingsError` (reminder below
        dunning below disconnection at this scope or one below it) or
        :class:`~prepaid.users.PermissionDeniedError`; a refusal is audited
        (``settings.refused``). ``parents`` names the line and area of an area or
        customer when the directory does not know them.
        """
        return self.set_many(
            {name: value}, level=level, key=key, user=user, comment=comment, parents=parents
        )[0]

    def set_many(
        self,
        values: Mapping[str, object],
        *,
        level: Level | str,
        key: str | None = None,
        user: Operator,
        comment: str = "",
        parents: Scope | None = None,
    ) -> list[SettingChange]:
        """Set several settings at one level and key in one transaction.

        Consistency is checked on the result, so e.g. both thresholds can move below
        zero together; anything refused leaves every value as it was.
        """
        if not values:
            raise InvalidSettingError("(none)", describe(Level.DEFAULT, None), "no setting given")
        try:
            lvl = _level(level, ", ".join(values), key)
            changes = []
            for name, value in values.items():
                spec = spec_of(name)
                try:
                    changes.append((spec, spec.kind.parse(value)))
                except ValueError as exc:
                    raise InvalidSettingError(spec.name, describe(lvl, key), str(exc)) from None
            return self._write(changes, lvl, key, user=user, comment=comment, parents=parents)
        except (SettingsError, PermissionDeniedError) as exc:
            for name, value in values.items():
                self._refused(user, name, level, key, value, exc)
            raise

    def unset(
        self,
        name: str,
        *,
        level: Level | str,
        key: str | None = None,
        user: Operator,
        comment: str = "",
        parents: Scope | None = None,
    ) -> SettingChange:
        """Remove the value set at ``level``/``key``: the scope inherits again."""
        try:
            spec = spec_of(name)
            lvl = _level(level, spec.name, key)
            return self._write(
                [(spec, ABSENT)], lvl, key, user=user, comment=comment, parents=parents
            )[0]
        except (SettingsError, PermissionDeniedError) as exc:
            self._refused(user, name, level, key, ABSENT, exc)
            raise

    def _refused(
        self,
        user: Operator,
        name: str,
        level: Level | str,
        key: str | None,
        value: object,
        error: Exception,
    ) -> None:
        """A refused change is recorded too: who tried what, and why it was refused."""
        level_text = level.value if isinstance(level, Level) else str(level)
        log.info("settings change refused for %s: %s", user.login, error)
        try:
            self._record_refusal(user, name, level_text, key, value, error)
        except Exception:  # never hide the refusal behind an audit problem
            log.exception("could not audit a refused settings change")

    def _record_refusal(
        self,
        user: Operator,
        name: str,
        level_text: str,
        key: str | None,
        value: object,
        error: Exception,
    ) -> None:
        self.audit.record(
            user,
            "settings.refused",
            f"setting:{level_text}:{key or '*'}:{name}"[:200],
            {
                "name": name,
                "level": level_text,
                "key": key,
                "value": None if value is ABSENT else str(value)[:100],
                "reason": str(error),
            },
        )
