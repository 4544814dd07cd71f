"""The holiday calendar and protected hours, with the real 2025 and 2026 dates.

The expected dates are those of the State Council's notices (国务院办公厅关于2026年部分
节假日安排的通知, 2025-11-04; …2025年…, 2024-11-12), checked day by day below.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from pathlib import Path

import pytest

from prepaid.calendar import (
    CALENDARS_ENV,
    CalendarError,
    CalendarFileError,
    CalendarNotCoveredError,
    DailyWindow,
    DayKind,
    ProtectedHours,
    ProtectionReason,
    default_calendar,
    load_calendar,
    packaged_calendar_dir,
)

CAL = default_calendar()


def days(first: str, last: str) -> list[date]:
    a, b = date.fromisoformat(first), date.fromisoformat(last)
    return [a + timedelta(days=i) for i in range((b - a).days + 1)]


# 2026: (days off, weekend days worked) per the notice.
NOTICE_2026 = {
    "元旦": (days("2026-01-01", "2026-01-03"), ["2026-01-04"]),
    "春节": (days("2026-02-15", "2026-02-23"), ["2026-02-14", "2026-02-28"]),
    "清明节": (days("2026-04-04", "2026-04-06"), []),
    "劳动节": (days("2026-05-01", "2026-05-05"), ["2026-05-09"]),
    "端午节": (days("2026-06-19", "2026-06-21"), []),
    "中秋节": (days("2026-09-25", "2026-09-27"), []),
    "国庆节": (days("2026-10-01", "2026-10-07"), ["2026-09-20", "2026-10-10"]),
}


def test_packaged_calendar_covers_2025_and_2026() -> None:
    assert CAL.years >= {2025, 2026}
    assert "2026年部分节假日安排" in CAL.sources[2026]


@pytest.mark.parametrize("name", list(NOTICE_2026))
def test_2026_holidays_and_adjusted_working_days_match_the_notice(name: str) -> None:
    off, worked = NOTICE_2026[name]
    for day in off:
        assert CAL.day_kind(day) is DayKind.HOLIDAY, day
        holiday = CAL.holiday_on(day)
        assert holiday is not None and holiday.name == name
    for text in worked:
        day = date.fromisoformat(text)
        assert day.weekday() >= 5  # the notice swaps weekend days only
        assert CAL.day_kind(day) is DayKind.ADJUSTED_WORKDAY
        assert CAL.is_working_day(day)


def test_2026_totals() -> None:
    year = days("2026-01-01", "2026-12-31")
    kinds = [CAL.day_kind(d) for d in year]
    # 3 + 9 + 3 + 5 + 3 + 3 + 7 days off; 1 + 2 + 1 + 2 weekend days worked
    assert kinds.count(DayKind.HOLIDAY) == 33
    assert kinds.count(DayKind.ADJUSTED_WORKDAY) == 6
    # 2026 has 52 weeks + 1 day (a Thursday): 104 weekend days; 14 fall inside holidays
    # (Jan 3; Feb 15, 21, 22; Apr 4, 5; May 2, 3; Jun 20, 21; Sep 26, 27; Oct 3, 4)
    # and 6 are worked, leaving 104 − 14 − 6 = 84 ordinary weekend days.
    assert kinds.count(DayKind.WEEKEND) == 84
    assert kinds.count(DayKind.WORKDAY) == 365 - 33 - 6 - 84


def test_2025_spring_festival_and_new_rules() -> None:
    assert [CAL.day_kind(d) for d in days("2025-01-28", "2025-02-04")] == [DayKind.HOLIDAY] * 8
    assert CAL.day_kind(date(2025, 1, 26)) is DayKind.ADJUSTED_WORKDAY  # Sunday worked
    assert CAL.day_kind(date(2025, 10, 8)) is DayKind.HOLIDAY  # National Day + Mid-Autumn
    assert CAL.day_kind(date(2025, 10, 11)) is DayKind.ADJUSTED_WORKDAY
    assert CAL.day_kind(date(2025, 1, 2)) is DayKind.WORKDAY  # New Year's Day: 1 day only


def test_ordinary_days() -> None:
    assert CAL.day_kind(date(2026, 3, 9)) is DayKind.WORKDAY  # Monday
    assert CAL.day_kind(date(2026, 3, 7)) is DayKind.WEEKEND  # Saturday
    assert not CAL.is_holiday(date(2026, 3, 7))


# -- protected hours ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("moment", "reason"),
    [
        ("2026-03-09 10:00", None),  # Monday morning
        ("2026-03-09 07:59", ProtectionReason.HOURS),
        ("2026-03-09 08:00", None),
        ("2026-03-09 17:59", None),
        ("2026-03-09 18:00", ProtectionReason.HOURS),
        ("2026-03-09 23:30", ProtectionReason.HOURS),
        ("2026-03-07 12:00", ProtectionReason.WEEKEND),  # Saturday
        ("2026-02-14 10:00", None),  # Saturday worked before the Spring Festival
        ("2026-02-14 19:00", ProtectionReason.HOURS),
        ("2026-02-16 10:00", ProtectionReason.HOLIDAY),  # Monday in the Spring Festival
        ("2026-10-05 10:00", ProtectionReason.HOLIDAY),  # Monday, National Day
        ("2026-10-10 09:00", None),  # Saturday worked after National Day
    ],
)
def test_is_protected_with_the_default_hours(moment: str, reason: ProtectionReason | None) -> None:
    at = datetime.fromisoformat(moment)
    found = CAL.protection(at)
    assert (found.reason if found else None) is reason
    assert CAL.is_protected(at) is (reason is not None)


def test_protection_names_the_holiday() -> None:
    found = CAL.protection(datetime(2026, 10, 5, 10))
    assert found is not None and "国庆节" in str(found) and "2026-10-05" in str(found)


def test_weekends_and_holidays_can_be_allowed() -> None:
    saturday = datetime(2026, 3, 7, 12)
    holiday = datetime(2026, 10, 5, 10)
    no_weekends = ProtectedHours(weekends=False)
    no_holidays = ProtectedHours(holidays=False)
    assert not CAL.is_protected(saturday, no_weekends)
    assert CAL.is_protected(holiday, no_weekends)
    assert CAL.is_protected(saturday, no_holidays)
    assert not CAL.is_protected(holiday, no_holidays)  # a Monday, in working hours
    assert not CAL.is_protected(datetime(2026, 3, 9, 22), ProtectedHours(window=None))


def test_a_window_that_does_not_wrap() -> None:
    lunch = ProtectedHours(window=DailyWindow(time(12), time(14)), weekends=False)
    assert CAL.is_protected(datetime(2026, 3, 9, 12), lunch)
    assert not CAL.is_protected(datetime(2026, 3, 9, 14), lunch)
    assert not CAL.is_protected(datetime(2026, 3, 9, 20), lunch)
    assert CAL.next_unprotected(datetime(2026, 3, 9, 12, 30), lunch) == datetime(2026, 3, 9, 14)


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        ("2026-03-09 10:15", "2026-03-09 10:15"),  # allowed now: no wait
        ("2026-03-09 06:00", "2026-03-09 08:00"),  # early morning → 08:00
        ("2026-03-06 19:00", "2026-03-09 08:00"),  # Friday evening → Monday
        ("2026-03-07 11:00", "2026-03-09 08:00"),  # Saturday → Monday
        ("2026-02-12 18:30", "2026-02-13 08:00"),  # Thursday → Friday
        ("2026-02-13 18:30", "2026-02-14 08:00"),  # Friday → the Saturday worked
        ("2026-02-14 18:00", "2026-02-24 08:00"),  # over the 9-day Spring Festival
        ("2026-09-30 18:00", "2026-10-08 08:00"),  # over National Day
        ("2026-10-09 18:00", "2026-10-10 08:00"),  # Friday → the Saturday worked
        ("2026-04-03 17:00", "2026-04-03 17:00"),  # Friday afternoon before Qingming
        ("2026-04-03 18:00", "2026-04-07 08:00"),  # Qingming Sat–Mon
    ],
)
def test_next_unprotected(now: str, expected: str) -> None:
    got = CAL.next_unprotected(datetime.fromisoformat(now))
    assert got == datetime.fromisoformat(expected)
    assert not CAL.is_protected(got)


def test_a_year_without_a_file_is_a_clear_error() -> None:
    with pytest.raises(CalendarNotCoveredError) as caught:
        CAL.day_kind(date(2027, 1, 5))
    text = str(caught.value)
    assert "no holiday calendar for 2027" in text
    assert "cn-2027.toml" in text and "prepaid/calendars" in text and CALENDARS_ENV in text
    # a trip due on New Year's Eve 2026 evening must wait into 2027: no guessing
    with pytest.raises(CalendarNotCoveredError):
        CAL.next_unprotected(datetime(2026, 12, 31, 19))
    # …unless neither weekends nor holidays are protected: then no calendar is needed
    hours_only = ProtectedHours(weekends=False, holidays=False)
    assert CAL.next_unprotected(datetime(2026, 12, 31, 19), hours_only) == datetime(2027, 1, 1, 8)


def test_adding_a_year_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "cn-2027.toml").write_text(
        'region = "cn"\nyear = 2027\nsource = "test"\n'
        '[[holiday]]\nname = "元旦"\nname_en = "New Year\'s Day"\n'
        "from = 2027-01-01\nto = 2027-01-03\nworking_days = []\n",
        encoding="utf-8",
    )
    calendar = load_calendar(packaged_calendar_dir(), tmp_path)
    assert calendar.years >= {2026, 2027}
    assert calendar.next_unprotected(datetime(2026, 12, 31, 19)) == datetime(2027, 1, 4, 8)
    monkeypatch.setenv(CALENDARS_ENV, str(tmp_path))
    assert 2027 in default_calendar().years


def _file(tmp_path: Path, body: str, name: str = "cn-2030.toml") -> Path:
    path = tmp_path / name
    path.write_text('region = "cn"\nyear = 2030\n' + body, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            '[[holiday]]\nname = "X"\nfrom = 2030-05-01\nto = 2030-05-03\n'
            "working_days = [2030-05-06]\n",
            "working day 2030-05-06 is a Monday",
        ),
        ('[[holiday]]\nname = "X"\nfrom = 2030-05-03\nto = 2030-05-01\n', "is before from"),
        ('[[holiday]]\nname = "X"\nfrom = "May 1"\nto = 2030-05-01\n', "expected a TOML date"),
        ('[[holiday]]\nname = "X"\nfrom = 2032-05-01\nto = 2032-05-01\n', "outside the year 2030"),
        ('[[holiday]]\nname = "X"\nfrom = 2030-05-01\nto = 2030-05-01\ncolour = 1\n', "colour"),
        ("", "at least one [[holiday]]"),
        ("[[holiday]\n", "not valid TOML"),
    ],
)
def test_bad_calendar_files_are_refused(tmp_path: Path, body: str, message: str) -> None:
    path = _file(tmp_path, body)
    with pytest.raises(CalendarFileError) as caught:
        load_calendar(path)
    assert message in str(caught.value)
    assert str(path) in str(caught.value)


def test_a_year_given_twice_and_a_misnamed_file(tmp_path: Path) -> None:
    good = '[[holiday]]\nname = "X"\nfrom = 2030-05-01\nto = 2030-05-01\n'
    one = _file(tmp_path, good)
    other = _file(tmp_path, good, name="extra.toml")
    with pytest.raises(CalendarFileError, match="already given"):
        load_calendar(one, other)
    with pytest.raises(CalendarFileError, match="file name says cn-2031"):
        load_calendar(_file(tmp_path, good, name="cn-2031.toml"))
    with pytest.raises(CalendarFileError, match="no such calendar file"):
        load_calendar(tmp_path / "missing.toml")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("18:00", "expected HH:MM-HH:MM"),
        ("25:00-08:00", "not a time of day"),
        ("08:00-08:00", "start and end are equal"),
    ],
)
def test_bad_windows(text: str, message: str) -> None:
    with pytest.raises(CalendarError, match=message):
        DailyWindow.parse(text)


def test_window_text_round_trips() -> None:
    window = DailyWindow.parse(" 18:00 - 8:00 ")
    assert str(window) == "18:00-08:00" and window.wraps
    assert window.contains(time(23)) and window.contains(time(7, 59))
    assert not window.contains(time(8)) and not window.contains(time(17, 59))
