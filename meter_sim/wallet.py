"""The money of a local (card) prepay meter (本地费控电能表的电子钱包).

A :class:`Wallet` holds what the meter's ESAM wallet holds: the remaining amount
(剩余金额), the overdraft amount (透支金额), the purchase count (购电次数) and the
customer number (客户编号), plus the limits that drive the alarm and trip ladder
(PROTOCOL.md §4). It is pure logic: no I/O, no clock of its own — the meter tells
it how much energy was used at which price and when a purchase arrives.

Money is integer fen. Deduction is exact: energy (0.01 kWh) × price (1e-4 yuan/kWh)
is 1e-6 yuan; whole fen are taken from the wallet and the rest is carried to the
next deduction, so nothing is lost or charged twice however often the meter is
read.

Alarm and trip ladder (``Alarmstatus_Judge``):

=========================================  ==================  =================================
condition                                  level               relay
=========================================  ==================  =================================
remaining > alarm 1                        NORMAL              closed
alarm 2 < remaining ≤ alarm 1              ALARM1              closed (alarm shown)
0 < remaining ≤ alarm 2                    ALARM2 (pre-trip)   opens; may be re-closed once
remaining = 0, overdraft < limit           ZERO                opens; may be re-closed once,
                                                               then runs on credit
overdraft ≥ limit (or limit 0 at zero)     MAX_OVERDRAFT       open until a purchase leaves
                                                               remaining > close-permit amount
=========================================  ==================  =================================

Recharge rules (card or 03H 070102FF): the customer number must match; the
purchase count must be the meter's count + 1 (equal: already applied, no credit —
"duplicate"; otherwise a count error); the overdraft is paid first; the result may
not exceed the hoarding limit (囤积金额限值) when one is set, nor 999999.99 yuan.
"""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass, field
from datetime import datetime
from enum import IntEnum
from typing import Any

from protocol import SecurityErrorWord

__all__ = [
    "MAX_AMOUNT_FEN",
    "AlarmLevel",
    "PrepayLimits",
    "Purchase",
    "RechargeError",
    "Wallet",
]

MAX_AMOUNT_FEN = 99_999_999
"""The largest amount an XXXXXX.XX register holds (999999.99 yuan)."""
_FEN_E6 = 10_000
"""1 fen in 1e-6 yuan."""


class RechargeError(Exception):
    """A purchase the meter refuses; ``serr`` is the SERR word to answer with."""

    def __init__(self, message: str, serr: SecurityErrorWord) -> None:
        super().__init__(message)
        self.serr = serr


class AlarmLevel(IntEnum):
    """Where the wallet stands on the alarm and trip ladder."""

    NORMAL = 0
    ALARM1 = 1
    """报警金额1: alarm shown, relay stays closed."""
    ALARM2 = 2
    """报警金额2: pre-trip — the relay opens; the customer may re-close once."""
    ZERO = 3
    """Remaining is zero: relay opens; re-close once and use credit (透支)."""
    MAX_OVERDRAFT = 4
    """Overdraft limit reached: open until recharged above the close-permit amount."""


@dataclass(frozen=True, slots=True)
class PrepayLimits:
    """The money limits written to the meter (04001001..05), in fen."""

    alarm1_fen: int = 2000
    alarm2_fen: int = 1000
    overdraft_limit_fen: int = 500
    hoarding_limit_fen: int = 0
    """0 = no hoarding limit."""
    close_permit_fen: int = 0

    def __post_init__(self) -> None:
        for name in (
            "alarm1_fen",
            "alarm2_fen",
            "overdraft_limit_fen",
            "hoarding_limit_fen",
            "close_permit_fen",
        ):
            value = getattr(self, name)
            if not 0 <= value <= MAX_AMOUNT_FEN:
                raise ValueError(f"{name} must be 0..{MAX_AMOUNT_FEN} fen, got {value}")
        if self.alarm2_fen > self.alarm1_fen:
            raise ValueError(
                f"alarm amount 2 ({self.alarm2_fen} fen) must not exceed alarm amount 1 "
                f"({self.alarm1_fen} fen)"
            )


@dataclass(frozen=True, slots=True)
class Purchase:
    """One purchase record (0333 DIs): the nth previous purchase."""

    time: datetime
    count: int
    """Total purchase count after this purchase."""
    amount_fen: int
    remaining_before_fen: int
    remaining_after_fen: int
    cumulative_fen: int
    """Cumulative amount purchased after this purchase."""


@dataclass(slots=True)
class Wallet:
    """Remaining and overdraft amounts, purchase count, limits and the ladder state."""

    limits: PrepayLimits = field(default_factory=PrepayLimits)
    customer_number: str | None = None
    """None until the account is opened (开户)."""
    remaining_fen: int = 0
    overdraft_fen: int = 0
    purchase_count: int = 0
    cumulative_fen: int = 0
    residue_e6: int = 0
    """Sub-fen part of the energy cost not yet deducted (0 ≤ residue < 1 fen)."""
    reclosed_at: AlarmLevel | None = None
    """The ladder level at which the customer used the one re-close (button / card)."""
    purchases: deque[Purchase] = field(default_factory=lambda: deque(maxlen=10))

    @property
    def opened(self) -> bool:
        return self.customer_number is not None

    # -- the ladder ---------------------------------------------------------------

    @property
    def level(self) -> AlarmLevel:
        lim = self.limits
        if self.remaining_fen <= 0:
            if self.overdraft_fen >= lim.overdraft_limit_fen:
                return AlarmLevel.MAX_OVERDRAFT
            return AlarmLevel.ZERO
        if self.remaining_fen <= lim.alarm2_fen:
            return AlarmLevel.ALARM2
        if self.remaining_fen <= lim.alarm1_fen:
            return AlarmLevel.ALARM1
        return AlarmLevel.NORMAL

    @property
    def wants_open(self) -> bool:
        """True when the money condition wants the relay open (独立于远程命令)."""
        level = self.level
        if level == AlarmLevel.MAX_OVERDRAFT:
            return True
        if level in (AlarmLevel.ALARM2, AlarmLevel.ZERO):
            return self.reclosed_at is None or self.reclosed_at < level
        return False

    def reclose(self) -> bool:
        """The customer presses the button / inserts the card to re-close once.

        Returns True if the money condition now lets the relay close.
        """
        level = self.level
        if level in (AlarmLevel.ALARM2, AlarmLevel.ZERO) and self.wants_open:
            self.reclosed_at = level
        return not self.wants_open

    # -- spending -------------------------------------------------------------------

    def deduct(self, energy_ckwh: int, price_e4: int) -> int:
        """Take the cost of ``energy_ckwh`` (0.01 kWh) at ``price_e4`` (1e-4 yuan/kWh).

        Remaining goes down to zero, then the overdraft goes up. Returns the fen
        actually deducted (remaining + overdraft) by this call.
        """
        if energy_ckwh < 0 or price_e4 < 0:
            raise ValueError("energy and price must not be negative")
        total = self.residue_e6 + energy_ckwh * price_e4
        fen, self.residue_e6 = divmod(total, _FEN_E6)
        if not fen:
            return 0
        take = min(fen, self.remaining_fen)
        self.remaining_fen -= take
        self.overdraft_fen = min(MAX_AMOUNT_FEN, self.overdraft_fen + fen - take)
        return fen

    # -- buying ---------------------------------------------------------------------

    def open_account(
        self, customer_number: str, amount_fen: int, count: int, when: datetime
    ) -> Purchase:
        """开户: set the customer number and take the first purchase (count is usually 1)."""
        if self.opened and self.customer_number != customer_number:
            raise RechargeError(
                f"meter already opened for customer {self.customer_number}, not {customer_number}",
                SecurityErrorWord.CUSTOMER_MISMATCH,
            )
        if self.opened:
            return self.recharge(customer_number, amount_fen, count, when)
        self.customer_number = customer_number
        self.purchase_count = count - 1
        return self.recharge(customer_number, amount_fen, count, when)

    def recharge(
        self, customer_number: str, amount_fen: int, count: int, when: datetime
    ) -> Purchase:
        """充值: credit ``amount_fen`` as purchase number ``count`` (exactly once)."""
        if not self.opened:
            raise RechargeError(
                "the account is not opened: insert the open-account card first",
                SecurityErrorWord.CUSTOMER_MISMATCH,
            )
        if customer_number != self.customer_number:
            raise RechargeError(
                f"customer number {customer_number} does not match the meter's "
                f"{self.customer_number}",
                SecurityErrorWord.CUSTOMER_MISMATCH,
            )
        if count == self.purchase_count:
            raise RechargeError(
                f"purchase {count} was already credited: no money added",
                SecurityErrorWord.DUPLICATE_RECHARGE,
            )
        if count != self.purchase_count + 1:
            raise RechargeError(
                f"purchase count {count} does not follow the meter's {self.purchase_count}",
                SecurityErrorWord.RECHARGE_COUNT_ERROR,
            )
        if amount_fen < 0:
            raise RechargeError(f"amount {amount_fen} fen is negative", SecurityErrorWord.OTHER)
        new_remaining = self.remaining_fen + amount_fen
        overdraft = self.overdraft_fen
        if new_remaining < overdraft:
            remaining, overdraft = 0, overdraft - new_remaining
        else:
            remaining, overdraft = new_remaining - overdraft, 0
        hoard = self.limits.hoarding_limit_fen
        if hoard and remaining > hoard:
            raise RechargeError(
                f"remaining would be {remaining / 100:.2f} yuan, above the hoarding limit "
                f"{hoard / 100:.2f} yuan",
                SecurityErrorWord.HOARDING_EXCEEDED,
            )
        if remaining > MAX_AMOUNT_FEN:
            raise RechargeError("remaining would overflow 999999.99 yuan", SecurityErrorWord.OTHER)
        record = Purchase(
            when, count, amount_fen, self.remaining_fen, remaining, self.cumulative_fen + amount_fen
        )
        self.remaining_fen, self.overdraft_fen = remaining, overdraft
        self.purchase_count = count
        self.cumulative_fen += amount_fen
        self.purchases.appendleft(record)
        if self.level < AlarmLevel.ALARM2 or remaining > self.limits.close_permit_fen:
            self.reclosed_at = None
        return record

    @property
    def max_overdraft_lock(self) -> bool:
        """Open and locked until a purchase lifts remaining above the close-permit amount."""
        return self.level == AlarmLevel.MAX_OVERDRAFT

    # -- state ----------------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        return {
            "limits": asdict(self.limits),
            "customer_number": self.customer_number,
            "remaining_fen": self.remaining_fen,
            "overdraft_fen": self.overdraft_fen,
            "purchase_count": self.purchase_count,
            "cumulative_fen": self.cumulative_fen,
            "residue_e6": self.residue_e6,
            "reclosed_at": None if self.reclosed_at is None else int(self.reclosed_at),
            "purchases": [{**asdict(p), "time": p.time.isoformat()} for p in self.purchases],
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Wallet:
        try:
            wallet = cls(
                limits=PrepayLimits(**state["limits"]),
                customer_number=state["customer_number"],
                remaining_fen=int(state["remaining_fen"]),
                overdraft_fen=int(state["overdraft_fen"]),
                purchase_count=int(state["purchase_count"]),
                cumulative_fen=int(state["cumulative_fen"]),
                residue_e6=int(state["residue_e6"]),
                reclosed_at=None
                if state["reclosed_at"] is None
                else AlarmLevel(state["reclosed_at"]),
            )
            for p in state["purchases"]:
                wallet.purchases.append(
                    Purchase(**{**p, "time": datetime.fromisoformat(p["time"])})
                )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"wallet state is not valid: {exc}") from None
        return wallet
