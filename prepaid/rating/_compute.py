"""What rating a chunk of accounts for one day does, computed without touching storage.

Input: the accounts' rating state and the day's reading (numpy arrays, one entry per
account). Output: a :class:`ChunkPlan`, the new state of every account rated, the
closing charges of periods skipped over by missing readings, and the anomalies.

Conventions
-----------
A daily freeze (日冻结) dated ``D`` is the register at 00:00 of ``D``: it closes day
``D − 1``. Rating day ``D`` therefore settles the billing period containing ``D − 1``
(the calendar month; the freeze of the 1st closes the previous month, as the meter's
own monthly settlement does). The charge is keyed by ``D``.

Two paths give the same numbers:

- the **vector path** (:func:`plan_chunk`): accounts whose last rated reading is in
  the same billing period, or closed the previous one exactly, on a tariff with one
  version over the period — nearly everyone, every day — are rated with
  :func:`prepaid.tariff.charge_many` per tariff;
- the **scalar path** (:func:`rate_one`): the first reading of an account (its
  baseline), readings that skip over a period boundary (the energy of the unread days
  is split over the periods by days, and each skipped period is closed with a charge
  keyed by the freeze that should have closed it), and periods with a mid-period
  price change (:func:`prepaid.tariff.charge` with the tariff book).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Final

import numpy as np
from numpy.typing import NDArray

from ..models import AnomalyKind, day_date, day_number
from ..tariff import (
    BillingPeriod,
    Cycle,
    PeriodEnergy,
    RatingError,
    Tariff,
    TariffBook,
    TariffError,
    charge,
    charge_many,
    segment_limits,
    split_half_up,
)
from ._registers import TOU_REGISTER_ORDER

__all__ = [
    "AnomalyRow",
    "ChunkInput",
    "ChunkPlan",
    "ClosingCharge",
    "RatingOptions",
    "TouState",
    "plan_chunk",
]

log = logging.getLogger(__name__)

I64 = NDArray[np.int64]

_NONE: Final = -1
_TOU_INDEX: Final = {name: i for i, name in enumerate(TOU_REGISTER_ORDER)}


@dataclass(frozen=True, slots=True)
class RatingOptions:
    """Settings of a rating run.

    - ``reminder_fen``: the reminder amount (提醒金额) for accounts without their own;
    - ``jump_factor``: a day's energy above ``jump_factor`` × the account's recent
      daily average (at least ``jump_floor_ckwh``) is an implausible jump (突增);
      it is charged (the register is what it is) and reported as an anomaly;
    - ``average_days``: the recent average is an exponential moving average over
      about this many days.
    """

    reminder_fen: int = 2000
    jump_factor: int = 10
    jump_floor_ckwh: int = 300
    average_days: int = 7

    def __post_init__(self) -> None:
        if self.jump_factor < 1 or self.jump_floor_ckwh < 0 or self.average_days < 1:
            raise ValueError(
                "expected jump_factor ≥ 1, jump_floor_ckwh ≥ 0 and average_days ≥ 1, got "
                f"{self.jump_factor}, {self.jump_floor_ckwh}, {self.average_days}"
            )


@dataclass(frozen=True, slots=True)
class TouState:
    """An account's rate registers: last rated, period-to-date, and today's reading."""

    registers: tuple[int, int, int, int]
    ptd: tuple[int, int, int, int]
    reading: tuple[int, int, int, int] | None


def _four(values: list[int]) -> tuple[int, int, int, int]:
    return (values[0], values[1], values[2], values[3])


@dataclass(slots=True)
class TouArrays:
    """Rate-register state of a chunk's TOU accounts: sorted ids, (m, 4) arrays.

    Columns are sharp, peak, flat, valley; a ``reading`` row of ``-1`` means the day's
    reading has no usable rate registers.
    """

    ids: I64
    registers: I64
    ptd: I64
    reading: I64

    @classmethod
    def empty(cls) -> TouArrays:
        z = np.zeros((0, 4), dtype=np.int64)
        return cls(np.zeros(0, dtype=np.int64), z, z, z)

    def positions(self, accounts: I64) -> tuple[I64, NDArray[np.bool_]]:
        """Row of each account in these arrays, and whether it has one."""
        pos = np.searchsorted(self.ids, accounts)
        found = pos < self.ids.size
        found[found] = self.ids[pos[found]] == accounts[found]
        return np.where(found, pos, 0), found

    def get(self, account: int) -> TouState | None:
        pos, found = self.positions(np.array([account], dtype=np.int64))
        if not found[0]:
            return None
        i = int(pos[0])
        reading = self.reading[i].tolist()
        return TouState(
            _four(self.registers[i].tolist()),
            _four(self.ptd[i].tolist()),
            None if reading[0] < 0 else _four(reading),
        )


@dataclass(slots=True)
class ChunkInput:
    """The accounts of a chunk: state and today's reading (``-1``: none), aligned."""

    ids: I64
    tariff: I64
    household: I64
    free: I64
    reading_day: I64
    reading_ckwh: I64
    period_start: I64
    period_ckwh: I64
    prior_ckwh: I64
    charged_fen: I64
    avg_daily_ckwh: I64
    reading: I64
    tou: TouArrays = field(default_factory=TouArrays.empty)

    def __len__(self) -> int:
        return int(self.ids.size)

    @classmethod
    def empty(cls) -> ChunkInput:
        z = np.zeros(0, dtype=np.int64)
        return cls(z, z, z, z, z, z, z, z, z, z, z, z)


@dataclass(frozen=True, slots=True)
class ClosingCharge:
    """The charge closing a billing period whose closing reading is missing (estimated)."""

    account_id: int
    day: int
    period_start: int
    reading_ckwh: int
    energy_ckwh: int
    period_ckwh: int
    amount_fen: int
    charged_fen: int
    tariff_version: int
    tier: int


@dataclass(frozen=True, slots=True)
class AnomalyRow:
    account_id: int
    kind: AnomalyKind
    reading_ckwh: int | None
    previous_ckwh: int | None
    detail: str


@dataclass(slots=True)
class ChunkPlan:
    """The new state of the accounts rated, aligned arrays (see the store's UPDATE).

    ``amount`` is the deduction keyed by the day, ``total`` everything deducted now
    (``amount`` plus closing charges); ``jump`` is 1 for an implausible jump.
    """

    ids: I64
    reading: I64
    period_ckwh: I64
    prior_ckwh: I64
    energy: I64
    amount: I64
    total: I64
    charged: I64
    avg: I64
    version: I64
    tier: I64
    jump: I64
    explicit: NDArray[np.bool_] = field(default_factory=lambda: np.zeros(0, dtype=bool))
    closing: list[ClosingCharge] = field(default_factory=list)
    tou_ids: I64 = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    tou_values: I64 = field(default_factory=lambda: np.zeros((0, 8), dtype=np.int64))
    anomalies: list[AnomalyRow] = field(default_factory=list)
    already: int = 0
    missing: int = 0
    seconds: dict[str, float] = field(default_factory=dict)  # reading and planning time

    def __len__(self) -> int:
        return int(self.ids.size)


@dataclass(slots=True)
class _Rows:
    """Scalar-path results, collected before joining the vector arrays."""

    cols: list[list[int]] = field(default_factory=lambda: [[] for _ in range(12)])

    def add(self, *values: int) -> None:
        for col, value in zip(self.cols, values, strict=True):
            col.append(value)

    def arrays(self) -> list[I64]:
        return [np.asarray(c, dtype=np.int64) for c in self.cols]


# -- helpers ---------------------------------------------------------------------------


def period_of_day(day: date) -> BillingPeriod:
    """The billing period settled by the daily freeze dated ``day`` (closes ``day − 1``)."""
    return BillingPeriod.of(day - timedelta(days=1))


def _household(size: int) -> int | None:
    return size if size > 0 else None


def _tiers(tariff: Tariff, period: BillingPeriod, position: I64, household: I64) -> I64:
    """The tier of the last kWh at cycle ``position`` per account (1-based)."""
    if not tariff.thresholds_ckwh:
        return np.ones(position.size, dtype=np.int64)
    rules = sorted(tariff.uplifts, key=lambda r: r.min_persons)
    sizes: list[int | None] = [None, *(r.min_persons for r in rules)]
    table = np.array(
        [
            segment_limits(
                tariff, period.start, period.end, household_size=s, free=False
            ).thresholds_ckwh
            for s in sizes
        ],
        dtype=np.int64,
    )
    if rules:
        mins = np.array([r.min_persons for r in rules], dtype=np.int64)
        group = np.searchsorted(mins, household, side="right")
        thresholds = table[group]
    else:
        thresholds = np.broadcast_to(table[0], (position.size, table.shape[1]))
    return np.asarray(1 + (position[:, None] > thresholds).sum(axis=1), dtype=np.int64)


def _same_cycle(tariff: Tariff, old_start: date, new_start: date) -> bool:
    return tariff.cycle is Cycle.ANNUAL and tariff.cycle_start(old_start) == tariff.cycle_start(
        new_start
    )


def _periods_between(first_day: date, last_day: date) -> Iterator[tuple[BillingPeriod, int]]:
    """The billing periods covering ``first_day..last_day`` with their day counts."""
    day = first_day
    while day <= last_day:
        period = BillingPeriod.of(day)
        end = min(period.end, last_day)
        yield period, (end - day).days + 1
        day = end + timedelta(days=1)


# -- the vector path ---------------------------------------------------------------------


def plan_chunk(
    chunk: ChunkInput,
    day: date,
    book: TariffBook,
    codes: dict[int, str],
    options: RatingOptions,
) -> ChunkPlan:
    """Rate every account of ``chunk`` for the daily reading of ``day`` (no storage)."""
    d = day_number(day)
    period = period_of_day(day)
    ps = day_number(period.start)

    done = chunk.reading_day >= d
    todo = ~done
    has = chunk.reading >= 0
    missing = todo & ~has
    candidate = todo & has
    first = candidate & (chunk.reading_day < 0)
    rated_before = candidate & ~first
    backwards = rated_before & (chunk.reading < chunk.reading_ckwh)
    ok = rated_before & ~backwards
    same = ok & (chunk.period_start == ps)
    roll = ok & (chunk.period_start < ps) & (chunk.reading_day == ps)
    vector = same | roll

    anomalies: list[AnomalyRow] = []
    for i in np.flatnonzero(missing):
        previous = int(chunk.reading_ckwh[i])
        rd = int(chunk.reading_day[i])
        since = f"; last rated reading {day_date(rd)}" if rd >= 0 else ""
        anomalies.append(
            AnomalyRow(
                int(chunk.ids[i]),
                AnomalyKind.MISSING_READING,
                None,
                previous if previous >= 0 else None,
                f"no daily reading for {day}{since}: re-collect it (补抄)",
            )
        )
    for i in np.flatnonzero(backwards):
        anomalies.append(
            AnomalyRow(
                int(chunk.ids[i]),
                AnomalyKind.NEGATIVE_CONSUMPTION,
                int(chunk.reading[i]),
                int(chunk.reading_ckwh[i]),
                f"the register went backwards since {day_date(int(chunk.reading_day[i]))}: "
                "check the meter (replaced? reset?) before this account is rated again",
            )
        )

    scalar = first | (ok & ~vector)
    energy = chunk.reading - chunk.reading_ckwh
    days = d - chunk.reading_day
    new_pck = np.where(same, chunk.period_ckwh, 0) + energy
    out_charged = np.zeros(len(chunk), dtype=np.int64)
    out_prior = np.where(same, chunk.prior_ckwh, 0)
    out_version = np.zeros(len(chunk), dtype=np.int64)
    out_tier = np.ones(len(chunk), dtype=np.int64)
    held = np.zeros(len(chunk), dtype=bool)  # not rated now (anomaly)
    tou_parts: list[tuple[I64, I64]] = []

    for tid in np.unique(chunk.tariff[vector]):
        members = vector & (chunk.tariff == tid)
        code = codes.get(int(tid))
        try:
            if code is None:
                raise TariffError(f"tariff id {int(tid)} is not in prepaid_tariff")
            versions = book.segments(code, period.start, period.end)
        except TariffError as exc:
            for i in np.flatnonzero(members):
                anomalies.append(_no_tariff(int(chunk.ids[i]), code, period, exc))
            held |= members
            continue
        if len(versions) > 1:
            scalar |= members
            continue
        tariff = versions[0][0]
        idx = np.flatnonzero(members)
        if tariff.cycle is Cycle.ANNUAL:
            roll_idx = idx[roll[idx]]
            for start in np.unique(chunk.period_start[roll_idx]):
                sel = roll_idx[chunk.period_start[roll_idx] == start]
                if _same_cycle(tariff, day_date(int(start)), period.start):
                    out_prior[sel] = chunk.prior_ckwh[sel] + chunk.period_ckwh[sel]
        else:
            out_prior[idx] = 0
        tou: dict[str, I64] | None = None
        if tariff.tou:
            idx, tou, rows, bad = _tou_energy(chunk, idx, same, tariff.tou_names, energy)
            for j, detail in bad:
                anomalies.append(
                    AnomalyRow(
                        int(chunk.ids[j]),
                        AnomalyKind.NO_TOU_REGISTERS,
                        int(chunk.reading[j]),
                        int(chunk.reading_ckwh[j]),
                        detail,
                    )
                )
                held[j] = True
            tou_parts.append(rows)
        if idx.size == 0:
            continue
        try:
            out_charged[idx] = charge_many(
                tariff,
                period,
                new_pck[idx],
                out_prior[idx],
                household_size=chunk.household[idx],
                free_allowance=chunk.free[idx].astype(bool),
                tou_ckwh=tou,
            )
        except RatingError as exc:
            log.warning("tariff %s: %s; rating its accounts one by one", tariff.label, exc)
            scalar[idx] = True
            continue
        position = new_pck[idx] + (out_prior[idx] if tariff.cycle is Cycle.ANNUAL else 0)
        out_tier[idx] = _tiers(tariff, period, position, chunk.household[idx])
        out_version[idx] = tariff.version

    fast = vector & ~scalar & ~held
    amount = out_charged - np.where(same, chunk.charged_fen, 0)
    per_day = energy // np.maximum(days, 1)
    avg = chunk.avg_daily_ckwh
    jump = (
        fast
        & (avg > 0)
        & (energy > options.jump_factor * np.maximum(avg, options.jump_floor_ckwh) * days)
    )
    new_avg = np.where(
        avg > 0, (avg * (options.average_days - 1) + per_day) // options.average_days, per_day
    )
    for i in np.flatnonzero(jump):
        anomalies.append(_jump(chunk, int(i), options))

    extra = _Rows()
    closing: list[ClosingCharge] = []
    for i in np.flatnonzero(scalar & ~held):
        result = rate_one(chunk, int(i), day, book, codes, options)
        if isinstance(result, AnomalyRow):
            anomalies.append(result)
            continue
        row, closes, tou_row, is_jump = result
        extra.add(*row)
        closing.extend(closes)
        if tou_row is not None:
            tou_parts.append(
                (np.array([tou_row[0]], dtype=np.int64), np.array([tou_row[1:]], dtype=np.int64))
            )
        if is_jump:
            anomalies.append(_jump(chunk, int(i), options))

    sel = np.flatnonzero(fast)
    cols = [
        chunk.ids[sel],
        chunk.reading[sel],
        new_pck[sel],
        out_prior[sel],
        energy[sel],
        amount[sel],
        amount[sel],
        out_charged[sel],
        new_avg[sel],
        out_version[sel],
        out_tier[sel],
        jump[sel].astype(np.int64),
    ]
    explicit = np.zeros(sel.size, dtype=bool)
    if extra.cols[0]:
        cols = [np.concatenate([a, b]) for a, b in zip(cols, extra.arrays(), strict=True)]
        explicit = np.concatenate([explicit, np.ones(len(extra.cols[0]), dtype=bool)])
    return ChunkPlan(
        cols[0],
        cols[1],
        cols[2],
        cols[3],
        cols[4],
        cols[5],
        cols[6],
        cols[7],
        cols[8],
        cols[9],
        cols[10],
        cols[11],
        explicit=explicit,
        closing=closing,
        tou_ids=np.concatenate([a for a, _ in tou_parts])
        if tou_parts
        else np.zeros(0, dtype=np.int64),
        tou_values=np.concatenate([b for _, b in tou_parts])
        if tou_parts
        else np.zeros((0, 8), dtype=np.int64),
        anomalies=anomalies,
        already=int(done.sum()),
        missing=int(missing.sum()),
    )


def _no_tariff(
    account_id: int, code: str | None, period: BillingPeriod, exc: Exception
) -> AnomalyRow:
    return AnomalyRow(
        account_id,
        AnomalyKind.NO_TARIFF,
        None,
        None,
        f"tariff {code or '?'} cannot rate {period}: {exc}; load the tariff version in force",
    )


def _jump(chunk: ChunkInput, i: int, options: RatingOptions) -> AnomalyRow:
    return AnomalyRow(
        int(chunk.ids[i]),
        AnomalyKind.JUMP,
        int(chunk.reading[i]),
        int(chunk.reading_ckwh[i]),
        f"{(int(chunk.reading[i]) - int(chunk.reading_ckwh[i])) / 100:.2f} kWh since "
        f"{day_date(int(chunk.reading_day[i]))}, over {options.jump_factor}× the recent "
        f"daily average of {int(chunk.avg_daily_ckwh[i]) / 100:.2f} kWh: charged; "
        "check the meter and the customer's usage",
    )


def _tou_energy(
    chunk: ChunkInput, idx: I64, same: NDArray[np.bool_], names: tuple[str, ...], energy: I64
) -> tuple[I64, dict[str, I64], tuple[I64, I64], list[tuple[int, str]]]:
    """TOU period-to-date energies of the accounts ``idx``, vectorised.

    Returns the accounts that can be rated (rows of the chunk), their energy per TOU
    period, the new register rows ``(ids, [registers, ptd])`` and the others with what
    is wrong with them.
    """
    tou = chunk.tou
    pos, found = tou.positions(chunk.ids[idx])
    reading = tou.reading[pos]
    inc = reading - tou.registers[pos]
    cols = [_TOU_INDEX[n] for n in names]
    absent = [c for c in range(4) if c not in cols]
    e = energy[idx]
    diff = e - inc.sum(axis=1)
    largest = np.asarray(cols)[np.argmax(inc[:, cols], axis=1)]
    rows = np.arange(idx.size)
    adjusted = inc[rows, largest] + diff
    problems = [
        (~found, _no_registers_detail(True)),
        (found & (reading[:, 0] < 0), _no_registers_detail(False)),
        ((inc < 0).any(axis=1), "a rate register went backwards: check the meter"),
        (
            (inc[:, absent] != 0).any(axis=1) if absent else np.zeros(idx.size, dtype=bool),
            f"energy on a rate register the tariff does not have ({', '.join(names)}): "
            "check the meter's rate programme",
        ),
        (
            (adjusted < 0) | (np.abs(diff) > np.maximum(100, e // 100)),
            "the rate registers do not add up to the total register: check the meter",
        ),
    ]
    bad_mask = np.zeros(idx.size, dtype=bool)
    bad: list[tuple[int, str]] = []
    for mask, detail in problems:
        new = mask & ~bad_mask
        bad.extend((int(i), detail) for i in idx[new])
        bad_mask |= new
    ok = ~bad_mask
    # The total register is what tiers are rated on; rate registers may differ from it
    # by rounding: the largest rate of the tariff takes the difference.
    inc[rows, largest] = adjusted
    base = np.where(same[idx][:, None], tou.ptd[pos], 0)
    ptd = base + inc
    keep = idx[ok]
    values = np.concatenate([reading[ok], ptd[ok]], axis=1)
    by_name = {n: np.ascontiguousarray(ptd[ok, _TOU_INDEX[n]]) for n in names}
    return keep, by_name, (chunk.ids[keep], values), bad


def _no_registers_detail(no_state: bool) -> str:
    if no_state:
        return "time-of-use tariff but no rate-register state (prepaid_rating_tou): reopen it"
    return (
        "time-of-use tariff but the reading has no rate registers "
        "(value 'total,sharp,peak,flat,valley' kWh): re-collect the daily freeze block"
    )


def _tou_increment(
    state: TouState, same_period: bool, energy: int, names: tuple[str, ...]
) -> list[int] | str:
    """New period-to-date energy per rate register, or what is wrong with them."""
    assert state.reading is not None
    inc = [now - before for now, before in zip(state.reading, state.registers, strict=True)]
    if min(inc) < 0:
        return "a rate register went backwards: check the meter"
    for name in TOU_REGISTER_ORDER:
        if name not in names and inc[_TOU_INDEX[name]]:
            return (
                f"energy on the {name} register, which the tariff does not have "
                f"({', '.join(names)}): check the meter's rate programme"
            )
    # The total register is what the tier is rated on; registers may differ from it by
    # rounding: the largest rate of the tariff takes the difference.
    diff = energy - sum(inc)
    if diff:
        largest = max(names, key=lambda n: inc[_TOU_INDEX[n]])
        j = _TOU_INDEX[largest]
        if inc[j] + diff < 0 or abs(diff) > max(100, energy // 100):
            return (
                f"rate registers add up to {sum(inc) / 100:.2f} kWh but the total register "
                f"to {energy / 100:.2f} kWh: check the meter"
            )
        inc[j] += diff
    base = state.ptd if same_period else (0, 0, 0, 0)
    return [b + x for b, x in zip(base, inc, strict=True)]


# -- the scalar path -----------------------------------------------------------------------


def rate_one(
    chunk: ChunkInput,
    i: int,
    day: date,
    book: TariffBook,
    codes: dict[int, str],
    options: RatingOptions,
) -> tuple[tuple[int, ...], list[ClosingCharge], tuple[int, ...] | None, bool] | AnomalyRow:
    """Rate account ``i`` of ``chunk`` with the scalar engine (every case).

    Returns the state row (the columns of :class:`ChunkPlan`), the closing charges,
    the TOU register row (or ``None``) and whether the energy is a jump — or the
    anomaly that keeps the account from being rated.
    """
    account = int(chunk.ids[i])
    d = day_number(day)
    through = day - timedelta(days=1)
    code = codes.get(int(chunk.tariff[i]))
    reading = int(chunk.reading[i])
    household = _household(int(chunk.household[i]))
    free = bool(chunk.free[i])
    tou_state = chunk.tou.get(account)
    try:
        if code is None:
            raise TariffError(f"tariff id {int(chunk.tariff[i])} is not in prepaid_tariff")
        tou_names = {n for t in book.versions(code) for n in t.tou_names}
        if tou_names and (tou_state is None or tou_state.reading is None):
            return AnomalyRow(
                account,
                AnomalyKind.NO_TOU_REGISTERS,
                reading,
                None,
                _no_registers_detail(tou_state is None),
            )
        if chunk.reading_day[i] < 0:
            # the first reading: the baseline of the account's rating, nothing to charge
            version = book.at(code, through).version
            tou_row = None
            if tou_names and tou_state is not None and tou_state.reading is not None:
                tou_row = (account, *tou_state.reading, 0, 0, 0, 0)
            row = (account, reading, 0, 0, 0, 0, 0, 0, 0, version, 1, 0)
            return row, [], tou_row, False
        return _rate_span(chunk, i, d, through, book, code, household, free, options)
    except TariffError as exc:  # RatingError included
        period = period_of_day(day)
        return _no_tariff(account, code, period, exc)


def _rate_span(
    chunk: ChunkInput,
    i: int,
    d: int,
    through: date,
    book: TariffBook,
    code: str,
    household: int | None,
    free: bool,
    options: RatingOptions,
) -> tuple[tuple[int, ...], list[ClosingCharge], tuple[int, ...] | None, bool]:
    account = int(chunk.ids[i])
    reading = int(chunk.reading[i])
    previous = int(chunk.reading_ckwh[i])
    energy = reading - previous
    first_unread = day_date(int(chunk.reading_day[i]))
    spans = list(_periods_between(first_unread, through))
    parts = split_half_up(energy, [n for _, n in spans])
    tou_state = chunk.tou.get(account)
    tou_names = book.at(code, through).tou_names
    tou_parts: list[list[int]] | None = None
    tou_reading: tuple[int, int, int, int] | None = None
    if tou_names:
        assert tou_state is not None and tou_state.reading is not None
        tou_reading = tou_state.reading
        inc = _tou_increment(
            TouState(tou_state.registers, (0, 0, 0, 0), tou_state.reading), False, energy, tou_names
        )
        if isinstance(inc, str):
            raise RatingError(inc, key="tou")
        split = [split_half_up(x, [n for _, n in spans]) for x in inc]
        tou_parts = [[split[r][k] for r in range(4)] for k in range(len(spans))]

    current = BillingPeriod.of(day_date(int(chunk.period_start[i])))
    pck = int(chunk.period_ckwh[i])
    charged = int(chunk.charged_fen[i])
    prior = int(chunk.prior_ckwh[i])
    ptd = list(tou_state.ptd) if tou_state is not None else [0, 0, 0, 0]
    register = previous
    closing: list[ClosingCharge] = []
    total = 0
    amount = 0
    version = tier = 0
    for k, ((period, _), part) in enumerate(zip(spans, parts, strict=True)):
        if period.start != current.start:
            tariff_then = book.at(code, current.end)
            prior = prior + pck if _same_cycle(tariff_then, current.start, period.start) else 0
            current, pck, charged, ptd = period, 0, 0, [0, 0, 0, 0]
        pck += part
        register += part
        if tou_parts is not None:
            ptd = [a + b for a, b in zip(ptd, tou_parts[k], strict=True)]
        last = k == len(spans) - 1
        upto = through if last else period.end
        tou = {n: ptd[_TOU_INDEX[n]] for n in tou_names} if tou_names else None
        result = charge(
            book,
            period,
            PeriodEnergy(
                pck,
                through=upto,
                tou_ckwh=tou,
                prior_ckwh=prior,
                household_size=household,
                free_allowance=free,
            ),
            tariff_id=code,
        )
        amount = result.total_fen - charged
        total += amount
        charged = result.total_fen
        version = book.at(code, upto).version
        tier = result.tier
        if not last:
            closing.append(
                ClosingCharge(
                    account,
                    day_number(period.end + timedelta(days=1)),
                    day_number(period.start),
                    register,
                    part,
                    pck,
                    amount,
                    charged,
                    version,
                    tier,
                )
            )
    if book.at(code, through).cycle is not Cycle.ANNUAL:
        prior = 0  # only annual tier cycles carry energy from earlier periods
    days = d - int(chunk.reading_day[i])
    avg = int(chunk.avg_daily_ckwh[i])
    per_day = energy // max(days, 1)
    is_jump = avg > 0 and energy > options.jump_factor * max(avg, options.jump_floor_ckwh) * days
    new_avg = (
        (avg * (options.average_days - 1) + per_day) // options.average_days if avg else per_day
    )
    row = (
        account,
        reading,
        pck,
        prior,
        parts[-1],
        amount,
        total,
        charged,
        new_avg,
        version,
        tier,
        int(is_jump),
    )
    tou_row = None if tou_reading is None else (account, *tou_reading, *ptd)
    return row, closing, tou_row, is_jump
