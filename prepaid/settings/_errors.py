"""The settings package's exceptions; every message names the setting, the level and what to do."""

from __future__ import annotations

__all__ = [
    "InconsistentSettingsError",
    "InvalidSettingError",
    "SettingsError",
    "SettingsFileError",
    "UnknownSettingError",
]


class SettingsError(ValueError):
    """Base class of every error raised on purpose by :mod:`prepaid.settings`."""


class UnknownSettingError(SettingsError, LookupError):
    """A setting name that does not exist."""


class InvalidSettingError(SettingsError):
    """A value refused for a setting at a level: ``"<name> at <where>: <detail>"``."""

    def __init__(self, name: str, where: str, detail: str) -> None:
        self.name = name
        self.where = where
        self.detail = detail
        super().__init__(f"{name} at {where}: {detail}")


class InconsistentSettingsError(InvalidSettingError):
    """A value that is valid alone but contradicts another setting in force at the same scope."""


class SettingsFileError(SettingsError):
    """A defaults file that cannot be used; the message names the file and the key."""
