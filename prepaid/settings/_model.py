"""Values of the settings hierarchy: scopes, sources, the effective settings of a scope."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from ..calendar import DailyWindow, ProtectedHours
from ._catalog import CATALOG, CONSISTENCY, Level, NotificationMode, SettingSpec, spec_of

__all__ = [
    "EffectiveSettings",
    "Resolved",
    "Scope",
    "Source",
    "consistency_problems",
    "describe",
]


def describe(level: Level, key: str | None) -> str:
    """``"area A7"``, ``"default"`` — how a level and key read in messages."""
    return level.value if level is Level.DEFAULT else f"{level.value} {key}"


@dataclass(frozen=True, slots=True)
class Scope:
    """Where to resolve settings: a customer and the area and line it belongs to.

    Any part may be ``None`` (unknown or not asked): ``Scope(line="L01")`` gives the
    settings of line L01; ``Scope()`` the defaults.
    """

    line: str | None = None
    area: str | None = None
    customer: str | None = None

    def chain(self) -> list[tuple[Level, str]]:
        """The (level, key) pairs of this scope, most specific first (default excluded)."""
        pairs = [
            (Level.CUSTOMER, self.customer),
            (Level.AREA, self.area),
            (Level.LINE, self.line),
        ]
        return [(level, key) for level, key in pairs if key]

    @property
    def level(self) -> Level:
        """The most specific level this scope names."""
        chain = self.chain()
        return chain[0][0] if chain else Level.DEFAULT

    def key_at(self, level: Level) -> str | None:
        return {
            Level.DEFAULT: None,
            Level.LINE: self.line,
            Level.AREA: self.area,
            Level.CUSTOMER: self.customer,
        }[level]

    def __str__(self) -> str:
        parts = [describe(level, key) for level, key in reversed(self.chain())]
        return " / ".join(parts) or "default"


@dataclass(frozen=True, slots=True)
class Source:
    """Where a value in force comes from: a level and its key, or a defaults file."""

    level: Level
    key: str | None = None
    file: str | None = None
    """The defaults file, when the value is a file default (not set in the database)."""

    def __str__(self) -> str:
        if self.level is Level.DEFAULT:
            return f"default ({Path(self.file).name})" if self.file else "default (database)"
        return describe(self.level, self.key)

    def to_dict(self) -> dict[str, Any]:
        return {"level": self.level.value, "key": self.key, "file": self.file, "text": str(self)}


@dataclass(frozen=True, slots=True)
class Resolved:
    """One setting's value in force at a scope and where it comes from."""

    spec: SettingSpec
    value: Any
    source: Source

    @property
    def text(self) -> str:
        return self.spec.kind.show(self.value)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.spec.name,
            "chinese": self.spec.chinese,
            "value": self.spec.kind.to_json(self.value),
            "text": self.text,
            "source": self.source.to_dict(),
        }


@dataclass(frozen=True, slots=True)
class EffectiveSettings:
    """Every setting in force at one :class:`Scope`, typed, with where each comes from.

    Money is integer fen (``*_fen``).
    """

    scope: Scope
    reminder_amount_fen: int
    dunning_threshold_fen: int
    disconnection_threshold_fen: int
    notification_mode: NotificationMode
    power_guarantee: bool
    guarantee_send_3ah: bool
    auto_reminder: bool
    auto_dunning: bool
    auto_reconnect: bool
    auto_disconnection_request: bool
    notice_lead_time: timedelta
    repeat_trip_interval: timedelta
    repeat_trip_max: int
    protected_hours: DailyWindow | None
    protected_weekends: bool
    protected_holidays: bool
    remote_attempts: int
    reconnect_direct_close: bool
    anomaly_missing_days: int
    sources: Mapping[str, Source] = field(repr=False)

    @classmethod
    def from_resolved(cls, scope: Scope, resolved: Mapping[str, Resolved]) -> EffectiveSettings:
        values = {r.spec.field: r.value for r in resolved.values()}
        sources = {name: r.source for name, r in resolved.items()}
        return cls(scope=scope, sources=sources, **values)

    @property
    def protection(self) -> ProtectedHours:
        """The protected hours (保护时段) in force: window, weekends, holidays."""
        return ProtectedHours(
            self.protected_hours, self.protected_weekends, self.protected_holidays
        )

    def value(self, name: str) -> Any:
        return getattr(self, spec_of(name).field)

    def source(self, name: str) -> Source:
        return self.sources[spec_of(name).name]

    def resolved(self) -> Iterator[Resolved]:
        """Every setting in catalog order, with its value and source."""
        for name, spec in CATALOG.items():
            yield Resolved(spec, getattr(self, spec.field), self.sources[name])

    def to_dict(self) -> dict[str, Any]:
        return {
            "scope": {
                "line": self.scope.line,
                "area": self.scope.area,
                "customer": self.scope.customer,
            },
            "settings": [r.to_dict() for r in self.resolved()],
        }


def consistency_problems(resolved: Mapping[str, Resolved]) -> list[tuple[str, str]]:
    """(setting, problem) for every :data:`CONSISTENCY` pair out of order at one scope."""
    problems = []
    for high, low in CONSISTENCY:
        a, b = resolved[high], resolved[low]
        if a.value < b.value:
            kind = a.spec.kind
            problems.append(
                (
                    high,
                    f"{high} {kind.show(a.value)} (from {a.source}) is below {low} "
                    f"{kind.show(b.value)} (from {b.source}); {high} must be at least "
                    f"{low}: raise {high} or lower {low}",
                )
            )
    return problems
