"""The real-time balance (实时余额) = CIS balance − charges not yet settled in the CIS.

The CIS (营销系统) holds the customer's money; the platform rates every day and keeps the
charges (``prepaid_charge``) until they are settled into the CIS (电费结算). Between two
settlements, what the customer really has left is the CIS balance minus the charges
the CIS has not seen yet::

    real-time balance = CIS balance − unsettled charges
    unsettled charges = Σ prepaid_charge.amount_fen of the days after the account's
                        settled-through day (``prepaid_cis_settled``; all days before
                        its first settlement)

Settlement (:func:`settle_charges`) moves charges from "unsettled" into the CIS (a
``settlement`` movement that lowers the CIS balance by the same amount), so it never
changes the real-time balance. A payment raises the CIS balance and so the real-time
balance at once.

The rating keeps a copy of the real-time balance in ``prepaid_rating_state.balance_fen``
(it subtracts each deduction there); a payment or refund is added to it once
(:func:`post_receipts`, a relative update, so a concurrent rating loses nothing), and
:func:`sync_balances` sets it to the value computed here, set-based — the repair after
anything went wrong, and the check that nothing did (it then changes no row). Run it
when no rating is running: it writes absolute values.

Everything is set-based SQL (SQLite or PostgreSQL): one account (:func:`realtime_balance`,
a few primary-key lookups), a list of accounts (:func:`realtime_balances`, through a
temporary id table), or all of them (``account_ids=None``, one grouped scan of the
unsettled days). Money is ``int`` fen.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from protocol.clock import Clock, RealClock

from .cis import (
    CisAdapter,
    LedgerCis,
    MovementKind,
    Receipt,
    SettlementItem,
    SettlementReport,
    format_fen,
)
from .cis.tables import account as cis_account
from .cis.tables import posted, settled
from .models import Account, Charge, RatingState, day_date, day_number

__all__ = [
    "BalanceError",
    "RealtimeBalance",
    "account_ids",
    "adopt_opening_balances",
    "finish_postings",
    "iter_realtime_balances",
    "post_receipts",
    "realtime_balance",
    "realtime_balances",
    "settle_charges",
    "settled_floor",
    "sync_balances",
    "unfinished_postings",
    "write_lock",
]

log = logging.getLogger(__name__)

_ACCOUNT: Final[sa.Table] = Account.__table__  # type: ignore[attr-defined]
_CHARGE: Final[sa.Table] = Charge.__table__  # type: ignore[attr-defined]
_STATE: Final[sa.Table] = RatingState.__table__  # type: ignore[attr-defined]
_LOOKUP_BATCH: Final = 900
_ID_BATCH: Final = 10_000
_SETTLE_BATCH: Final = 5_000
_KEY_BATCH: Final = 500
"""Posting keys per statement (two parameters each)."""
#: No settlement yet: every charge day (day numbers are ≥ 0) is after this one.
NEVER: Final = -1
#: Later than any charge day.
_ALWAYS: Final = 2**31 - 1

_temp = sa.MetaData()
_IDS = sa.Table(
    "temp_prepaid_balance_ids",
    _temp,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    prefixes=["TEMPORARY"],
)
_DAYS = sa.Table(
    "temp_prepaid_balance_days",
    _temp,
    sa.Column("day", sa.Integer, primary_key=True, autoincrement=False),
    prefixes=["TEMPORARY"],
)

_OPENINGS = sa.Table(
    "temp_prepaid_openings",
    _temp,
    sa.Column("account_no", sa.String(32), primary_key=True),
    sa.Column("balance_fen", sa.BigInteger, nullable=False),
    prefixes=["TEMPORARY"],
)


class BalanceError(LookupError):
    """An account the platform does not know, or a settlement that cannot run yet."""


@dataclass(frozen=True, slots=True)
class RealtimeBalance:
    """An account's money as of now (fen): CIS balance, unsettled charges, real-time balance.

    ``stored_fen`` is the rating state's copy of the real-time balance
    (``prepaid_rating_state.balance_fen``), ``None`` when the account has no rating
    state; it equals ``realtime_fen`` when the two are in step.
    """

    account_id: int
    customer_no: str
    cis_fen: int
    unsettled_fen: int
    stored_fen: int | None = None

    @property
    def realtime_fen(self) -> int:
        return self.cis_fen - self.unsettled_fen

    def to_dict(self) -> dict[str, Any]:
        return {
            "account_id": self.account_id,
            "customer_no": self.customer_no,
            "cis_balance": format_fen(self.cis_fen),
            "unsettled_charges": format_fen(self.unsettled_fen),
            "realtime_balance": format_fen(self.realtime_fen),
        }


# --------------------------------------------------------------------------- accounts


def account_ids(connection: Connection, customer_nos: Iterable[str]) -> dict[str, int]:
    """The platform id of each known customer number (户号); unknown ones are left out."""
    numbers = list(dict.fromkeys(n.strip() for n in customer_nos))
    out: dict[str, int] = {}
    for start in range(0, len(numbers), _LOOKUP_BATCH):
        chunk = numbers[start : start + _LOOKUP_BATCH]
        rows = connection.execute(
            sa.select(_ACCOUNT.c.customer_no, _ACCOUNT.c.id).where(
                _ACCOUNT.c.customer_no.in_(chunk)
            )
        )
        out.update({no: int(ident) for no, ident in rows})
    return out


def _resolve(connection: Connection, account: int | str) -> tuple[int, str]:
    column = _ACCOUNT.c.id if isinstance(account, int) else _ACCOUNT.c.customer_no
    key = account if isinstance(account, int) else account.strip()
    row = connection.execute(
        sa.select(_ACCOUNT.c.id, _ACCOUNT.c.customer_no).where(column == key)
    ).first()
    if row is None:
        what = f"id {account}" if isinstance(account, int) else f"number {account!r}"
        raise BalanceError(
            f"no account with {what} on the platform; check the customer number (户号)"
        )
    return int(row.id), str(row.customer_no)


# --------------------------------------------------------------------------- queries


def _day_span(connection: Connection, low: int) -> tuple[int, int] | None:
    """The charge days after ``low`` that exist at all: (first, last), or None.

    Two seeks on the (day, account) key: the first day after ``low`` and the last day.
    """
    first = connection.execute(
        sa.select(_CHARGE.c.day).where(_CHARGE.c.day > low).order_by(_CHARGE.c.day).limit(1)
    ).scalar()
    if first is None:
        return None
    last = connection.execute(sa.select(sa.func.max(_CHARGE.c.day))).scalar_one()
    return int(first), int(last)


def _through(connection: Connection, account_id: int) -> int:
    value = connection.execute(
        sa.select(settled.c.through_day).where(settled.c.account_id == account_id)
    ).scalar()
    return NEVER if value is None else int(value)


def realtime_balance(engine: Engine | Connection, account: int | str) -> RealtimeBalance:
    """One account's real-time balance, by platform id (int) or customer number (str).

    A handful of primary-key lookups: the CIS balance, the settled-through day, and the
    charge of each later day (``prepaid_charge`` is keyed by (day, account)).
    """
    if isinstance(engine, Engine):
        with engine.connect() as connection:
            return realtime_balance(connection, account)
    connection = engine
    ident, number = _resolve(connection, account)
    cis_fen = connection.execute(
        sa.select(cis_account.c.balance_fen).where(cis_account.c.account_no == number)
    ).scalar()
    stored = connection.execute(
        sa.select(_STATE.c.balance_fen).where(_STATE.c.account_id == ident)
    ).scalar()
    unsettled = 0
    span = _day_span(connection, _through(connection, ident))
    if span is not None:
        days = list(range(span[0], span[1] + 1))
        for start in range(0, len(days), _LOOKUP_BATCH):
            unsettled += int(
                connection.execute(
                    sa.select(sa.func.coalesce(sa.func.sum(_CHARGE.c.amount_fen), 0)).where(
                        _CHARGE.c.day.in_(days[start : start + _LOOKUP_BATCH]),
                        _CHARGE.c.account_id == ident,
                    )
                ).scalar_one()
            )
    return RealtimeBalance(
        ident, number, int(cis_fen or 0), unsettled, None if stored is None else int(stored)
    )


# The unsettled charges per account, as a CTE. Static SQL with bound parameters only.
# Selected accounts: for each id (its settled-through day looked up once), each later
# charge day is a primary-key lookup on prepaid_charge (day, account_id); CROSS JOIN
# keeps SQLite to that order (PostgreSQL plans it freely).
_UNSETTLED_SELECTED: Final = """
unsettled AS (
    SELECT ch.account_id AS account_id, SUM(ch.amount_fen) AS unsettled_fen
    FROM temp_prepaid_balance_ids i
    LEFT JOIN prepaid_cis_settled s ON s.account_id = i.id
    CROSS JOIN temp_prepaid_balance_days d
    CROSS JOIN prepaid_charge ch
    WHERE d.day > COALESCE(s.through_day, -1) AND d.day <= :upto
      AND ch.day = d.day AND ch.account_id = i.id
    GROUP BY ch.account_id
)"""
# Every account: one scan of the charge days after the lowest settled-through day.
_UNSETTLED_ALL: Final = """
unsettled AS (
    SELECT ch.account_id AS account_id, SUM(ch.amount_fen) AS unsettled_fen
    FROM prepaid_charge ch
    LEFT JOIN prepaid_cis_settled s ON s.account_id = ch.account_id
    WHERE ch.day > :low AND ch.day <= :upto AND ch.day > COALESCE(s.through_day, -1)
    GROUP BY ch.account_id
)"""
_ACCOUNTS_SELECTED: Final = "temp_prepaid_balance_ids i JOIN prepaid_account a ON a.id = i.id"
_ACCOUNTS_ALL: Final = "prepaid_account a"
_BALANCES: Final = """
SELECT a.id AS account_id, a.customer_no AS customer_no,
       COALESCE(c.balance_fen, 0) AS cis_fen,
       COALESCE(u.unsettled_fen, 0) AS unsettled_fen,
       rs.balance_fen AS stored_fen
FROM {accounts}
LEFT JOIN prepaid_cis_account c ON c.account_no = a.customer_no
LEFT JOIN unsettled u ON u.account_id = a.id
LEFT JOIN prepaid_rating_state rs ON rs.account_id = a.id
ORDER BY a.id"""
_SYNC: Final = """
UPDATE prepaid_rating_state SET balance_fen = x.realtime_fen
FROM (
    WITH {cte}
    SELECT a.id AS account_id,
           COALESCE(c.balance_fen, 0) - COALESCE(u.unsettled_fen, 0) AS realtime_fen
    FROM {accounts}
    LEFT JOIN prepaid_cis_account c ON c.account_no = a.customer_no
    LEFT JOIN unsettled u ON u.account_id = a.id
) x
WHERE prepaid_rating_state.account_id = x.account_id
  AND prepaid_rating_state.balance_fen <> x.realtime_fen"""


def _statement(template: str, selected: bool) -> sa.TextClause:
    cte = _UNSETTLED_SELECTED if selected else _UNSETTLED_ALL
    accounts = _ACCOUNTS_SELECTED if selected else _ACCOUNTS_ALL
    if "{cte}" in template:  # an UPDATE: the CTE goes inside (the driver counts rows then)
        return sa.text(template.format(cte=cte, accounts=accounts))
    return sa.text("WITH " + cte + template.format(accounts=accounts))


def _lowest_through(connection: Connection, selected: bool) -> int:
    """The lowest settled-through day of the selection (NEVER if one never settled)."""
    if selected:
        value = connection.execute(
            sa.select(sa.func.min(sa.func.coalesce(settled.c.through_day, NEVER))).select_from(
                _IDS.outerjoin(settled, settled.c.account_id == _IDS.c.id)
            )
        ).scalar()
        return NEVER if value is None else int(value)
    accounts = int(
        connection.execute(sa.select(sa.func.count()).select_from(_ACCOUNT)).scalar_one()
    )
    marked, low = connection.execute(
        sa.select(sa.func.count(), sa.func.min(settled.c.through_day))
    ).one()
    if low is None or int(marked) < accounts:
        return NEVER
    return int(low)


def write_lock(connection: Connection) -> None:
    """Make the transaction just begun on ``connection`` a writer from its start.

    SQLite only (``BEGIN IMMEDIATE``): a transaction that reads and then writes would
    otherwise fail at once with "database is locked" when another connection wrote in
    between; taking the write lock first makes it wait its turn (the busy timeout)
    instead. Call it first thing in ``with connection.begin():``. PostgreSQL needs
    nothing (row locks).
    """
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def settled_floor(connection: Connection) -> int:
    """The lowest settled-through day over all accounts (−1 if one never settled).

    Every account's unsettled charges are on later days, so a scan of the unsettled
    charges of everyone starts there.
    """
    return _lowest_through(connection, False)


@contextmanager
def _selection(connection: Connection, ids: Sequence[int] | None) -> Iterator[int]:
    """Temporary tables of the selected ids and of the charge days to look up.

    Yields the lowest settled-through day of the selection.
    """
    if ids is None:
        yield _lowest_through(connection, False)
        return
    _IDS.create(connection, checkfirst=True)
    _DAYS.create(connection, checkfirst=True)
    connection.execute(sa.delete(_IDS))
    connection.execute(sa.delete(_DAYS))
    unique = sorted(set(ids))
    try:
        for start in range(0, len(unique), _ID_BATCH):
            connection.execute(
                sa.insert(_IDS), [{"id": i} for i in unique[start : start + _ID_BATCH]]
            )
        low = _lowest_through(connection, True)
        span = _day_span(connection, low)
        if span is not None:
            connection.execute(sa.insert(_DAYS), [{"day": d} for d in range(span[0], span[1] + 1)])
        yield low
    finally:
        connection.execute(sa.delete(_IDS))
        connection.execute(sa.delete(_DAYS))


def iter_realtime_balances(
    connection: Connection, account_ids: Sequence[int] | None = None, *, chunk: int = 100_000
) -> Iterator[list[RealtimeBalance]]:
    """The real-time balance of ``account_ids`` (all accounts when ``None``), in id order.

    Yields lists of up to ``chunk`` balances, streamed from one set-based statement
    (the unsettled charges are aggregated once). Run it inside a transaction when the
    numbers must be one consistent snapshot.
    """
    selected = account_ids is not None
    statement = _statement(_BALANCES, selected)
    with _selection(connection, account_ids) as low:
        result = connection.execute(
            statement.execution_options(yield_per=chunk), {"low": low, "upto": _ALWAYS}
        )
        for rows in result.partitions(chunk):
            yield [
                RealtimeBalance(
                    int(r.account_id),
                    str(r.customer_no),
                    int(r.cis_fen),
                    int(r.unsettled_fen),
                    None if r.stored_fen is None else int(r.stored_fen),
                )
                for r in rows
            ]


def realtime_balances(
    engine: Engine | Connection, account_ids: Sequence[int] | None = None
) -> dict[int, RealtimeBalance]:
    """The real-time balance of each account in ``account_ids`` (all when ``None``), by id.

    Unknown ids are left out. Set-based (see :func:`iter_realtime_balances`); for
    millions of accounts iterate instead of building one dict.
    """
    if isinstance(engine, Engine):
        with engine.begin() as connection:
            return realtime_balances(connection, account_ids)
    out: dict[int, RealtimeBalance] = {}
    for chunk in iter_realtime_balances(engine, account_ids):
        out.update((b.account_id, b) for b in chunk)
    return out


def sync_balances(engine: Engine | Connection, account_ids: Sequence[int] | None = None) -> int:
    """Set the rating state's copy of the real-time balance to CIS − unsettled.

    One set-based ``UPDATE … FROM`` for the selection (all accounts when ``None``);
    returns how many copies were out of step (and are now right). Idempotent.
    """
    if isinstance(engine, Engine):
        with engine.begin() as connection:
            write_lock(connection)
            return sync_balances(connection, account_ids)
    with _selection(engine, account_ids) as low:
        result = engine.execute(
            _statement(_SYNC, account_ids is not None), {"low": low, "upto": _ALWAYS}
        )
    changed = int(result.rowcount or 0)
    if changed:
        log.info("real-time balance of %d account(s) brought in step with the CIS", changed)
    return changed


# --------------------------------------------------------------------------- settlement

_TO_SETTLE: Final = """
SELECT a.id AS account_id, a.customer_no AS customer_no,
       COALESCE(s.through_day, -1) AS through_day,
       COALESCE(u.unsettled_fen, 0) AS amount_fen
FROM {accounts}
LEFT JOIN prepaid_cis_settled s ON s.account_id = a.id
LEFT JOIN unsettled u ON u.account_id = a.id
WHERE COALESCE(s.through_day, -1) < :upto
ORDER BY a.id"""


def _settled_upsert(connection: Connection) -> Any:
    insert: Any = (
        postgresql.insert(settled)
        if connection.dialect.name == "postgresql"
        else sqlite.insert(settled)
    )
    return insert.on_conflict_do_update(
        index_elements=[settled.c.account_id],
        set_={
            "through_day": insert.excluded.through_day,
            "settled_fen": settled.c.settled_fen + insert.excluded.settled_fen,
            "updated_at": insert.excluded.updated_at,
        },
        where=settled.c.through_day < insert.excluded.through_day,
    )


def settle_charges(
    engine: Engine,
    cis: CisAdapter,
    through: date,
    *,
    account_ids: Sequence[int] | None = None,
    clock: Clock | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> SettlementReport:
    """Settle every charge up to and including ``through`` into the CIS (电费结算).

    Only closed days can be settled (``through`` before the clock's today): today's
    charge may still change when the account is re-rated. For each account, the
    charges after its settled-through day are summed and sent to the CIS as one
    settlement with a deterministic id (``chg:<customer no>:<from>:<through>``), then
    its settled-through day moves on. Re-running, or running again after a crash, is
    safe: the CIS applies each settlement id once. The real-time balance does not
    change (the CIS balance and the unsettled charges fall by the same amount).
    """
    today = (clock or RealClock()).now().date()
    if through >= today:
        raise BalanceError(
            f"charges can be settled through {today - timedelta(days=1)} at the latest "
            f"(asked for {through}): today's charges may still change when an account "
            "is re-rated"
        )
    through_no = day_number(through)
    selected = account_ids is not None
    report = SettlementReport()
    now = (clock or RealClock()).now()
    if isinstance(cis, LedgerCis) and cis.engine is engine:
        report = _settle_in_ledger(engine, cis, through, account_ids, now, progress)
        log.info(
            "settled charges through %s in the ledger: %d applied, %d already, %s yuan",
            through,
            report.applied,
            report.already,
            format_fen(report.amount_fen),
        )
        return report
    with engine.connect() as connection:
        with connection.begin(), _selection(connection, account_ids) as low:
            rows = connection.execute(
                _statement(_TO_SETTLE, selected), {"low": low, "upto": through_no}
            ).all()
        total = len(rows)
        if progress is not None:
            progress(0, total)
        for start in range(0, total, _SETTLE_BATCH):
            batch = rows[start : start + _SETTLE_BATCH]
            items = [
                SettlementItem(
                    f"chg:{r.customer_no}:{_compact(int(r.through_day) + 1)}:"
                    f"{through.strftime('%Y%m%d')}",
                    str(r.customer_no),
                    int(r.amount_fen),
                    through,
                )
                for r in batch
                if int(r.amount_fen) != 0
            ]
            if items:
                report = report + cis.settle(items)
            with connection.begin():
                connection.execute(
                    _settled_upsert(connection),
                    [
                        {
                            "account_id": int(r.account_id),
                            "through_day": through_no,
                            "settled_fen": int(r.amount_fen),
                            "updated_at": now,
                        }
                        for r in batch
                    ],
                )
            if progress is not None:
                progress(min(start + _SETTLE_BATCH, total), total)
    log.info(
        "settled charges through %s: %d settlement(s) applied, %d already, %s yuan",
        through,
        report.applied,
        report.already,
        format_fen(report.amount_fen),
    )
    return report


def _compact(day: int) -> str:
    return "start" if day <= 0 else day_date(day).strftime("%Y%m%d")


_DUE = sa.Table(
    "temp_prepaid_settle_due",
    _temp,
    sa.Column("account_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("account_no", sa.String(32), nullable=False),
    sa.Column("settlement_id", sa.String(64), nullable=False),
    sa.Column("amount_fen", sa.BigInteger, nullable=False),
    prefixes=["TEMPORARY"],
)
_DUE_CHUNK = sa.Table(
    "temp_prepaid_settle_chunk",
    _temp,
    sa.Column("account_no", sa.String(32), primary_key=True),
    sa.Column("settlement_id", sa.String(64), nullable=False),
    sa.Column("amount_fen", sa.BigInteger, nullable=False),
    prefixes=["TEMPORARY"],
)
_SETTLE_CHUNK: Final = 200_000


def _from_label(connection: Connection) -> str:
    """SQL for the first unsettled day of ``d`` (its settled-through day) as YYYYMMDD."""
    if connection.dialect.name == "postgresql":
        day = "to_char(DATE '1970-01-01' + (d.through_day + 1), 'YYYYMMDD')"
    else:
        day = "strftime('%Y%m%d', (d.through_day + 1) * 86400, 'unixepoch')"
    return f"CASE WHEN d.through_day < 0 THEN 'start' ELSE {day} END"


def _settle_in_ledger(
    engine: Engine,
    ledger: LedgerCis,
    through: date,
    account_ids: Sequence[int] | None,
    now: datetime,
    progress: Callable[[int, int], None] | None,
) -> SettlementReport:
    """:func:`settle_charges` when the CIS is the built-in ledger in this database.

    The same settlements, ids and watermarks, but set-based: what is due is aggregated
    once into a temporary table, then settled in chunks of accounts, each chunk one
    transaction (ledger movements, CIS balances and settled-through days together).
    """
    through_no = day_number(through)
    suffix = ":" + through.strftime("%Y%m%d")
    report = SettlementReport()
    with engine.connect() as connection:
        with connection.begin(), _selection(connection, account_ids) as low:
            _DUE.create(connection, checkfirst=True)
            _DUE_CHUNK.create(connection, checkfirst=True)
            connection.execute(sa.delete(_DUE))
            due = _statement(_TO_SETTLE, account_ids is not None).columns(
                sa.column("account_id"),
                sa.column("customer_no"),
                sa.column("through_day"),
                sa.column("amount_fen"),
            )
            d = due.subquery("d")
            connection.execute(
                sa.insert(_DUE).from_select(
                    ["account_id", "account_no", "settlement_id", "amount_fen"],
                    sa.select(
                        d.c.account_id,
                        d.c.customer_no,
                        sa.literal("chg:")
                        + d.c.customer_no
                        + sa.literal(":")
                        + sa.literal_column(_from_label(connection))
                        + sa.literal(suffix),
                        d.c.amount_fen,
                    ),
                ),
                {"low": low, "upto": through_no},
            )
            first, last, total = connection.execute(
                sa.select(
                    sa.func.min(_DUE.c.account_id),
                    sa.func.max(_DUE.c.account_id),
                    sa.func.count(),
                )
            ).one()
        if progress is not None:
            progress(0, int(total))
        if not total:
            return report
        done = 0
        for lo in range(int(first), int(last) + 1, _SETTLE_CHUNK):
            hi = lo + _SETTLE_CHUNK - 1
            in_chunk = _DUE.c.account_id.between(lo, hi)
            with connection.begin():
                write_lock(connection)
                connection.execute(sa.delete(_DUE_CHUNK))
                connection.execute(
                    sa.insert(_DUE_CHUNK).from_select(
                        ["account_no", "settlement_id", "amount_fen"],
                        sa.select(_DUE.c.account_no, _DUE.c.settlement_id, _DUE.c.amount_fen).where(
                            in_chunk, _DUE.c.amount_fen != 0
                        ),
                    )
                )
                report = report + ledger.settle_from(connection, _DUE_CHUNK, through)
                upsert: Any = (
                    postgresql.insert(settled)
                    if connection.dialect.name == "postgresql"
                    else sqlite.insert(settled)
                )
                connection.execute(
                    upsert.from_select(
                        ["account_id", "through_day", "settled_fen", "updated_at"],
                        sa.select(
                            _DUE.c.account_id,
                            sa.literal(through_no, sa.Integer),
                            _DUE.c.amount_fen,
                            sa.literal(now, sa.DateTime),
                        ).where(in_chunk, sa.true()),
                    ).on_conflict_do_update(
                        index_elements=[settled.c.account_id],
                        set_={
                            "through_day": upsert.excluded.through_day,
                            "settled_fen": settled.c.settled_fen + upsert.excluded.settled_fen,
                            "updated_at": upsert.excluded.updated_at,
                        },
                        where=settled.c.through_day < upsert.excluded.through_day,
                    )
                )
                done += int(
                    connection.execute(
                        sa.select(sa.func.count()).select_from(_DUE).where(in_chunk)
                    ).scalar_one()
                )
            if progress is not None:
                progress(done, int(total))
        with connection.begin():
            connection.execute(sa.delete(_DUE))
            connection.execute(sa.delete(_DUE_CHUNK))
    return report


# --------------------------------------------------------------------------- opening


_OPENING: Final = """
SELECT a.customer_no AS customer_no, rs.balance_fen + COALESCE(u.unsettled_fen, 0) AS fen
FROM {accounts}
JOIN prepaid_rating_state rs ON rs.account_id = a.id
LEFT JOIN prepaid_cis_account c ON c.account_no = a.customer_no
LEFT JOIN unsettled u ON u.account_id = a.id
WHERE c.account_no IS NULL"""


def adopt_opening_balances(
    engine: Engine, ledger: LedgerCis, account_ids: Sequence[int] | None = None
) -> int:
    """Bring accounts that the ledger has never seen into it with their opening balance.

    An account opened with a balance in its rating state (e.g. by ``feikong generate``)
    had that money in the CIS: its CIS opening balance is the stored real-time balance
    plus its unsettled charges, so that real-time = CIS − unsettled holds from then on.
    Set-based, for ``account_ids`` or every account; accounts already in the ledger are
    left alone; returns how many were brought in.
    """
    statement = _statement(_OPENING, account_ids is not None)
    params = {"low": 0, "upto": _ALWAYS}
    if ledger.engine is engine:  # the ledger is in this database: all in SQL
        with engine.begin() as connection:
            write_lock(connection)
            return _adopt_in_ledger(connection, ledger, statement, params, account_ids)
    with engine.begin() as connection, _selection(connection, account_ids) as low:
        rows = connection.execute(statement, {**params, "low": low})
        pairs = [(str(no), int(fen)) for no, fen in rows]
    return ledger.open_balances(pairs) if pairs else 0


def _adopt_in_ledger(
    connection: Connection,
    ledger: LedgerCis,
    statement: sa.TextClause,
    params: dict[str, int],
    account_ids: Sequence[int] | None,
) -> int:
    with _selection(connection, account_ids) as low:
        _OPENINGS.create(connection, checkfirst=True)
        connection.execute(sa.delete(_OPENINGS))
        connection.execute(
            sa.insert(_OPENINGS).from_select(
                ["account_no", "balance_fen"],
                statement.columns(sa.column("customer_no"), sa.column("fen")).subquery().select(),
            ),
            {**params, "low": low},
        )
        opened = ledger.open_balances_from(connection, _OPENINGS)
        connection.execute(sa.delete(_OPENINGS))
    return opened


# --------------------------------------------------------------------------- posting


def _posted_insert(connection: Connection) -> Any:
    insert: Any = (
        postgresql.insert(posted)
        if connection.dialect.name == "postgresql"
        else sqlite.insert(posted)
    )
    return insert.on_conflict_do_nothing(index_elements=[posted.c.kind, posted.c.operation_id])


def post_receipts(
    engine: Engine, receipts: Sequence[tuple[Receipt, int]], *, clock: Clock | None = None
) -> list[bool]:
    """Add payments (+) and refunds (−) to the rating state's real-time balance, once each.

    ``receipts`` are ``(receipt, account_id)`` pairs from the CIS. Each is posted at most
    once (``prepaid_cis_posted``), as a relative update (``balance_fen + amount``) in one
    transaction with that record, so a rating running at the same time loses nothing and
    a retry — of a payment whose CIS receipt came back as a duplicate after a crash —
    adds nothing twice, or finishes what the crash left undone. Returns, per receipt,
    whether it was posted now.
    """
    now = (clock or RealClock()).now()
    done: list[bool] = []
    seen: set[tuple[str, str]] = set()  # an id given twice in one call is posted once
    for start in range(0, len(receipts), _SETTLE_BATCH):
        batch = receipts[start : start + _SETTLE_BATCH]
        rows = [
            {
                "kind": r.kind.value,
                "operation_id": r.operation_id,
                "account_id": ident,
                "amount_fen": -r.amount_fen if r.kind is MovementKind.REFUND else r.amount_fen,
                "posted_at": now,
            }
            for r, ident in batch
        ]
        with engine.begin() as connection:
            fresh = {
                (kind, op)
                for kind, op in connection.execute(
                    _posted_insert(connection).returning(posted.c.kind, posted.c.operation_id),
                    rows,
                )
            }
            now_posted: list[bool] = []
            for row in rows:
                key = (str(row["kind"]), str(row["operation_id"]))
                now_posted.append(key in fresh and key not in seen)
                if key in fresh:
                    seen.add(key)
            moves = [r for r, first in zip(rows, now_posted, strict=True) if first]
            if moves:
                connection.execute(
                    sa.update(_STATE)
                    .where(_STATE.c.account_id == sa.bindparam("ident"))
                    .values(balance_fen=_STATE.c.balance_fen + sa.bindparam("fen")),
                    [{"ident": m["account_id"], "fen": m["amount_fen"]} for m in moves],
                )
        done.extend(now_posted)
    return done


def _posting_keys(receipts: Iterable[Receipt]) -> list[tuple[str, str]]:
    return sorted({(r.kind.value, r.operation_id) for r in receipts})


def unfinished_postings(engine: Engine, receipts: Iterable[Receipt]) -> set[tuple[str, str]]:
    """The ``(kind, operation_id)`` of ``receipts`` posted but not followed up yet
    (``done_at`` is NULL: a crash came between the posting and the re-rating or event)."""
    keys = _posting_keys(receipts)
    found: set[tuple[str, str]] = set()
    with engine.connect() as connection:
        for start in range(0, len(keys), _KEY_BATCH):
            batch = keys[start : start + _KEY_BATCH]
            found.update(
                (str(kind), str(op))
                for kind, op in connection.execute(
                    sa.select(posted.c.kind, posted.c.operation_id).where(
                        sa.tuple_(posted.c.kind, posted.c.operation_id).in_(batch),
                        posted.c.done_at.is_(None),
                    )
                )
            )
    return found


def finish_postings(
    engine: Engine, receipts: Iterable[Receipt], *, clock: Clock | None = None
) -> set[tuple[str, str]]:
    """Mark the postings of ``receipts`` followed up; returns the keys marked by *this*
    call, so of two processes finishing the same payment only one sends its event."""
    keys = _posting_keys(receipts)
    now = (clock or RealClock()).now()
    marked: set[tuple[str, str]] = set()
    for start in range(0, len(keys), _KEY_BATCH):
        batch = keys[start : start + _KEY_BATCH]
        with engine.begin() as connection:
            marked.update(
                (str(kind), str(op))
                for kind, op in connection.execute(
                    sa.update(posted)
                    .where(
                        sa.tuple_(posted.c.kind, posted.c.operation_id).in_(batch),
                        posted.c.done_at.is_(None),
                    )
                    .values(done_at=now)
                    .returning(posted.c.kind, posted.c.operation_id)
                )
            )
    return marked
