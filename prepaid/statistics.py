"""Fee-control overview per supply unit (费控综合查询): what an operator looks at first.

:func:`fee_control_overview` counts, for each supply unit (供电单位) and one day:

- ``customers``: active accounts (each has one meter);
- ``in_warning`` (余额预警): real-time balance at or above zero but below the reminder
  amount in force for the account (提醒金额, the settings hierarchy: customer over
  area over line over default);
- ``in_arrears`` (欠费): real-time balance below zero;
- ``pending_approvals`` (待审批): disconnection requests waiting for the level-1 or the
  level-2 approval (whatever the day);
- ``trips_today`` (当日跳闸): remote trips that succeeded on that day;
- ``trip_failures`` (当日跳闸失败): remote trip attempts that failed on that day (each
  failed attempt counts, the last one that opens the failure work order too);
- ``collection_rate`` (采集成功率): active accounts whose meter has that day's daily
  freeze (``headend_reading``, DI 05060101, freeze date = the day) / active accounts;
  ``None`` for a unit without accounts.

Balances are the stored real-time balances (``prepaid_rating_state``) as the last
rating or payment left them, i.e. "now", not as they were on ``day``.

Everything is set-based: one pass over the accounts and their rating state with a
key lookup of the day's reading each (on the reading's primary key, a covering index),
a second query for the few balances that could be under a reminder amount (only those
resolve the settings hierarchy), one over the pending requests and one over the day's
disconnection history; a unit is listed even with no account. The day's readings are
looked up per account rather than joined from the readings: their primary key starts
with the meter address, so a join from the readings would read every day's readings.

The overview snapshot (``prepaid_overview_snapshot``)
-----------------------------------------------------
The per-account counts (customers, in warning, in arrears, meters read) are a pass
over every account: tens of seconds at 15 million. :func:`refresh_overview` counts
them and stores one row per (day, unit) with the time they were counted and by what
(``rating``: ``feikong rate`` after the day's rating; ``refresh``: an operator or
``feikong stats overview --refresh``). :func:`stored_overview` reads them back with
the cheap parts (pending approvals, the day's trips and failures) counted live, so
the console's dashboard and ``feikong stats overview`` answer at once and say as of
when their figures are. A refresh counts exactly what :func:`fee_control_overview`
counts (one code path).
"""

from __future__ import annotations

import csv
import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import IO, Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from protocol.clock import Clock, RealClock

from .models import day_number, metadata
from .rating import DAILY_FORWARD_DI
from .service._population import ACCOUNT, UNIT, Population
from .settings import SettingsStore
from .workflows.tables import DisconnectionState, disconnection_event_table, disconnection_table

__all__ = [
    "CSV_FIELDS",
    "TOTAL",
    "SnapshotSource",
    "StoredOverview",
    "UnitOverview",
    "fee_control_overview",
    "overview_snapshot_table",
    "overview_total",
    "refresh_overview",
    "stored_overview",
    "write_overview_csv",
]

TOTAL: Final = "total"
"""The ``supply_unit`` of the total row (:func:`overview_total`)."""

PENDING_STATES: Final = (DisconnectionState.REQUESTED, DisconnectionState.APPROVED_L1)
TRIPPED_ACTIONS: Final = ("tripped",)
"""History actions of a remote trip that succeeded (see prepaid.workflows.disconnection)."""
FAILED_ACTIONS: Final = ("trip-failed", "failed")
"""History actions of a failed remote trip attempt (``failed``: the last attempt, which
opens the disconnection-failure work order)."""

_RATE_PLACES: Final = Decimal("0.0001")


class SnapshotSource(enum.StrEnum):
    """What counted a stored overview: the day's rating or an explicit refresh."""

    RATING = "rating"
    REFRESH = "refresh"


overview_snapshot_table = sa.Table(
    "prepaid_overview_snapshot",
    metadata,
    sa.Column("day", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column(
        "supply_unit_id",
        sa.Integer(),
        sa.ForeignKey("prepaid_supply_unit.id"),
        primary_key=True,
        autoincrement=False,
    ),
    sa.Column("customers", sa.Integer(), nullable=False),
    sa.Column("in_warning", sa.Integer(), nullable=False),
    sa.Column("in_arrears", sa.Integer(), nullable=False),
    sa.Column("meters_read", sa.Integer(), nullable=False),
    sa.Column("computed_at", sa.DateTime(), nullable=False),
    sa.Column("source", sa.String(16), nullable=False),
)
"""The stored per-account counts of the overview, one row per (day number, unit)
(migration o0002; see the module doc)."""
_reading = sa.table(
    "headend_reading",
    sa.column("meter_address"),
    sa.column("di"),
    sa.column("freeze_date"),
)


@dataclass(frozen=True, slots=True)
class UnitOverview:
    """The fee-control overview of one supply unit on one day (see the module doc)."""

    supply_unit: str
    customers: int
    in_warning: int
    in_arrears: int
    pending_approvals: int
    trips_today: int
    trip_failures: int
    collection_rate: Decimal | None
    name: str = ""
    meters_read: int = 0
    """Active accounts whose meter has the day's daily freeze (the rate's numerator)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "supply_unit": self.supply_unit,
            "name": self.name,
            "customers": self.customers,
            "in_warning": self.in_warning,
            "in_arrears": self.in_arrears,
            "pending_approvals": self.pending_approvals,
            "trips_today": self.trips_today,
            "trip_failures": self.trip_failures,
            "meters_read": self.meters_read,
            "collection_rate": (
                str(self.collection_rate) if self.collection_rate is not None else None
            ),
        }


CSV_FIELDS: Final = tuple(UnitOverview.__dataclass_fields__)


def _rate(read: int, meters: int) -> Decimal | None:
    if meters <= 0:
        return None
    return (Decimal(read) / Decimal(meters)).quantize(_RATE_PLACES, rounding=ROUND_HALF_UP)


_Counts = tuple[int, int, int, int]
"""Per unit: customers, in warning, in arrears, meters read."""
_NO_COUNTS: Final[_Counts] = (0, 0, 0, 0)


def _account_counts(conn: Connection, day: date, store: SettingsStore) -> dict[int, _Counts]:
    """The per-account counts of every unit (the expensive part; see the module doc)."""
    pop = Population(store)
    a, s = pop.account, pop.state
    # in the select list, EXISTS is a key lookup per account on both databases (never a
    # scan of every day's readings); selecting a constant keeps it in the primary key's
    # index (SQLite: "COVERING INDEX"), without a visit to the reading's row
    has_reading = (
        sa.select(sa.literal(1))
        .where(
            _reading.c.meter_address == a.c.meter_address,
            _reading.c.di == DAILY_FORWARD_DI,
            _reading.c.freeze_date == day,
        )
        .exists()
    )
    every = (
        sa.select(
            a.c.supply_unit_id,
            sa.func.count(),
            sa.func.coalesce(sa.func.sum(sa.case((s.c.balance_fen < 0, 1), else_=0)), 0),
            sa.func.coalesce(sa.func.sum(sa.case((has_reading, 1), else_=0)), 0),
        )
        .select_from(a.join(s, s.c.account_id == a.c.id))
        .where(a.c.active)
        .group_by(a.c.supply_unit_id)
    )
    # in warning: the reminder amount in force (customer over area over line over
    # default) is resolved only for the balances under the highest amount set anywhere,
    # found by a pass over the narrow rating state
    ceiling = pop.max_fen("reminder_amount")
    low = s.alias("low_state")
    candidates = sa.select(low.c.account_id).where(
        low.c.balance_fen >= 0, low.c.balance_fen < ceiling
    )
    warning = (
        sa.select(a.c.supply_unit_id, sa.func.count())
        .select_from(pop.from_())
        .where(
            a.c.active,
            a.c.id.in_(candidates),
            s.c.balance_fen >= 0,
            s.c.balance_fen < pop.fen("reminder_amount"),
        )
        .group_by(a.c.supply_unit_id)
    )
    warned = {int(r[0]): int(r[1]) for r in conn.execute(warning)}
    return {
        int(unit): (int(customers), warned.get(int(unit), 0), int(arrears), int(read))
        for unit, customers, arrears, read in conn.execute(every)
    }


def _units(conn: Connection) -> list[tuple[int, str, str]]:
    rows = conn.execute(sa.select(UNIT.c.id, UNIT.c.code, UNIT.c.name).order_by(UNIT.c.code))
    return [(int(i), str(code), str(name)) for i, code, name in rows]


def _live_counts(conn: Connection, day: date) -> tuple[dict[int, int], dict[int, tuple[int, int]]]:
    """Pending approvals and the day's trips and failed trips per unit (cheap: indexed)."""
    a = ACCOUNT
    start = datetime.combine(day, time())
    end = start + timedelta(days=1)
    d, e = disconnection_table, disconnection_event_table
    pending = (
        sa.select(a.c.supply_unit_id, sa.func.count())
        .select_from(d.join(a, a.c.id == d.c.account_id))
        .where(d.c.state.in_([st.value for st in PENDING_STATES]))
        .group_by(a.c.supply_unit_id)
    )
    tripped = sa.case((e.c.action.in_(TRIPPED_ACTIONS), 1), else_=0)
    failed = sa.case((e.c.action.in_(FAILED_ACTIONS), 1), else_=0)
    trips = (
        sa.select(a.c.supply_unit_id, sa.func.sum(tripped), sa.func.sum(failed))
        .select_from(e.join(d, d.c.id == e.c.disconnection_id).join(a, a.c.id == d.c.account_id))
        .where(
            e.c.at >= start,
            e.c.at < end,
            e.c.action.in_(TRIPPED_ACTIONS + FAILED_ACTIONS),
        )
        .group_by(a.c.supply_unit_id)
    )
    waiting = {int(r[0]): int(r[1]) for r in conn.execute(pending)}
    today = {int(r[0]): (int(r[1] or 0), int(r[2] or 0)) for r in conn.execute(trips)}
    return waiting, today


def _assemble(
    units: list[tuple[int, str, str]],
    counts: dict[int, _Counts],
    waiting: dict[int, int],
    today: dict[int, tuple[int, int]],
) -> list[UnitOverview]:
    out = []
    for unit_id, code, name in units:
        customers, in_warning, in_arrears, meters_read = counts.get(unit_id, _NO_COUNTS)
        ok, bad = today.get(unit_id, (0, 0))
        out.append(
            UnitOverview(
                supply_unit=code,
                customers=customers,
                in_warning=in_warning,
                in_arrears=in_arrears,
                pending_approvals=waiting.get(unit_id, 0),
                trips_today=ok,
                trip_failures=bad,
                collection_rate=_rate(meters_read, customers),
                name=name,
                meters_read=meters_read,
            )
        )
    return out


def fee_control_overview(
    engine: Engine, day: date, *, settings: SettingsStore | None = None
) -> list[UnitOverview]:
    """The overview of every supply unit on ``day``, by unit code, counted now (see the
    module doc; :func:`stored_overview` reads the stored counts instead).

    ``settings`` gives the reminder amounts (default: the database's settings with the
    shipped defaults).
    """
    store = settings or SettingsStore(engine, clock=RealClock())
    with engine.connect() as conn:
        units = _units(conn)
        counts = _account_counts(conn, day, store)
        waiting, today = _live_counts(conn, day)
    return _assemble(units, counts, waiting, today)


@dataclass(frozen=True, slots=True)
class StoredOverview:
    """The overview of ``day`` from its snapshot: the per-account counts as of
    ``computed_at`` (counted by ``source``), the pending approvals and the day's trips
    counted when it was read."""

    day: date
    computed_at: datetime
    source: SnapshotSource
    units: tuple[UnitOverview, ...]

    def as_of(self) -> str:
        """When the stored figures were counted, for people: ``as of the 02:10 rating``."""
        when = self.computed_at.strftime("%H:%M")
        if self.computed_at.date() != self.day:
            when = self.computed_at.strftime("%Y-%m-%d %H:%M")
        if self.source is SnapshotSource.RATING:
            return f"as of the {when} rating"
        return f"as of the {when} refresh"

    def to_dict(self) -> dict[str, Any]:
        return {
            "day": self.day.isoformat(),
            "computed_at": self.computed_at.isoformat(timespec="seconds"),
            "source": self.source.value,
        }


def refresh_overview(
    engine: Engine,
    day: date,
    *,
    settings: SettingsStore | None = None,
    clock: Clock | None = None,
    source: SnapshotSource = SnapshotSource.REFRESH,
) -> StoredOverview:
    """Count the per-account figures of ``day`` now, store them (replacing the day's
    snapshot) and return the overview. ``computed_at`` is when the count started (the
    balances are as of then)."""
    clock = clock or RealClock()
    store = settings or SettingsStore(engine, clock=clock)
    computed_at = clock.now().replace(microsecond=0)
    with engine.connect() as conn:
        units = _units(conn)
        counts = _account_counts(conn, day, store)
    number = day_number(day)
    rows = [
        {
            "day": number,
            "supply_unit_id": unit_id,
            "customers": c[0],
            "in_warning": c[1],
            "in_arrears": c[2],
            "meters_read": c[3],
            "computed_at": computed_at,
            "source": source.value,
        }
        for unit_id, c in ((u[0], counts.get(u[0], _NO_COUNTS)) for u in units)
    ]
    snap = overview_snapshot_table
    for attempt in (1, 2):
        try:
            with engine.begin() as conn:
                conn.execute(sa.delete(snap).where(snap.c.day == number))
                if rows:
                    conn.execute(sa.insert(snap), rows)
            break
        except IntegrityError:
            # another refresh of the same day committed in between: store ours again
            if attempt == 2:
                raise
    with engine.connect() as conn:
        waiting, today = _live_counts(conn, day)
    return StoredOverview(day, computed_at, source, tuple(_assemble(units, counts, waiting, today)))


def stored_overview(engine: Engine, day: date) -> StoredOverview | None:
    """The overview of ``day`` from its snapshot (``None`` when the day was never
    counted): the stored counts plus the live ones. A unit added after the count shows
    no customers."""
    snap = overview_snapshot_table
    with engine.connect() as conn:
        stored = conn.execute(
            sa.select(
                snap.c.supply_unit_id,
                snap.c.customers,
                snap.c.in_warning,
                snap.c.in_arrears,
                snap.c.meters_read,
                snap.c.computed_at,
                snap.c.source,
            ).where(snap.c.day == day_number(day))
        ).all()
        if not stored:
            return None
        units = _units(conn)
        waiting, today = _live_counts(conn, day)
    counts = {int(r[0]): (int(r[1]), int(r[2]), int(r[3]), int(r[4])) for r in stored}
    computed_at = min(r[5] for r in stored)
    try:
        source = SnapshotSource(stored[0][6])
    except ValueError:
        source = SnapshotSource.REFRESH
    return StoredOverview(day, computed_at, source, tuple(_assemble(units, counts, waiting, today)))


def overview_total(rows: Sequence[UnitOverview]) -> UnitOverview:
    """The sum of ``rows`` (supply unit :data:`TOTAL`); the rate is recomputed from the
    sums (read meters / meters), not averaged."""
    customers = sum(r.customers for r in rows)
    meters_read = sum(r.meters_read for r in rows)
    return UnitOverview(
        supply_unit=TOTAL,
        customers=customers,
        in_warning=sum(r.in_warning for r in rows),
        in_arrears=sum(r.in_arrears for r in rows),
        pending_approvals=sum(r.pending_approvals for r in rows),
        trips_today=sum(r.trips_today for r in rows),
        trip_failures=sum(r.trip_failures for r in rows),
        collection_rate=_rate(meters_read, customers),
        name="合计",
        meters_read=meters_read,
    )


def write_overview_csv(rows: Iterable[UnitOverview], out: Path | IO[str]) -> int:
    """Write ``rows`` as CSV (UTF-8 with a BOM, so spreadsheet programs show the Chinese
    names); returns the number of rows written (header not counted)."""
    if isinstance(out, Path):
        with out.open("w", encoding="utf-8-sig", newline="") as handle:
            return write_overview_csv(rows, handle)
    writer = csv.DictWriter(out, fieldnames=list(CSV_FIELDS))
    writer.writeheader()
    n = 0
    for row in rows:
        writer.writerow(row.to_dict())
        n += 1
    return n
