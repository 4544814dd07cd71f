"""Holiday calendar (节假日安排) and protected hours (保护时段): when no trip may run.

China's working week is not just Monday to Friday: each year the State Council sets the
public holidays (法定节假日) and swaps some weekend days into working days (调休上班) so
that the holidays join up. A :class:`HolidayCalendar` is loaded from data files, one per
region and year (``prepaid/calendars/cn-2026.toml``), and classifies every day of the
years it covers as a :class:`DayKind`. A year it does not cover is an error that says
which file to add: a calendar never guesses.

:class:`ProtectedHours` says when no disconnection (trip) is executed: a daily window
(default 18:00–08:00), weekends, and public holidays. An adjusted working day on a
weekend is a working day, so trips may run on it. A trip that falls due in protected
time is not dropped: it waits for :meth:`HolidayCalendar.next_unprotected`.

Times are naive local ``datetime`` values, as the shared clock gives them.
"""

from __future__ import annotations

import enum
import logging
import os
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Final

__all__ = [
    "CALENDARS_ENV",
    "CalendarError",
    "CalendarFileError",
    "CalendarNotCoveredError",
    "DailyWindow",
    "DayKind",
    "Holiday",
    "HolidayCalendar",
    "ProtectedHours",
    "Protection",
    "ProtectionReason",
    "default_calendar",
    "load_calendar",
    "packaged_calendar_dir",
]

log = logging.getLogger(__name__)

CALENDARS_ENV: Final = "FEIKONG_CALENDARS"
"""Extra directories of calendar files (``os.pathsep``-separated), read after the packaged ones."""

_MAX_SEARCH_DAYS: Final = 400
_WINDOW = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")
_FILE_NAME = re.compile(r"^(?P<region>[a-z]{2,8})-(?P<year>\d{4})\.toml$")


class CalendarError(ValueError):
    """A calendar that cannot answer: bad data, or a question it cannot decide."""


class CalendarFileError(CalendarError):
    """A calendar data file that cannot be used; the message names the file and the entry."""


class CalendarNotCoveredError(CalendarError, LookupError):
    """A date in a year for which no calendar file is loaded."""

    def __init__(self, day: date, region: str, years: Iterable[int]) -> None:
        self.day = day
        self.region = region
        self.years = tuple(sorted(years))
        loaded = ", ".join(str(y) for y in self.years) or "none"
        super().__init__(
            f"no holiday calendar for {day.year} (region {region!r}; years loaded: {loaded}), "
            f"so {day.isoformat()} cannot be classified: add {region}-{day.year}.toml with "
            f"that year's public holidays and adjusted working days (国务院办公厅关于"
            f"{day.year}年部分节假日安排的通知) to prepaid/calendars/ or to a directory "
            f"named in ${CALENDARS_ENV}"
        )


class DayKind(enum.StrEnum):
    """What kind of day a date is."""

    WORKDAY = "workday"
    """A Monday to Friday that is not a public holiday (工作日)."""
    WEEKEND = "weekend"
    """A Saturday or Sunday that is not worked (休息日)."""
    HOLIDAY = "holiday"
    """A day off of a public holiday period, including swapped weekdays (法定节假日)."""
    ADJUSTED_WORKDAY = "adjusted-workday"
    """A Saturday or Sunday worked in exchange for holiday days (调休上班)."""

    @property
    def is_working(self) -> bool:
        return self in (DayKind.WORKDAY, DayKind.ADJUSTED_WORKDAY)


class ProtectionReason(enum.StrEnum):
    """Why a moment is protected (no trip runs)."""

    HOURS = "protected-hours"
    WEEKEND = "weekend"
    HOLIDAY = "public-holiday"


@dataclass(frozen=True, slots=True)
class Protection:
    """A moment is protected, and why: ``detail`` names the window, weekday or holiday."""

    reason: ProtectionReason
    detail: str

    def __str__(self) -> str:
        return f"{self.reason.value} ({self.detail})"


@dataclass(frozen=True, slots=True)
class DailyWindow:
    """A time window repeated every day, ``[start, end)``; it may wrap past midnight.

    ``DailyWindow(time(18), time(8))`` covers 18:00–24:00 and 00:00–08:00.
    """

    start: time
    end: time

    def __post_init__(self) -> None:
        if self.start == self.end:
            raise CalendarError(
                f"protected hours {self}: start and end are equal; give a real window "
                "such as 18:00-08:00, or 'none' for no protected hours"
            )
        if self.start.tzinfo or self.end.tzinfo:
            raise CalendarError("protected hours are local times without a time zone")

    @classmethod
    def parse(cls, text: str) -> DailyWindow:
        """``"18:00-08:00"`` → window; a clear :class:`CalendarError` otherwise."""
        match = _WINDOW.match(text)
        if not match:
            raise CalendarError(f"protected hours {text!r}: expected HH:MM-HH:MM, e.g. 18:00-08:00")
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        for hour, minute in ((h1, m1), (h2, m2)):
            if hour > 23 or minute > 59:
                raise CalendarError(
                    f"protected hours {text!r}: {hour:02d}:{minute:02d} is not a time of day "
                    "(00:00 to 23:59)"
                )
        return cls(time(h1, m1), time(h2, m2))

    @property
    def wraps(self) -> bool:
        """True when the window runs past midnight (start after end)."""
        return self.start > self.end

    def contains(self, moment: time) -> bool:
        t = moment.replace(tzinfo=None)
        if self.wraps:
            return t >= self.start or t < self.end
        return self.start <= t < self.end

    def end_after(self, moment: datetime) -> datetime:
        """The end of the window that contains ``moment`` (which must be inside it)."""
        t = moment.time()
        day = moment.date()
        if self.wraps and t >= self.start:
            day += timedelta(days=1)
        return datetime.combine(day, self.end)

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


@dataclass(frozen=True, slots=True)
class ProtectedHours:
    """When no trip is executed (保护时段): a daily window, weekends, public holidays.

    The defaults are the platform's: 18:00–08:00, weekends and public holidays.
    ``window=None`` means no daily window.
    """

    window: DailyWindow | None = field(default_factory=lambda: DailyWindow(time(18), time(8)))
    weekends: bool = True
    holidays: bool = True

    def __str__(self) -> str:
        parts = [str(self.window) if self.window else "no daily window"]
        if self.weekends:
            parts.append("weekends")
        if self.holidays:
            parts.append("public holidays")
        return ", ".join(parts)


@dataclass(frozen=True, slots=True)
class Holiday:
    """One public holiday period of a year's notice: its days off and its swapped working days."""

    name: str
    name_en: str
    first: date
    last: date
    working_days: tuple[date, ...] = ()

    def days(self) -> list[date]:
        return [self.first + timedelta(days=i) for i in range((self.last - self.first).days + 1)]

    @property
    def label(self) -> str:
        return f"{self.name} ({self.name_en})" if self.name_en else self.name


class HolidayCalendar:
    """Public holidays and adjusted working days of the years loaded, for one region."""

    def __init__(
        self,
        region: str,
        holidays: Iterable[Holiday],
        years: Iterable[int],
        sources: Mapping[int, str] | None = None,
    ) -> None:
        self.region = region
        self.holidays: tuple[Holiday, ...] = tuple(sorted(holidays, key=lambda h: h.first))
        self.years: frozenset[int] = frozenset(years)
        self.sources: dict[int, str] = dict(sources or {})
        self._off: dict[date, Holiday] = {}
        self._worked: dict[date, Holiday] = {}
        for holiday in self.holidays:
            for day in holiday.days():
                self._off[day] = holiday
            for day in holiday.working_days:
                self._worked[day] = holiday
        both = sorted(set(self._off) & set(self._worked))
        if both:
            raise CalendarError(
                f"{both[0].isoformat()} is both a holiday and an adjusted working day "
                f"({self._off[both[0]].label}, {self._worked[both[0]].label}); fix the "
                "calendar files"
            )

    def __repr__(self) -> str:
        return f"HolidayCalendar(region={self.region!r}, years={sorted(self.years)})"

    def covers(self, day: date) -> bool:
        return day.year in self.years

    def _check(self, day: date) -> None:
        if day.year not in self.years:
            raise CalendarNotCoveredError(day, self.region, self.years)

    def day_kind(self, day: date) -> DayKind:
        """What kind of day ``day`` is; :class:`CalendarNotCoveredError` for a year not loaded."""
        self._check(day)
        if day in self._off:
            return DayKind.HOLIDAY
        if day in self._worked:
            return DayKind.ADJUSTED_WORKDAY
        return DayKind.WEEKEND if day.weekday() >= 5 else DayKind.WORKDAY

    def holiday_on(self, day: date) -> Holiday | None:
        """The holiday period ``day`` is a day off of (or ``None``)."""
        self._check(day)
        return self._off.get(day)

    def is_holiday(self, day: date) -> bool:
        return self.day_kind(day) is DayKind.HOLIDAY

    def is_working_day(self, day: date) -> bool:
        return self.day_kind(day).is_working

    def protection(
        self, moment: datetime, hours: ProtectedHours | None = None
    ) -> Protection | None:
        """Why ``moment`` is protected under ``hours`` (default: :class:`ProtectedHours`)."""
        hours = hours if hours is not None else ProtectedHours()
        day = moment.date()
        if hours.holidays or hours.weekends:
            kind = self.day_kind(day)
            if hours.holidays and kind is DayKind.HOLIDAY:
                holiday = self._off[day]
                return Protection(ProtectionReason.HOLIDAY, f"{holiday.label} {day.isoformat()}")
            if hours.weekends and kind is DayKind.WEEKEND:
                return Protection(ProtectionReason.WEEKEND, f"{day:%A} {day.isoformat()}")
        if hours.window is not None and hours.window.contains(moment.time()):
            return Protection(ProtectionReason.HOURS, str(hours.window))
        return None

    def is_protected(self, moment: datetime, hours: ProtectedHours | None = None) -> bool:
        """True when no trip may run at ``moment`` (default protected hours if none given)."""
        return self.protection(moment, hours) is not None

    def next_unprotected(self, moment: datetime, hours: ProtectedHours | None = None) -> datetime:
        """``moment`` itself if it is not protected, else the first moment after it that is not.

        Friday 19:00 → Monday 08:00 (or later, if Monday is a public holiday); a
        Saturday that is an adjusted working day opens at 08:00.
        """
        hours = hours if hours is not None else ProtectedHours()
        current = moment
        limit = moment + timedelta(days=_MAX_SEARCH_DAYS)
        while current < limit:
            found = self.protection(current, hours)
            if found is None:
                return current
            if found.reason is ProtectionReason.HOURS:
                assert hours.window is not None
                current = hours.window.end_after(current)
            else:
                current = datetime.combine(current.date() + timedelta(days=1), time(0))
        raise CalendarError(
            f"no unprotected time within {_MAX_SEARCH_DAYS} days after {moment:%Y-%m-%d %H:%M} "
            f"with protected hours {hours}; check the protected-hours settings"
        )


# --- loading -----------------------------------------------------------------------------


def packaged_calendar_dir() -> Path:
    """The calendar files shipped with feikong (``prepaid/calendars``)."""
    return Path(str(resources.files("prepaid.calendars")))


def _date(value: Any, where: str, key: str) -> date:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    raise CalendarFileError(
        f"{where}: {key}: expected a TOML date such as 2026-10-01, got {value!r}"
    )


def _read_file(path: Path) -> tuple[str, int, str, list[Holiday]]:
    where = str(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CalendarFileError(f"{where}: cannot read: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise CalendarFileError(f"{where}: not valid TOML: {exc}") from None
    unknown = sorted(set(data) - {"region", "year", "source", "holiday"})
    if unknown:
        raise CalendarFileError(
            f"{where}: unknown key(s) {', '.join(unknown)}; expected region, year, source "
            "and [[holiday]] tables"
        )
    region = data.get("region")
    year = data.get("year")
    if not isinstance(region, str) or not region:
        raise CalendarFileError(f'{where}: region: expected a region code such as "cn"')
    if not isinstance(year, int) or isinstance(year, bool) or not 1949 < year < 2200:
        raise CalendarFileError(f"{where}: year: expected a year such as 2026, got {year!r}")
    match = _FILE_NAME.match(path.name)
    if match and (match["region"] != region or int(match["year"]) != year):
        raise CalendarFileError(
            f"{where}: the file name says {match['region']}-{match['year']} but the file says "
            f"region {region!r}, year {year}; rename the file or fix its keys"
        )
    entries = data.get("holiday", [])
    if not isinstance(entries, list) or not entries:
        raise CalendarFileError(f"{where}: expected at least one [[holiday]] table")
    earliest = date(year - 1, 12, 1)
    latest = date(year + 1, 1, 31)
    holidays = []
    for index, entry in enumerate(entries):
        label = f"{where}: holiday[{index}]"
        if not isinstance(entry, dict):
            raise CalendarFileError(f"{label}: expected a [[holiday]] table")
        extra = sorted(set(entry) - {"name", "name_en", "from", "to", "working_days"})
        if extra:
            raise CalendarFileError(
                f"{label}: unknown key(s) {', '.join(extra)}; expected name, name_en, from, "
                "to, working_days"
            )
        name = entry.get("name")
        if not isinstance(name, str) or not name:
            raise CalendarFileError(f'{label}: name: expected the holiday\'s name, e.g. "春节"')
        label = f"{where}: holiday {name!r}"
        first = _date(entry.get("from"), label, "from")
        last = _date(entry.get("to"), label, "to")
        if last < first:
            raise CalendarFileError(f"{label}: to {last} is before from {first}")
        worked_raw = entry.get("working_days", [])
        if not isinstance(worked_raw, list):
            raise CalendarFileError(f"{label}: working_days: expected a list of dates")
        worked = tuple(_date(d, label, "working_days") for d in worked_raw)
        for day in worked:
            if day.weekday() < 5:
                raise CalendarFileError(
                    f"{label}: working day {day.isoformat()} is a {day:%A}; adjusted working "
                    "days (调休上班) are Saturdays or Sundays"
                )
        for day in (first, last, *worked):
            if not earliest <= day <= latest:
                raise CalendarFileError(
                    f"{label}: {day.isoformat()} is outside the year {year} of this file"
                )
        name_en = entry.get("name_en", "")
        if not isinstance(name_en, str):
            raise CalendarFileError(f"{label}: name_en: expected a string")
        holidays.append(Holiday(name, name_en, first, last, worked))
    source = data.get("source", "")
    return region, year, str(source), holidays


def _extra_dirs() -> list[Path]:
    text = os.environ.get(CALENDARS_ENV, "")
    return [Path(p) for p in text.split(os.pathsep) if p]


def load_calendar(*locations: Path | str, region: str = "cn") -> HolidayCalendar:
    """The calendar of ``region`` from files and directories of ``<region>-<year>.toml`` files.

    With no ``locations``: the packaged files plus the directories in
    ``$FEIKONG_CALENDARS``. A year given by two files is an error (remove one).
    """
    paths: list[Path] = []
    sources = [Path(p) for p in locations] or [packaged_calendar_dir(), *_extra_dirs()]
    for location in sources:
        if location.is_dir():
            paths.extend(sorted(location.glob(f"{region}-*.toml")))
        elif location.is_file():
            paths.append(location)
        else:
            raise CalendarFileError(f"{location}: no such calendar file or directory")
    holidays: list[Holiday] = []
    years: dict[int, Path] = {}
    notes: dict[int, str] = {}
    for path in paths:
        file_region, year, note, entries = _read_file(path)
        if file_region != region:
            continue
        if year in years:
            raise CalendarFileError(
                f"{path}: the year {year} is already given by {years[year]}; keep one file per year"
            )
        years[year] = path
        notes[year] = note
        holidays.extend(entries)
    log.debug("calendar %s: years %s", region, sorted(years))
    return HolidayCalendar(region, holidays, years, notes)


@lru_cache(maxsize=4)
def _cached_default(region: str, extra: str) -> HolidayCalendar:
    return load_calendar(region=region)


def default_calendar(region: str = "cn") -> HolidayCalendar:
    """The packaged calendar (plus ``$FEIKONG_CALENDARS``), loaded once per process."""
    return _cached_default(region, os.environ.get(CALENDARS_ENV, ""))
