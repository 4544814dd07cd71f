"""The invariants a fee-control run must keep (演示校验), checked from the database alone.

:func:`check_invariants` reads the prepaid (``prepaid_*``) and head-end (``headend_*``)
tables of a database — a ``feikong demo`` run, or any other — and returns every
:class:`Violation` it finds (none: the run kept them all):

``money-conserved``
    For every account: opening balance + payments credited − refunds − charges = the
    real-time balance (``prepaid_rating_state.balance_fen``). The opening balance is the
    CIS ledger's ``opening`` movement; an account the ledger never saw (it never paid)
    opened with the balance before its first charge. The ledger's balance is the sum of
    its movements, a payment id is credited once (one movement, posted to the balance
    once, with the movement's amount and account).
``two-approvals``
    Every trip sent to the head-end belongs to a disconnection request approved at
    level 1 and level 2 by two different known operators, neither of them the
    requester, both before the trip.
``no-guaranteed-trip``
    No trip reached the meter of a customer under power guarantee (保电) at that moment:
    the account's own flag, or ``power_guarantee`` in force for its customer number,
    transformer area or feeder line (or the default) — as the settings stood then,
    rebuilt from their change history (``prepaid_setting_change``).
``no-trip-in-protected-hours``
    No trip attempt started in protected hours (保护时段): the daily window, weekends and
    public holidays in force for the customer at that moment (settings history again)
    and the holiday calendar (:mod:`prepaid.calendar`).
``failed-trip-has-work-order``
    Every disconnection whose remote trips failed has its disconnection-failure work
    order (停电失败工单) in ``prepaid_work_order``.

The checks are set-based (a few grouped queries); only the rows that break something,
and the trips (a few per thousand customers), come back to Python.
"""

from __future__ import annotations

import bisect
import enum
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

__all__ = [
    "INVARIANTS",
    "Invariant",
    "InvariantCheckError",
    "Violation",
    "check_invariants",
]


class Invariant(enum.StrEnum):
    """The invariants :func:`check_invariants` checks (their names in a :class:`Violation`)."""

    MONEY_CONSERVED = "money-conserved"
    TWO_APPROVALS = "two-approvals"
    NO_GUARANTEED_TRIP = "no-guaranteed-trip"
    NO_TRIP_IN_PROTECTED_HOURS = "no-trip-in-protected-hours"
    FAILED_TRIP_HAS_WORK_ORDER = "failed-trip-has-work-order"

    @property
    def description(self) -> str:
        return _DESCRIPTIONS[self]


_DESCRIPTIONS: Final = {
    Invariant.MONEY_CONSERVED: (
        "opening balance + payments − refunds − charges = balance, for every account; "
        "each payment id credited once"
    ),
    Invariant.TWO_APPROVALS: (
        "every trip approved at level 1 and 2 by two different people, neither the requester"
    ),
    Invariant.NO_GUARANTEED_TRIP: "no trip of a customer under power guarantee (保电)",
    Invariant.NO_TRIP_IN_PROTECTED_HOURS: "no trip in protected hours (保护时段)",
    Invariant.FAILED_TRIP_HAS_WORK_ORDER: "every failed disconnection has its work order",
}

INVARIANTS: Final = tuple(Invariant)


class InvariantCheckError(RuntimeError):
    """The database cannot be checked (not a feikong database, tables missing)."""


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken invariant: which, what it concerns, and what is wrong (with the numbers)."""

    invariant: str
    subject: str
    detail: str

    def __str__(self) -> str:
        return f"{self.invariant}: {self.subject}: {self.detail}"

    def to_dict(self) -> dict[str, str]:
        return {"invariant": self.invariant, "subject": self.subject, "detail": self.detail}


_TABLES: Final = (
    "prepaid_account",
    "prepaid_rating_state",
    "prepaid_charge",
    "prepaid_cis_account",
    "prepaid_cis_movement",
    "prepaid_cis_posted",
    "prepaid_disconnection",
    "prepaid_disconnection_event",
    "prepaid_operator",
    "prepaid_setting_change",
    "prepaid_setting",
    "prepaid_work_order",
    "headend_job",
    "headend_job_attempt",
)


def _yuan(fen: int) -> str:
    fen = int(fen)  # PostgreSQL's SUM of bigint is numeric
    sign = "-" if fen < 0 else ""
    return f"{sign}{abs(fen) // 100}.{abs(fen) % 100:02d}"


def require_tables(engine: Engine | Connection, tables: Iterable[str] = _TABLES) -> None:
    """Raise :class:`InvariantCheckError` naming the tables a feikong database should have."""
    names = set(sa.inspect(engine).get_table_names())
    missing = [t for t in tables if t not in names]
    if missing:
        raise InvariantCheckError(
            f"the database has no table {', '.join(missing)}: it is not a migrated feikong "
            "database (run `feikong demo` to make one, or migrate it)"
        )


def check_invariants(
    engine: Engine, *, defaults: Any = None, calendar: Any = None
) -> list[Violation]:
    """Every violation of the invariants of the module doc, in invariant order.

    ``defaults`` (a :class:`prepaid.settings.Defaults`; default: the settings files in
    force) give the values nobody set; ``calendar`` (a :class:`prepaid.calendar.
    HolidayCalendar`; default: the packaged one) the public holidays.
    """
    from prepaid.calendar import default_calendar
    from prepaid.settings import load_defaults

    require_tables(engine)
    defaults = defaults if defaults is not None else load_defaults()
    calendar = calendar if calendar is not None else default_calendar()
    with engine.connect() as conn:
        trips = _trips(conn)
        history = _SettingsHistory.load(conn, defaults)
        out: list[Violation] = []
        out += check_money(conn)
        out += _check_approvals(conn, trips)
        out += _check_guarantee(trips, history)
        out += _check_protected_hours(trips, history, calendar)
        out += check_failed_trips(conn)
    return out


# -- money ------------------------------------------------------------------------------

_MONEY: Final = sa.text(
    """
WITH mv AS (
  SELECT account_no,
         SUM(CASE WHEN kind = 'opening' THEN amount_fen ELSE 0 END) AS opening_fen,
         SUM(CASE WHEN kind = 'opening' THEN 1 ELSE 0 END) AS openings,
         SUM(CASE WHEN kind = 'payment' THEN amount_fen ELSE 0 END) AS paid_fen,
         SUM(CASE WHEN kind = 'payment' THEN 1 ELSE 0 END) AS payments,
         SUM(CASE WHEN kind = 'refund' THEN -amount_fen ELSE 0 END) AS refunded_fen,
         SUM(CASE WHEN kind = 'refund' THEN 1 ELSE 0 END) AS refunds,
         SUM(amount_fen) AS movements_fen
  FROM prepaid_cis_movement GROUP BY account_no
),
ch AS (
  SELECT account_id, SUM(amount_fen) AS charged_fen, COUNT(*) AS charges, MIN(day) AS first_day
  FROM prepaid_charge GROUP BY account_id
),
sums AS (
  SELECT a.id, a.customer_no, s.balance_fen,
         COALESCE(mv.openings, 0) AS openings, COALESCE(mv.opening_fen, 0) AS opening_fen,
         COALESCE(mv.paid_fen, 0) AS paid_fen, COALESCE(mv.payments, 0) AS payments,
         COALESCE(mv.refunded_fen, 0) AS refunded_fen, COALESCE(mv.refunds, 0) AS refunds,
         mv.movements_fen, ca.balance_fen AS cis_fen,
         COALESCE(ch.charged_fen, 0) AS charged_fen, COALESCE(ch.charges, 0) AS charges,
         f.balance_fen + f.amount_fen AS before_first_fen
  FROM prepaid_account a
  LEFT JOIN prepaid_rating_state s ON s.account_id = a.id
  LEFT JOIN mv ON mv.account_no = a.customer_no
  LEFT JOIN prepaid_cis_account ca ON ca.account_no = a.customer_no
  LEFT JOIN ch ON ch.account_id = a.id
  LEFT JOIN prepaid_charge f ON f.account_id = a.id AND f.day = ch.first_day
)
SELECT * FROM sums
WHERE (openings > 0 AND (balance_fen IS NULL
         OR balance_fen <> opening_fen + paid_fen - refunded_fen - charged_fen))
   OR (openings = 0 AND charges > 0
         AND (balance_fen IS NULL OR balance_fen <> before_first_fen - charged_fen))
   OR (openings = 0 AND payments + refunds > 0)
   OR (cis_fen IS NOT NULL AND (movements_fen IS NULL OR cis_fen <> movements_fen))
ORDER BY customer_no
"""
)

_TWICE: Final = sa.text(
    """
SELECT operation_id, COUNT(*) AS n, SUM(amount_fen) AS fen, MIN(account_no) AS first_no,
       MAX(account_no) AS last_no
FROM prepaid_cis_movement WHERE kind = 'payment'
GROUP BY operation_id HAVING COUNT(*) > 1 ORDER BY operation_id
"""
)

_POSTED: Final = sa.text(
    """
SELECT p.kind, p.operation_id, p.amount_fen AS posted_fen, a.customer_no,
       m.amount_fen AS movement_fen, m.account_no
FROM prepaid_cis_posted p
LEFT JOIN prepaid_account a ON a.id = p.account_id
LEFT JOIN prepaid_cis_movement m ON m.kind = p.kind AND m.operation_id = p.operation_id
WHERE m.id IS NULL OR m.amount_fen <> p.amount_fen OR m.account_no <> a.customer_no
ORDER BY p.kind, p.operation_id
"""
)


def check_money(conn: Connection) -> list[Violation]:
    """``money-conserved`` (see the module doc)."""
    name = Invariant.MONEY_CONSERVED.value
    out: list[Violation] = []
    for r in conn.execute(_MONEY):
        subject = f"account {r.customer_no}"
        if r.cis_fen is not None and (r.movements_fen is None or r.cis_fen != r.movements_fen):
            out.append(
                Violation(
                    name,
                    subject,
                    f"CIS ledger balance {_yuan(r.cis_fen)} yuan is not the sum of its "
                    f"movements {_yuan(r.movements_fen or 0)} yuan",
                )
            )
        if r.openings == 0 and r.payments + r.refunds > 0:
            out.append(
                Violation(
                    name,
                    subject,
                    f"{r.payments} payment(s) and {r.refunds} refund(s) in the CIS ledger "
                    "but no opening balance",
                )
            )
            continue
        if r.openings > 0:
            expected = r.opening_fen + r.paid_fen - r.refunded_fen - r.charged_fen
            formula = (
                f"opening {_yuan(r.opening_fen)} + payments {_yuan(r.paid_fen)} "
                f"({r.payments}) − refunds {_yuan(r.refunded_fen)} ({r.refunds}) − charges "
                f"{_yuan(r.charged_fen)} ({r.charges}) = {_yuan(expected)} yuan"
            )
        elif r.charges > 0:
            expected = r.before_first_fen - r.charged_fen
            formula = (
                f"opening {_yuan(r.before_first_fen)} (before the first charge; no payment) "
                f"− charges {_yuan(r.charged_fen)} ({r.charges}) = {_yuan(expected)} yuan"
            )
        else:
            continue
        if r.balance_fen is None:
            out.append(Violation(name, subject, f"{formula}, but it has no rating state"))
        elif r.balance_fen != expected:
            out.append(
                Violation(
                    name,
                    subject,
                    f"{formula}, but the real-time balance is {_yuan(r.balance_fen)} yuan "
                    f"({_yuan(r.balance_fen - expected)} yuan off)",
                )
            )
    for r in conn.execute(_TWICE):
        accounts = r.first_no if r.first_no == r.last_no else f"{r.first_no} … {r.last_no}"
        out.append(
            Violation(
                name,
                f"payment {r.operation_id}",
                f"credited {r.n} times ({_yuan(int(r.fen))} yuan in all) to {accounts}",
            )
        )
    for r in conn.execute(_POSTED):
        what = f"{r.kind} {r.operation_id}"
        if r.movement_fen is None:
            detail = (
                f"{_yuan(r.posted_fen)} yuan added to the balance of {r.customer_no} "
                "without a movement in the CIS ledger"
            )
        else:
            detail = (
                f"{_yuan(r.posted_fen)} yuan added to the balance of {r.customer_no}, but the "
                f"CIS ledger has {_yuan(r.movement_fen)} yuan for {r.account_no}"
            )
        out.append(Violation(name, what, detail))
    return out


# -- trips ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Trip:
    """A trip command (a head-end job of kind ``trip``) and what it belongs to."""

    job_id: str
    meter_address: str
    job_state: str
    attempts: tuple[datetime, ...]
    """When each attempt started (naive local clock time)."""
    episode_id: int | None
    decided_at: datetime | None
    """When the workflow decided the trip (its ``trip`` history entry)."""
    account_id: int | None
    customer_no: str | None
    line: str | None
    area: str | None
    flag: bool


_TRIPS: Final = sa.text(
    """
SELECT j.id AS job_id, j.meter_address, j.state AS job_state,
       COALESCE(e.disconnection_id, d.id) AS episode_id, e.at AS decided_at,
       a.id AS account_id, a.customer_no, a.power_guarantee,
       l.code AS line, t.code AS area
FROM headend_job j
LEFT JOIN (
  SELECT job_id, MIN(disconnection_id) AS disconnection_id, MIN(at) AS at
  FROM prepaid_disconnection_event WHERE action = 'trip' AND job_id IS NOT NULL
  GROUP BY job_id
) e ON e.job_id = j.id
LEFT JOIN prepaid_disconnection d ON e.job_id IS NULL AND d.job_id = j.id
LEFT JOIN prepaid_account a ON a.meter_address = j.meter_address
LEFT JOIN prepaid_transformer_area t ON t.id = a.transformer_area_id
LEFT JOIN prepaid_feeder_line l ON l.id = COALESCE(a.feeder_line_id, t.feeder_line_id)
WHERE j.kind = 'trip'
ORDER BY j.created_at, j.id
"""
)

_ATTEMPTS: Final = sa.text(
    """
SELECT p.job_id, p.started_at FROM headend_job_attempt p
JOIN headend_job j ON j.id = p.job_id
WHERE j.kind = 'trip' ORDER BY p.job_id, p.attempt_no
"""
)


def _as_datetime(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


def _trips(conn: Connection) -> list[_Trip]:
    from headend.jobs import from_db_time

    attempts: dict[str, list[datetime]] = defaultdict(list)
    for r in conn.execute(_ATTEMPTS):
        when = from_db_time(_as_datetime(r.started_at))
        if when is not None:
            attempts[r.job_id].append(when)
    return [
        _Trip(
            job_id=r.job_id,
            meter_address=r.meter_address,
            job_state=r.job_state,
            attempts=tuple(attempts.get(r.job_id, ())),
            episode_id=None if r.episode_id is None else int(r.episode_id),
            decided_at=_as_datetime(r.decided_at),
            account_id=r.account_id,
            customer_no=r.customer_no,
            line=r.line,
            area=r.area,
            flag=bool(r.power_guarantee),
        )
        for r in conn.execute(_TRIPS)
    ]


def _check_approvals(conn: Connection, trips: Sequence[_Trip]) -> list[Violation]:
    name = Invariant.TWO_APPROVALS.value
    out: list[Violation] = []
    by_episode: dict[int, list[_Trip]] = defaultdict(list)
    for trip in trips:
        if trip.episode_id is None:
            out.append(
                Violation(
                    name,
                    f"job {trip.job_id}",
                    f"trip of meter {trip.meter_address} ({trip.job_state}) belongs to no "
                    "disconnection request: nobody approved it",
                )
            )
        else:
            by_episode[trip.episode_id].append(trip)
    if not by_episode:
        return out
    operators = {str(r[0]) for r in conn.execute(sa.text("SELECT login FROM prepaid_operator"))}
    episodes = sa.text(
        "SELECT id, number, requested_by, l1_by, l1_at, l2_by, l2_at "
        "FROM prepaid_disconnection ORDER BY number"
    )
    for r in conn.execute(episodes):
        jobs = by_episode.get(int(r.id))
        if not jobs:
            continue
        named = ", ".join(t.job_id for t in jobs[:3]) + (" …" if len(jobs) > 3 else "")
        subject = f"disconnection {r.number}"
        problems: list[str] = []
        if not r.l1_by:
            problems.append("no level-1 approval")
        if not r.l2_by:
            problems.append("no level-2 approval")
        if r.l1_by and r.l2_by and r.l1_by == r.l2_by:
            problems.append(f"both approvals by {r.l1_by}")
        for level, who in (("level-1", r.l1_by), ("level-2", r.l2_by)):
            if who and who == r.requested_by:
                problems.append(f"the {level} approver {who} is the requester")
            if who and who not in operators:
                problems.append(f"the {level} approver {who} is not an operator")
        approved = _as_datetime(r.l2_at)
        if r.l2_by and approved is not None:
            early = [t for t in jobs if t.decided_at is not None and t.decided_at < approved]
            if early:
                problems.append(
                    f"trip decided at {early[0].decided_at:%Y-%m-%d %H:%M:%S}, before the "
                    f"level-2 approval at {approved:%Y-%m-%d %H:%M:%S}"
                )
        if problems:
            who = f"requested by {r.requested_by}, L1 {r.l1_by or '-'}, L2 {r.l2_by or '-'}"
            out.append(
                Violation(name, subject, f"{'; '.join(problems)} ({who}); trip job(s) {named}")
            )
    return out


# -- settings as they stood --------------------------------------------------------------

_HISTORY_NAMES: Final = (
    "power_guarantee",
    "protected_hours",
    "protected_weekends",
    "protected_holidays",
)

_Key = tuple[str, str, str]  # (level, scope key, name)


class _SettingsHistory:
    """The values of a few settings at any past moment, from their change history.

    A value at moment T: the last change at or before T; before the first change of a
    key, that change's old value; a key without history, its current stored value.
    """

    def __init__(self, defaults: Any) -> None:
        self.defaults = defaults
        self.times: dict[_Key, list[datetime]] = {}
        self.changes: dict[_Key, list[tuple[str | None, str | None]]] = {}
        self.current: dict[_Key, str] = {}

    @classmethod
    def load(cls, conn: Connection, defaults: Any) -> _SettingsHistory:
        history = cls(defaults)
        names: sa.BindParameter[Any] = sa.bindparam("names", expanding=True)
        changes = sa.text(
            "SELECT at, level, scope_key, name, old_value, new_value FROM prepaid_setting_change "
            "WHERE name IN :names ORDER BY at, id"
        ).bindparams(names)
        for r in conn.execute(changes, {"names": list(_HISTORY_NAMES)}):
            key = (str(r.level), str(r.scope_key), str(r.name))
            at = _as_datetime(r.at)
            assert at is not None
            history.times.setdefault(key, []).append(at)
            history.changes.setdefault(key, []).append((r.old_value, r.new_value))
        current = sa.text(
            "SELECT level, scope_key, name, value FROM prepaid_setting WHERE name IN :names"
        ).bindparams(names)
        for r in conn.execute(current, {"names": list(_HISTORY_NAMES)}):
            history.current[(str(r.level), str(r.scope_key), str(r.name))] = str(r.value)
        return history

    def _text_at(self, key: _Key, moment: datetime) -> str | None:
        times = self.times.get(key)
        if not times:
            return self.current.get(key)
        i = bisect.bisect_right(times, moment)
        changes = self.changes[key]
        return changes[i - 1][1] if i else changes[0][0]

    def value_at(self, name: str, moment: datetime, trip: _Trip) -> tuple[Any, str]:
        """The value of ``name`` in force for ``trip``'s customer at ``moment`` and its source."""
        from prepaid.settings import spec_of

        spec = spec_of(name)
        chain = [
            ("customer", trip.customer_no),
            ("area", trip.area),
            ("line", trip.line),
            ("default", ""),
        ]
        for level, key in chain:
            if key is None or (level != "default" and not key):
                continue
            text = self._text_at((level, key, name), moment)
            if text is not None:
                return spec.kind.load(text), (f"{level} {key}" if key else "default")
        return self.defaults.resolved(name).value, "default"

    def protection(self, moment: datetime, trip: _Trip) -> Any:
        from prepaid.calendar import ProtectedHours

        window, _ = self.value_at("protected_hours", moment, trip)
        weekends, _ = self.value_at("protected_weekends", moment, trip)
        holidays, _ = self.value_at("protected_holidays", moment, trip)
        return ProtectedHours(window, weekends, holidays)


def _check_guarantee(trips: Sequence[_Trip], history: _SettingsHistory) -> list[Violation]:
    name = Invariant.NO_GUARANTEED_TRIP.value
    out: list[Violation] = []
    for trip in trips:
        if trip.account_id is None or not trip.attempts:
            continue
        for moment in trip.attempts:
            if trip.flag:
                why = "its account record is flagged power guarantee"
            else:
                on, source = history.value_at("power_guarantee", moment, trip)
                if not on:
                    continue
                why = f"power_guarantee was on for {source}"
            out.append(
                Violation(
                    name,
                    f"account {trip.customer_no}",
                    f"trip job {trip.job_id} reached meter {trip.meter_address} at "
                    f"{moment:%Y-%m-%d %H:%M:%S} ({trip.job_state}), when {why}",
                )
            )
            break
    return out


def _check_protected_hours(
    trips: Sequence[_Trip], history: _SettingsHistory, calendar: Any
) -> list[Violation]:
    from prepaid.calendar import CalendarError

    name = Invariant.NO_TRIP_IN_PROTECTED_HOURS.value
    out: list[Violation] = []
    for trip in trips:
        protected: list[tuple[datetime, Any]] = []
        for moment in trip.attempts:
            hours = history.protection(moment, trip)
            try:
                found = calendar.protection(moment, hours)
            except CalendarError as exc:
                out.append(
                    Violation(
                        name,
                        f"job {trip.job_id}",
                        f"trip at {moment:%Y-%m-%d %H:%M:%S} cannot be checked: {exc}",
                    )
                )
                break
            if found is not None:
                protected.append((moment, found))
        if protected:
            moment, found = protected[0]
            who = f"account {trip.customer_no}" if trip.customer_no else "no account"
            count = (
                f"; {len(protected)} of its {len(trip.attempts)} attempts"
                if len(trip.attempts) > 1
                else ""
            )
            out.append(
                Violation(
                    name,
                    f"job {trip.job_id}",
                    f"trip attempt started at {moment:%Y-%m-%d %H:%M:%S} ({moment:%A}) on meter "
                    f"{trip.meter_address} ({who}), protected ({found.reason.value}: "
                    f"{found.detail}){count}",
                )
            )
    return out


# -- failed trips ------------------------------------------------------------------------

_FAILED: Final = sa.text(
    """
SELECT d.number, d.customer_no, d.state, d.work_order, d.attempts,
       w.number AS order_number, w.kind AS order_kind
FROM prepaid_disconnection d
LEFT JOIN prepaid_work_order w ON w.number = d.work_order
WHERE d.state IN ('failed', 'disconnected-on-site') OR d.work_order IS NOT NULL
   OR d.id IN (SELECT disconnection_id FROM prepaid_disconnection_event WHERE action = 'failed')
ORDER BY d.number
"""
)


def check_failed_trips(conn: Connection) -> list[Violation]:
    """``failed-trip-has-work-order`` (see the module doc)."""
    name = Invariant.FAILED_TRIP_HAS_WORK_ORDER.value
    out: list[Violation] = []
    for r in conn.execute(_FAILED):
        subject = f"disconnection {r.number}"
        where = f"account {r.customer_no}, state {r.state}"
        if not r.work_order:
            detail = f"remote trips failed ({where}) but no work order is named"
        elif r.order_number is None:
            detail = f"work order {r.work_order} ({where}) is not in prepaid_work_order"
        elif r.order_kind != "disconnection-failure":
            detail = (
                f"work order {r.work_order} ({where}) is a {r.order_kind} order, not a "
                "disconnection-failure order"
            )
        else:
            continue
        out.append(Violation(name, subject, detail))
    return out
