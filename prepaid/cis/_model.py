"""Values of the CIS adapter: money in fen, movements, receipts and settlements.

Money is ``int`` fen (0.01 yuan) everywhere; :func:`parse_yuan` is the one way in from
text (``"100.00"``) and :func:`format_fen` the one way out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any, Final

from ._errors import AmountError, UnknownAccountError

__all__ = [
    "MAX_AMOUNT_FEN",
    "MAX_OPERATION_ID",
    "Movement",
    "MovementKind",
    "Receipt",
    "SettlementItem",
    "SettlementReport",
    "check_account_no",
    "check_operation_id",
    "format_fen",
    "parse_yuan",
]

#: The largest single payment or refund accepted: 10 million yuan.
MAX_AMOUNT_FEN: Final = 1_000_000_000
MAX_ACCOUNT_NO: Final = 32
MAX_OPERATION_ID: Final = 64


class MovementKind(StrEnum):
    """What moved money on a CIS account.

    ``payment`` 缴费 (credit), ``refund`` 退费 (debit), ``settlement`` 电费结算 (the
    platform's charges deducted in the CIS, a debit), ``opening`` 期初余额 (the balance an
    account had when it came into the ledger, either sign).
    """

    PAYMENT = "payment"
    REFUND = "refund"
    SETTLEMENT = "settlement"
    OPENING = "opening"


def parse_yuan(value: object, *, what: str = "amount") -> int:
    """A positive amount in yuan (``"100.00"``, ``Decimal``, ``int``) → fen.

    At most 2 decimals, more than 0, at most 10 million yuan; a binary float is refused
    (it is not exact). Raises :class:`AmountError` naming ``what``.
    """
    if isinstance(value, (bool, float)):
        raise AmountError(f"{what} {value!r}: give yuan as a decimal string, e.g. 100.00")
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, str):
        text = value.strip().replace(",", "").removeprefix("¥").removesuffix("元").strip()
        try:
            number = Decimal(text)
        except InvalidOperation:
            raise AmountError(
                f"{what} {value!r} is not a number of yuan; write it like 100.00"
            ) from None
    else:
        raise AmountError(f"{what} {value!r} is not a number of yuan; write it like 100.00")
    if not number.is_finite():
        raise AmountError(f"{what} {value!r} is not a number of yuan; write it like 100.00")
    fen = number.scaleb(2)
    if fen != fen.to_integral_value():
        raise AmountError(f"{what} {value!r} has more than 2 decimals (fen are the smallest unit)")
    if fen <= 0:
        raise AmountError(f"{what} {value!r} must be more than 0 yuan")
    if fen > MAX_AMOUNT_FEN:
        raise AmountError(f"{what} {value!r} is more than {format_fen(MAX_AMOUNT_FEN)} yuan")
    return int(fen)


def format_fen(fen: int) -> str:
    """``12345`` → ``'123.45'``, ``-5`` → ``'-0.05'`` (exact, no float)."""
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    return f"{sign}{whole}.{cents:02d}"


def check_account_no(account_no: str) -> str:
    """The account number stripped; raises :class:`UnknownAccountError` when malformed."""
    text = account_no.strip() if isinstance(account_no, str) else ""
    if not text or len(text) > MAX_ACCOUNT_NO or not text.isprintable():
        raise UnknownAccountError(
            f"account number {account_no!r} must be 1 to {MAX_ACCOUNT_NO} printable characters"
        )
    return text


def check_operation_id(operation_id: str, *, what: str = "payment id") -> str:
    """A payment / refund / settlement id stripped; empty or over-long ids are refused."""
    text = operation_id.strip() if isinstance(operation_id, str) else ""
    if not text or len(text) > MAX_OPERATION_ID or not text.isprintable():
        raise AmountError(
            f"{what} {operation_id!r} must be 1 to {MAX_OPERATION_ID} printable characters "
            "(the CIS serial number of the transaction)"
        )
    return text


@dataclass(frozen=True, slots=True)
class Movement:
    """One row of the ledger (账户流水): money in (+) or out (−) of a CIS account."""

    id: int
    account_no: str
    kind: MovementKind
    operation_id: str
    amount_fen: int
    balance_after_fen: int
    occurred_at: datetime
    recorded_at: datetime
    source: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "account_no": self.account_no,
            "kind": self.kind.value,
            "operation_id": self.operation_id,
            "amount": format_fen(self.amount_fen),
            "balance_after": format_fen(self.balance_after_fen),
            "occurred_at": self.occurred_at.isoformat(sep=" "),
            "recorded_at": self.recorded_at.isoformat(sep=" "),
            "source": self.source,
        }


@dataclass(frozen=True, slots=True)
class Receipt:
    """The result of a payment or a refund.

    ``amount_fen`` is positive for both kinds; ``balance_fen`` is the CIS balance right
    after the movement (the original one for a ``duplicate``). ``duplicate`` is true when
    the id had already been applied: nothing moved this time.
    """

    kind: MovementKind
    operation_id: str
    account_no: str
    amount_fen: int
    balance_fen: int
    movement_id: int
    occurred_at: datetime
    duplicate: bool = False

    @classmethod
    def of(cls, movement: Movement, *, duplicate: bool) -> Receipt:
        return cls(
            kind=movement.kind,
            operation_id=movement.operation_id,
            account_no=movement.account_no,
            amount_fen=abs(movement.amount_fen),
            balance_fen=movement.balance_after_fen,
            movement_id=movement.id,
            occurred_at=movement.occurred_at,
            duplicate=duplicate,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "id": self.operation_id,
            "account_no": self.account_no,
            "amount": format_fen(self.amount_fen),
            "cis_balance": format_fen(self.balance_fen),
            "movement_id": self.movement_id,
            "occurred_at": self.occurred_at.isoformat(sep=" "),
            "duplicate": self.duplicate,
        }


@dataclass(frozen=True, slots=True)
class SettlementItem:
    """Charges of one account through ``through_day`` to deduct in the CIS (电费结算).

    ``settlement_id`` makes it idempotent: settling the same id twice deducts once.
    ``amount_fen`` may be 0 or negative (a cumulative-rating correction gives money back).
    """

    settlement_id: str
    account_no: str
    amount_fen: int
    through_day: date


@dataclass(frozen=True, slots=True)
class SettlementReport:
    """What a settlement did: items applied now, items already applied before, the sum."""

    applied: int = 0
    already: int = 0
    amount_fen: int = 0

    def __add__(self, other: SettlementReport) -> SettlementReport:
        return SettlementReport(
            self.applied + other.applied,
            self.already + other.already,
            self.amount_fen + other.amount_fen,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "applied": self.applied,
            "already": self.already,
            "amount": format_fen(self.amount_fen),
        }
