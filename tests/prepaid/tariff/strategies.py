"""Hypothesis strategies: random valid tariffs and energies (shared by the tariff tests)."""

from __future__ import annotations

from datetime import date

from hypothesis import strategies as st

from prepaid.tariff import (
    TOU_PERIODS,
    Cycle,
    HouseholdUplift,
    Season,
    Tariff,
    TariffKind,
    TouPeriod,
)

TOU_SEGMENTS = {
    2: {"peak": ((480, 1320),), "valley": ((1320, 480),)},
    4: {
        "sharp": ((1140, 1260),),
        "peak": ((480, 660), (780, 1140), (1260, 1320)),
        "flat": ((660, 780), (1320, 1380)),
        "valley": ((1380, 480),),
    },
}


@st.composite
def tariffs(
    draw: st.DrawFn,
    *,
    tou: bool | None = None,
    cycle: Cycle | None = None,
) -> Tariff:
    """A random valid tariff version in force from 2020 on."""
    tiers = draw(st.integers(1, 4))
    prices = tuple(draw(st.lists(st.integers(0, 20_000), min_size=tiers, max_size=tiers)))
    if cycle is None:
        cycle = draw(st.sampled_from(list(Cycle)))
    step_max = 60_000 if cycle is Cycle.MONTHLY else 600_000
    steps = draw(st.lists(st.integers(1, step_max), min_size=tiers - 1, max_size=tiers - 1))
    thresholds = tuple(sum(steps[: i + 1]) for i in range(len(steps)))
    seasons: tuple[Season, ...] = ()
    if tiers > 1 and cycle is Cycle.MONTHLY and draw(st.booleans()):
        extra = draw(st.integers(0, 10_000))
        seasons = (Season((5, 6, 7, 8, 9, 10), tuple(t + extra for t in thresholds)),)
    uplifts: tuple[HouseholdUplift, ...] = ()
    if tiers > 1 and draw(st.booleans()):
        add = draw(st.integers(0, 20_000))
        uplifts = (HouseholdUplift(draw(st.integers(2, 6)), (add,) * (tiers - 1)),)
    first = min([thresholds[0], *(s.thresholds_ckwh[0] for s in seasons)]) if thresholds else None
    free = draw(st.integers(0, min(first or 5_000, 5_000))) if draw(st.booleans()) else 0
    periods: tuple[TouPeriod, ...] = ()
    if tou is None:
        tou = draw(st.booleans())
    if tou:
        count = draw(st.sampled_from([2, 4]))
        names = [n for n in TOU_PERIODS if n in TOU_SEGMENTS[count]]
        low = min(prices)
        periods = tuple(
            TouPeriod(name, draw(st.integers(-low, 10_000)), TOU_SEGMENTS[count][name])
            for name in names
        )
    return Tariff(
        id="rand",
        name="random",
        version=1,
        effective_from=date(2020, 1, 1),
        prices_e4=prices,
        kind=TariffKind.FLAT if tiers == 1 else TariffKind.TIERED,
        thresholds_ckwh=thresholds,
        cycle=cycle,
        seasons=seasons,
        uplifts=uplifts,
        free_allowance_ckwh=free,
        tou=periods,
    )


def tou_split(draw: st.DrawFn, tariff: Tariff, total: int) -> dict[str, int]:
    """Split ``total`` at random over the tariff's TOU periods."""
    names = tariff.tou_names
    cuts = sorted(
        draw(st.lists(st.integers(0, total), min_size=len(names) - 1, max_size=len(names) - 1))
    )
    bounds = [0, *cuts, total]
    return {name: bounds[i + 1] - bounds[i] for i, name in enumerate(names)}
