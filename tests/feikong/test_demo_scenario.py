"""The demo scenario: shipped defaults, files on top, and clear refusals naming the key."""

from __future__ import annotations

import subprocess
import sys
from datetime import date, time
from pathlib import Path

import pytest

from feikong.demo.behaviour import Profile, draw_profiles
from feikong.demo.scenario import (
    Behaviour,
    ScenarioError,
    default_scenario_path,
    load_scenario,
)


def _file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "scenario.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_shipped_file_gives_the_issue_defaults() -> None:
    s = load_scenario()
    assert s.source == str(default_scenario_path())
    assert s.run.days == 60
    assert s.district.customers == 1000
    assert s.run.start.year == 2026
    assert s.run.end == date(2026, 4, 30)  # 2026-03-01 + 60 days, inside the calendar
    assert s.run.speed == 86_400 / s.run.seconds_per_day
    assert s.staff.approver_l1 != s.staff.approver_l2
    assert s.settings["auto_dunning"] is True


def test_a_file_changes_only_what_it_sets(tmp_path: Path) -> None:
    s = load_scenario(_file(tmp_path, '[run]\ndays = 10\n[schedule]\nrating_at = "06:30"\n'))
    assert s.run.days == 10
    assert s.schedule.rating_at == time(6, 30)
    assert s.district.customers == 1000  # from the shipped defaults
    assert s.schedule.collect_at == time(0, 5)


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ('[run]\ndays = "ten"\n', "run.days: expected an integer 1..366, got 'ten'"),
        ("[district]\ncustomerz = 3\n", "district.customerz: unknown key"),
        ("[weather]\nrain = true\n", "weather: unknown table"),
        ('[schedule]\nrating_at = "7 am"\n', 'schedule.rating_at: expected a time of day "HH:MM"'),
        ("[behaviour]\nnever_pays = 0.1\n", "behaviour.never_pays: unknown key"),
        ('[settings]\nreminder_amount = "lots"\n', "settings.reminder_amount:"),
        ("[settings]\nreminder_amont = 1\n", "settings.reminder_amont: not a fee-control setting"),
        ("[run]\nseconds_per_day = 0\n", "run.seconds_per_day: expected real seconds"),
    ],
)
def test_a_wrong_value_is_refused_naming_the_file_and_key(
    tmp_path: Path, text: str, named: str
) -> None:
    path = _file(tmp_path, text)
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert named in str(caught.value)


def test_shares_of_payers_above_one_are_refused(tmp_path: Path) -> None:
    path = _file(tmp_path, "[behaviour]\npay_on_reminder = 0.8\npay_after_dunning = 0.3\n")
    with pytest.raises(ScenarioError, match="must not exceed 1"):
        load_scenario(path)


def test_a_run_past_the_calendar_gets_the_calendars_message(tmp_path: Path) -> None:
    path = _file(tmp_path, "[run]\nstart = 2026-12-01\n")
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    text = str(caught.value)
    assert "2026-12-01..2027-01-30" in text
    assert "no holiday calendar for 2027" in text  # prepaid.calendar's own words


def test_command_line_overrides_are_checked_too() -> None:
    s = load_scenario().with_overrides(days=5, customers=200, seed=7)
    assert (s.run.days, s.district.customers, s.run.seed) == (5, 200, 7)
    with pytest.raises(ScenarioError, match=r"^--days: expected an integer 1\.\.366"):
        load_scenario().with_overrides(days=0)
    with pytest.raises(ScenarioError, match="leave the holiday calendar"):
        load_scenario().with_overrides(days=366)


def test_a_small_district_keeps_its_special_customers_few() -> None:
    s = load_scenario().with_overrides(customers=40)  # 40 // 20 = 2 of each at most
    d = s.district
    assert (d.guaranteed, d.without_phone, d.breakers_failing, d.offline_meters) == (2, 2, 2, 1)
    big = load_scenario().with_overrides(customers=5000).district
    assert (big.guaranteed, big.without_phone) == (5, 25)  # the file's values


def _demo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "feikong", "demo", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )


def test_the_command_refuses_a_bad_scenario_in_one_line(tmp_path: Path) -> None:
    path = _file(tmp_path, "[run]\nstart = 2026-12-15\ndays = 30\n")
    result = _demo("--scenario", str(path), "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "no holiday calendar for 2027" in result.stderr
    assert not (tmp_path / "out").exists()  # nothing started, nothing written


def test_the_command_refuses_a_missing_scenario_file(tmp_path: Path) -> None:
    result = _demo("--scenario", str(tmp_path / "nope.toml"))
    assert result.returncode == 2
    assert "nope.toml: no such scenario file" in result.stderr


def test_customer_habits_follow_the_shares_and_the_seed() -> None:
    behaviour = Behaviour(pay_on_reminder=0.5, pay_after_dunning=0.2, pay_after_cutoff=0.2)
    ids = list(range(1, 4001))
    habits = draw_profiles(ids, behaviour, seed=3)
    assert habits == draw_profiles(list(reversed(ids)), behaviour, seed=3)  # same seed, same
    counts = {p: sum(1 for h in habits.values() if h.profile is p) for p in Profile}
    # 4000 draws: each share within ±3 percentage points (≈ 4 standard deviations)
    for profile, share in (
        (Profile.ON_REMINDER, 0.5),
        (Profile.AFTER_DUNNING, 0.2),
        (Profile.AFTER_CUTOFF, 0.2),
        (Profile.NEVER, 0.1),
    ):
        assert abs(counts[profile] / 4000 - share) < 0.03, (profile, counts)
    assert all(0 <= h.delay_days <= behaviour.delay_days_max for h in habits.values())
    assert draw_profiles(ids, behaviour, seed=4) != habits
