"""When a due trip may run: the protected hours in force and the holiday calendar."""

from __future__ import annotations

from datetime import datetime

from ..calendar import HolidayCalendar, ProtectedHours, default_calendar
from ._model import EffectiveSettings

__all__ = ["next_allowed_trip_time"]


def next_allowed_trip_time(
    now: datetime,
    settings: EffectiveSettings | ProtectedHours,
    calendar: HolidayCalendar | None = None,
) -> datetime:
    """``now`` if a trip may run now, else the first moment after it when one may.

    The protected hours come from ``settings`` (the customer's effective settings:
    ``protected_hours``, ``protected_weekends``, ``protected_holidays``); public
    holidays and adjusted working days from ``calendar`` (default: the packaged
    one). A due trip is never dropped: it waits until this time. Raises
    :class:`~prepaid.calendar.CalendarNotCoveredError` when the wait reaches a year
    the calendar has no file for.
    """
    hours = settings.protection if isinstance(settings, EffectiveSettings) else settings
    return (calendar or default_calendar()).next_unprotected(now, hours)
