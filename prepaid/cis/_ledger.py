"""The built-in CIS: our own ledger of payments, refunds and settled charges.

A complete, working stand-in for an SG186-style CIS, kept in the platform's database
(tables ``prepaid_cis_*``, see :mod:`prepaid.cis._tables`). Each movement of money is a
ledger row; the account's balance is updated in the same transaction, so it always
equals the sum of its movements (:meth:`LedgerCis.audit` proves it).

Idempotency and concurrency: a movement is inserted with ``ON CONFLICT DO NOTHING`` on
the unique ``(kind, operation_id)``, as the transaction's first write (so SQLite takes
its write lock there, and PostgreSQL's unique index makes a concurrent twin wait for the
first to commit). An id that is already there is compared with the request: the same
account and amount return the original receipt, anything else is refused. A crash
before the commit leaves nothing behind; a retry then credits once.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from protocol.clock import Clock, RealClock

from ._adapter import PaymentOrder, Rejection
from ._errors import AmountError, CisError, DuplicateMismatchError, RefundRefusedError
from ._model import (
    MAX_AMOUNT_FEN,
    Movement,
    MovementKind,
    Receipt,
    SettlementItem,
    SettlementReport,
    check_account_no,
    check_operation_id,
    format_fen,
)
from .tables import account, movement, rejection

__all__ = ["AuditMismatch", "LedgerCis", "LedgerError"]

log = logging.getLogger(__name__)

_LOOKUP_BATCH: Final = 900
_WRITE_BATCH: Final = 500
_BULK_BATCH: Final = 5000
_REASON_MAX: Final = 500


class LedgerError(CisError):
    """The ledger's database failed (locked too long, gone…); nothing was applied."""


@dataclass(frozen=True, slots=True)
class AuditMismatch:
    """An account whose stored balance is not the sum of its movements."""

    account_no: str
    balance_fen: int
    movements_fen: int


def _insert(connection: Connection, table: sa.Table) -> Any:
    if connection.dialect.name == "postgresql":
        return postgresql.insert(table)
    if connection.dialect.name == "sqlite":
        return sqlite.insert(table)
    raise LedgerError(f"the CIS ledger runs on SQLite or PostgreSQL, not {connection.dialect.name}")


def _movement(row: Any) -> Movement:
    return Movement(
        id=int(row.id),
        account_no=row.account_no,
        kind=MovementKind(row.kind),
        operation_id=row.operation_id,
        amount_fen=int(row.amount_fen),
        balance_after_fen=int(row.balance_after_fen),
        occurred_at=row.occurred_at,
        recorded_at=row.recorded_at,
        source=row.source,
    )


def _check_amount(amount_fen: int, what: str) -> int:
    if isinstance(amount_fen, bool) or not isinstance(amount_fen, int):
        raise AmountError(f"{what} must be whole fen (int), got {amount_fen!r}")
    if not 0 < amount_fen <= MAX_AMOUNT_FEN:
        raise AmountError(
            f"{what} {format_fen(amount_fen)} yuan must be more than 0 and at most "
            f"{format_fen(MAX_AMOUNT_FEN)} yuan"
        )
    return amount_fen


class LedgerCis:
    """The CIS as a ledger in our database (implements :class:`~prepaid.cis.CisAdapter`).

    ``clock`` stamps every movement (the shared :class:`~protocol.clock.Clock`, so a
    simulated month books payments on simulated days).
    """

    name = "ledger"

    def __init__(self, engine: Engine, *, clock: Clock | None = None) -> None:
        self.engine = engine
        self.clock: Clock = clock or RealClock()

    # ------------------------------------------------------------------ queries

    def balance(self, account_no: str) -> int:
        number = check_account_no(account_no)
        with self.engine.connect() as connection:
            value = connection.execute(
                sa.select(account.c.balance_fen).where(account.c.account_no == number)
            ).scalar()
        return int(value or 0)

    def balances(self, account_nos: Iterable[str]) -> dict[str, int]:
        numbers = list(dict.fromkeys(check_account_no(n) for n in account_nos))
        out = dict.fromkeys(numbers, 0)
        with self.engine.connect() as connection:
            for start in range(0, len(numbers), _LOOKUP_BATCH):
                chunk = numbers[start : start + _LOOKUP_BATCH]
                rows = connection.execute(
                    sa.select(account.c.account_no, account.c.balance_fen).where(
                        account.c.account_no.in_(chunk)
                    )
                )
                out.update({no: int(fen) for no, fen in rows})
        return out

    def find(self, kind: MovementKind, operation_id: str) -> Movement | None:
        query = sa.select(movement).where(
            movement.c.kind == MovementKind(kind).value,
            movement.c.operation_id == operation_id.strip(),
        )
        with self.engine.connect() as connection:
            row = connection.execute(query).first()
        return None if row is None else _movement(row)

    def known(self, account_nos: Iterable[str]) -> set[str]:
        """The account numbers among ``account_nos`` that the ledger has (ever moved money on)."""
        numbers = list(dict.fromkeys(check_account_no(n) for n in account_nos))
        found: set[str] = set()
        with self.engine.connect() as connection:
            for start in range(0, len(numbers), _LOOKUP_BATCH):
                chunk = numbers[start : start + _LOOKUP_BATCH]
                found.update(
                    connection.execute(
                        sa.select(account.c.account_no).where(account.c.account_no.in_(chunk))
                    ).scalars()
                )
        return found

    def movements(self, account_no: str, *, limit: int | None = None) -> list[Movement]:
        number = check_account_no(account_no)
        query = (
            sa.select(movement)
            .where(movement.c.account_no == number)
            .order_by(movement.c.id.desc())
            .limit(limit)
        )
        with self.engine.connect() as connection:
            return [_movement(row) for row in connection.execute(query)]

    def rejections(self, *, limit: int = 100) -> list[Rejection]:
        """The most recent refused operations, newest first."""
        query = sa.select(rejection).order_by(rejection.c.id.desc()).limit(limit)
        with self.engine.connect() as connection:
            return [
                Rejection(
                    kind=row.kind,
                    reason=row.reason,
                    operation_id=row.operation_id,
                    account_no=row.account_no,
                    amount_fen=row.amount_fen,
                    source=row.source,
                )
                for row in connection.execute(query)
            ]

    def audit(self) -> list[AuditMismatch]:
        """Accounts whose balance is not the sum of their movements (empty when sound).

        One set-based query over the whole ledger.
        """
        sums = (
            sa.select(movement.c.account_no, sa.func.sum(movement.c.amount_fen).label("total"))
            .group_by(movement.c.account_no)
            .subquery()
        )
        total = sa.func.coalesce(sums.c.total, 0)
        query = (
            sa.select(account.c.account_no, account.c.balance_fen, total)
            .select_from(account.outerjoin(sums, sums.c.account_no == account.c.account_no))
            .where(account.c.balance_fen != total)
        )
        with self.engine.connect() as connection:
            return [
                AuditMismatch(no, int(balance), int(moved))
                for no, balance, moved in connection.execute(query)
            ]

    # ------------------------------------------------------------------ movements

    def pay(
        self,
        account_no: str,
        amount_fen: int,
        payment_id: str,
        *,
        paid_at: datetime | None = None,
        source: str = "",
    ) -> Receipt:
        order = PaymentOrder(payment_id, account_no, amount_fen, paid_at, source)
        (result,) = self.pay_many([order])
        if isinstance(result, CisError):
            raise result
        return result

    def pay_many(self, orders: Sequence[PaymentOrder]) -> list[Receipt | CisError]:
        """Credit payments, up to 500 per transaction; one result per order, in order."""
        results: list[Receipt | CisError] = []
        for start in range(0, len(orders), _WRITE_BATCH):
            batch = orders[start : start + _WRITE_BATCH]
            results.extend(self._pay_batch(batch))
        refused = [
            Rejection(
                kind="payment",
                reason=str(result),
                operation_id=str(order.payment_id)[:64],
                account_no=str(order.account_no)[:32],
                amount_fen=order.amount_fen if isinstance(order.amount_fen, int) else None,
                source=str(order.source)[:128],
            )
            for order, result in zip(orders, results, strict=True)
            if isinstance(result, CisError)
        ]
        if refused:
            self.record_rejections(refused)
        return results

    def _pay_batch(self, batch: Sequence[PaymentOrder]) -> list[Receipt | CisError]:
        checked: list[tuple[PaymentOrder, CisError | None]] = []
        for order in batch:
            try:
                checked.append(
                    (
                        PaymentOrder(
                            check_operation_id(order.payment_id),
                            check_account_no(order.account_no),
                            _check_amount(order.amount_fen, f"payment {order.payment_id!r}"),
                            order.paid_at,
                            order.source[:128],
                        ),
                        None,
                    )
                )
            except CisError as exc:
                checked.append((order, exc))
        results: list[Receipt | CisError | None] = [error for _, error in checked]
        pending = [(k, o) for k, (o, error) in enumerate(checked) if error is None]
        now = self.clock.now()
        try:
            with self.engine.begin() as connection:
                if pending:
                    connection.execute(
                        _insert(connection, account).on_conflict_do_nothing(
                            index_elements=[account.c.account_no]
                        ),
                        [
                            {"account_no": no, "balance_fen": 0, "updated_at": now}
                            for no in sorted({o.account_no for _, o in pending})
                        ],
                    )
                while pending:
                    # one movement per account and per id in a round, so each balance
                    # after is exact and a repeated id meets its first as a duplicate
                    accounts: set[str] = set()
                    ids: set[str] = set()
                    this_round: list[tuple[int, PaymentOrder]] = []
                    later: list[tuple[int, PaymentOrder]] = []
                    for k, o in pending:
                        if o.account_no in accounts or o.payment_id in ids:
                            later.append((k, o))
                            continue
                        accounts.add(o.account_no)
                        ids.add(o.payment_id)
                        this_round.append((k, o))
                    self._pay_round(connection, this_round, results, now)
                    pending = later
        except SQLAlchemyError as exc:
            raise LedgerError(
                f"cannot credit {len(batch)} payment(s): the ledger database failed ({exc}); "
                "nothing of this batch was credited, retry it (payment ids make that safe)"
            ) from exc
        return [r if r is not None else LedgerError("payment not applied") for r in results]

    def _pay_round(
        self,
        connection: Connection,
        rows: list[tuple[int, PaymentOrder]],
        results: list[Receipt | CisError | None],
        now: datetime,
    ) -> None:
        """Payments to distinct accounts with distinct ids, set-based: the movements
        (``ON CONFLICT DO NOTHING``), the balances, each movement's balance after."""
        rows = sorted(rows, key=lambda row: row[1].payment_id)  # one lock order for twins
        inserted = connection.execute(
            _insert(connection, movement)
            .on_conflict_do_nothing(index_elements=[movement.c.kind, movement.c.operation_id])
            .returning(movement.c.id, movement.c.operation_id),
            [
                {
                    "account_no": o.account_no,
                    "kind": MovementKind.PAYMENT.value,
                    "operation_id": o.payment_id,
                    "amount_fen": o.amount_fen,
                    "balance_after_fen": 0,
                    "occurred_at": o.paid_at or now,
                    "recorded_at": now,
                    "source": o.source,
                }
                for _, o in rows
            ],
        ).all()
        fresh = {op: int(mid) for mid, op in inserted}
        moves = [(k, o) for k, o in rows if o.payment_id in fresh]
        if moves:
            connection.execute(
                sa.update(account)
                .where(account.c.account_no == sa.bindparam("no"))
                .values(balance_fen=account.c.balance_fen + sa.bindparam("fen"), updated_at=now),
                [{"no": o.account_no, "fen": o.amount_fen} for _, o in moves],
            )
            after = (
                sa.select(account.c.balance_fen)
                .where(account.c.account_no == movement.c.account_no)
                .scalar_subquery()
            )
            connection.execute(
                sa.update(movement)
                .where(movement.c.id == sa.bindparam("mid"))
                .values(balance_after_fen=after),
                [{"mid": fresh[o.payment_id]} for _, o in moves],
            )
            balances: dict[str, int] = {}
            numbers = sorted({o.account_no for _, o in moves})
            for start in range(0, len(numbers), _LOOKUP_BATCH):
                chunk = numbers[start : start + _LOOKUP_BATCH]
                balances.update(
                    (no, int(fen))
                    for no, fen in connection.execute(
                        sa.select(account.c.account_no, account.c.balance_fen).where(
                            account.c.account_no.in_(chunk)
                        )
                    )
                )
            for k, o in moves:
                results[k] = Receipt(
                    kind=MovementKind.PAYMENT,
                    operation_id=o.payment_id,
                    account_no=o.account_no,
                    amount_fen=o.amount_fen,
                    balance_fen=balances[o.account_no],
                    movement_id=fresh[o.payment_id],
                    occurred_at=o.paid_at or now,
                )
            log.info("%d payment(s) credited in the ledger", len(moves))
        for k, o in rows:
            if o.payment_id not in fresh:
                results[k] = self._duplicate(
                    connection, MovementKind.PAYMENT, o.payment_id, o.account_no, o.amount_fen
                )

    def refund(
        self,
        account_no: str,
        amount_fen: int,
        refund_id: str,
        *,
        at: datetime | None = None,
        source: str = "",
    ) -> Receipt:
        """Take ``amount_fen`` back out; refused (and recorded) beyond the CIS balance."""
        try:
            number = check_account_no(account_no)
            operation = check_operation_id(refund_id, what="refund id")
            _check_amount(amount_fen, f"refund {refund_id!r}")
        except CisError as exc:
            self._reject("refund", exc, refund_id, account_no, amount_fen, source)
            raise
        try:
            with self.engine.begin() as connection:
                result = self._apply(
                    connection, MovementKind.REFUND, operation, number, amount_fen, at, source
                )
                if isinstance(result, CisError):
                    raise result
                return result
        except CisError as exc:
            self._reject("refund", exc, operation, number, amount_fen, source)
            raise
        except SQLAlchemyError as exc:
            raise LedgerError(
                f"cannot refund {refund_id!r}: the ledger database failed ({exc}); nothing "
                "was taken, retry (the refund id makes that safe)"
            ) from exc

    def _apply(
        self,
        connection: Connection,
        kind: MovementKind,
        operation_id: str,
        account_no: str,
        amount_fen: int,
        at: datetime | None,
        source: str,
    ) -> Receipt | CisError:
        """One payment or refund inside ``connection``'s transaction."""
        now = self.clock.now()
        signed = amount_fen if kind is MovementKind.PAYMENT else -amount_fen
        connection.execute(
            _insert(connection, account)
            .values(account_no=account_no, balance_fen=0, updated_at=now)
            .on_conflict_do_nothing(index_elements=[account.c.account_no])
        )
        new_id = connection.execute(
            _insert(connection, movement)
            .values(
                account_no=account_no,
                kind=kind.value,
                operation_id=operation_id,
                amount_fen=signed,
                balance_after_fen=0,
                occurred_at=at or now,
                recorded_at=now,
                source=source,
            )
            .on_conflict_do_nothing(index_elements=[movement.c.kind, movement.c.operation_id])
            .returning(movement.c.id)
        ).scalar()
        if new_id is None:
            return self._duplicate(connection, kind, operation_id, account_no, amount_fen)
        update = (
            sa.update(account)
            .where(account.c.account_no == account_no)
            .values(balance_fen=account.c.balance_fen + signed, updated_at=now)
            .returning(account.c.balance_fen)
        )
        if signed < 0:
            update = update.where(account.c.balance_fen + signed >= 0)
        balance = connection.execute(update).scalar()
        if balance is None:
            available = int(
                connection.execute(
                    sa.select(account.c.balance_fen).where(account.c.account_no == account_no)
                ).scalar_one()
            )
            raise RefundRefusedError(
                f"refund {operation_id!r} of {format_fen(amount_fen)} yuan from account "
                f"{account_no} is more than its CIS balance of {format_fen(available)} yuan; "
                "refund at most the balance",
                available_fen=available,
            )
        connection.execute(
            sa.update(movement).where(movement.c.id == new_id).values(balance_after_fen=balance)
        )
        log.info(
            "%s %s: %s yuan on account %s, CIS balance %s",
            kind.value,
            operation_id,
            format_fen(signed),
            account_no,
            format_fen(int(balance)),
        )
        return Receipt(
            kind=kind,
            operation_id=operation_id,
            account_no=account_no,
            amount_fen=amount_fen,
            balance_fen=int(balance),
            movement_id=int(new_id),
            occurred_at=at or now,
        )

    def _duplicate(
        self,
        connection: Connection,
        kind: MovementKind,
        operation_id: str,
        account_no: str,
        amount_fen: int,
    ) -> Receipt | CisError:
        row = connection.execute(
            sa.select(movement).where(
                movement.c.kind == kind.value, movement.c.operation_id == operation_id
            )
        ).one()
        original = Receipt.of(_movement(row), duplicate=True)
        if original.account_no == account_no and original.amount_fen == amount_fen:
            log.info("%s %s already applied; nothing moved", kind.value, operation_id)
            return original
        return DuplicateMismatchError(
            f"{kind.value} id {operation_id!r} was already applied as "
            f"{format_fen(original.amount_fen)} yuan on account {original.account_no} "
            f"(movement {original.movement_id}); this one says {format_fen(amount_fen)} yuan "
            f"on account {account_no}. Nothing was moved: give a new id for a new "
            f"{kind.value}, or correct the data",
            original,
        )

    # ------------------------------------------------------------------ bulk movements

    def settle(self, items: Sequence[SettlementItem]) -> SettlementReport:
        """Deduct charges (a ``settlement`` movement each), once per settlement id.

        Set-based, 5000 items per transaction. The balance may go below zero: the
        customer used more than was paid (arrears).
        """
        rows = [
            (
                check_operation_id(item.settlement_id, what="settlement id"),
                check_account_no(item.account_no),
                -item.amount_fen,
                f"charges through {item.through_day.isoformat()}",
            )
            for item in items
        ]
        applied, amount = self._bulk(MovementKind.SETTLEMENT, rows)
        return SettlementReport(applied, len(rows) - applied, -amount)

    def open_balances(self, balances: Iterable[tuple[str, int]]) -> int:
        """Bring accounts into the ledger with their opening balance (期初余额), once each.

        ``balances`` are ``(account_no, balance_fen)`` pairs (either sign); an account's
        opening is applied once (its id is ``opening:<account_no>``), so a repeat is a
        no-op. Set-based; returns how many accounts were opened now.
        """
        rows = [
            (f"opening:{no}", no, int(fen), "opening balance")
            for no, fen in ((check_account_no(n), f) for n, f in balances)
        ]
        return self._bulk(MovementKind.OPENING, rows)[0]

    def open_balances_from(self, connection: Connection, source: sa.Table) -> int:
        """Like :meth:`open_balances`, set-based inside ``connection``'s transaction.

        ``source`` is a (temporary) table of ``account_no`` and ``balance_fen`` in the
        ledger's own database; its rows for accounts already in the ledger are deleted,
        the others are opened with three ``INSERT … SELECT`` statements. Returns how
        many accounts were opened.
        """
        now = self.clock.now()
        connection.execute(
            sa.delete(source).where(
                source.c.account_no.in_(sa.select(account.c.account_no).scalar_subquery())
            )
        )
        opened = connection.execute(sa.select(sa.func.count()).select_from(source)).scalar_one()
        connection.execute(
            sa.insert(account).from_select(
                ["account_no", "balance_fen", "updated_at"],
                sa.select(source.c.account_no, source.c.balance_fen, sa.literal(now, sa.DateTime)),
            )
        )
        connection.execute(
            sa.insert(movement).from_select(
                [
                    "account_no",
                    "kind",
                    "operation_id",
                    "amount_fen",
                    "balance_after_fen",
                    "occurred_at",
                    "recorded_at",
                    "source",
                ],
                sa.select(
                    source.c.account_no,
                    sa.literal(MovementKind.OPENING.value),
                    sa.literal("opening:") + source.c.account_no,
                    source.c.balance_fen,
                    source.c.balance_fen,
                    sa.literal(now, sa.DateTime),
                    sa.literal(now, sa.DateTime),
                    sa.literal("opening balance"),
                ),
            )
        )
        return int(opened)

    def settle_from(
        self, connection: Connection, source: sa.Table, through: date
    ) -> SettlementReport:
        """Like :meth:`settle`, set-based inside ``connection``'s transaction.

        ``source`` is a (temporary) table in the ledger's database with ``account_no``
        (one row per account), ``settlement_id`` and ``amount_fen``. Rows whose
        settlement was applied before are removed from it and counted as ``already``;
        the rest are applied with ``INSERT … SELECT`` and ``UPDATE … FROM``.
        """
        now = self.clock.now()
        total_rows = int(
            connection.execute(sa.select(sa.func.count()).select_from(source)).scalar_one()
        )
        connection.execute(
            sa.delete(source).where(
                sa.exists().where(
                    movement.c.kind == MovementKind.SETTLEMENT.value,
                    movement.c.operation_id == source.c.settlement_id,
                )
            )
        )
        applied, amount = connection.execute(
            sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(source.c.amount_fen), 0))
        ).one()
        if not applied:
            return SettlementReport(0, total_rows, 0)
        connection.execute(
            sa.insert(account).from_select(
                ["account_no", "balance_fen", "updated_at"],
                sa.select(
                    source.c.account_no, sa.literal(0, sa.BigInteger), sa.literal(now, sa.DateTime)
                ).where(~sa.exists().where(account.c.account_no == source.c.account_no)),
            )
        )
        before = (
            sa.select(account.c.balance_fen)
            .where(account.c.account_no == source.c.account_no)
            .scalar_subquery()
        )
        connection.execute(
            sa.insert(movement).from_select(
                [
                    "account_no",
                    "kind",
                    "operation_id",
                    "amount_fen",
                    "balance_after_fen",
                    "occurred_at",
                    "recorded_at",
                    "source",
                ],
                sa.select(
                    source.c.account_no,
                    sa.literal(MovementKind.SETTLEMENT.value),
                    source.c.settlement_id,
                    -source.c.amount_fen,
                    before - source.c.amount_fen,
                    sa.literal(now, sa.DateTime),
                    sa.literal(now, sa.DateTime),
                    sa.literal(f"charges through {through.isoformat()}"),
                ),
            )
        )
        connection.execute(
            sa.update(account)
            .where(account.c.account_no == source.c.account_no)
            .values(balance_fen=account.c.balance_fen - source.c.amount_fen, updated_at=now)
        )
        return SettlementReport(int(applied), total_rows - int(applied), int(amount))

    def _bulk(
        self, kind: MovementKind, rows: Sequence[tuple[str, str, int, str]]
    ) -> tuple[int, int]:
        """Apply ``(operation_id, account_no, signed_fen, source)`` rows; (applied, Σ fen)."""
        applied = total = 0
        pending = list(rows)
        while pending:
            # one movement per account per round, so each balance_after is exact
            seen: set[str] = set()
            this_round: list[tuple[str, str, int, str]] = []
            later: list[tuple[str, str, int, str]] = []
            for row in pending:
                (later if row[1] in seen else this_round).append(row)
                seen.add(row[1])
            for start in range(0, len(this_round), _BULK_BATCH):
                done, moved = self._bulk_batch(kind, this_round[start : start + _BULK_BATCH])
                applied += done
                total += moved
            pending = later
        return applied, total

    def _bulk_batch(
        self, kind: MovementKind, rows: Sequence[tuple[str, str, int, str]]
    ) -> tuple[int, int]:
        now = self.clock.now()
        try:
            with self.engine.begin() as connection:
                connection.execute(
                    _insert(connection, account).on_conflict_do_nothing(
                        index_elements=[account.c.account_no]
                    ),
                    [
                        {"account_no": no, "balance_fen": 0, "updated_at": now}
                        for _, no, _, _ in rows
                    ],
                )
                inserted = connection.execute(
                    _insert(connection, movement)
                    .on_conflict_do_nothing(
                        index_elements=[movement.c.kind, movement.c.operation_id]
                    )
                    .returning(movement.c.id, movement.c.operation_id),
                    [
                        {
                            "account_no": no,
                            "kind": kind.value,
                            "operation_id": op,
                            "amount_fen": fen,
                            "balance_after_fen": 0,
                            "occurred_at": now,
                            "recorded_at": now,
                            "source": source[:128],
                        }
                        for op, no, fen, source in rows
                    ],
                ).all()
                if not inserted:
                    return 0, 0
                fresh = {op for _, op in inserted}
                moves = [(no, fen) for op, no, fen, _ in rows if op in fresh]
                connection.execute(
                    sa.update(account)
                    .where(account.c.account_no == sa.bindparam("no"))
                    .values(
                        balance_fen=account.c.balance_fen + sa.bindparam("fen"), updated_at=now
                    ),
                    [{"no": no, "fen": fen} for no, fen in moves],
                )
                after = (
                    sa.select(account.c.balance_fen)
                    .where(account.c.account_no == movement.c.account_no)
                    .scalar_subquery()
                )
                connection.execute(
                    sa.update(movement)
                    .where(movement.c.id == sa.bindparam("mid"))
                    .values(balance_after_fen=after),
                    [{"mid": ident} for ident, _ in inserted],
                )
        except SQLAlchemyError as exc:
            raise LedgerError(
                f"cannot apply {len(rows)} {kind.value} movement(s): the ledger database failed "
                f"({exc}); nothing of this batch was applied, run it again (ids make that safe)"
            ) from exc
        return len(moves), sum(fen for _, fen in moves)

    # ------------------------------------------------------------------ rejections

    def record_rejections(self, items: Sequence[Rejection]) -> None:
        if not items:
            return
        now = self.clock.now()
        rows = [
            {
                "at": now,
                "kind": item.kind[:16],
                "operation_id": (item.operation_id or None) and item.operation_id[:64],
                "account_no": (item.account_no or None) and item.account_no[:32],
                "amount_fen": item.amount_fen,
                "reason": item.reason[:_REASON_MAX],
                "source": item.source[:128],
            }
            for item in items
        ]
        try:
            with self.engine.begin() as connection:
                connection.execute(sa.insert(rejection), rows)
        except SQLAlchemyError:
            log.exception("could not record %d refused CIS operation(s)", len(rows))
        for item in items:
            log.info("refused %s %s: %s", item.kind, item.operation_id or "", item.reason)

    def _reject(
        self,
        kind: str,
        error: CisError,
        operation_id: str,
        account_no: str,
        amount_fen: int,
        source: str,
    ) -> None:
        self.record_rejections(
            [
                Rejection(
                    kind=kind,
                    reason=str(error),
                    operation_id=str(operation_id)[:64],
                    account_no=str(account_no)[:32],
                    amount_fen=amount_fen if isinstance(amount_fen, int) else None,
                    source=source,
                )
            ]
        )
