"""The report that ends ``feikong demo`` (演示报告): what the simulated days did, in numbers.

:func:`build_report` reads a database (the demo's, or any feikong database) and counts:

- **customers**: accounts, active, remote / card (local) fee control, under power
  guarantee (保电: the account's flag or the setting in force for it);
- **money**: payments (count, sum) and refunds credited in the CIS ledger; charges
  rated (rows, energy, sum); real-time balances (total, lowest, highest, in arrears and
  a distribution in yuan bands);
- **workflows**: low-balance reminders, dunning batches and records (by method),
  disconnection requests (by state), notices, remote trips that succeeded, failed trip
  attempts and failed disconnections, reconnections (by state), work orders (by kind);
- **messages** per kind (and per status);
- **per day** of the run (``start`` … ``start + days − 1``): the collection rate
  (采集成功率: active accounts whose meter has that day's daily freeze, as
  :mod:`prepaid.statistics` counts it), payments, charges, trips, trip failures and
  messages.

Trips and failures are the disconnection history's ``tripped`` and ``trip-failed`` /
``failed`` entries, as in :mod:`prepaid.statistics`. Every figure is one grouped SQL
statement (SQLite or PostgreSQL), fine at 100,000 customers. Money is integer fen,
shown as yuan; nothing is float.

:class:`DemoReport` renders as text (:meth:`~DemoReport.to_text`), JSON-ready data
(:meth:`~DemoReport.to_dict`) and files (:meth:`~DemoReport.write`: ``report.txt``,
``report.json``, the PNG charts of :mod:`.charts` and ``report.html`` showing them).
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from .invariants import INVARIANTS, Violation, require_tables

__all__ = [
    "BALANCE_BANDS",
    "BalanceBand",
    "DayFigures",
    "DemoReport",
    "build_report",
    "run_period",
]

#: Balance bands of the distribution (yuan): (label, low fen inclusive, high fen exclusive).
BALANCE_BANDS: Final[tuple[tuple[str, int | None, int | None], ...]] = (
    ("< -100", None, -10_000),
    ("-100 to 0", -10_000, 0),
    ("0 to 20", 0, 2_000),
    ("20 to 50", 2_000, 5_000),
    ("50 to 100", 5_000, 10_000),
    ("100 to 200", 10_000, 20_000),
    ("200 to 500", 20_000, 50_000),
    (">= 500", 50_000, None),
)

_TRIPPED: Final = ("tripped",)
_FAILED_ATTEMPTS: Final = ("trip-failed", "failed")
_RATE_PLACES: Final = Decimal("0.0001")
_TEXT_VIOLATIONS: Final = 50
"""Violations listed in the text report (the JSON has them all)."""
_DAILY_FORWARD_DI: Final = 0x05060101
"""The daily-freeze block the head-end stores per meter and day (prepaid.rating)."""

_REPORT_TABLES: Final = (
    "prepaid_account",
    "prepaid_rating_state",
    "prepaid_charge",
    "prepaid_cis_movement",
    "prepaid_reminder",
    "prepaid_dunning",
    "prepaid_dunning_batch",
    "prepaid_disconnection",
    "prepaid_disconnection_event",
    "prepaid_reconnection",
    "prepaid_work_order",
    "prepaid_message",
    "headend_reading",
)


def yuan(fen: int) -> str:
    """Integer fen as exact yuan text: ``-540`` → ``"-5.40"``."""
    sign = "-" if fen < 0 else ""
    return f"{sign}{abs(fen) // 100}.{abs(fen) % 100:02d}"


def _percent(rate: Decimal | None) -> str:
    return "-" if rate is None else f"{rate * 100:.2f}%"


@dataclass(frozen=True, slots=True)
class BalanceBand:
    """How many accounts have a real-time balance in [low, high) (fen; ``None``: open)."""

    label: str
    low_fen: int | None
    high_fen: int | None
    accounts: int

    def to_dict(self) -> dict[str, object]:
        return {
            "band": self.label,
            "low_yuan": None if self.low_fen is None else yuan(self.low_fen),
            "high_yuan": None if self.high_fen is None else yuan(self.high_fen),
            "accounts": self.accounts,
        }


@dataclass(frozen=True, slots=True)
class DayFigures:
    """One day of the run."""

    day: date
    meters: int
    """Active accounts (each has a meter)."""
    collected: int
    """Of them, those whose meter has the day's daily freeze."""
    payments: int = 0
    paid_fen: int = 0
    charged_fen: int = 0
    trips: int = 0
    trip_failures: int = 0
    messages: int = 0

    @property
    def collection_rate(self) -> Decimal | None:
        if not self.meters:
            return None
        return (Decimal(self.collected) / Decimal(self.meters)).quantize(
            _RATE_PLACES, ROUND_HALF_UP
        )

    def to_dict(self) -> dict[str, object]:
        rate = self.collection_rate
        return {
            "day": self.day.isoformat(),
            "meters": self.meters,
            "collected": self.collected,
            "collection_rate": None if rate is None else str(rate),
            "payments": self.payments,
            "paid_yuan": yuan(self.paid_fen),
            "charged_yuan": yuan(self.charged_fen),
            "trips": self.trips,
            "trip_failures": self.trip_failures,
            "messages": self.messages,
        }


@dataclass(frozen=True, slots=True)
class DemoReport:
    """Everything :func:`build_report` counted (see the module doc)."""

    start: date
    days: int
    customers: int
    active: int
    remote: int
    local: int
    guaranteed: int
    payments: int
    paid_fen: int
    refunds: int
    refunded_fen: int
    charges: int
    charged_fen: int
    energy_ckwh: int
    balance_total_fen: int
    balance_min_fen: int | None
    balance_max_fen: int | None
    in_arrears: int
    bands: tuple[BalanceBand, ...]
    reminders: int
    dunning_batches: int
    dunning_records: Mapping[str, int]
    disconnections: Mapping[str, int]
    notices: int
    trips: int
    trip_failures: int
    failed_disconnections: int
    reconnections: Mapping[str, int]
    work_orders: Mapping[str, int]
    messages: Mapping[str, int]
    message_statuses: Mapping[str, int]
    daily: tuple[DayFigures, ...]
    violations: tuple[Violation, ...] | None = None
    """The invariant checks' result, when they were run (``None``: not checked)."""

    @property
    def end(self) -> date:
        """The last day of the run."""
        return self.start + timedelta(days=max(self.days, 1) - 1)

    @property
    def collection_rate(self) -> Decimal | None:
        """Over the whole run: freezes collected / (active accounts × days)."""
        meters = sum(d.meters for d in self.daily)
        if not meters:
            return None
        collected = sum(d.collected for d in self.daily)
        return (Decimal(collected) / Decimal(meters)).quantize(_RATE_PLACES, ROUND_HALF_UP)

    # -- text ----------------------------------------------------------------------------

    def to_text(self) -> str:
        lines: list[str] = []
        add = lines.append
        add(
            f"feikong demo report: {self.start.isoformat()} to {self.end.isoformat()} "
            f"({self.days} day(s))"
        )
        add("")
        add("customers")
        add(f"  accounts            {self.customers:>12}")
        add(f"  active              {self.active:>12}")
        add(f"  remote meters       {self.remote:>12}")
        add(f"  card meters         {self.local:>12}")
        add(f"  power guarantee     {self.guaranteed:>12}")
        add("")
        add("money (yuan)")
        add(f"  payments            {self.payments:>12}   sum {yuan(self.paid_fen):>14}")
        add(f"  refunds             {self.refunds:>12}   sum {yuan(self.refunded_fen):>14}")
        add(
            f"  charges             {self.charges:>12}   sum {yuan(self.charged_fen):>14}"
            f"   energy {yuan(self.energy_ckwh)} kWh"
        )
        low = "-" if self.balance_min_fen is None else yuan(self.balance_min_fen)
        high = "-" if self.balance_max_fen is None else yuan(self.balance_max_fen)
        add(
            f"  balances            total {yuan(self.balance_total_fen)}, lowest {low}, "
            f"highest {high}, in arrears {self.in_arrears}"
        )
        add("")
        add("balance distribution (yuan)")
        for band in self.bands:
            add(f"  {band.label:<20}{band.accounts:>12}")
        add("")
        add("workflows")
        add(f"  reminders           {self.reminders:>12}")
        add(f"  dunning batches     {self.dunning_batches:>12}")
        add(_row("dunning records", self.dunning_records))
        add(_row("disconnections", self.disconnections))
        add(f"  notices             {self.notices:>12}")
        add(f"  trips               {self.trips:>12}")
        add(f"  trip failures       {self.trip_failures:>12}")
        add(f"  failed disconn.     {self.failed_disconnections:>12}")
        add(_row("reconnections", self.reconnections))
        add(_row("work orders", self.work_orders))
        add("")
        add(f"messages              {sum(self.messages.values()):>12}")
        for kind, count in self.messages.items():
            add(f"  {kind:<22}{count:>10}")
        if self.message_statuses:
            add(f"  by status: {_split(self.message_statuses).strip(' ()')}")
        add("")
        add(f"per day (collection rate over the run {_percent(self.collection_rate)})")
        add("  (paid: payments and their sum in yuan; failed: failed trip attempts)")
        width = max((len(str(d.meters)) for d in self.daily), default=1)
        add(
            f"  {'day':<10}  {'collected':>{2 * width + 1}}  {'rate':>7}  {'paid':>4} "
            f"{'yuan':>10} {'charged':>10} {'trips':>5} {'failed':>6} {'msgs':>6}"
        )
        for d in self.daily:
            add(
                f"  {d.day.isoformat()}  {d.collected:>{width}}/{d.meters:<{width}}  "
                f"{_percent(d.collection_rate):>7}  {d.payments:>4} {yuan(d.paid_fen):>10} "
                f"{yuan(d.charged_fen):>10} {d.trips:>5} {d.trip_failures:>6} {d.messages:>6}"
            )
        if self.violations is not None:
            add("")
            if not self.violations:
                add(f"invariants: all {len(INVARIANTS)} hold")
                for invariant in INVARIANTS:
                    add(f"  ok  {invariant.value}: {invariant.description}")
            else:
                add(f"invariants: {len(self.violations)} violation(s)")
                for v in self.violations[:_TEXT_VIOLATIONS]:
                    add(f"  BROKEN  {v}")
                if len(self.violations) > _TEXT_VIOLATIONS:
                    rest = len(self.violations) - _TEXT_VIOLATIONS
                    add(f"  … and {rest} more (every one is in report.json)")
        return "\n".join(lines) + "\n"

    # -- data ----------------------------------------------------------------------------

    def to_dict(self) -> dict[str, object]:
        rate = self.collection_rate
        return {
            "period": {
                "start": self.start.isoformat(),
                "end": self.end.isoformat(),
                "days": self.days,
            },
            "customers": {
                "accounts": self.customers,
                "active": self.active,
                "remote": self.remote,
                "local": self.local,
                "power_guarantee": self.guaranteed,
            },
            "payments": {"count": self.payments, "sum_yuan": yuan(self.paid_fen)},
            "refunds": {"count": self.refunds, "sum_yuan": yuan(self.refunded_fen)},
            "charges": {
                "count": self.charges,
                "sum_yuan": yuan(self.charged_fen),
                "energy_kwh": yuan(self.energy_ckwh),
            },
            "balances": {
                "total_yuan": yuan(self.balance_total_fen),
                "lowest_yuan": None if self.balance_min_fen is None else yuan(self.balance_min_fen),
                "highest_yuan": None
                if self.balance_max_fen is None
                else yuan(self.balance_max_fen),
                "in_arrears": self.in_arrears,
                "distribution": [b.to_dict() for b in self.bands],
            },
            "workflows": {
                "reminders": self.reminders,
                "dunning_batches": self.dunning_batches,
                "dunning_records": dict(self.dunning_records),
                "disconnections": dict(self.disconnections),
                "notices": self.notices,
                "trips": self.trips,
                "trip_failures": self.trip_failures,
                "failed_disconnections": self.failed_disconnections,
                "reconnections": dict(self.reconnections),
                "work_orders": dict(self.work_orders),
            },
            "messages": {"by_kind": dict(self.messages), "by_status": dict(self.message_statuses)},
            "collection_rate": None if rate is None else str(rate),
            "daily": [d.to_dict() for d in self.daily],
            "invariants": None
            if self.violations is None
            else {
                "checked": [i.value for i in INVARIANTS],
                "ok": not self.violations,
                "violations": [v.to_dict() for v in self.violations],
            },
        }

    # -- files ---------------------------------------------------------------------------

    def write(self, out_dir: Path) -> list[Path]:
        """``report.txt``, ``report.json``, the PNG charts and ``report.html`` in ``out_dir``."""
        from .charts import write_charts

        out_dir.mkdir(parents=True, exist_ok=True)
        text = out_dir / "report.txt"
        text.write_text(self.to_text(), encoding="utf-8")
        data = out_dir / "report.json"
        data.write_text(
            json.dumps(self.to_dict(), ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
        )
        charts = write_charts(self, out_dir)
        page = out_dir / "report.html"
        page.write_text(self.to_html([c.name for c in charts]), encoding="utf-8")
        return [text, data, *charts, page]

    def to_html(self, charts: Sequence[str]) -> str:
        """A plain HTML page: the charts (PNG files beside it) and the text report."""
        title = f"feikong demo report {self.start.isoformat()} to {self.end.isoformat()}"
        figures = "\n".join(
            f'<figure><img src="{html.escape(name)}" alt="{html.escape(name)}" width="800">'
            f"<figcaption>{html.escape(_CAPTIONS.get(Path(name).stem, name))}</figcaption>"
            "</figure>"
            for name in charts
        )
        state = ""
        if self.violations is not None:
            state = (
                '<p class="ok">invariants: all hold</p>'
                if not self.violations
                else f'<p class="broken">invariants: {len(self.violations)} violation(s)</p>'
            )
        return (
            "<!DOCTYPE html>\n"
            '<html lang="en"><head><meta charset="utf-8">'
            f"<title>{html.escape(title)}</title>"
            "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}"
            "pre{background:#f6f6f6;padding:1em;overflow-x:auto}"
            ".ok{color:#176b2c}.broken{color:#b00020;font-weight:bold}</style>"
            "</head><body>\n"
            f"<h1>{html.escape(title)}</h1>\n{state}\n{figures}\n"
            f"<h2>Figures</h2>\n<pre>{html.escape(self.to_text())}</pre>\n"
            "</body></html>\n"
        )


_CAPTIONS: Final = {
    "balance_distribution": "Real-time balances at the end of the run (accounts per band)",
    "collection_rate": "Daily collection rate (meters with the day's freeze)",
    "trips_per_day": "Remote trips and failed trip attempts per day",
    "messages_per_type": "Messages per type",
}


def _row(label: str, counts: Mapping[str, int]) -> str:
    return f"  {label:<20}{sum(counts.values()):>12}{_split(counts)}"


def _split(counts: Mapping[str, int]) -> str:
    if not counts:
        return ""
    return "   (" + ", ".join(f"{k} {v}" for k, v in counts.items()) + ")"


# -- building ------------------------------------------------------------------------------


def _day_of(column: Any, dialect: str) -> Any:
    """The calendar day of a timestamp column, in SQL."""
    if dialect == "sqlite":
        return sa.func.date(column)
    return sa.cast(column, sa.Date)


def _as_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def _counts(conn: Connection, sql: str) -> dict[str, int]:
    return {str(k): int(n) for k, n in conn.execute(sa.text(sql))}


_ACCOUNTS: Final = sa.text(
    """
SELECT COUNT(*) AS customers,
       SUM(CASE WHEN active THEN 1 ELSE 0 END) AS active,
       SUM(CASE WHEN fee_control_mode = 'remote' THEN 1 ELSE 0 END) AS remote,
       SUM(CASE WHEN fee_control_mode = 'local' THEN 1 ELSE 0 END) AS local
FROM prepaid_account
"""
)

_MONEY: Final = sa.text(
    """
SELECT SUM(CASE WHEN kind = 'payment' THEN 1 ELSE 0 END) AS payments,
       SUM(CASE WHEN kind = 'payment' THEN amount_fen ELSE 0 END) AS paid,
       SUM(CASE WHEN kind = 'refund' THEN 1 ELSE 0 END) AS refunds,
       SUM(CASE WHEN kind = 'refund' THEN -amount_fen ELSE 0 END) AS refunded
FROM prepaid_cis_movement
"""
)

_CHARGES: Final = sa.text("SELECT COUNT(*), SUM(amount_fen), SUM(energy_ckwh) FROM prepaid_charge")

_BALANCES: Final = sa.text(
    """
SELECT COUNT(*), SUM(s.balance_fen), MIN(s.balance_fen), MAX(s.balance_fen),
       SUM(CASE WHEN s.balance_fen < 0 THEN 1 ELSE 0 END)
FROM prepaid_rating_state s JOIN prepaid_account a ON a.id = s.account_id
WHERE a.active
"""
)


def _bands(conn: Connection) -> tuple[BalanceBand, ...]:
    state = sa.table("prepaid_rating_state", sa.column("account_id"), sa.column("balance_fen"))
    account = sa.table("prepaid_account", sa.column("id"), sa.column("active"))
    whens = []
    for index, (_, low, high) in enumerate(BALANCE_BANDS):
        conds = []
        if low is not None:
            conds.append(state.c.balance_fen >= low)
        if high is not None:
            conds.append(state.c.balance_fen < high)
        whens.append((sa.and_(*conds), index))
    band = sa.case(*whens, else_=-1).label("band")
    query = (
        sa.select(band, sa.func.count())
        .select_from(state.join(account, account.c.id == state.c.account_id))
        .where(account.c.active == sa.true())
        .group_by(band)
    )
    found = {int(i): int(n) for i, n in conn.execute(query)}
    return tuple(
        BalanceBand(label, low, high, found.get(i, 0))
        for i, (label, low, high) in enumerate(BALANCE_BANDS)
    )


def _guaranteed(engine: Engine, conn: Connection) -> int:
    from prepaid.settings import SettingsStore
    from protocol.clock import RealClock

    values = SettingsStore(engine, clock=RealClock()).account_values("power_guarantee").subquery()
    account = sa.table(
        "prepaid_account", sa.column("id"), sa.column("power_guarantee"), sa.column("active")
    )
    query = (
        sa.select(sa.func.count())
        .select_from(account.join(values, values.c.account_id == account.c.id))
        .where(
            account.c.active == sa.true(),
            sa.or_(account.c.power_guarantee == sa.true(), values.c.value == "true"),
        )
    )
    return int(conn.execute(query).scalar_one())


def _daily(conn: Connection, start: date, days: int) -> tuple[DayFigures, ...]:
    dialect = conn.dialect.name
    end = start + timedelta(days=days)
    lo, hi = datetime.combine(start, time()), datetime.combine(end, time())
    reading = sa.table(
        "headend_reading",
        sa.column("meter_address", sa.String),
        sa.column("di", sa.BigInteger),
        sa.column("freeze_date", sa.Date),
    )
    account = sa.table(
        "prepaid_account", sa.column("id"), sa.column("meter_address"), sa.column("active")
    )
    meters = int(
        conn.execute(
            sa.select(sa.func.count()).select_from(account).where(account.c.active == sa.true())
        ).scalar_one()
    )
    collected = {
        _as_date(d): int(n)
        for d, n in conn.execute(
            sa.select(reading.c.freeze_date, sa.func.count())
            .select_from(reading.join(account, account.c.meter_address == reading.c.meter_address))
            .where(
                account.c.active == sa.true(),
                reading.c.di == _DAILY_FORWARD_DI,
                reading.c.freeze_date >= start,
                reading.c.freeze_date < end,
            )
            .group_by(reading.c.freeze_date)
        )
    }
    movement = sa.table(
        "prepaid_cis_movement",
        sa.column("kind", sa.String),
        sa.column("amount_fen", sa.BigInteger),
        sa.column("occurred_at", sa.DateTime),
    )
    pay_day = _day_of(movement.c.occurred_at, dialect)
    payments = {
        _as_date(d): (int(n), int(fen))
        for d, n, fen in conn.execute(
            sa.select(pay_day, sa.func.count(), sa.func.sum(movement.c.amount_fen))
            .where(
                movement.c.kind == "payment",
                movement.c.occurred_at >= lo,
                movement.c.occurred_at < hi,
            )
            .group_by(pay_day)
        )
    }
    from prepaid.models import day_date, day_number

    charge = sa.table("prepaid_charge", sa.column("day"), sa.column("amount_fen"))
    charges = {
        day_date(int(d)): int(fen)
        for d, fen in conn.execute(
            sa.select(charge.c.day, sa.func.sum(charge.c.amount_fen))
            .where(charge.c.day >= day_number(start), charge.c.day < day_number(end))
            .group_by(charge.c.day)
        )
    }
    event = sa.table(
        "prepaid_disconnection_event", sa.column("action", sa.String), sa.column("at", sa.DateTime)
    )
    event_day = _day_of(event.c.at, dialect)
    trips: dict[date, list[int]] = {}
    for d, action, n in conn.execute(
        sa.select(event_day, event.c.action, sa.func.count())
        .where(
            event.c.action.in_(_TRIPPED + _FAILED_ATTEMPTS),
            event.c.at >= lo,
            event.c.at < hi,
        )
        .group_by(event_day, event.c.action)
    ):
        slot = trips.setdefault(_as_date(d), [0, 0])
        slot[0 if action in _TRIPPED else 1] += int(n)
    message = sa.table("prepaid_message", sa.column("created_at", sa.DateTime))
    message_day = _day_of(message.c.created_at, dialect)
    messages = {
        _as_date(d): int(n)
        for d, n in conn.execute(
            sa.select(message_day, sa.func.count())
            .where(message.c.created_at >= lo, message.c.created_at < hi)
            .group_by(message_day)
        )
    }
    out = []
    for i in range(days):
        day = start + timedelta(days=i)
        paid = payments.get(day, (0, 0))
        trip = trips.get(day, [0, 0])
        out.append(
            DayFigures(
                day=day,
                meters=meters,
                collected=collected.get(day, 0),
                payments=paid[0],
                paid_fen=paid[1],
                charged_fen=charges.get(day, 0),
                trips=trip[0],
                trip_failures=trip[1],
                messages=messages.get(day, 0),
            )
        )
    return tuple(out)


def run_period(engine: Engine) -> tuple[date, int]:
    """The run a database holds: its first daily freeze (the opening reading) and the days
    up to its last one (at least 1); today and 1 for a database without readings."""
    require_tables(engine, _REPORT_TABLES)
    reading = sa.table("headend_reading", sa.column("di"), sa.column("freeze_date", sa.Date))
    with engine.connect() as conn:
        first, last = conn.execute(
            sa.select(sa.func.min(reading.c.freeze_date), sa.func.max(reading.c.freeze_date)).where(
                reading.c.di == _DAILY_FORWARD_DI
            )
        ).one()
    if first is None:
        return date.today(), 1
    start, end = _as_date(first), _as_date(last)
    return start, max(1, (end - start).days)


def build_report(
    engine: Engine,
    *,
    start: date,
    days: int,
    violations: Sequence[Violation] | None = None,
) -> DemoReport:
    """Count what the database holds (see the module doc); ``days`` ≥ 1 from ``start``.

    ``violations``: the result of :func:`~feikong.demo.invariants.check_invariants`, to
    show in the report (``None``: the report says nothing about the invariants).
    """
    if days < 1:
        raise ValueError(f"a report covers at least 1 day, got days={days}")
    require_tables(engine, _REPORT_TABLES)
    with engine.connect() as conn:
        accounts = conn.execute(_ACCOUNTS).one()
        money = conn.execute(_MONEY).one()
        charges = conn.execute(_CHARGES).one()
        balances = conn.execute(_BALANCES).one()
        report = DemoReport(
            start=start,
            days=days,
            customers=int(accounts.customers or 0),
            active=int(accounts.active or 0),
            remote=int(accounts.remote or 0),
            local=int(accounts.local or 0),
            guaranteed=_guaranteed(engine, conn),
            payments=int(money.payments or 0),
            paid_fen=int(money.paid or 0),
            refunds=int(money.refunds or 0),
            refunded_fen=int(money.refunded or 0),
            charges=int(charges[0] or 0),
            charged_fen=int(charges[1] or 0),
            energy_ckwh=int(charges[2] or 0),
            balance_total_fen=int(balances[1] or 0),
            balance_min_fen=None if balances[2] is None else int(balances[2]),
            balance_max_fen=None if balances[3] is None else int(balances[3]),
            in_arrears=int(balances[4] or 0),
            bands=_bands(conn),
            reminders=int(
                conn.execute(sa.text("SELECT COUNT(*) FROM prepaid_reminder")).scalar_one()
            ),
            dunning_batches=int(
                conn.execute(sa.text("SELECT COUNT(*) FROM prepaid_dunning_batch")).scalar_one()
            ),
            dunning_records=_counts(
                conn, "SELECT method, COUNT(*) FROM prepaid_dunning GROUP BY method ORDER BY method"
            ),
            disconnections=_counts(
                conn,
                "SELECT state, COUNT(*) FROM prepaid_disconnection GROUP BY state ORDER BY state",
            ),
            notices=int(
                conn.execute(
                    sa.text(
                        "SELECT COUNT(*) FROM prepaid_disconnection WHERE notified_at IS NOT NULL"
                    )
                ).scalar_one()
            ),
            trips=_events(conn, _TRIPPED),
            trip_failures=_events(conn, _FAILED_ATTEMPTS),
            failed_disconnections=_events(conn, ("failed",)),
            reconnections=_counts(
                conn,
                "SELECT state, COUNT(*) FROM prepaid_reconnection GROUP BY state ORDER BY state",
            ),
            work_orders=_counts(
                conn, "SELECT kind, COUNT(*) FROM prepaid_work_order GROUP BY kind ORDER BY kind"
            ),
            messages=_counts(
                conn, "SELECT kind, COUNT(*) FROM prepaid_message GROUP BY kind ORDER BY kind"
            ),
            message_statuses=_counts(
                conn, "SELECT status, COUNT(*) FROM prepaid_message GROUP BY status ORDER BY status"
            ),
            daily=_daily(conn, start, days),
            violations=None if violations is None else tuple(violations),
        )
    return report


def _events(conn: Connection, actions: Sequence[str]) -> int:
    query = sa.text(
        "SELECT COUNT(*) FROM prepaid_disconnection_event WHERE action IN :actions"
    ).bindparams(sa.bindparam("actions", expanding=True))
    return int(conn.execute(query, {"actions": list(actions)}).scalar_one())
