"""Properties of the scalar engine on random tariffs and energies (hypothesis)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from datetime import date

from hypothesis import given, settings
from hypothesis import strategies as st

from prepaid.tariff import (
    BillingPeriod,
    Cycle,
    PeriodEnergy,
    Tariff,
    TariffBook,
    charge,
    daily_deductions,
    div_half_up,
    e6_to_fen,
    example_path,
    load_book,
)

from .strategies import tariffs, tou_split

PERIODS = st.sampled_from(
    [BillingPeriod.month(2025, m) for m in (2, 4, 7, 12)] + [BillingPeriod.month(2024, 2)]
)
ENERGY = st.integers(0, 300_000)
FAST = settings(max_examples=60, deadline=None)


@FAST
@given(data=st.data(), tariff=tariffs(), period=PERIODS)
def test_daily_deductions_add_up_to_the_period_bill(
    data: st.DataObject, tariff: Tariff, period: BillingPeriod
) -> None:
    days = data.draw(st.integers(1, period.days))
    daily = data.draw(st.lists(st.integers(0, 3_000), min_size=days, max_size=days))
    tou_days = [tou_split(data.draw, tariff, d) for d in daily] if tariff.tou else None
    prior = data.draw(st.integers(0, 500_000))
    size = data.draw(st.none() | st.integers(1, 8))
    free = data.draw(st.booleans())
    steps = daily_deductions(
        tariff,
        period,
        daily,
        daily_tou_ckwh=tou_days,
        prior_ckwh=prior,
        household_size=size,
        free_allowance=free,
    )
    tou_total: dict[str, int] = defaultdict(int)
    for day in tou_days or []:
        for k, v in day.items():
            tou_total[k] += v
    bill = charge(
        tariff,
        period,
        PeriodEnergy(
            sum(daily),
            through=period.start.replace(day=days),
            tou_ckwh=dict(tou_total) if tariff.tou else None,
            prior_ckwh=prior,
            household_size=size,
            free_allowance=free,
        ),
    )
    assert sum(steps) == bill.total_fen


@FAST
@given(
    data=st.data(),
    period=st.sampled_from([BillingPeriod.month(2025, 6), BillingPeriod.month(2025, 7)]),
)
def test_deductions_add_up_across_a_price_change(
    data: st.DataObject, period: BillingPeriod
) -> None:
    book = load_book(example_path("residential_price_change"))
    daily = data.draw(st.lists(st.integers(0, 4_000), min_size=period.days, max_size=period.days))
    by_readings = data.draw(st.booleans())
    steps = daily_deductions(book, period, daily, by_readings=by_readings)
    energy = PeriodEnergy(sum(daily), daily_ckwh=tuple(daily) if by_readings else None)
    assert sum(steps) == charge(book, period, energy).total_fen


@FAST
@given(
    tariff=tariffs(tou=False),
    period=PERIODS,
    e=ENERGY,
    more=st.integers(0, 50_000),
    prior=st.integers(0, 1_000_000),
    size=st.none() | st.integers(1, 8),
    free=st.booleans(),
)
def test_charge_is_monotone_and_tiers_fill_in_order(
    tariff: Tariff,
    period: BillingPeriod,
    e: int,
    more: int,
    prior: int,
    size: int | None,
    free: bool,
) -> None:
    def rate(energy: int) -> tuple[int, int, list[tuple[int, bool, int]]]:
        c = charge(
            tariff,
            period,
            PeriodEnergy(energy, prior_ckwh=prior, household_size=size, free_allowance=free),
        )
        return c.total_fen, c.tier, [(ln.tier, ln.free, ln.energy_ckwh) for ln in c.lines]

    low, high = rate(e), rate(e + more)
    assert low[0] <= high[0]  # charge monotone non-decreasing in energy
    assert low[1] <= high[1]  # tier reached monotone
    # lines: tiers ascend, kWh sum to the total, and a tier is used only once the one
    # below is full (its width on the cycle axis)
    limits = charge(tariff, period, PeriodEnergy(0, household_size=size)).segments[0]
    axis = prior if tariff.cycle is Cycle.ANNUAL else 0
    bounds = (0, *limits.thresholds_ckwh)
    per_tier: dict[int, int] = defaultdict(int)
    for tier, _, kwh in high[2]:
        per_tier[tier] += kwh
    assert sum(per_tier.values()) == e + more
    assert [t for t, _, _ in high[2]] == sorted(t for t, _, _ in high[2])
    used = sorted(per_tier)
    for tier in used[:-1]:
        top = bounds[tier] if tier < len(bounds) else None
        assert top is not None and axis + sum(per_tier[t] for t in used if t <= tier) >= top


@FAST
@given(
    data=st.data(),
    tariff=tariffs(tou=True),
    period=PERIODS,
    e=ENERGY,
    prior=st.integers(0, 1_000_000),
    size=st.none() | st.integers(1, 8),
    free=st.booleans(),
)
def test_tou_lines_add_up_and_cost_the_deltas_exactly(
    data: st.DataObject,
    tariff: Tariff,
    period: BillingPeriod,
    e: int,
    prior: int,
    size: int | None,
    free: bool,
) -> None:
    tou = tou_split(data.draw, tariff, e)
    common = {"prior_ckwh": prior, "household_size": size, "free_allowance": free}
    with_tou = charge(tariff, period, PeriodEnergy(e, tou_ckwh=tou, **common))  # type: ignore[arg-type]
    # the same tariff without TOU periods gives the base charge
    base = charge(replace(tariff, tou=()), period, PeriodEnergy(e, **common))  # type: ignore[arg-type]
    assert sum(ln.energy_ckwh for ln in with_tou.lines) == e
    by_period: dict[str, int] = defaultdict(int)
    free_by_period: dict[str, int] = defaultdict(int)
    by_tier: dict[tuple[int, bool], int] = defaultdict(int)
    for ln in with_tou.lines:
        assert ln.tou_period is not None
        by_period[ln.tou_period] += ln.energy_ckwh
        by_tier[(ln.tier, ln.free)] += ln.energy_ckwh
        if ln.free:
            free_by_period[ln.tou_period] += ln.energy_ckwh
        assert ln.amount_e6 == ln.price_e4 * ln.energy_ckwh
    assert {k: v for k, v in by_period.items() if v} == {k: v for k, v in tou.items() if v}
    assert dict(by_tier) == {(ln.tier, ln.free): ln.energy_ckwh for ln in base.lines}
    deltas = sum(tariff.delta_e4(p) * (tou[p] - free_by_period[p]) for p in tariff.tou_names)
    assert with_tou.total_e6 == base.total_e6 + deltas  # exact before settlement
    assert abs(with_tou.total_fen - (base.total_fen + div_half_up(deltas, 10_000))) <= 1
    assert with_tou.total_fen == e6_to_fen(with_tou.total_e6)


def test_tou_free_allowance_is_split_by_shares() -> None:
    # a tiny hand case: 15 kWh free of 450 (300 peak / 150 valley) → 10 peak + 5 valley
    book = load_book(example_path("residential_tou2"))
    tariff = book.versions("res-tou")[0]
    with_free = replace(tariff, free_allowance_ckwh=1500)
    result = charge(
        TariffBook([with_free]),
        BillingPeriod.month(2025, 7),
        PeriodEnergy.from_tou({"peak": 30000, "valley": 15000}, free_allowance=True),
    )
    free = [(ln.tou_period, ln.energy_ckwh) for ln in result.lines if ln.free]
    assert free == [("peak", 1000), ("valley", 500)]
    # 242.50 − (10 × 0.55 + 5 × 0.35) = 242.50 − 7.25 = 235.25
    assert str(result.total) == "235.25"
    assert date(2025, 7, 1) in result.period
