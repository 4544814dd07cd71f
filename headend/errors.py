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
    "JobConflictError",
    "JobError",
    "JobFailure",
    "JobNotFoundError",
    "KeyRingError",
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


class JobError(HeadendError):
    """A job cannot be queued or looked up as asked."""


class JobConflictError(JobError):
    """A job id (idempotency key) that is already used for a different operation."""


class JobNotFoundError(JobError):
    """No job has this id."""


class JobFailure(HeadendError):
    """One attempt at a job failed; raised by job handlers, caught by the job runner.

    ``code`` is a short stable name (``"no-reply"``, ``"mac-error"``,
    ``"relay-not-open"``…) kept with the attempt and in the failure event;
    the message says what happened and what to do. ``retryable=False`` ends the
    job at once (retrying cannot help, or would harm: repeated MAC errors
    suspend a meter's ESAM). ``alarm`` names a :class:`~headend.events.MeterAlarm`
    to raise.
    """

    def __init__(
        self, code: str, message: str, *, retryable: bool = True, alarm: str | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.retryable = retryable
        self.alarm = alarm


class KeyRingError(HeadendError):
    """The master key of a meter cannot be found or read (see ``headend.control.KeyRing``)."""
