"""Fee-control settings (费控参数): default → feeder line → transformer area → customer.

The most specific value in force wins (customer over area over line over default)
and every lookup says where the value comes from (:class:`Source`: level and key,
or the defaults file), so the console can show it. The defaults are in one visible
file, ``prepaid/settings/defaults.toml`` (overridable by ``$FEIKONG_SETTINGS``);
values set in the database (:class:`SettingsStore`) keep a history of every change
and write the audit log.

- :class:`SettingsStore` — resolve a scope (:meth:`~SettingsStore.resolve`), set and
  unset values (validated, permission-checked, audited), list overrides and history,
  and build set-based SQL (:meth:`~SettingsStore.sql_fen`).
- :class:`SettingsSnapshot` — every override read once; :meth:`~SettingsSnapshot.
  resolve_column` resolves millions of accounts by (line, area) group plus customer
  overrides, without a query per account.
- :func:`next_allowed_trip_time` — when a due trip may run under the protected hours
  and the holiday calendar.

Refusals name the setting and the level, e.g. ``reminder_amount at area A7: -5.00 yuan
is below the minimum 0.00 yuan``.
"""

from ._catalog import (
    ALL_LEVELS,
    CATALOG,
    CONSISTENCY,
    Level,
    NotificationMode,
    SettingSpec,
    spec_of,
)
from ._defaults import SETTINGS_ENV, Defaults, defaults_path, load_defaults
from ._directory import (
    AccountsDirectory,
    OpenDirectory,
    Placement,
    ScopeDirectory,
    UnknownScopeError,
)
from ._errors import (
    InconsistentSettingsError,
    InvalidSettingError,
    SettingsError,
    SettingsFileError,
    UnknownSettingError,
)
from ._kinds import format_duration
from ._model import EffectiveSettings, Resolved, Scope, Source, consistency_problems, describe
from ._snapshot import Override, SettingsSnapshot
from ._store import ABSENT, SettingChange, SettingsStore, StoredSetting
from ._trip_time import next_allowed_trip_time

__all__ = [
    "ABSENT",
    "ALL_LEVELS",
    "CATALOG",
    "CONSISTENCY",
    "SETTINGS_ENV",
    "AccountsDirectory",
    "Defaults",
    "EffectiveSettings",
    "InconsistentSettingsError",
    "InvalidSettingError",
    "Level",
    "NotificationMode",
    "OpenDirectory",
    "Override",
    "Placement",
    "Resolved",
    "Scope",
    "ScopeDirectory",
    "SettingChange",
    "SettingSpec",
    "SettingsError",
    "SettingsFileError",
    "SettingsSnapshot",
    "SettingsStore",
    "Source",
    "StoredSetting",
    "UnknownScopeError",
    "UnknownSettingError",
    "consistency_problems",
    "defaults_path",
    "describe",
    "format_duration",
    "load_defaults",
    "next_allowed_trip_time",
    "spec_of",
]
