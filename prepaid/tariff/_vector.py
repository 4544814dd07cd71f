"""Vectorised rating of many accounts on one tariff version (批量算费), with numpy.

Exact int64 arithmetic that gives the scalar engine's ``total_fen`` for every account:
with ``f(x) = p1·x + Σ (p(i+1) − p(i))·max(x − T(i), 0)`` the tier charge of energy
``[a, a + E)`` on the cycle axis is ``f(a + E) − f(a)``; the free allowance takes
``p1`` off its share of tier 1; a TOU tariff adds ``Σ δ(p)·(E(p) − free(p))``, where
``free(p)`` is the scalar engine's split of the free energy over TOU periods. The
TOU lines' exact sums are all that the total depends on, so the matrix of tier × TOU
cells need not be built. Bounds on energy and prices (see ``_units``) keep every
intermediate below 2**63.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._engine import resolve_versions
from ._errors import RatingError
from ._limits import segment_limits
from ._model import Cycle, Tariff
from ._period import BillingPeriod
from ._units import E6_PER_FEN, MAX_ENERGY_CKWH

I64 = NDArray[np.int64]

#: Accounts per pass: small enough that the temporaries stay in the CPU cache.
CHUNK = 1 << 14


def _energy(values: ArrayLike, key: str, n: int | None = None) -> I64:
    array = np.asarray(values)
    if not np.issubdtype(array.dtype, np.integer):
        raise RatingError(f"expected integer counts of 0.01 kWh, got dtype {array.dtype}", key=key)
    array = np.ascontiguousarray(array, dtype=np.int64)
    if n is None and array.ndim != 1:
        raise RatingError(f"expected a 1-D array, got shape {array.shape}", key=key)
    if n is not None:
        array = np.ascontiguousarray(np.broadcast_to(array, (n,)))
    if array.size and (array.min() < 0 or array.max() > MAX_ENERGY_CKWH):
        raise RatingError(f"expected 0 to {MAX_ENERGY_CKWH // 100} kWh", key=key)
    return array


def charge_many(
    tariff: Tariff,
    period: BillingPeriod,
    energy_ckwh: ArrayLike,
    prior_ckwh: ArrayLike | None = None,
    *,
    household_size: ArrayLike | int | None = None,
    free_allowance: ArrayLike | bool = False,
    tou_ckwh: Mapping[str, ArrayLike] | None = None,
) -> I64:
    """The charge in fen of each account's period-to-date energy under one tariff version.

    ``energy_ckwh`` (int, 0.01 kWh, 1-D) is each account's energy in ``period``;
    ``prior_ckwh`` its energy earlier in an annual tier cycle (ignored for monthly);
    ``household_size`` persons (0 = unknown, no uplift), per account or one for all;
    ``free_allowance`` whether each account gets the free allowance; ``tou_ckwh`` the
    energy per TOU period (required by a TOU tariff). The result equals
    ``charge(tariff, period, PeriodEnergy(...)).total_fen`` account by account.
    """
    resolve_versions(tariff, period, None)
    e = _energy(energy_ckwh, "energy")
    n = e.size
    annual = tariff.cycle is Cycle.ANNUAL
    prior = _energy(prior_ckwh, "prior", n) if annual and prior_ckwh is not None else None

    rules = sorted(tariff.uplifts, key=lambda r: r.min_persons)
    group: I64 | None = None
    if household_size is not None and rules:
        sizes = np.asarray(household_size)
        if sizes.size and (not np.issubdtype(sizes.dtype, np.integer) or sizes.min() < 0):
            raise RatingError("expected integer persons ≥ 0 (0: unknown)", key="household_size")
        mins = np.array([r.min_persons for r in rules], dtype=np.int64)
        group = np.ascontiguousarray(
            np.broadcast_to(np.searchsorted(mins, sizes, side="right"), (n,)), dtype=np.int64
        )
    sizes_of_group: list[int | None] = [None, *(r.min_persons for r in rules)]
    limits = [
        segment_limits(tariff, period.start, period.end, household_size=s, free=True)
        for s in (sizes_of_group if group is not None else [None])
    ]
    thresholds = np.array([lim.thresholds_ckwh for lim in limits], dtype=np.int64).reshape(
        len(limits), len(tariff.thresholds_ckwh)
    )
    frees = np.array([lim.free_ckwh for lim in limits], dtype=np.int64)

    free_flags = np.asarray(free_allowance, dtype=bool)
    any_free = bool(free_flags.any()) and bool(frees.any())
    if any_free:
        free_flags = np.ascontiguousarray(np.broadcast_to(free_flags, (n,)))

    tou_arrays: list[tuple[int, I64]] = []
    if tariff.tou:
        if tou_ckwh is None:
            raise RatingError(
                f"{tariff.id} is a time-of-use tariff: give energy per TOU period "
                f"({', '.join(tariff.tou_names)})",
                key="tou",
            )
        extra = set(tou_ckwh) - set(tariff.tou_names)
        if extra:
            raise RatingError(
                f"the tariff has TOU periods {', '.join(tariff.tou_names)}, not "
                f"{', '.join(sorted(extra))}",
                key="tou",
            )
        zero = np.zeros(n, dtype=np.int64)
        for name in tariff.tou_names:
            values = tou_ckwh.get(name)
            array = zero if values is None else _energy(values, f"tou.{name}", n)
            tou_arrays.append((tariff.delta_e4(name), array))
        if n and not np.array_equal(sum(a for _, a in tou_arrays), e):
            raise RatingError("TOU energies must add up to the total of each account", key="tou")

    prices = tariff.prices_e4
    steps = [(i, prices[i + 1] - prices[i]) for i in range(len(prices) - 1)]
    steps = [(i, d) for i, d in steps if d]
    scalar_t = [int(thresholds[0, i]) for i in range(thresholds.shape[1])]

    out = np.empty(n, dtype=np.int64)
    for s in range(0, n, CHUNK):
        sl = slice(s, min(s + CHUNK, n))
        energy = e[sl]
        g = None if group is None else group[sl]
        t_cols = [scalar_t[i] if g is None else thresholds[g, i] for i in range(len(scalar_t))]
        if prior is None:
            acc = _tiered(energy, prices[0], steps, t_cols)
        else:
            a = prior[sl]
            acc = _tiered(a + energy, prices[0], steps, t_cols)
            acc -= _tiered(a, prices[0], steps, t_cols)
        if any_free:
            allowance = np.where(free_flags[sl], frees[0] if g is None else frees[g], 0)
            if prior is not None:
                allowance = np.clip(allowance - prior[sl], 0, None)
            free_e = np.minimum(energy, allowance)
            acc -= prices[0] * free_e
        else:
            free_e = None
        if tou_arrays:
            _add_tou(acc, energy, free_e, [(d, a[sl]) for d, a in tou_arrays])
        acc += E6_PER_FEN // 2
        acc //= E6_PER_FEN
        out[sl] = acc
    return out


def _tiered(x: I64, p1: int, steps: list[tuple[int, int]], t_cols: list[int | I64]) -> I64:
    acc = x * p1
    tmp = np.empty_like(x)
    for i, step in steps:
        np.subtract(x, t_cols[i], out=tmp)
        np.maximum(tmp, 0, out=tmp)
        tmp *= step
        acc += tmp
    return acc


def _add_tou(acc: I64, energy: I64, free_e: I64 | None, tou: list[tuple[int, I64]]) -> None:
    for delta, values in tou:
        if delta:
            acc += delta * values
    if free_e is None or not free_e.any():
        return
    # the free band's split over TOU periods: cumulative half-up shares of the total
    twice_e = 2 * np.maximum(energy, 1)
    running = np.zeros_like(energy)
    previous = np.zeros_like(energy)
    for delta, values in tou:
        running += values
        bound = (2 * free_e * running + twice_e // 2) // twice_e
        if delta:
            acc -= delta * (bound - previous)
        previous = bound
