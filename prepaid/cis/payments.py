"""Taking payments and refunds on the platform (缴费 / 退费): CIS, real-time balance, re-rating.

:class:`PaymentService` is what the CLI, the console and the workflows call:

- :meth:`~PaymentService.pay` credits the CIS (once per payment id), adds the amount
  to the rating state's copy of the real-time balance (once per payment id too,
  :func:`prepaid.balance.post_receipts`), re-rates the account for today at once (the
  rating's ``rate_accounts``, on the shared clock's day) and returns the new real-time
  balance, all within a second; then it calls every ``on_payment`` hook with a
  :class:`PaymentEvent` (the fee-control workflows reconnect from there — nothing
  here speaks DL/T 645);
- :meth:`~PaymentService.refund` pays money back, never more than the real-time
  balance (what the customer really has left) nor the CIS balance;
- :meth:`~PaymentService.import_csv` credits a payments file and re-rates every
  account it credited, in bulk.

A repeated payment id returns the original receipt and moves nothing (no event, no
re-rating) — unless the first attempt crashed before it was done: between the CIS and
the platform, or after the posting but before the re-rating and the event
(``prepaid_cis_posted.done_at`` still empty); then the repeat finishes the job (posts,
re-rates, sends the event), once however many repeats race. A payment to an
account the platform does not know is refused and recorded. With the built-in ledger,
an account the ledger has never seen is first opened with its stored balance
(:func:`prepaid.balance.adopt_opening_balances`).
"""

from __future__ import annotations

import functools
import logging
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, Protocol, TextIO, TypeVar

from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from protocol.clock import Clock, RealClock

from ..balance import (
    RealtimeBalance,
    account_ids,
    adopt_opening_balances,
    finish_postings,
    post_receipts,
    realtime_balance,
    realtime_balances,
    unfinished_postings,
)
from ._adapter import CisAdapter, PaymentOrder, Rejection
from ._csv import PaymentImportReport
from ._csv import Progress as ImportProgress
from ._csv import import_payments as _import
from ._errors import CisError, RefundRefusedError, UnknownAccountError
from ._ledger import LedgerCis, LedgerError
from ._model import MovementKind, Receipt, check_account_no, format_fen

__all__ = [
    "ImportOutcome",
    "PaymentEvent",
    "PaymentHook",
    "PaymentOutcome",
    "PaymentService",
    "RateAccounts",
]

log = logging.getLogger(__name__)


class RateAccounts(Protocol):
    """The rating's ``rate_accounts(engine, account_ids, day, *, clock=None)``."""

    def __call__(
        self, engine: Engine, account_ids: Sequence[int], day: date, *, clock: Clock | None = None
    ) -> object: ...


def _default_rate() -> RateAccounts:
    from ..rating import rate_accounts

    rate: RateAccounts = rate_accounts
    return rate


@dataclass(frozen=True, slots=True)
class PaymentEvent:
    """A new payment was credited and its account re-rated (缴费到账).

    ``balance`` is the account's real-time balance after the re-rating; the fee-control
    workflows use it to decide on a reconnection (复电).
    """

    receipt: Receipt
    account_id: int
    balance: RealtimeBalance
    at: datetime


PaymentHook = Callable[[PaymentEvent], None]


@dataclass(frozen=True, slots=True)
class PaymentOutcome:
    """What a payment or refund did: the CIS receipt and the account's new balance.

    ``rerated``: the account was re-rated for ``day`` (not for a duplicate, nor a
    refund); ``rating_error`` says why a re-rating failed (the money is credited
    anyway and the next rating picks it up). ``elapsed_s``: wall time of the call.
    """

    receipt: Receipt
    balance: RealtimeBalance
    day: date
    rerated: bool = False
    rating_error: str | None = None
    elapsed_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.receipt.to_dict(),
            **self.balance.to_dict(),
            "day": self.day.isoformat(),
            "rerated": self.rerated,
            "rating_error": self.rating_error,
            "elapsed_s": round(self.elapsed_s, 4),
        }


@dataclass(slots=True)
class ImportOutcome:
    """A payments file imported: the import report, then the re-rating of the accounts."""

    report: PaymentImportReport
    rerated: int = 0
    rating_error: str | None = None
    balances: dict[int, RealtimeBalance] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.report.to_dict(),
            "rerated": self.rerated,
            "rating_error": self.rating_error,
        }


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _database_errors(
    method: Callable[Concatenate[PaymentService, _P], _R],
) -> Callable[Concatenate[PaymentService, _P], _R]:
    """A database failure (locked longer than the busy timeout, gone …) in a payment
    operation becomes a :class:`LedgerError` that says what to do, not a traceback.

    Each step commits on its own and is keyed by the payment id, so whatever was done
    stays done once: delivering the same payments again finishes the job.
    """

    @functools.wraps(method)
    def wrapper(self: PaymentService, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return method(self, *args, **kwargs)
        except (SQLAlchemyError, sqlite3.Error) as exc:
            orig = getattr(exc, "orig", None) or exc
            problem = (str(orig).strip().splitlines() or [""])[0]
            hint = (
                " (another process held it longer than the busy timeout)"
                if "locked" in problem or "busy" in problem
                else ""
            )
            raise LedgerError(
                f"{method.__name__.replace('_', ' ')} stopped: the platform's database failed "
                f"({type(orig).__name__}: {problem}){hint}; what was credited stays credited, "
                "once: deliver the same payments again (payment ids make that safe)"
            ) from exc

    return wrapper


class PaymentService:
    """Payments and refunds against ``cis``, with the platform's accounts in ``engine``.

    ``rate`` re-rates accounts (default: :func:`prepaid.rating.rate_accounts`);
    ``clock`` gives today's date for it. ``on_payment`` hooks are called in order after
    each new payment; a hook that raises is logged and does not undo the payment.
    """

    def __init__(
        self,
        engine: Engine,
        cis: CisAdapter,
        *,
        clock: Clock | None = None,
        rate: RateAccounts | None = None,
        on_payment: Sequence[PaymentHook] = (),
    ) -> None:
        self.engine = engine
        self.cis = cis
        self.clock: Clock = clock or RealClock()
        self._rate = rate
        self.on_payment: list[PaymentHook] = list(on_payment)

    def subscribe(self, hook: PaymentHook) -> Callable[[], None]:
        """Add an ``on_payment`` hook; returns a function that removes it."""
        self.on_payment.append(hook)

        def unsubscribe() -> None:
            if hook in self.on_payment:
                self.on_payment.remove(hook)

        return unsubscribe

    # ------------------------------------------------------------------ helpers

    def _account_id(self, account_no: str, *, kind: str, operation_id: str, amount: int) -> int:
        number = check_account_no(account_no)
        with self.engine.connect() as connection:
            found = account_ids(connection, [number]).get(number)
        if found is None:
            error = UnknownAccountError(
                f"account {number} is not a platform account; check the customer number "
                f"(户号) — the {kind} {operation_id!r} was not taken"
            )
            self.cis.record_rejections(
                [Rejection(kind, str(error), operation_id[:64], number, amount)]
            )
            raise error
        return found

    def _adopt(self, ids: Sequence[int], numbers: Sequence[str]) -> None:
        """Open the accounts the built-in ledger has never seen (a cheap check first)."""
        if not (isinstance(self.cis, LedgerCis) and self.cis.engine is self.engine):
            return
        if len(numbers) <= 900 and self.cis.known(numbers) >= set(numbers):
            return
        adopt_opening_balances(self.engine, self.cis, ids)

    def _rerate(self, ids: Sequence[int], day: date) -> str | None:
        try:
            rate = self._rate or _default_rate()
            rate(self.engine, list(ids), day, clock=self.clock)
        except Exception as exc:  # the money is in; the next rating will charge
            log.exception("re-rating %d account(s) for %s after payment failed", len(ids), day)
            return f"re-rating failed ({exc}); the payment stands, the next rating catches up"
        return None

    def _emit(self, event: PaymentEvent) -> None:
        for hook in list(self.on_payment):
            try:
                hook(event)
            except Exception:
                log.exception("on_payment hook %r failed for %s", hook, event.receipt.operation_id)

    def _follow_up(
        self, credited: Sequence[tuple[Receipt, int]], now_posted: Sequence[bool], day: date
    ) -> tuple[
        dict[tuple[str, str], tuple[Receipt, int]],
        str | None,
        dict[tuple[str, str], tuple[Receipt, int]],
    ]:
        """Re-rate the accounts of the payments posted now — and of those a crash left
        posted but not followed up — then mark them done.

        Returns the payments followed up (by key), the re-rating error if any, and the
        payments whose event this call is to send: the ones it marked done (a twin
        finishing the same payment at the same moment marks nothing: one event each).
        """
        todo: dict[tuple[str, str], tuple[Receipt, int]] = {}
        for (receipt, ident), first in zip(credited, now_posted, strict=True):
            if first:
                todo.setdefault((receipt.kind.value, receipt.operation_id), (receipt, ident))
        repeats = [(r, i) for (r, i), first in zip(credited, now_posted, strict=True) if not first]
        if repeats:
            left = unfinished_postings(self.engine, [r for r, _ in repeats])
            for receipt, ident in repeats:
                key = (receipt.kind.value, receipt.operation_id)
                if key in left:
                    todo.setdefault(key, (receipt, ident))
        if not todo:
            return {}, None, {}
        error = self._rerate(sorted({ident for _, ident in todo.values()}), day)
        marked = finish_postings(self.engine, [r for r, _ in todo.values()], clock=self.clock)
        return todo, error, {key: todo[key] for key in todo if key in marked}

    # ------------------------------------------------------------------ operations

    @_database_errors
    def pay(
        self,
        account_no: str,
        amount_fen: int,
        payment_id: str,
        *,
        paid_at: datetime | None = None,
        source: str = "",
    ) -> PaymentOutcome:
        """Credit a payment, re-rate the account now, return its new real-time balance."""
        started = time.perf_counter()
        ident = self._account_id(
            account_no, kind="payment", operation_id=payment_id, amount=amount_fen
        )
        self._adopt([ident], [check_account_no(account_no)])
        receipt = self.cis.pay(account_no, amount_fen, payment_id, paid_at=paid_at, source=source)
        day = self.clock.now().date()
        posted = post_receipts(self.engine, [(receipt, ident)], clock=self.clock)
        followed, error, to_send = self._follow_up([(receipt, ident)], posted, day)
        if not followed:  # a repeat of a payment the platform has fully taken already
            balance = realtime_balance(self.engine, ident)
            return PaymentOutcome(receipt, balance, day, elapsed_s=time.perf_counter() - started)
        balance = realtime_balance(self.engine, ident)
        outcome = PaymentOutcome(
            receipt,
            balance,
            day,
            rerated=error is None,
            rating_error=error,
            elapsed_s=time.perf_counter() - started,
        )
        log.info(
            "payment %s: %s yuan to %s, real-time balance %s yuan (%.3f s)",
            receipt.operation_id,
            format_fen(receipt.amount_fen),
            receipt.account_no,
            format_fen(balance.realtime_fen),
            outcome.elapsed_s,
        )
        if to_send:
            self._emit(PaymentEvent(receipt, ident, balance, self.clock.now()))
        return outcome

    @_database_errors
    def pay_many(self, orders: Sequence[PaymentOrder]) -> list[PaymentOutcome | CisError]:
        """Credit many payments at once (what arrived from the CIS in one tick): one result
        per order, in order — a :class:`PaymentOutcome` or the :class:`CisError` that
        refused it (recorded, not raised).

        The same rules as :meth:`pay`, in bulk: each payment id credits once; every new
        payment is posted to its account's real-time balance; the accounts are re-rated
        for today in one call; each outcome carries its account's new real-time balance,
        and an ``on_payment`` event goes out per new payment. A few statements per
        batch instead of per payment, so a batch of hundreds takes about as long as one
        :meth:`pay`.
        """
        started = time.perf_counter()
        results: list[PaymentOutcome | CisError | None] = [None] * len(orders)
        numbers: list[str | None] = []
        rejected: list[Rejection] = []
        for i, order in enumerate(orders):
            try:
                numbers.append(check_account_no(order.account_no))
            except CisError as exc:
                numbers.append(None)
                results[i] = exc
                rejected.append(
                    Rejection("payment", str(exc), str(order.payment_id)[:64], None, None)
                )
        with self.engine.connect() as connection:
            ids_by_no = account_ids(connection, [n for n in numbers if n is not None])
        taken: list[int] = []
        for i, (order, number) in enumerate(zip(orders, numbers, strict=True)):
            if number is None:
                continue
            if number not in ids_by_no:
                error = UnknownAccountError(
                    f"account {number} is not a platform account; check the customer number "
                    f"(户号) — the payment {order.payment_id!r} was not taken"
                )
                results[i] = error
                amount = order.amount_fen if isinstance(order.amount_fen, int) else None
                rejected.append(
                    Rejection("payment", str(error), str(order.payment_id)[:64], number, amount)
                )
                continue
            taken.append(i)
        if rejected:
            self.cis.record_rejections(rejected)
        if taken:
            known = sorted({ids_by_no[numbers[i] or ""] for i in taken})
            self._adopt(known, sorted({numbers[i] or "" for i in taken}))
            receipts = self.cis.pay_many([orders[i] for i in taken])
            credited: list[tuple[int, Receipt, int]] = []
            for i, receipt in zip(taken, receipts, strict=True):
                if isinstance(receipt, CisError):
                    results[i] = receipt
                else:
                    credited.append((i, receipt, ids_by_no[numbers[i] or ""]))
            day = self.clock.now().date()
            posted = post_receipts(
                self.engine, [(r, ident) for _, r, ident in credited], clock=self.clock
            )
            followed, rating_error, to_send = self._follow_up(
                [(r, ident) for _, r, ident in credited], posted, day
            )
            balances = realtime_balances(self.engine, sorted({c[2] for c in credited}))
            elapsed = time.perf_counter() - started
            now = self.clock.now()
            events: list[PaymentEvent] = []
            for i, receipt, ident in credited:
                key = (receipt.kind.value, receipt.operation_id)
                results[i] = PaymentOutcome(
                    receipt,
                    balances[ident],
                    day,
                    rerated=key in followed and rating_error is None,
                    rating_error=rating_error if key in followed else None,
                    elapsed_s=elapsed,
                )
                if to_send.pop(key, None) is not None:
                    events.append(PaymentEvent(receipt, ident, balances[ident], now))
            log.info(
                "%d payment(s) credited, %d new, %d account(s) re-rated (%.3f s)",
                len(credited),
                len(events),
                len({ident for _, ident in followed.values()}),
                elapsed,
            )
            for event in events:
                self._emit(event)
        return [r if r is not None else CisError("not processed") for r in results]

    @_database_errors
    def refund(
        self,
        account_no: str,
        amount_fen: int,
        refund_id: str,
        *,
        at: datetime | None = None,
        source: str = "",
    ) -> PaymentOutcome:
        """Pay money back: at most the real-time balance (and the CIS balance)."""
        started = time.perf_counter()
        ident = self._account_id(
            account_no, kind="refund", operation_id=refund_id, amount=amount_fen
        )
        self._adopt([ident], [check_account_no(account_no)])
        before = realtime_balance(self.engine, ident)
        already = self.cis.find(MovementKind.REFUND, refund_id)
        if already is None and amount_fen > before.realtime_fen:
            error = RefundRefusedError(
                f"refund {refund_id!r} of {format_fen(amount_fen)} yuan from account "
                f"{before.customer_no} is more than its real-time balance of "
                f"{format_fen(before.realtime_fen)} yuan (CIS {format_fen(before.cis_fen)} − "
                f"unsettled charges {format_fen(before.unsettled_fen)}); refund at most that",
                available_fen=max(0, before.realtime_fen),
            )
            self.cis.record_rejections(
                [
                    Rejection(
                        "refund", str(error), refund_id[:64], before.customer_no, amount_fen, source
                    )
                ]
            )
            raise error
        receipt = self.cis.refund(account_no, amount_fen, refund_id, at=at, source=source)
        post_receipts(self.engine, [(receipt, ident)], clock=self.clock)
        finish_postings(self.engine, [receipt], clock=self.clock)  # nothing follows a refund
        balance = realtime_balance(self.engine, ident)
        return PaymentOutcome(
            receipt, balance, self.clock.now().date(), elapsed_s=time.perf_counter() - started
        )

    @_database_errors
    def import_csv(
        self, source: Path | str | TextIO, *, progress: ImportProgress | None = None
    ) -> ImportOutcome:
        """Credit a payments CSV (see :func:`prepaid.cis.import_payments`), then re-rate.

        Rows for accounts the platform does not know are bad rows. Every payment new to
        the platform is posted to its account's real-time balance, the accounts are
        re-rated for today in one bulk call, and an ``on_payment`` event is sent for each
        new payment.
        """

        ids_by_no: dict[str, int] = {}

        def known(numbers: list[str]) -> set[str]:
            with self.engine.connect() as connection:
                ids_by_no.update(account_ids(connection, numbers))
            self._adopt(sorted(ids_by_no.values()), sorted(ids_by_no))
            return set(ids_by_no)

        report = _import(self.cis, source, known_accounts=known, progress=progress)
        outcome = ImportOutcome(report)
        pairs = [(r, ids_by_no[r.account_no]) for r in report.receipts]
        posted = post_receipts(self.engine, pairs, clock=self.clock)
        day = self.clock.now().date()
        followed, outcome.rating_error, to_send = self._follow_up(pairs, posted, day)
        if not followed:
            return outcome
        ids = sorted({ident for _, ident in followed.values()})
        outcome.rerated = 0 if outcome.rating_error else len(ids)
        outcome.balances = realtime_balances(self.engine, ids)
        now = self.clock.now()
        for receipt, ident in to_send.values():
            self._emit(PaymentEvent(receipt, ident, outcome.balances[ident], now))
        return outcome
