"""The seeded load profile and the TOU split."""

from __future__ import annotations

import hashlib
import itertools

import pytest

from meter_sim.profile import LoadProfile
from meter_sim.tou import DEFAULT_TOU, TouSchedule

DAY = 9566  # 2026-03-10


def test_same_seed_same_consumption() -> None:
    a = LoadProfile(42, 8.0, DEFAULT_TOU)
    b = LoadProfile(42, "8.0", DEFAULT_TOU)
    c = LoadProfile(43, 8.0, DEFAULT_TOU)
    days = range(DAY, DAY + 30)
    assert [a.daily_units(d) for d in days] == [b.daily_units(d) for d in days]
    assert [a.daily_units(d) for d in days] != [c.daily_units(d) for d in days]
    assert a.energy(DAY, 3600, 7200) == b.energy(DAY, 3600, 7200)


def test_chunks_add_up_to_the_whole_day() -> None:
    p = LoadProfile(1, 8.0, DEFAULT_TOU)
    whole = p.energy(DAY, 0, 86_400)
    cuts = [0, 1, 59, 61, 3599, 7000, 40_000, 68_400, 86_399, 86_400]
    parts = [p.energy(DAY, a, b) for a, b in itertools.pairwise(cuts)]
    assert [sum(col) for col in zip(*parts, strict=True)] == whole
    # the tariff split sums to the day's total (to a few 1e-5 kWh of rounding)
    assert 0 <= p.daily_units(DAY) - sum(whole) <= 4


def test_tariffs_follow_the_schedule() -> None:
    p = LoadProfile(1, 8.0, DEFAULT_TOU)
    sharp = p.energy(DAY, 19 * 3600, 21 * 3600)  # 19:00-21:00 is tariff 1 (sharp)
    assert sharp[0] > 0 and sharp[1:] == [0, 0, 0]
    night = p.energy(DAY, 0, 7 * 3600)
    assert night[:3] == [0, 0, 0] and night[3] > 0


def test_year_mean_is_the_configured_mean() -> None:
    p = LoadProfile(5, 8.0, DEFAULT_TOU)
    mean = sum(p.daily_units(d) for d in range(DAY, DAY + 365)) / 365 / 100_000
    assert mean == pytest.approx(8.0, rel=0.05)


def test_instant_values_follow_the_flow() -> None:
    p = LoadProfile(1, 8.0, DEFAULT_TOU)
    on = p.instant(DAY, 19 * 3600, True)
    off = p.instant(DAY, 19 * 3600, False)
    assert on.power_e4_kw > 0 and on.current_ma > 0
    assert 2160 <= on.voltage_dv <= 2240 and 4995 <= on.frequency_chz <= 5005
    assert off.power_e4_kw == off.current_ma == 0 and off.voltage_dv == on.voltage_dv


def test_schedule_parse_and_checks() -> None:
    s = TouSchedule.parse("00:00=4, 08:00=2, 22:00=4")
    assert s.tariff_at(0) == 4 and s.tariff_at(8 * 60) == 2 and s.tariff_at(23 * 60) == 4
    for bad in ("08:00=2", "00:00=5", "00:00=4,00:00=3", "noon=1"):
        with pytest.raises(ValueError):
            TouSchedule.parse(bad)


def test_consumption_is_pinned() -> None:
    """A seed's consumption never changes between releases (stored states and
    recorded demos rely on it): a few values, then a digest over seeds, days
    around a leap day, two schedules and times of day."""
    p = LoadProfile(42, 8.0, DEFAULT_TOU)
    leap = 8825  # 2024-02-29
    days = (0, 59, 60, leap, DAY, DAY + 1)
    assert [p.daily_units(d) for d in days] == [
        706396,
        608567,
        752873,
        902737,
        723286,
        616165,
    ]
    assert p.cumulative(DAY, 45_296) == [0, 105342, 88838, 92174]
    assert p.cumulative(DAY, 86_400) == [98758, 265236, 244544, 114747]
    assert p.energy(DAY, 3_599, 70_001) == [23005, 195635, 244544, 75249]
    assert tuple(p.instant(DAY, 69_000, True)) == (2196, 2756, 5938, 981, 5002)
    other = TouSchedule.parse("00:00=4, 08:00=2, 22:00=4")
    digest = hashlib.sha256()
    for seed in range(40):
        for schedule in (DEFAULT_TOU, other):
            q = LoadProfile(seed * 7919, "5.5", schedule)
            for day in range(leap - 400, leap + 400, 13):
                values = (
                    q.daily_units(day),
                    q.cumulative(day, (day * 977) % 86_401),
                    q.energy(day, (day * 31) % 43_200, 43_200 + (day * 53) % 43_201),
                    tuple(q.instant(day, (day * 101) % 86_400, True)),
                )
                digest.update(repr(values).encode())
    assert digest.hexdigest() == (
        "5114de1045438c0f0cb3f6e16959ab8f02bbaaa6f6e9f7da6f5550aaf8815b3c"
    )
