"""Properties of rating through the storage path (random daily energies, real SQLite).

The tariff engine's own properties (tiers, TOU splits, rounding) are tested in
tests/prepaid/tariff; these check what rating adds: state carried from day to day,
charges stored once, periods closed, and the vector path equal to the scalar one.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine

from prepaid.accounts import load_catalog
from prepaid.models import day_date, day_number
from prepaid.rating import (
    ChunkInput,
    RatingOptions,
    TouArrays,
    plan_chunk,
    rate_accounts,
    rate_one,
)
from prepaid.tariff import BillingPeriod, PeriodEnergy, TariffBook, charge

from .rating_helpers import account, add_meters, charges, migrated, open_some, read, state
from .rating_helpers import with_tariffs_and_unit as setup_unit

TARIFFS = ("res-monthly", "res-seasonal", "res-annual", "com-flat", "res-tou", "res-2025")
STARTS = {
    "res-2025": (date(2025, 6, 1), date(2025, 5, 29)),  # the mid-June price change
    "default": (date(2026, 1, 30), date(2026, 2, 1), date(2026, 12, 28)),
}


class World:
    """One database for all examples; each example gets a new account and meter."""

    def __init__(self, engine: Engine, unit: int) -> None:
        self.engine = engine
        self.unit = unit
        self.numbers: Iterator[int] = itertools.count(1)
        self.book: TariffBook = load_catalog(engine).book


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    path: Path = tmp_path_factory.mktemp("rating-properties")
    engine = migrated(path)
    with engine.begin() as c:
        unit = setup_unit(c)
    return World(engine, unit)


@st.composite
def histories(draw: st.DrawFn) -> dict[str, object]:
    tariff = draw(st.sampled_from(TARIFFS))
    start = draw(st.sampled_from(STARTS.get(tariff, STARTS["default"])))
    days = draw(st.integers(2, 40))
    energy = draw(st.lists(st.integers(0, 6000), min_size=days - 1, max_size=days - 1))
    missing = draw(st.lists(st.booleans(), min_size=days - 1, max_size=days - 1))
    peak = draw(st.lists(st.integers(0, 100), min_size=days - 1, max_size=days - 1))
    return {
        "tariff": tariff,
        "start": start,
        "energy": energy,
        "missing": [m and draw(st.integers(0, 3)) == 0 for m in missing],
        "peak_percent": peak,
        "household": draw(st.integers(0, 6)),
        "free": draw(st.booleans()),
        "register": draw(st.integers(0, 10**8)),
    }


def _text(total: int, peak: int, valley: int) -> str:
    def kwh(v: int) -> str:
        return f"{v // 100}.{v % 100:02d}"

    return f"{kwh(total)},0.00,{kwh(peak)},0.00,{kwh(valley)}"


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(history=histories())
def test_stored_daily_deductions_add_up_to_each_period_bill(
    world: World, history: dict[str, object]
) -> None:
    n = next(world.numbers)
    tariff = str(history["tariff"])
    household = int(history["household"])  # type: ignore[call-overload]
    free = bool(history["free"])
    (ident,) = open_some(
        world.engine,
        [
            account(
                n,
                world.unit,
                tariff=tariff,
                household_size=household,
                free_allowance=free,
                balance_fen=50_000,
            )
        ],
    )
    add_meters(world.engine, [n])
    start: date = history["start"]  # type: ignore[assignment]
    energies: list[int] = history["energy"]  # type: ignore[assignment]
    missing: list[bool] = history["missing"]  # type: ignore[assignment]
    peaks: list[int] = history["peak_percent"]  # type: ignore[assignment]
    total = peak = valley = int(history["register"])  # type: ignore[call-overload]
    tou = tariff == "res-tou"
    daily_tou: list[tuple[int, int]] = []
    for i in range(len(energies) + 1):
        day = start + timedelta(days=i)
        if i:
            e = energies[i - 1]
            p = e * peaks[i - 1] // 100
            daily_tou.append((p, e - p))
            total, peak, valley = total + e, peak + p, valley + e - p
        if i and missing[i - 1] and i < len(energies):
            continue
        value: int | str = _text(total, peak, valley) if tou else total
        read(world.engine, day, {n: value})
        rate_accounts(world.engine, [ident], day)

    rows = charges(world.engine, ident)
    assert sum(r["energy_ckwh"] for r in rows) == total - int(history["register"])  # type: ignore[misc, call-overload]
    assert state(world.engine, ident)["balance_fen"] == 50_000 - sum(r["amount_fen"] for r in rows)  # type: ignore[misc]
    assert len({r["day"] for r in rows}) == len(rows)  # one charge per day
    by_period: dict[int, list[dict[str, object]]] = {}
    for r in rows[1:]:  # the first is the baseline
        by_period.setdefault(int(r["period_start"]), []).append(r)  # type: ignore[call-overload]
    for start_day, period_rows in by_period.items():
        period = BillingPeriod.of(day_date(start_day))
        last = period_rows[-1]
        assert sum(int(r["amount_fen"]) for r in period_rows) == last["charged_fen"]  # type: ignore[call-overload]
        tiers = [int(r["tier"]) for r in period_rows]  # type: ignore[call-overload]
        if tariff != "res-2025":
            assert tiers == sorted(tiers)  # tiers never go back within a period
            assert all(int(r["amount_fen"]) >= 0 for r in period_rows)  # type: ignore[call-overload]
        if not any(missing) and not tou:
            # independent: the period's energy is the sum of its days' energies
            through = day_date(int(last["day"])) - timedelta(days=1)  # type: ignore[call-overload]
            in_period = [
                e
                for k, e in enumerate(energies)
                if period.start <= start + timedelta(days=k) <= through
            ]
            prior = 0
            bill = charge(
                world.book,
                period,
                PeriodEnergy(
                    sum(in_period),
                    through=through,
                    prior_ckwh=prior if tariff == "res-annual" else 0,
                    household_size=household or None,
                    free_allowance=free,
                ),
                tariff_id=tariff,
            )
            if tariff != "res-annual":  # annual tiers also depend on the opening prior
                assert last["charged_fen"] == bill.total_fen
                assert last["period_ckwh"] == sum(in_period)


# -- the vector path equals the scalar one ----------------------------------------------


@st.composite
def chunks(draw: st.DrawFn) -> tuple[ChunkInput, date, list[int]]:
    n = draw(st.integers(1, 30))
    day = draw(st.sampled_from([date(2026, 3, 2), date(2026, 3, 1), date(2026, 8, 17)]))
    period = BillingPeriod.of(day - timedelta(days=1))
    ps = day_number(period.start)
    d = day_number(day)
    ids, tariffs, household, free, rday, rck, pstart, pck, prior, charged, avg, reading = (
        [] for _ in range(12)
    )
    codes = []
    for i in range(n):
        code = draw(st.sampled_from(["res-monthly", "res-seasonal", "res-annual", "com-flat"]))
        codes.append(code)
        ids.append(i + 1)
        tariffs.append(code)
        household.append(draw(st.integers(0, 7)))
        free.append(int(draw(st.booleans())))
        roll = draw(st.booleans()) or d - 1 <= ps
        if roll:  # last reading closed the previous period
            last_day = ps
            previous_start = day_number(BillingPeriod.of(period.start - timedelta(days=1)).start)
            pstart.append(previous_start)
        else:
            last_day = draw(st.integers(ps + 1, d - 1))
            pstart.append(ps)
        rday.append(last_day)
        register = draw(st.integers(0, 10**9))
        rck.append(register)
        pck.append(draw(st.integers(0, 90_000)))
        prior.append(draw(st.integers(0, 300_000)))
        charged.append(draw(st.integers(0, 100_000)))
        avg.append(draw(st.integers(0, 3000)))
        reading.append(register + draw(st.integers(0, 20_000)))
    a = [
        np.asarray(v, dtype=np.int64)
        for v in (ids, [0] * n, household, free, rday, rck, pstart, pck, prior, charged, avg)
    ]
    chunk = ChunkInput(
        a[0],
        a[1],
        a[2],
        a[3],
        a[4],
        a[5],
        a[6],
        a[7],
        a[8],
        a[9],
        a[10],
        np.asarray(reading, dtype=np.int64),
        tou=TouArrays.empty(),
    )
    return chunk, day, [TARIFF_IDS[c] for c in codes]


TARIFF_IDS = {"res-monthly": 1, "res-seasonal": 2, "res-annual": 3, "com-flat": 4}


@settings(max_examples=200, deadline=None)
@given(case=chunks())
def test_the_vector_path_gives_what_the_scalar_engine_gives(
    case: tuple[ChunkInput, date, list[int]],
) -> None:
    chunk, day, tariff_ids = case
    chunk.tariff = np.asarray(tariff_ids, dtype=np.int64)
    from prepaid.tariff import example_path, load_book

    book = TariffBook(
        t
        for name in ("residential_monthly", "residential_seasonal", "residential_annual")
        for t in load_book(example_path(name))
    )
    book = TariffBook([*book, *load_book(example_path("commercial_flat"))])
    codes = {v: k for k, v in TARIFF_IDS.items()}
    options = RatingOptions()
    plan = plan_chunk(chunk, day, book, codes, options)
    assert len(plan) == len(chunk) and not plan.explicit.any()
    for row in range(len(chunk)):
        result = rate_one(chunk, row, day, book, codes, options)
        assert not isinstance(result, Exception) and isinstance(result, tuple)
        scalar, closing, _, jump = result
        assert closing == []
        vector = tuple(
            int(a[row])
            for a in (
                plan.ids,
                plan.reading,
                plan.period_ckwh,
                plan.prior_ckwh,
                plan.energy,
                plan.amount,
                plan.total,
                plan.charged,
                plan.avg,
                plan.version,
                plan.tier,
                plan.jump,
            )
        )
        assert vector == scalar
        assert bool(plan.jump[row]) == jump
