"""Local fee control (本地费控): vending credit to card meters and reconciling their wallets.

A customer on local fee control (``prepaid_account.fee_control_mode = 'local'``) buys
credit at the vending office (售电); the money goes on a card (用户卡) that the meter
takes, and the meter itself deducts as energy is used. :class:`Vending` does:

- **Sell** (:meth:`Vending.sell`, role action ``vend``): one sale per *sale id* (the
  office's operation id — asking again with the same id changes nothing and gives the
  same card). The amount (integer fen) is credited like a payment, through the CIS
  (:class:`prepaid.cis.payments.PaymentService`, payment id ``VEND-<sale id>``: credited
  once, the real-time balance re-rated), then the card file is written: the account's
  first sale is an open-account card (开户卡, purchase 1), the next ones purchase cards
  (购电卡) numbered 2, 3, … — the purchase count the meter expects. The card is signed
  by the office's encryption machine (card MAC, :mod:`protocol.card`). A sale is stored
  before the money moves, so a crash in between is finished by selling again with the
  same id; the card is written only once the money is in. Every sale is audited
  (``vend.sell``; a refusal ``vend.sell.refused``).
- **History** (:meth:`Vending.history`): the sales (purchase records) of a customer;
  :meth:`Vending.reissue` writes a replacement card (补卡) for a lost one.
- **Reconcile** (:meth:`Vending.request_remaining`, :meth:`Vending.reconcile`, 对账): the
  meters' remaining amounts (剩余金额) are read through the head-end's service interface
  (``read(address, "remaining")``; the head-end stores the value like any read), then
  each is compared with the ledger: the account's real-time balance (CIS balance minus
  charges rated since the last settlement) without the sales credited after the read.
  Within the tolerance: ``match``; the meter short by exactly the last sale(s):
  ``card-not-inserted`` (the customer has not put the card in yet); otherwise
  ``mismatch`` (to investigate: a meter that deducts at another price, a lost card,
  tampering); no reading: ``not-read``. The rating deducts once a day from the daily
  freeze while the meter deducts continuously, so the tolerance covers a day's usage.
"""

from __future__ import annotations

import builtins
import enum
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Final, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import SQLModel

from protocol.card import Card, CardType, write_card
from protocol.clock import Clock, RealClock
from protocol.security import SimulatedEncryptionMachine

from .audit import AuditLog
from .balance import realtime_balances
from .cis.payments import PaymentService
from .models import FeeControlMode
from .service._population import ACCOUNT, UNIT
from .users import Action, Operator, PermissionDeniedError, require

__all__ = [
    "DEFAULT_TOLERANCE_FEN",
    "MAX_SALE_FEN",
    "REMAINING",
    "REMAINING_DI",
    "MatchState",
    "NotLocalError",
    "ReadPort",
    "Reconciliation",
    "ReconciliationReport",
    "Sale",
    "SaleConflictError",
    "SaleResult",
    "UnknownCustomerError",
    "Vending",
    "VendingError",
    "card_customer_number",
    "vend_sale_table",
]

log = logging.getLogger(__name__)

REMAINING: Final = "remaining"
"""The quantity the head-end's ``read`` is asked for: the meter's remaining amount (剩余金额)."""
REMAINING_DI: Final = 0x00900200
"""Where the head-end stores that read in ``headend_reading`` (its DI, 元)."""
MAX_SALE_FEN: Final = 99_999_999
"""The most a card carries (the meter's wallet holds XXXXXX.XX yuan)."""
DEFAULT_TOLERANCE_FEN: Final = 500
"""±5.00 yuan: the meter deducts continuously, the rating once a day."""
_PAYMENT_PREFIX: Final = "VEND-"
_MAX_SALE_ID: Final = 64 - len(_PAYMENT_PREFIX)


# -- errors ---------------------------------------------------------------------------


class VendingError(Exception):
    """Base class of the errors raised on purpose by :mod:`prepaid.vending`."""


class UnknownCustomerError(VendingError, LookupError):
    """No such (active) customer."""


class NotLocalError(VendingError):
    """The customer is on remote fee control: they pay, they do not buy cards."""


class SaleConflictError(VendingError):
    """The sale id was used for another sale (other customer or amount)."""


# -- the table ------------------------------------------------------------------------

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

vend_sale_table = sa.Table(
    "prepaid_vend_sale",
    SQLModel.metadata,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    sa.Column("sale_id", sa.String(_MAX_SALE_ID), nullable=False),
    sa.Column("account_id", sa.Integer(), sa.ForeignKey("prepaid_account.id"), nullable=False),
    sa.Column("customer_no", sa.String(20), nullable=False),
    sa.Column("meter_address", sa.String(12), nullable=False),
    sa.Column("card_type", sa.String(12), nullable=False),
    sa.Column("purchase_count", sa.Integer(), nullable=False),
    sa.Column("amount_fen", sa.BigInteger(), nullable=False),
    sa.Column("serial", sa.String(32), nullable=False),
    sa.Column("sold_by", sa.String(64), nullable=False),
    sa.Column("sold_at", sa.DateTime(), nullable=False),
    sa.Column("credited_at", sa.DateTime(), nullable=True),
    sa.Column("balance_fen", sa.BigInteger(), nullable=True),
    sa.UniqueConstraint("sale_id", name="uq_prepaid_vend_sale_sale_id"),
    sa.UniqueConstraint("account_id", "purchase_count", name="uq_prepaid_vend_sale_count"),
    sa.CheckConstraint("amount_fen > 0", name="ck_prepaid_vend_sale_amount_fen"),
    sa.CheckConstraint(
        "card_type IN ('open', 'purchase', 'replacement')", name="ck_prepaid_vend_sale_card_type"
    ),
)
_V = vend_sale_table
_reading = sa.table(
    "headend_reading",
    sa.column("meter_address"),
    sa.column("di"),
    sa.column("freeze_date"),
    sa.column("value"),
    sa.column("collected_at"),
)


# -- values ---------------------------------------------------------------------------


def card_customer_number(customer_no: str) -> str:
    """The 12-digit customer number written on the card (the CIS number, zero-padded)."""
    text = customer_no.strip()
    if not text.isdigit() or len(text) > 12:
        raise VendingError(
            f"customer number {customer_no!r} cannot go on a card (at most 12 digits); "
            "local fee control needs a numeric customer number"
        )
    return text.zfill(12)


def _yuan(fen: int) -> str:
    sign = "-" if fen < 0 else ""
    return f"{sign}{abs(fen) // 100}.{abs(fen) % 100:02d}"


@dataclass(frozen=True, slots=True)
class Sale:
    """One sale (售电记录): what went on which card, and whether the money is in."""

    sale_id: str
    customer_no: str
    meter_address: str
    card_type: CardType
    purchase_count: int
    amount_fen: int
    serial: str
    sold_by: str
    sold_at: datetime
    credited_at: datetime | None
    balance_fen: int | None
    """The real-time balance right after the credit."""

    @classmethod
    def from_row(cls, row: Any) -> Sale:
        return cls(
            sale_id=row.sale_id,
            customer_no=row.customer_no,
            meter_address=row.meter_address,
            card_type=CardType(row.card_type),
            purchase_count=int(row.purchase_count),
            amount_fen=int(row.amount_fen),
            serial=row.serial,
            sold_by=row.sold_by,
            sold_at=row.sold_at,
            credited_at=row.credited_at,
            balance_fen=None if row.balance_fen is None else int(row.balance_fen),
        )

    def card(self, machine: SimulatedEncryptionMachine, *, replacement: bool = False) -> Card:
        """The card of this sale, signed (a replacement card 补卡 carries the same purchase:
        a meter that already took it adds nothing)."""
        # an open-account card stays one: a meter never opened takes nothing else
        kind = (
            CardType.REPLACEMENT
            if replacement and self.card_type is not CardType.OPEN
            else self.card_type
        )
        return Card(
            kind,
            card_customer_number(self.customer_no),
            self.serial + ("R" if replacement else ""),
            self.amount_fen,
            self.purchase_count,
        ).signed(machine)

    def to_dict(self) -> dict[str, Any]:
        return {
            "sale_id": self.sale_id,
            "customer_no": self.customer_no,
            "meter_address": self.meter_address,
            "card_type": self.card_type.value,
            "purchase_count": self.purchase_count,
            "amount": _yuan(self.amount_fen),
            "amount_fen": self.amount_fen,
            "serial": self.serial,
            "sold_by": self.sold_by,
            "sold_at": self.sold_at.isoformat(timespec="seconds"),
            "credited_at": (
                self.credited_at.isoformat(timespec="seconds") if self.credited_at else None
            ),
            "balance_fen": self.balance_fen,
        }


@dataclass(frozen=True, slots=True)
class SaleResult:
    """A sale, its card, and whether this call made it (``False``: a repeat)."""

    sale: Sale
    card: Card
    new: bool
    card_path: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.sale.to_dict(),
            "new": self.new,
            "card_file": str(self.card_path) if self.card_path else None,
        }


class ReadPort(Protocol):
    """What reconciliation needs of the head-end (:class:`headend.service.HeadendService`):
    queue a read of a named quantity; the same ``job_id`` asked again is the same job."""

    def read(self, address: str, what: str, *, job_id: str | None = None) -> str: ...


class MatchState(enum.StrEnum):
    MATCH = "match"
    """The meter's remaining amount is the ledger's, within the tolerance."""
    NOT_INSERTED = "card-not-inserted"
    """The meter is short by exactly the last sale(s): the card is not in the meter yet."""
    MISMATCH = "mismatch"
    """Anything else: to investigate."""
    NOT_READ = "not-read"
    """No remaining amount from the meter yet (read it: ``request_remaining``)."""


@dataclass(frozen=True, slots=True)
class Reconciliation:
    """One card meter against the ledger (fen)."""

    customer_no: str
    meter_address: str
    state: MatchState
    meter_fen: int | None
    ledger_fen: int
    """The real-time balance without the sales credited after the read (≥ 0: a meter's
    remaining amount is never negative)."""
    read_at: datetime | None
    not_inserted: tuple[str, ...] = ()
    """Sale ids of the cards the meter has not taken (``card-not-inserted``)."""

    @property
    def difference_fen(self) -> int | None:
        return None if self.meter_fen is None else self.meter_fen - self.ledger_fen

    def to_dict(self) -> dict[str, Any]:
        diff = self.difference_fen
        return {
            "customer_no": self.customer_no,
            "meter_address": self.meter_address,
            "state": self.state.value,
            "meter": None if self.meter_fen is None else _yuan(self.meter_fen),
            "ledger": _yuan(self.ledger_fen),
            "difference": None if diff is None else _yuan(diff),
            "read_at": self.read_at.isoformat(timespec="seconds") if self.read_at else None,
            "not_inserted": list(self.not_inserted),
        }


@dataclass(slots=True)
class ReconciliationReport:
    at: datetime
    tolerance_fen: int
    rows: list[Reconciliation] = field(default_factory=list)

    def count(self, state: MatchState) -> int:
        return sum(1 for r in self.rows if r.state is state)

    @property
    def mismatches(self) -> builtins.list[Reconciliation]:
        """Rows that need a look: anything but ``match``."""
        return [r for r in self.rows if r.state is not MatchState.MATCH]

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(timespec="seconds"),
            "tolerance": _yuan(self.tolerance_fen),
            **{state.value: self.count(state) for state in MatchState},
            "rows": [r.to_dict() for r in self.rows],
        }


# -- the service ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Customer:
    account_id: int
    customer_no: str
    meter_address: str
    supply_unit: str
    mode: str
    active: bool


def _customer(conn: Connection, customer_no: str) -> _Customer:
    a, u = ACCOUNT, UNIT
    row = conn.execute(
        sa.select(
            a.c.id,
            a.c.customer_no,
            a.c.meter_address,
            u.c.code,
            a.c.fee_control_mode,
            a.c.active,
        )
        .select_from(a.join(u, u.c.id == a.c.supply_unit_id))
        .where(a.c.customer_no == customer_no.strip())
    ).first()
    if row is None:
        raise UnknownCustomerError(f"no customer {customer_no!r}: check the customer number (户号)")
    return _Customer(int(row[0]), row[1], row[2], row[3], row[4], bool(row[5]))


def _check_amount(amount_fen: object) -> int:
    if isinstance(amount_fen, bool) or not isinstance(amount_fen, int):
        raise VendingError(f"the amount must be whole fen (an integer), got {amount_fen!r}")
    if not 0 < amount_fen <= MAX_SALE_FEN:
        raise VendingError(
            f"the amount {_yuan(amount_fen)} yuan is out of range: sell 0.01 to "
            f"{_yuan(MAX_SALE_FEN)} yuan"
        )
    return amount_fen


def _check_sale_id(sale_id: object) -> str:
    text = sale_id.strip() if isinstance(sale_id, str) else ""
    if not text or len(text) > _MAX_SALE_ID or not text.isprintable():
        raise VendingError(
            f"sale id {sale_id!r} must be 1 to {_MAX_SALE_ID} printable characters "
            "(the office's operation number)"
        )
    return text


class Vending:
    """The vending office of a prepaid database (see the module doc).

    ``payments`` credits the money (its CIS and re-rating); ``machine`` signs cards.
    """

    def __init__(
        self,
        engine: Engine,
        payments: PaymentService,
        machine: SimulatedEncryptionMachine,
        *,
        clock: Clock | None = None,
        audit: AuditLog | None = None,
    ) -> None:
        self.engine = engine
        self.payments = payments
        self.machine = machine
        self.clock: Clock = clock or payments.clock or RealClock()
        self.audit = audit or AuditLog(engine, self.clock)

    # -- selling --------------------------------------------------------------------

    def sell(
        self,
        customer_no: str,
        amount_fen: int,
        sale_id: str,
        *,
        by: Operator,
        card_path: Path | None = None,
    ) -> SaleResult:
        """Sell ``amount_fen`` to a local customer as sale ``sale_id``; write the card to
        ``card_path`` when given. Idempotent by ``sale_id`` (see the module doc)."""
        try:
            sale, new = self._record(customer_no, amount_fen, sale_id, by)
        except (VendingError, PermissionDeniedError) as exc:
            self._refused(by, customer_no, sale_id, amount_fen, exc)
            raise
        if sale.credited_at is None:
            sale = self._credit(sale)
        card = sale.card(self.machine)
        if card_path is not None:
            write_card(card_path, card)
        return SaleResult(sale, card, new, card_path)

    def _record(
        self, customer_no: str, amount_fen: int, sale_id: str, by: Operator
    ) -> tuple[Sale, bool]:
        amount = _check_amount(amount_fen)
        ident = _check_sale_id(sale_id)
        with self.engine.begin() as conn:
            customer = _customer(conn, customer_no)
            require(by, Action.VEND, supply_unit=customer.supply_unit)
            existing = conn.execute(sa.select(_V).where(_V.c.sale_id == ident)).first()
            if existing is not None:
                sale = Sale.from_row(existing)
                if sale.customer_no != customer.customer_no or sale.amount_fen != amount:
                    raise SaleConflictError(
                        f"sale id {ident!r} is sale {sale.purchase_count} of customer "
                        f"{sale.customer_no} ({_yuan(sale.amount_fen)} yuan); give this "
                        "sale a new id"
                    )
                return sale, False
            if customer.mode != FeeControlMode.LOCAL.value:
                raise NotLocalError(
                    f"customer {customer.customer_no} is on {customer.mode} fee control: "
                    "take a payment (feikong cis pay), not a card sale"
                )
            if not customer.active:
                raise UnknownCustomerError(
                    f"customer {customer.customer_no} is closed (inactive): no sale"
                )
            card_customer_number(customer.customer_no)
            last = conn.execute(
                sa.select(sa.func.max(_V.c.purchase_count)).where(
                    _V.c.account_id == customer.account_id
                )
            ).scalar()
            count = int(last or 0) + 1
            kind = CardType.OPEN if count == 1 else CardType.PURCHASE
            now = self.clock.now()
            values = {
                "sale_id": ident,
                "account_id": customer.account_id,
                "customer_no": customer.customer_no,
                "meter_address": customer.meter_address,
                "card_type": kind.value,
                "purchase_count": count,
                "amount_fen": amount,
                "serial": f"{customer.customer_no}-{count:04d}",
                "sold_by": by.login,
                "sold_at": now,
            }
            try:
                conn.execute(sa.insert(_V).values(**values))
            except IntegrityError:
                raise VendingError(
                    f"another sale for customer {customer.customer_no} was recorded at the "
                    "same moment; sell again (with the same sale id)"
                ) from None
            self.audit.record(
                by,
                "vend.sell",
                f"customer:{customer.customer_no}",
                {
                    "sale_id": ident,
                    "amount_fen": amount,
                    "purchase_count": count,
                    "card_type": kind.value,
                },
                connection=conn,
            )
            row = conn.execute(sa.select(_V).where(_V.c.sale_id == ident)).one()
        log.info("sale %s: %s yuan to %s (card %d)", ident, _yuan(amount), customer_no, count)
        return Sale.from_row(row), True

    def _credit(self, sale: Sale) -> Sale:
        outcome = self.payments.pay(
            sale.customer_no,
            sale.amount_fen,
            _PAYMENT_PREFIX + sale.sale_id,
            paid_at=sale.sold_at,
            source="vend",
        )
        with self.engine.begin() as conn:
            conn.execute(
                sa.update(_V)
                .where(_V.c.sale_id == sale.sale_id, _V.c.credited_at.is_(None))
                .values(credited_at=self.clock.now(), balance_fen=outcome.balance.realtime_fen)
            )
            row = conn.execute(sa.select(_V).where(_V.c.sale_id == sale.sale_id)).one()
        return Sale.from_row(row)

    def _refused(
        self, by: Operator, customer_no: str, sale_id: str, amount: object, exc: Exception
    ) -> None:
        try:
            self.audit.record(
                by,
                "vend.sell.refused",
                f"customer:{str(customer_no)[:40]}",
                {"sale_id": str(sale_id)[:64], "amount": str(amount)[:32], "reason": str(exc)},
            )
        except Exception:
            log.exception("could not audit a refused sale")
        log.info("sale %r refused: %s", sale_id, exc)

    def reissue(self, sale_id: str, *, by: Operator, card_path: Path | None = None) -> Card:
        """A replacement card (补卡) for a sale whose card was lost: the same purchase
        (count and amount), so a meter that took the first card adds nothing, and one
        that did not is credited once. Only a credited sale; audited (``vend.reissue``)."""
        sale = self.get(sale_id)
        try:
            with self.engine.connect() as conn:
                customer = _customer(conn, sale.customer_no)
            require(by, Action.VEND, supply_unit=customer.supply_unit)
            if sale.credited_at is None:
                raise VendingError(
                    f"sale {sale.sale_id} is not credited yet: sell it again with the same "
                    "sale id to finish it"
                )
        except (VendingError, PermissionDeniedError) as exc:
            self._refused(by, sale.customer_no, sale_id, sale.amount_fen, exc)
            raise
        card = sale.card(self.machine, replacement=True)
        self.audit.record(
            by,
            "vend.reissue",
            f"customer:{sale.customer_no}",
            {"sale_id": sale.sale_id, "purchase_count": sale.purchase_count, "serial": card.serial},
        )
        if card_path is not None:
            write_card(card_path, card)
        return card

    # -- reading --------------------------------------------------------------------

    def get(self, sale_id: str) -> Sale:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(_V).where(_V.c.sale_id == sale_id.strip())).first()
        if row is None:
            raise VendingError(f"no sale {sale_id!r}: check the id (feikong vend history)")
        return Sale.from_row(row)

    def history(self, customer_no: str, *, limit: int | None = None) -> builtins.list[Sale]:
        """The customer's sales (购电记录), latest first."""
        with self.engine.connect() as conn:
            customer = _customer(conn, customer_no)
            query = (
                sa.select(_V)
                .where(_V.c.account_id == customer.account_id)
                .order_by(_V.c.purchase_count.desc())
            )
            if limit is not None:
                query = query.limit(limit)
            return [Sale.from_row(r) for r in conn.execute(query)]

    # -- reconciliation -------------------------------------------------------------

    def _local_accounts(
        self, conn: Connection, customers: Sequence[str] | None
    ) -> Iterator[tuple[int, str, str]]:
        a = ACCOUNT
        query = sa.select(a.c.id, a.c.customer_no, a.c.meter_address).where(
            a.c.fee_control_mode == FeeControlMode.LOCAL.value, a.c.active
        )
        if customers:
            query = query.where(a.c.customer_no.in_([c.strip() for c in customers]))
        for row in conn.execute(query.order_by(a.c.id)):
            yield int(row[0]), str(row[1]), str(row[2])

    def request_remaining(
        self, port: ReadPort, customers: Sequence[str] | None = None
    ) -> builtins.list[str]:
        """Queue a remaining-amount read of each local customer's meter (all, or
        ``customers``); returns the job ids (one per meter and minute: asking again
        at once queues nothing new)."""
        stamp = self.clock.now().strftime("%Y%m%d%H%M")
        with self.engine.connect() as conn:
            meters = [m for _, _, m in self._local_accounts(conn, customers)]
        return [port.read(m, REMAINING, job_id=f"vend-remaining-{stamp}-{m}") for m in meters]

    def reconcile(
        self,
        customers: Sequence[str] | None = None,
        *,
        tolerance_fen: int = DEFAULT_TOLERANCE_FEN,
    ) -> ReconciliationReport:
        """Each local customer's last remaining-amount read against the ledger."""
        if tolerance_fen < 0:
            raise VendingError("the tolerance must not be negative")
        report = ReconciliationReport(self.clock.now(), tolerance_fen)
        with self.engine.connect() as conn:
            accounts = list(self._local_accounts(conn, customers))
            ids = [i for i, _, _ in accounts]
            balances = realtime_balances(conn, ids) if ids else {}
            for chunk in _chunks(accounts, 500):
                reads = self._last_reads(conn, [m for _, _, m in chunk])
                sales = self._sales(conn, [i for i, _, _ in chunk])
                for ident, customer_no, meter in chunk:
                    balance = balances.get(ident)
                    report.rows.append(
                        _match(
                            customer_no,
                            meter,
                            balance.realtime_fen if balance is not None else 0,
                            reads.get(meter),
                            sales.get(ident, []),
                            tolerance_fen,
                        )
                    )
        return report

    @staticmethod
    def _last_reads(
        conn: Connection, meters: Sequence[str]
    ) -> dict[str, tuple[int | None, datetime | None]]:
        r = _reading
        last = (
            sa.select(r.c.meter_address, sa.func.max(r.c.freeze_date).label("day"))
            .where(r.c.meter_address.in_(meters), r.c.di == REMAINING_DI)
            .group_by(r.c.meter_address)
            .subquery()
        )
        rows = conn.execute(
            sa.select(r.c.meter_address, r.c.value, r.c.collected_at).join(
                last,
                sa.and_(
                    last.c.meter_address == r.c.meter_address,
                    last.c.day == r.c.freeze_date,
                    r.c.di == REMAINING_DI,
                ),
            )
        )
        out: dict[str, tuple[int | None, datetime | None]] = {}
        for meter, value, at in rows:
            try:
                fen: int | None = int(Decimal(str(value)) * 100)
            except (InvalidOperation, ValueError):
                log.warning("meter %s: remaining amount %r is not a number", meter, value)
                fen = None
            when = at.replace(tzinfo=None) if isinstance(at, datetime) else None
            out[str(meter)] = (fen, when)
        return out

    @staticmethod
    def _sales(conn: Connection, ids: Sequence[int]) -> dict[int, builtins.list[Sale]]:
        out: dict[int, builtins.list[Sale]] = {}
        rows = conn.execute(
            sa.select(_V)
            .where(_V.c.account_id.in_(ids), _V.c.credited_at.is_not(None))
            .order_by(_V.c.account_id, _V.c.purchase_count.desc())
        )
        for row in rows:
            out.setdefault(int(row.account_id), []).append(Sale.from_row(row))
        return out


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _match(
    customer_no: str,
    meter: str,
    balance_fen: int,
    read: tuple[int | None, datetime | None] | None,
    sales: Sequence[Sale],
    tolerance: int,
) -> Reconciliation:
    """Compare one meter with the ledger (``sales``: credited, latest first)."""
    if read is None or read[0] is None:
        return Reconciliation(
            customer_no, meter, MatchState.NOT_READ, None, max(balance_fen, 0), None
        )
    meter_fen: int = read[0]
    read_at = read[1]
    # a sale credited after the read cannot be on the meter yet
    later = [s for s in sales if read_at is not None and s.credited_at and s.credited_at > read_at]
    ledger = max(balance_fen - sum(s.amount_fen for s in later), 0)
    diff = meter_fen - ledger
    if abs(diff) <= tolerance:
        return Reconciliation(customer_no, meter, MatchState.MATCH, meter_fen, ledger, read_at)
    earlier = [s for s in sales if s not in later]
    missing = 0
    for n, sale in enumerate(earlier, start=1):
        missing += sale.amount_fen
        if abs(diff + missing) <= tolerance:
            ids = tuple(s.sale_id for s in earlier[:n])
            return Reconciliation(
                customer_no, meter, MatchState.NOT_INSERTED, meter_fen, ledger, read_at, ids
            )
        if missing > -diff + tolerance:
            break
    return Reconciliation(customer_no, meter, MatchState.MISMATCH, meter_fen, ledger, read_at)
