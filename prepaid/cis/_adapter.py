"""The CIS adapter interface (营销系统接口, SG186-style marketing / billing system).

The customer information system (CIS) owns customers' money: it takes payments at the
counter, in banks and online, makes refunds, and bills the energy the platform rates.
The prepaid platform talks to it only through :class:`CisAdapter`. feikong ships one
implementation, :class:`~prepaid.cis.LedgerCis` (its own ledger in the platform's
database); a connector to a real SG186 system implements the same protocol.

Every adapter keeps these promises:

- a payment id is credited **once**: the same id again (concurrently, or after a
  crash and a retry) returns the original :class:`Receipt` with ``duplicate=True``;
  the same id with another account or amount raises
  :class:`~prepaid.cis.DuplicateMismatchError` and moves nothing (refund ids alike);
- a refund never takes more than the CIS balance
  (:class:`~prepaid.cis.RefundRefusedError`);
- settling charges is idempotent per settlement id;
- every refused operation is recorded (:meth:`CisAdapter.record_rejections`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from ._errors import CisError
from ._model import Movement, MovementKind, Receipt, SettlementItem, SettlementReport

__all__ = ["CisAdapter", "PaymentOrder", "Rejection"]


@dataclass(frozen=True, slots=True)
class PaymentOrder:
    """A payment to credit (缴费): id (CIS serial number), account, amount in fen."""

    payment_id: str
    account_no: str
    amount_fen: int
    paid_at: datetime | None = None
    source: str = ""


@dataclass(frozen=True, slots=True)
class Rejection:
    """A refused operation, kept for the operators: what, which ids, and why."""

    kind: str
    reason: str
    operation_id: str | None = None
    account_no: str | None = None
    amount_fen: int | None = None
    source: str = ""


@runtime_checkable
class CisAdapter(Protocol):
    """What the prepaid platform needs of the CIS. Money is ``int`` fen."""

    @property
    def name(self) -> str:
        """A short name for logs and output (e.g. ``ledger``)."""
        ...

    def balance(self, account_no: str) -> int:
        """The account's CIS balance (0 for an account that never had a movement)."""
        ...

    def balances(self, account_nos: Iterable[str]) -> dict[str, int]:
        """The CIS balance of each account (0 where there was never a movement)."""
        ...

    def pay(
        self,
        account_no: str,
        amount_fen: int,
        payment_id: str,
        *,
        paid_at: datetime | None = None,
        source: str = "",
    ) -> Receipt:
        """Credit a payment once per ``payment_id`` (see the module doc)."""
        ...

    def pay_many(self, orders: Sequence[PaymentOrder]) -> list[Receipt | CisError]:
        """Credit many payments (one result per order, in order; errors are not raised)."""
        ...

    def refund(
        self,
        account_no: str,
        amount_fen: int,
        refund_id: str,
        *,
        at: datetime | None = None,
        source: str = "",
    ) -> Receipt:
        """Pay money back, at most the CIS balance; once per ``refund_id``."""
        ...

    def settle(self, items: Sequence[SettlementItem]) -> SettlementReport:
        """Deduct the platform's charges in the CIS, once per settlement id."""
        ...

    def find(self, kind: MovementKind, operation_id: str) -> Movement | None:
        """The movement of that kind and id (a payment by its payment id…), if any."""
        ...

    def movements(self, account_no: str, *, limit: int | None = None) -> list[Movement]:
        """The account's movements, newest first (``limit`` of them)."""
        ...

    def record_rejections(self, items: Sequence[Rejection]) -> None:
        """Keep refused operations (bad CSV rows, refused refunds…) for the record."""
        ...
