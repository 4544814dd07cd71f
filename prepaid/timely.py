"""Timely rating (适时算费): pick the accounts that need rating now, and rate them.

Besides the full daily rating, the platform re-rates at once the accounts whose money
is running out or that have news, so a customer is warned (or disconnected) in time.
An account is selected when any enabled rule holds:

``days_left_below``
    days of credit left < X, where days of credit = real-time balance ÷ the average
    daily cost over the last ``average_days`` (K) days (the charges of the K days
    before today, divided by K). Accounts that cost nothing in those days are never
    short of days. Computed exactly in integers: ``balance·K·q < p·cost`` for X = p/q.
``balance_below``
    real-time balance (实时余额, CIS balance − unsettled charges) < this many yuan.
``newer_reading``
    the head-end holds a daily reading (DI 05060101) newer than the one last rated,
    up to today.

The rules live in a TOML file (a ``[timely]`` table) or a :class:`TimelyRules`; every
default is in :class:`TimelyRules`. A bad value is refused with a message naming the
key and what is expected. Selection is one set-based SQL statement over every active
account (SQLite or PostgreSQL); the selected accounts are then rated with the rating's
``rate_accounts`` in chunks. The real-time balance is the rating state's copy
(``prepaid_rating_state.balance_fen``), which rating, payments and refunds keep equal
to CIS − unsettled (:mod:`prepaid.balance`; ``feikong cis sync`` checks and repairs).

Example ``timely.toml``::

    [timely]
    days_left_below = 3        # days (a number; 0 or false turns the rule off)
    average_days = 7           # K
    balance_below = "10.00"    # yuan (a decimal string or integer; false: off)
    newer_reading = true
    max_accounts = 200000      # rate at most this many per run (the lowest days first)
"""

from __future__ import annotations

import logging
import time
import tomllib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from enum import IntFlag
from pathlib import Path
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from protocol.clock import Clock, RealClock

from .cis import format_fen
from .models import day_number

__all__ = [
    "DAILY_READING_DI",
    "Rule",
    "TimelyError",
    "TimelyReport",
    "TimelyRules",
    "TimelySelection",
    "load_rules",
    "rules_from_dict",
    "run_timely",
    "select_accounts",
]

log = logging.getLogger(__name__)

#: The head-end reading that rating consumes: the daily freeze of forward active energy.
DAILY_READING_DI: Final = 0x05060101
_CHUNK: Final = 50_000
_MAX_DAYS: Final = Decimal(3650)
_MAX_BALANCE_FEN: Final = 10**11


class TimelyError(ValueError):
    """Timely-rating rules that cannot be used; the message names the key and the fix."""


class Rule(IntFlag):
    """The rules that selected an account (several may hold at once)."""

    DAYS_LEFT = 1
    BALANCE = 2
    READING = 4

    @property
    def label(self) -> str:
        return {1: "days-left", 2: "balance", 4: "newer-reading"}.get(int(self), str(self))


@dataclass(frozen=True, slots=True)
class TimelyRules:
    """When an account is rated now (see the module doc). ``None`` turns a rule off.

    ``days_left_below`` (days, ``Decimal``), ``average_days`` (K, 1–90),
    ``balance_below_fen`` (fen), ``newer_reading``, ``max_accounts`` (per run, ``None``:
    no limit; the accounts with the fewest days left, then the lowest balances, first).
    """

    days_left_below: Decimal | None = Decimal(3)
    average_days: int = 7
    balance_below_fen: int | None = 1_000
    newer_reading: bool = True
    max_accounts: int | None = None

    def __post_init__(self) -> None:
        days = self.days_left_below
        if days is not None and (
            not isinstance(days, Decimal) or not days.is_finite() or not 0 < days <= _MAX_DAYS
        ):
            raise TimelyError(
                f"timely.days_left_below: expected days more than 0 and at most {_MAX_DAYS}, "
                f"got {days!r}"
            )
        if isinstance(self.average_days, bool) or not isinstance(self.average_days, int):
            raise TimelyError(
                f"timely.average_days: expected whole days, got {self.average_days!r}"
            )
        if not 1 <= self.average_days <= 90:
            raise TimelyError(
                f"timely.average_days: expected 1 to 90 days, got {self.average_days}"
            )
        fen = self.balance_below_fen
        if fen is not None and (
            isinstance(fen, bool) or not isinstance(fen, int) or abs(fen) > _MAX_BALANCE_FEN
        ):
            raise TimelyError(
                f"timely.balance_below: expected yuan within ±{format_fen(_MAX_BALANCE_FEN)}, "
                f"got {fen!r} fen"
            )
        limit = self.max_accounts
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or limit < 1
        ):
            raise TimelyError(f"timely.max_accounts: expected a whole number ≥ 1, got {limit!r}")
        if days is None and fen is None and not self.newer_reading:
            raise TimelyError(
                "timely: every rule is off; enable days_left_below, balance_below or newer_reading"
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "days_left_below": None if self.days_left_below is None else str(self.days_left_below),
            "average_days": self.average_days,
            "balance_below": None
            if self.balance_below_fen is None
            else format_fen(self.balance_below_fen),
            "newer_reading": self.newer_reading,
            "max_accounts": self.max_accounts,
        }


_KEYS: Final = ("days_left_below", "average_days", "balance_below", "newer_reading", "max_accounts")


def _off(value: object) -> bool:
    return value is False or (isinstance(value, str) and value.strip().lower() in ("off", ""))


def _decimal(value: object, key: str, *, money: bool) -> Decimal:
    if isinstance(value, bool):
        raise TimelyError(f"timely.{key}: expected a number, got {value!r}")
    if isinstance(value, float):
        if money:
            raise TimelyError(
                f'timely.{key}: give yuan as a decimal string (e.g. "10.00"), not the binary '
                f"float {value!r}"
            )
        value = repr(value)
    try:
        number = Decimal(value.strip() if isinstance(value, str) else value)  # type: ignore[arg-type]
    except (InvalidOperation, TypeError, ValueError):
        raise TimelyError(f"timely.{key}: expected a number, got {value!r}") from None
    if not number.is_finite():
        raise TimelyError(f"timely.{key}: expected a number, got {value!r}")
    return number


def rules_from_dict(data: Mapping[str, Any]) -> TimelyRules:
    """Rules from a mapping (the ``[timely]`` table of a TOML file); missing keys default."""
    unknown = sorted(set(data) - set(_KEYS))
    if unknown:
        raise TimelyError(
            f"timely: unknown key(s) {', '.join(unknown)}; the keys are {', '.join(_KEYS)}"
        )
    defaults = TimelyRules()
    days: Decimal | None = defaults.days_left_below
    if "days_left_below" in data:
        raw = data["days_left_below"]
        days = None if _off(raw) or raw == 0 else _decimal(raw, "days_left_below", money=False)
    fen: int | None = defaults.balance_below_fen
    if "balance_below" in data:
        raw = data["balance_below"]
        if _off(raw):
            fen = None
        else:
            yuan = _decimal(raw, "balance_below", money=True).scaleb(2)
            if yuan != yuan.to_integral_value():
                raise TimelyError(
                    f"timely.balance_below: {raw!r} has more than 2 decimals (fen are the "
                    "smallest unit)"
                )
            fen = int(yuan)
    newer = data.get("newer_reading", defaults.newer_reading)
    if not isinstance(newer, bool):
        raise TimelyError(f"timely.newer_reading: expected true or false, got {newer!r}")
    average = data.get("average_days", defaults.average_days)
    limit = data.get("max_accounts", defaults.max_accounts)
    if _off(limit) or limit == 0:
        limit = None
    return TimelyRules(
        days_left_below=days,
        average_days=average,
        balance_below_fen=fen,
        newer_reading=newer,
        max_accounts=limit,
    )


def load_rules(path: Path | str) -> TimelyRules:
    """Rules from a TOML file with a ``[timely]`` table (or the keys at the top level)."""
    source = Path(path)
    try:
        data = tomllib.loads(source.read_text(encoding="utf-8"))
    except OSError as exc:
        raise TimelyError(f"cannot read {str(source)!r}: {exc.strerror or exc}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise TimelyError(f"{source}: not valid TOML: {exc}") from exc
    table = data.get("timely", data)
    if not isinstance(table, dict):
        raise TimelyError(f"{source}: [timely] must be a table of rules")
    try:
        return rules_from_dict(table)
    except TimelyError as exc:
        raise TimelyError(f"{source}: {exc}") from None


# --------------------------------------------------------------------------- selection


@dataclass(frozen=True, slots=True)
class TimelySelection:
    """The accounts to rate now, with the rules that selected each (same order).

    ``rating_days``: the day to rate each account for — the date of its newest reading
    when that is news (it may be before ``day`` when a daily rating was missed),
    otherwise ``day``. ``candidates``: accounts matched before ``max_accounts``.
    """

    day: date
    account_ids: tuple[int, ...]
    rules: tuple[Rule, ...]
    candidates: int = 0
    rating_days: tuple[date, ...] = ()

    def by_day(self) -> dict[date, list[int]]:
        """The selected accounts grouped by the day to rate them for, oldest day first."""
        days = self.rating_days or (self.day,) * len(self.account_ids)
        out: dict[date, list[int]] = {}
        for ident, when in sorted(zip(self.account_ids, days, strict=True), key=lambda p: p[1]):
            out.setdefault(when, []).append(ident)
        return out

    def count(self, rule: Rule) -> int:
        return sum(1 for r in self.rules if r & rule)

    def by_rule(self) -> dict[str, int]:
        return {rule.label: self.count(rule) for rule in Rule}

    def to_dict(self) -> dict[str, Any]:
        return {
            "day": self.day.isoformat(),
            "selected": len(self.account_ids),
            "matched": self.candidates,
            "by_rule": self.by_rule(),
        }


def _day_as_date(connection: Connection, column: str) -> str:
    """SQL for a day number ``column`` as a DATE, in this dialect (constant text).

    Compared with ``headend_reading.freeze_date``, so that the lookup is a range on the
    reading's primary key (meter, DI, freeze date).
    """
    if connection.dialect.name == "postgresql":
        return f"(DATE '1970-01-01' + {column})"
    return f"date({column} * 86400, 'unixepoch')"


_SELECT: Final = """
WITH cost AS (
    SELECT account_id, SUM(amount_fen) AS cost_fen
    FROM prepaid_charge
    WHERE day >= :cost_from AND day < :today
    GROUP BY account_id
),
money AS (
    SELECT a.id AS account_id, a.meter_address AS meter_address,
           rs.reading_day AS reading_day,
           rs.balance_fen AS realtime_fen,
           COALESCE(k.cost_fen, 0) AS cost_fen
    FROM prepaid_account a
    JOIN prepaid_rating_state rs ON rs.account_id = a.id
    LEFT JOIN cost k ON k.account_id = a.id
    WHERE a.active = :active
),
news AS (
    SELECT account_id, realtime_fen, cost_fen,
           CASE WHEN :use_reading = 1 THEN (
                SELECT MAX(r.freeze_date) FROM headend_reading r
                WHERE r.meter_address = money.meter_address AND r.di = :di
                  AND r.freeze_date > {last_rated} AND r.freeze_date <= :today_date
           ) END AS newest
    FROM money
),
flagged AS (
    SELECT account_id, realtime_fen, cost_fen, newest,
           CASE WHEN :use_days = 1 AND cost_fen > 0
                     AND realtime_fen * :k * :q < :p * cost_fen THEN 1 ELSE 0 END
         + CASE WHEN :use_balance = 1 AND realtime_fen < :threshold THEN 2 ELSE 0 END
         + CASE WHEN newest IS NOT NULL THEN 4 ELSE 0 END AS rules
    FROM news
)
SELECT account_id, rules, newest FROM flagged
WHERE rules > 0
ORDER BY
    CASE WHEN cost_fen > 0 THEN realtime_fen * 1.0 / cost_fen ELSE 1e18 END,
    realtime_fen, account_id"""


def select_accounts(engine: Engine | Connection, rules: TimelyRules, day: date) -> TimelySelection:
    """The active accounts to rate on ``day`` under ``rules`` (one set-based statement).

    Ordered by urgency: fewest days of credit left first, then the lowest real-time
    balance; cut to ``rules.max_accounts``.
    """
    if isinstance(engine, Engine):
        with engine.connect() as connection:
            return select_accounts(connection, rules, day)
    connection = engine
    today = day_number(day)
    p, q = (rules.days_left_below or Decimal(0)).as_integer_ratio()
    sql = _SELECT.format(last_rated=_day_as_date(connection, "COALESCE(money.reading_day, -1)"))
    statement = sa.text(sql).columns(
        sa.column("account_id", sa.Integer),
        sa.column("rules", sa.Integer),
        sa.column("newest", sa.Date),
    )
    rows = connection.execute(
        statement,
        {
            "cost_from": today - rules.average_days,
            "today": today,
            "active": True,
            "use_days": int(rules.days_left_below is not None),
            "k": rules.average_days,
            "p": p,
            "q": q,
            "use_balance": int(rules.balance_below_fen is not None),
            "threshold": rules.balance_below_fen or 0,
            "use_reading": int(rules.newer_reading),
            "di": DAILY_READING_DI,
            "today_date": day,
        },
    ).all()
    matched = len(rows)
    if rules.max_accounts is not None:
        rows = rows[: rules.max_accounts]
    return TimelySelection(
        day,
        tuple(int(r.account_id) for r in rows),
        tuple(Rule(int(r.rules)) for r in rows),
        matched,
        tuple(r.newest or day for r in rows),
    )


# --------------------------------------------------------------------------- rating


@dataclass(slots=True)
class TimelyReport:
    """A timely-rating run: what was selected, how many were rated, how long it took."""

    selection: TimelySelection
    rated: int = 0
    select_s: float = 0.0
    rate_s: float = 0.0
    results: list[object] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.selection.to_dict(),
            "rated": self.rated,
            "select_s": round(self.select_s, 3),
            "rate_s": round(self.rate_s, 3),
        }


RateAccounts = Callable[..., object]


def _chunks(ids: Sequence[int], size: int) -> Iterator[Sequence[int]]:
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


def run_timely(
    engine: Engine,
    rules: TimelyRules,
    *,
    clock: Clock | None = None,
    rate: RateAccounts | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> TimelyReport:
    """Select the accounts to rate now (clock's today) and rate them, in chunks.

    ``rate`` is the rating's ``rate_accounts(engine, account_ids, day, *, clock)``
    (the default). ``progress(done, total)`` follows the rating.
    """
    clock = clock or RealClock()
    if rate is None:
        from .rating import rate_accounts

        rate = rate_accounts
    day = clock.now().date()
    started = time.perf_counter()
    selection = select_accounts(engine, rules, day)
    report = TimelyReport(selection, select_s=time.perf_counter() - started)
    total = len(selection.account_ids)
    if progress is not None:
        progress(0, total)
    started = time.perf_counter()
    for when, ids in selection.by_day().items():
        for chunk in _chunks(sorted(ids), _CHUNK):
            report.results.append(rate(engine, list(chunk), when, clock=clock))
            report.rated += len(chunk)
            if progress is not None:
                progress(report.rated, total)
    report.rate_s = time.perf_counter() - started
    log.info(
        "timely rating %s: %d selected (%s), %d rated in %.2f s",
        day,
        total,
        ", ".join(f"{k} {v}" for k, v in selection.by_rule().items()),
        report.rated,
        report.rate_s,
    )
    return report
