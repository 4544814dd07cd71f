"""The exceptions of the head-end package.

Everything ``headend`` raises on purpose derives from :class:`HeadendError`; the
message says what went wrong and what to do about it.
"""

from __future__ import annotations

__all__ = [
    "ArchiveFormatError",
    "DatabaseError",
    "DatabaseURLError",
    "DriverMissingError",
    "EventError",
    "EventFormatError",
    "HeadendError",
    "MqttURLError",
]


class HeadendError(Exception):
    """Base class of every error raised on purpose by ``headend``."""


class DatabaseError(HeadendError):
    """The database cannot be opened or migrated."""


class DatabaseURLError(DatabaseError):
    """A database URL that is malformed or names an unsupported database."""


class DriverMissingError(DatabaseError):
    """The URL is fine but its database driver (e.g. psycopg) is not installed."""


class ArchiveFormatError(HeadendError):
    """An archive CSV file that cannot be read at all (missing, undecodable, bad header).

    Bad *rows* are not exceptions: they are reported in an
    :class:`~headend.archive.ImportReport` and the good rows still load.
    """


class EventError(HeadendError):
    """Something wrong with head-end events or their MQTT bridge."""


class EventFormatError(EventError):
    """A message that is not a valid head-end event (bad JSON, unknown kind, bad field)."""


class MqttURLError(EventError):
    """An MQTT URL that cannot be used; give mqtt://HOST[:PORT][/topic-prefix]."""
