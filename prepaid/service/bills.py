"""Monthly bill messages (月度账单短信): last and this month's readings, usage, charge, balance.

The bill of month M (e.g. March 2026) is sent once per customer and month, after M
is over:

- **last month's reading** (上月示数): the daily freeze dated the 1st of M (the
  register at 00:00 when M began), or the latest freeze before it when that one is
  missing;
- **this month's reading** (本月示数): the freeze dated the 1st of M+1 (the register
  when M ended), or the latest one inside M when that one is missing;
- **usage** = this − last; **charge** = what rating deducted for the billing period M
  (Σ ``prepaid_charge.amount_fen`` of period M, so the figure the CIS bills);
- **balance** = the real-time balance when the bill is sent.

An account without both readings gets no bill (it is counted and listed: its
readings are missing), nor one whose rating has not reached the end of M yet (its
charge would be short; counted as ``not_rated``: rate, then run again).

Selection and figures are one SQL statement (readings by primary-key lookups, the
month's charges by one grouped scan), messages are stored in bulk;
``prepaid_monthly_bill`` keeps each bill as sent, so a second run of the same month
sends nothing new.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from headend.collection import FORWARD_BLOCK_DI
from headend.models import Reading
from protocol.clock import Clock

from ..messages import Channel, Lang, MessageKind, Recipient, TemplateSet, default_templates
from ..models import Charge, day_date, day_number
from ..settings import SettingsStore
from ._bulk import Outgoing, enqueue_many
from ._errors import BillError
from ._population import FETCH_CHUNK, Population, Selection, chunks
from .tables import monthly_bill

__all__ = ["BillReport", "MonthlyBill", "list_bills", "month_start", "send_monthly_bills"]

log = logging.getLogger(__name__)

READING: Final[sa.Table] = Reading.__table__  # type: ignore[attr-defined]
CHARGE: Final[sa.Table] = Charge.__table__  # type: ignore[attr-defined]
_SHOW_MISSING: Final = 20

Progress = Callable[[int], None]


def month_start(day: date) -> date:
    return day.replace(day=1)


def _next_month(first: date) -> date:
    return (first + timedelta(days=32)).replace(day=1)


@dataclass(frozen=True, slots=True)
class MonthlyBill:
    """A monthly bill as sent (a row of ``prepaid_monthly_bill``)."""

    customer_no: str
    month: date
    last_reading_ckwh: int
    this_reading_ckwh: int
    usage_ckwh: int
    charge_fen: int
    balance_fen: int
    message_id: int | None
    created_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "customer_no": self.customer_no,
            "month": self.month.strftime("%Y-%m"),
            "last_reading_ckwh": self.last_reading_ckwh,
            "this_reading_ckwh": self.this_reading_ckwh,
            "usage_ckwh": self.usage_ckwh,
            "charge_fen": self.charge_fen,
            "balance_fen": self.balance_fen,
            "message_id": self.message_id,
            "created_at": self.created_at.isoformat(timespec="seconds"),
        }


@dataclass(slots=True)
class BillReport:
    """What a monthly-bill run did."""

    month: date
    sent: int = 0
    paper: int = 0
    invalid_phone: int = 0
    already_sent: int = 0
    no_reading: int = 0
    not_rated: int = 0
    missing: list[str] = field(default_factory=list)  # the first customers without readings

    def to_dict(self) -> dict[str, Any]:
        return {
            "month": self.month.strftime("%Y-%m"),
            "sent": self.sent,
            "paper": self.paper,
            "invalid_phone": self.invalid_phone,
            "already_sent": self.already_sent,
            "no_reading": self.no_reading,
            "not_rated": self.not_rated,
            "missing": self.missing,
        }


def _reading(pop: Population, *, on_or_before: date, after: date | None = None) -> Any:
    r = READING
    query = sa.select(r.c.energy_ckwh).where(
        r.c.meter_address == pop.account.c.meter_address,
        r.c.di == FORWARD_BLOCK_DI,
        r.c.freeze_date <= on_or_before,
        r.c.energy_ckwh.is_not(None),
    )
    if after is not None:
        query = query.where(r.c.freeze_date > after)
    return query.order_by(r.c.freeze_date.desc()).limit(1).scalar_subquery()


def _bill_insert(connection: Connection) -> Any:
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    return (
        dialect.insert(monthly_bill)
        .on_conflict_do_nothing(index_elements=["account_id", "month"])
        .returning(monthly_bill.c.account_id)
    )


def send_monthly_bills(
    engine: Engine,
    month: date,
    *,
    clock: Clock,
    settings: SettingsStore | None = None,
    templates: TemplateSet | None = None,
    selection: Selection | None = None,
    lang: Lang = Lang.ZH,
    progress: Progress | None = None,
) -> BillReport:
    """Store the monthly bill of ``month`` (any day in it) for every chosen account.

    Refused (:class:`BillError`) before the month is over by the clock. Customers
    notified on paper get a paper notice; invalid numbers are stored as such.
    """
    first = month_start(month)
    end = _next_month(first)
    now = clock.now()
    if now.date() < end:
        raise BillError(
            f"the bill of {first:%Y-%m} needs the reading of {end} (the end of the month): "
            f"it is {now:%Y-%m-%d} now; send it from {end} on"
        )
    settings = settings or SettingsStore(engine, clock=clock)
    templates = templates or default_templates()
    pop = Population(settings)
    report = BillReport(first)
    a, s = pop.account, pop.state
    ps = day_number(first)
    charged = (
        sa.select(CHARGE.c.account_id, sa.func.sum(CHARGE.c.amount_fen).label("fen"))
        .where(CHARGE.c.day >= ps, CHARGE.c.period_start == ps)
        .group_by(CHARGE.c.account_id)
        .subquery("month_charge")
    )
    done = sa.exists().where(monthly_bill.c.account_id == a.c.id, monthly_bill.c.month == ps)
    statement = (
        sa.select(
            *pop.recipient_columns(),
            s.c.balance_fen,
            s.c.reading_day,
            _reading(pop, on_or_before=first).label("last_ckwh"),
            _reading(pop, on_or_before=end, after=first).label("this_ckwh"),
            sa.func.coalesce(charged.c.fen, 0).label("charge_fen"),
        )
        .select_from(pop.from_().outerjoin(charged, charged.c.account_id == a.c.id))
        .where(a.c.active.is_(True), a.c.opened_on < end, pop.chosen(selection), ~done)
        .order_by(a.c.id)
    )
    try:
        with engine.connect() as reader:
            for rows in chunks(reader, statement, FETCH_CHUNK):
                ready = []
                for r in rows:
                    if r.last_ckwh is None or r.this_ckwh is None:
                        report.no_reading += 1
                        if len(report.missing) < _SHOW_MISSING:
                            report.missing.append(r.customer_no)
                    elif r.reading_day is None or int(r.reading_day) < day_number(end):
                        report.not_rated += 1  # the month's charge is not complete yet
                    else:
                        ready.append(r)
                if ready:
                    with engine.begin() as writer:
                        _store(writer, ready, ps, first, report, templates, now, lang)
                if progress is not None:
                    progress(report.sent)
    except SQLAlchemyError as exc:
        raise BillError(
            f"the monthly bills of {first:%Y-%m} stopped in the database ({exc}); the bills "
            "stored so far are kept: run it again to send the rest"
        ) from exc
    log.info("monthly bills: %s", report.to_dict())
    return report


def _store(
    writer: Connection,
    rows: list[Any],
    ps: int,
    first: date,
    report: BillReport,
    templates: TemplateSet,
    now: datetime,
    lang: Lang,
) -> None:
    values = [
        {
            "account_id": r.account_id,
            "month": ps,
            "last_reading_ckwh": int(r.last_ckwh),
            "this_reading_ckwh": int(r.this_ckwh),
            "usage_ckwh": int(r.this_ckwh) - int(r.last_ckwh),
            "charge_fen": int(r.charge_fen),
            "balance_fen": int(r.balance_fen),
            "created_at": now,
        }
        for r in rows
    ]
    new = {int(x) for x in writer.execute(_bill_insert(writer), values).scalars()}
    report.already_sent += len(rows) - len(new)
    items: list[Outgoing] = []
    account_of: dict[str, int] = {}
    for r, v in zip(rows, values, strict=True):
        if int(r.account_id) not in new:
            continue
        item = Outgoing(
            Recipient(
                customer_no=r.customer_no,
                name=r.name,
                phone=r.phone,
                address=r.address,
                area=r.area,
                channel=Channel.PAPER if r.paper else Channel.SMS,
            ),
            MessageKind.MONTHLY_BILL.value,
            f"bill-{first:%Y-%m}",
            {
                "month": first,
                "last_reading": v["last_reading_ckwh"],
                "this_reading": v["this_reading_ckwh"],
                "usage": v["usage_ckwh"],
                "charge": v["charge_fen"],
                "balance": v["balance_fen"],
            },
        )
        items.append(item)
        account_of[item.key] = int(r.account_id)
    stored = enqueue_many(writer, items, templates=templates, now=now, lang=lang)
    if stored:
        writer.execute(
            sa.update(monthly_bill)
            .where(
                monthly_bill.c.account_id == sa.bindparam("acc"),
                monthly_bill.c.month == ps,
            )
            .values(message_id=sa.bindparam("mid")),
            [{"acc": account_of[key], "mid": m.id} for key, m in stored.items()],
        )
    for m in stored.values():
        report.sent += 1
        if m.status.value == "paper":
            report.paper += 1
        elif m.status.value == "invalid-number":
            report.invalid_phone += 1


def list_bills(
    engine: Engine,
    *,
    month: date | None = None,
    customer_no: str | None = None,
    limit: int | None = 200,
) -> list[MonthlyBill]:
    """Monthly bills sent, newest month first."""
    from ._population import ACCOUNT

    statement = (
        sa.select(monthly_bill, ACCOUNT.c.customer_no)
        .select_from(monthly_bill.join(ACCOUNT, ACCOUNT.c.id == monthly_bill.c.account_id))
        .order_by(monthly_bill.c.month.desc(), monthly_bill.c.account_id)
    )
    if month is not None:
        statement = statement.where(monthly_bill.c.month == day_number(month_start(month)))
    if customer_no:
        statement = statement.where(ACCOUNT.c.customer_no == customer_no)
    if limit is not None:
        statement = statement.limit(limit)
    with engine.connect() as connection:
        return [
            MonthlyBill(
                r.customer_no,
                day_date(int(r.month)),
                int(r.last_reading_ckwh),
                int(r.this_reading_ckwh),
                int(r.usage_ckwh),
                int(r.charge_fen),
                int(r.balance_fen),
                r.message_id,
                r.created_at,
            )
            for r in connection.execute(statement)
        ]
