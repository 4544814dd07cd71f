"""The vectorised engine gives the scalar engine's result, account by account."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prepaid.tariff import (
    BillingPeriod,
    PeriodEnergy,
    RatingError,
    Tariff,
    charge,
    charge_many,
    example_path,
    load_book,
)
from prepaid.tariff._units import MAX_ENERGY_CKWH, MAX_PRICE_E4

from .strategies import tariffs, tou_split

JULY = BillingPeriod.month(2025, 7)
PERIODS = st.sampled_from(
    [JULY, BillingPeriod.month(2025, 2), BillingPeriod(JULY.start, JULY.start.replace(day=9))]
)


def one(path: str) -> Tariff:
    return next(iter(load_book(example_path(path))))


@settings(max_examples=80, deadline=None)
@given(data=st.data(), tariff=tariffs(), period=PERIODS, n=st.integers(0, 12))
def test_vectorised_equals_scalar(
    data: st.DataObject, tariff: Tariff, period: BillingPeriod, n: int
) -> None:
    energy = data.draw(st.lists(st.integers(0, 400_000), min_size=n, max_size=n))
    prior = data.draw(st.lists(st.integers(0, 1_500_000), min_size=n, max_size=n))
    sizes = data.draw(st.lists(st.integers(0, 8), min_size=n, max_size=n))
    free = data.draw(st.lists(st.booleans(), min_size=n, max_size=n))
    splits = [tou_split(data.draw, tariff, e) for e in energy] if tariff.tou else []
    tou = (
        {name: np.array([s[name] for s in splits], dtype=np.int64) for name in tariff.tou_names}
        if tariff.tou
        else None
    )
    got = charge_many(
        tariff,
        period,
        np.array(energy, dtype=np.int64),
        np.array(prior, dtype=np.int64),
        household_size=np.array(sizes),
        free_allowance=np.array(free),
        tou_ckwh=tou,
    )
    assert got.dtype == np.int64
    want = [
        charge(
            tariff,
            period,
            PeriodEnergy(
                e,
                prior_ckwh=p,
                household_size=s or None,
                free_allowance=f,
                tou_ckwh=splits[i] if tariff.tou else None,
            ),
        ).total_fen
        for i, (e, p, s, f) in enumerate(zip(energy, prior, sizes, free, strict=True))
    ]
    assert got.tolist() == want


def test_shipped_hand_cases() -> None:
    # 200.01 kWh: 104.00 + 0.01 × 0.57 = 104.0057 → 104.01
    energy = np.array([45000, 0, 101, 20000, 20001], dtype=np.int64)
    assert charge_many(one("residential_monthly"), JULY, energy).tolist() == [
        25900,
        0,
        53,
        10400,
        10401,
    ]
    annual = charge_many(one("residential_annual"), JULY, [30000], np.array([270000]))
    assert annual.tolist() == [17340]
    tou = charge_many(
        one("residential_tou2"),
        JULY,
        [45000],
        tou_ckwh={"peak": np.array([30000]), "valley": np.array([15000])},
    )
    assert tou.tolist() == [24250]
    scalars = charge_many(
        one("residential_monthly"), JULY, [45000, 45000], household_size=5, free_allowance=True
    )
    # 300 / 500 with 15 free: 285 × 0.52 + 150 × 0.57 = 148.20 + 85.50 = 233.70
    assert scalars.tolist() == [23370, 23370]


def test_extremes_stay_exact() -> None:
    tariff = Tariff(
        "big",
        "big",
        1,
        JULY.start.replace(year=2020),
        (MAX_PRICE_E4, 0, MAX_PRICE_E4),
        thresholds_ckwh=(1, MAX_ENERGY_CKWH - 1),
    )
    energy = np.array([MAX_ENERGY_CKWH, MAX_ENERGY_CKWH - 7], dtype=np.int64)
    want = [charge(tariff, JULY, PeriodEnergy(int(e))).total_fen for e in energy]
    assert charge_many(tariff, JULY, energy).tolist() == want


def test_bad_arrays() -> None:
    tariff = one("residential_monthly")
    with pytest.raises(RatingError, match=r"integer counts of 0\.01 kWh, got dtype float64"):
        charge_many(tariff, JULY, np.array([1.5]))
    with pytest.raises(RatingError, match="expected 0 to"):
        charge_many(tariff, JULY, np.array([-1]))
    with pytest.raises(RatingError, match="1-D"):
        charge_many(tariff, JULY, np.zeros((2, 2), dtype=np.int64))
    with pytest.raises(RatingError, match="time-of-use"):
        charge_many(one("residential_tou2"), JULY, np.array([1]))
    with pytest.raises(RatingError, match="add up"):
        charge_many(
            one("residential_tou2"),
            JULY,
            np.array([10]),
            tou_ckwh={"peak": np.array([1]), "valley": np.array([1])},
        )
    with pytest.raises(RatingError, match="not over the whole period"):
        charge_many(tariff, BillingPeriod.month(2020, 1), np.array([1]))


def test_large_batch_matches_scalar_sample() -> None:
    rng = np.random.default_rng(7)
    energy = rng.integers(0, 200_000, 100_000, dtype=np.int64)
    tariff = one("residential_monthly")
    got = charge_many(tariff, JULY, energy)
    for i in rng.integers(0, energy.size, 200):
        assert got[i] == charge(tariff, JULY, PeriodEnergy(int(energy[i]))).total_fen
