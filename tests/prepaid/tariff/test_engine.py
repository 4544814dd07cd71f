"""The scalar engine against hand-checked bills (each with its hand calculation)."""

from __future__ import annotations

from datetime import date

import pytest

from prepaid.tariff import (
    BillingPeriod,
    PeriodEnergy,
    RatingError,
    Tariff,
    TariffBook,
    TariffKind,
    charge,
    daily_deductions,
    deduction,
    example_path,
    load_book,
)

JULY = BillingPeriod.month(2025, 7)
JUNE = BillingPeriod.month(2025, 6)


def book(name: str) -> TariffBook:
    return load_book(example_path(name))


def test_monthly_tiers_450_kwh() -> None:
    # 200 × 0.52 = 104.00; 200 × 0.57 = 114.00; 50 × 0.82 = 41.00 → 259.00
    result = charge(book("residential_monthly"), JULY, PeriodEnergy(45000))
    assert result.total_fen == 25900
    assert str(result.total) == "259.00"
    assert [(ln.tier, str(ln.kwh), str(ln.price)) for ln in result.lines] == [
        (1, "200.00", "0.5200"),
        (2, "200.00", "0.5700"),
        (3, "50.00", "0.8200"),
    ]
    assert [ln.amount_e6 for ln in result.lines] == [104_000_000, 114_000_000, 41_000_000]
    assert result.tier == 3


def test_annual_tiers_with_prior_energy() -> None:
    # 2700 kWh before; this month 2700..3000 on the annual axis:
    # 60 × 0.538 = 32.28 (to 2760); 240 × 0.588 = 141.12 → 173.40
    result = charge(book("residential_annual"), JULY, PeriodEnergy(30000, prior_ckwh=270000))
    assert str(result.total) == "173.40"
    assert [(ln.tier, str(ln.kwh), str(ln.amount)) for ln in result.lines] == [
        (1, "60.00", "32.280000"),
        (2, "240.00", "141.120000"),
    ]
    assert result.tier == 2


def test_three_days_of_1_01_kwh_deduct_53_52_53() -> None:
    # day 1: 1.01 × 0.52 = 0.5252 → 0.53 charged, deduct 0.53
    # day 2: 2.02 × 0.52 = 1.0504 → 1.05, deduct 1.05 − 0.53 = 0.52
    # day 3: 3.03 × 0.52 = 1.5756 → 1.58, deduct 1.58 − 1.05 = 0.53; bill 1.58
    flat = Tariff("flat-52", "flat", 1, date(2020, 1, 1), (5200,), kind=TariffKind.FLAT)
    for tariff in (flat, book("residential_monthly")):
        assert daily_deductions(tariff, JULY, [101, 101, 101]) == [53, 52, 53]
        bill = charge(tariff, JULY, PeriodEnergy(303, through=date(2025, 7, 3)))
        assert bill.total_fen == 158
    assert deduction(105, bill) == 53


def test_price_change_mid_month_split_by_days() -> None:
    # June 2025 (30 days): v1 06-01..06-15, v2 06-16..06-30 (+0.03 on every tier).
    # Energy 450 × 15/30 = 225 each; thresholds 200 × 15/30 = 100, 400 × 15/30 = 200 each.
    # v1: 100 × 0.52 + 100 × 0.57 + 25 × 0.82 = 52 + 57 + 20.50 = 129.50
    # v2: 100 × 0.55 + 100 × 0.60 + 25 × 0.85 = 55 + 60 + 21.25 = 136.25 → 265.75
    result = charge(book("residential_price_change"), JUNE, PeriodEnergy(45000))
    assert str(result.total) == "265.75"
    assert [(s.version, s.energy_ckwh, s.thresholds_ckwh) for s in result.segments] == [
        (1, 22500, (10000, 20000)),
        (2, 22500, (10000, 20000)),
    ]
    assert [(ln.version, ln.tier, str(ln.kwh)) for ln in result.lines] == [
        (1, 1, "100.00"),
        (1, 2, "100.00"),
        (1, 3, "25.00"),
        (2, 1, "100.00"),
        (2, 2, "100.00"),
        (2, 3, "25.00"),
    ]


def test_price_change_in_a_31_day_month_rounds_split_and_thresholds() -> None:
    # A change on 07-16 of a 31-day month: v1 15 days, v2 16 days.
    # energy: round(450 × 15/31) = round(217.7419) = 217.74; v2 gets 232.26
    # v1 thresholds: 200 × 15/31 = 96.774 → 96.77; 400 × 15/31 = 193.548 → 193.55
    # v2 thresholds: 200 × 16/31 = 103.226 → 103.23; 400 × 16/31 = 206.452 → 206.45
    # v1: 96.77 × 0.52 + 96.78 × 0.57 + 24.19 × 0.82 = 50.3204 + 55.1646 + 19.8358 = 125.3208
    # v2: 103.23 × 0.55 + 103.22 × 0.60 + 25.81 × 0.85 = 56.7765 + 61.932 + 21.9385 = 140.647
    # total 265.9678 → 265.97 (rounded once, at settlement)
    v1 = Tariff(
        "r",
        version=1,
        effective_from=date(2025, 1, 1),
        effective_to=date(2025, 7, 15),
        prices_e4=(5200, 5700, 8200),
        name="r",
        thresholds_ckwh=(20000, 40000),
    )
    v2 = Tariff(
        "r",
        version=2,
        effective_from=date(2025, 7, 16),
        prices_e4=(5500, 6000, 8500),
        name="r",
        thresholds_ckwh=(20000, 40000),
    )
    result = charge(TariffBook([v1, v2]), JULY, PeriodEnergy(45000))
    assert [(s.energy_ckwh, s.thresholds_ckwh) for s in result.segments] == [
        (21774, (9677, 19355)),
        (23226, (10323, 20645)),
    ]
    assert result.total_e6 == 265_967_800
    assert str(result.total) == "265.97"


def test_price_change_period_to_date_uses_whole_period_thresholds() -> None:
    # Through 06-10 only v1 has elapsed days, so it gets all 150 kWh, but its
    # thresholds are those of its 15 days in June: 100 / 200.
    # 100 × 0.52 + 50 × 0.57 = 52 + 28.50 = 80.50
    result = charge(
        book("residential_price_change"), JUNE, PeriodEnergy(15000, through=date(2025, 6, 10))
    )
    assert str(result.total) == "80.50"
    assert [s.energy_ckwh for s in result.segments] == [15000, 0]


def test_price_change_split_by_daily_readings() -> None:
    # 10 kWh a day to 06-15 (150 under v1), 20 a day after (300 under v2):
    # v1: 100 × 0.52 + 50 × 0.57 = 80.50; v2: 100 × 0.55 + 100 × 0.60 + 100 × 0.85 = 200
    # → 280.50 (by days it would be 265.75)
    daily = (1000,) * 15 + (2000,) * 15
    result = charge(book("residential_price_change"), JUNE, PeriodEnergy(45000, daily_ckwh=daily))
    assert str(result.total) == "280.50"
    steps = daily_deductions(book("residential_price_change"), JUNE, daily, by_readings=True)
    assert sum(steps) == 28050


def test_seasonal_thresholds() -> None:
    seasonal = book("residential_seasonal")
    # July (summer, 260 / 600): 260 × 0.52 + 190 × 0.57 = 135.20 + 108.30 = 243.50
    assert str(charge(seasonal, JULY, PeriodEnergy(45000)).total) == "243.50"
    # January (200 / 400): as the plain monthly tariff, 259.00
    jan = BillingPeriod.month(2025, 1)
    assert str(charge(seasonal, jan, PeriodEnergy(45000)).total) == "259.00"
    # 04-16..05-15 accrues thresholds by day: T1 = 200 × 15/30 + 260 × 15/31 = 225.806 → 225.81
    # T2 = 400 × 15/30 + 600 × 15/31 = 490.32; 225.81 × 0.52 + 224.19 × 0.57
    #    = 117.4212 + 127.7883 = 245.2095 → 245.21
    straddle = BillingPeriod(date(2025, 4, 16), date(2025, 5, 15))
    result = charge(seasonal, straddle, PeriodEnergy(45000))
    assert result.segments[0].thresholds_ckwh == (22581, 49032)
    assert str(result.total) == "245.21"


def test_household_uplift() -> None:
    monthly = book("residential_monthly")
    # ≥ 5 persons: 300 / 500. 300 × 0.52 + 150 × 0.57 = 156 + 85.50 = 241.50
    assert str(charge(monthly, JULY, PeriodEnergy(45000, household_size=5)).total) == "241.50"
    assert str(charge(monthly, JULY, PeriodEnergy(45000, household_size=4)).total) == "259.00"
    # annual, 5 persons: 3960 / 6000 — 2700 + 300 stays in tier 1: 300 × 0.538 = 161.40
    annual = book("residential_annual")
    energy = PeriodEnergy(30000, prior_ckwh=270000, household_size=6)
    assert str(charge(annual, JULY, energy).total) == "161.40"


def test_free_allowance() -> None:
    monthly = book("residential_monthly")
    # 15 kWh free: 15 × 0 + 185 × 0.52 + 200 × 0.57 + 50 × 0.82 = 96.20 + 114 + 41 = 251.20
    result = charge(monthly, JULY, PeriodEnergy(45000, free_allowance=True))
    assert str(result.total) == "251.20"
    assert [(ln.tier, ln.free, str(ln.kwh)) for ln in result.lines][:2] == [
        (1, True, "15.00"),
        (1, False, "185.00"),
    ]
    # 10 kWh: all free
    assert charge(monthly, JULY, PeriodEnergy(1000, free_allowance=True)).total_fen == 0


def test_tou_two_periods() -> None:
    # base charge 259.00; + 0.03 × 300 (peak) − 0.17 × 150 (valley) = +9.00 − 25.50 → 242.50
    # each tier split 2:1 between peak and valley (the period's shares)
    result = charge(
        book("residential_tou2"), JULY, PeriodEnergy.from_tou({"peak": 30000, "valley": 15000})
    )
    assert str(result.total) == "242.50"
    assert [(ln.tier, ln.tou_period, str(ln.kwh), str(ln.price)) for ln in result.lines] == [
        (1, "peak", "133.33", "0.5500"),
        (1, "valley", "66.67", "0.3500"),
        (2, "peak", "133.34", "0.6000"),
        (2, "valley", "66.66", "0.4000"),
        (3, "peak", "33.33", "0.8500"),
        (3, "valley", "16.67", "0.6500"),
    ]


def test_tou_four_periods_flat_tariff() -> None:
    # 10 × 1.196 + 20 × 1.014 + 30 × 0.65 + 40.5 × 0.312
    # = 11.96 + 20.28 + 19.50 + 12.636 = 64.376 → 64.38
    tou = {"sharp": 1000, "peak": 2000, "flat": 3000, "valley": 4050}
    result = charge(book("commercial_tou4"), JULY, PeriodEnergy.from_tou(tou))
    assert result.total_e6 == 64_376_000
    assert str(result.total) == "64.38"


def test_flat_commercial() -> None:
    # 1234.56 × 0.723 = 892.58688 → 892.59
    assert str(charge(book("commercial_flat"), JULY, PeriodEnergy(123456)).total) == "892.59"


def test_zero_energy_has_no_lines() -> None:
    result = charge(book("residential_monthly"), JULY, PeriodEnergy(0))
    assert result.lines == () and result.total_fen == 0 and result.tier == 1


def test_partial_period_prorates_monthly_thresholds() -> None:
    # 10 days of July: 200 × 10/31 = 64.516 → 64.52; 400 × 10/31 = 129.03
    # 100 kWh: 64.52 × 0.52 + 35.48 × 0.57 = 33.5504 + 20.2236 = 53.774 → 53.77
    period = BillingPeriod(date(2025, 7, 1), date(2025, 7, 10))
    result = charge(book("residential_monthly"), period, PeriodEnergy(10000))
    assert result.segments[0].thresholds_ckwh == (6452, 12903)
    assert str(result.total) == "53.77"


@pytest.mark.parametrize(
    ("energy", "period", "match"),
    [
        (PeriodEnergy(100, through=date(2025, 8, 1)), JULY, "through"),
        (PeriodEnergy(100), BillingPeriod.month(2023, 7), "not over the whole period"),
        (PeriodEnergy(100, daily_ckwh=(50, 50)), JULY, "31 daily readings"),
    ],
)
def test_rating_errors(energy: PeriodEnergy, period: BillingPeriod, match: str) -> None:
    tariff = book("residential_monthly").versions("res-monthly")[0]
    with pytest.raises(RatingError, match=match):
        charge(tariff, period, energy)


def test_rating_input_errors() -> None:
    with pytest.raises(RatingError, match="add up"):
        PeriodEnergy(100, tou_ckwh={"peak": 10, "valley": 10})
    with pytest.raises(RatingError, match="unknown TOU period"):
        PeriodEnergy(100, tou_ckwh={"noon": 100})
    with pytest.raises(RatingError, match=r"0\.01 kWh"):
        PeriodEnergy(1.5)  # type: ignore[arg-type]
    with pytest.raises(RatingError, match="persons"):
        PeriodEnergy(1, household_size=0)
    with pytest.raises(RatingError, match="time-of-use"):
        charge(book("residential_tou2"), JULY, PeriodEnergy(100))
    with pytest.raises(RatingError, match="not sharp"):
        charge(book("residential_tou2"), JULY, PeriodEnergy.from_tou({"sharp": 1, "peak": 1}))
    annual = book("residential_annual")
    with pytest.raises(RatingError, match="crosses the start"):
        charge(annual, BillingPeriod(date(2024, 12, 16), date(2025, 1, 15)), PeriodEnergy(1))
    with pytest.raises(RatingError, match="name one"):
        charge(TariffBook([*annual, *book("residential_monthly")]), JULY, PeriodEnergy(1))
