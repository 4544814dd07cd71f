"""Rating anomalies: jumps, registers going backwards, missing readings by unit and segment."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

from sqlalchemy import insert
from sqlalchemy.engine import Engine

from prepaid.anomalies import anomalies_of, anomaly_counts, missing_streaks
from prepaid.models import AnomalyKind, Outcome, ReadingSegment, SupplyUnit
from prepaid.rating import RatingOptions, rate_day

from .rating_helpers import (
    account,
    add_meters,
    charges,
    migrated,
    open_some,
    read,
    state,
    with_tariffs_and_unit,
)

D = [date(2026, 3, 1) + timedelta(days=i) for i in range(8)]


def one_account(tmp_path: Path) -> Engine:
    engine = migrated(tmp_path)
    with engine.begin() as c:
        unit = with_tariffs_and_unit(c)
    open_some(engine, [account(1, unit, balance_fen=100000)])
    add_meters(engine, [1])
    return engine


def test_an_implausible_jump_is_charged_and_reported(tmp_path: Path) -> None:
    """10 kWh a day for 5 days, then 150 kWh: over 10 × the 10 kWh average."""
    engine = one_account(tmp_path)
    register = 0
    for i, day in enumerate(D[:7]):
        register += 0 if i == 0 else (15000 if i == 6 else 1000)
        read(engine, day, {1: register})
        report = rate_day(engine, day)
    assert int(state(engine, 1)["avg_daily_ckwh"]) > 1000  # type: ignore[call-overload]
    assert report.counts == {Outcome.ANOMALY: 1}
    (found,) = anomalies_of(engine, 1)
    assert (found.kind, found.day, found.open) == (AnomalyKind.JUMP, D[6], True)
    assert "150.00 kWh" in found.detail and "10× the recent daily average" in found.detail
    last = charges(engine, 1)[-1]
    assert last["energy_ckwh"] == 15000 and last["outcome"] == Outcome.ANOMALY
    # 200 kWh in March: 200 × 0.52 = 104.00
    assert last["charged_fen"] == 10400


def test_a_higher_jump_factor_accepts_the_same_day(tmp_path: Path) -> None:
    engine = one_account(tmp_path)
    register = 0
    for i, day in enumerate(D[:7]):
        register += 0 if i == 0 else (15000 if i == 6 else 1000)
        read(engine, day, {1: register})
        report = rate_day(engine, day, options=RatingOptions(jump_factor=20))
    assert report.counts == {Outcome.NORMAL: 1}
    assert anomalies_of(engine, 1) == []


def test_a_register_going_backwards_is_held_and_rated_from_the_old_register(
    tmp_path: Path,
) -> None:
    engine = one_account(tmp_path)
    read(engine, D[0], {1: 50000})
    read(engine, D[1], {1: 100})  # a new meter? a reset? — not rated
    read(engine, D[2], {1: 51000})  # back above the last rated register
    for day in D[:3]:
        report = rate_day(engine, day)
        if day == D[1]:
            assert report.counts == {Outcome.ANOMALY: 1}
    (held,) = anomalies_of(engine, 1)
    assert (held.kind, held.reading_ckwh, held.previous_ckwh) == (
        AnomalyKind.NEGATIVE_CONSUMPTION,
        100,
        50000,
    )
    assert held.open  # the day was never rated
    assert [c["energy_ckwh"] for c in charges(engine, 1)] == [0, 1000]


def test_missing_readings_by_supply_unit_date_and_segment(tmp_path: Path) -> None:
    engine = migrated(tmp_path)
    with engine.begin() as c:
        north = with_tariffs_and_unit(c)
        units = SupplyUnit.__table__  # type: ignore[attr-defined]
        south = int(
            c.execute(
                insert(units).values(code="3302", name="宁波供电公司").returning(units.c.id)
            ).scalar_one()
        )
        segments = {}
        for code, unit in (("N-1", north), ("N-2", north), ("S-1", south)):
            table = ReadingSegment.__table__  # type: ignore[attr-defined]
            segments[code] = int(
                c.execute(
                    insert(table)
                    .values(code=code, name=code, supply_unit_id=unit)
                    .returning(table.c.id)
                ).scalar_one()
            )
    layout = {1: "N-1", 2: "N-1", 3: "N-2", 4: "S-1", 5: "S-1", 6: "S-1"}
    open_some(
        engine,
        [
            account(
                n,
                south if seg.startswith("S") else north,
                reading_segment_id=segments[seg],
                balance_fen=10000,
            )
            for n, seg in layout.items()
        ],
    )
    add_meters(engine, list(layout))
    read(engine, D[0], {n: 0 for n in layout})
    read(engine, D[1], {1: 100, 4: 100})  # 2, 3, 5, 6 missing
    read(engine, D[2], {1: 200, 2: 200, 4: 200})  # 3, 5, 6 missing
    for day in D[:3]:
        rate_day(engine, day)
    counts = [
        (c.supply_unit, c.day, c.reading_segment, c.accounts)
        for c in anomaly_counts(engine, D[1], D[2], kinds=(AnomalyKind.MISSING_READING,))
    ]
    assert counts == [
        ("3301", D[1], "N-1", 1),
        ("3301", D[1], "N-2", 1),
        ("3301", D[2], "N-2", 1),
        ("3302", D[1], "S-1", 2),
        ("3302", D[2], "S-1", 2),
    ]
    assert [c.accounts for c in anomaly_counts(engine, D[2], supply_unit="3302")] == [2]
    # three days without a reading through D[3]: accounts 3, 5 and 6 (last rated D[0])
    streaks = missing_streaks(engine, D[3], 3)
    assert [(s.account_id, s.last_reading, s.days) for s in streaks] == [
        (3, D[0], 3),
        (5, D[0], 3),
        (6, D[0], 3),
    ]
    # a re-collected reading (补抄) rated later closes that day's anomaly
    read(engine, D[2], {5: 150})
    rate_day(engine, D[2])
    assert [c.accounts for c in anomaly_counts(engine, D[2], supply_unit="3302")] == [1]
