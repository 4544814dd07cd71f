"""Customer search and detail (客户查询) for the console, over 15 million accounts.

Every search is a keyset-paged query on an index — never OFFSET, never a scan of
the account table:

==============  =============================================  ==========================
field           matches                                        index
==============  =============================================  ==========================
customer no     prefix of the customer number (户号)           ``uq_…_customer_no``
name            prefix of the name                             ``ix_prepaid_account_name``
phone           prefix of the phone as stored                  ``ix_prepaid_account_phone``
meter           prefix of the 12-digit meter address           ``uq_…_meter_address``
area            the transformer area (台区) code, exactly      ``ix_prepaid_account_area``
==============  =============================================  ==========================

A prefix is a range ``[prefix, prefix with its last character + 1)`` so that
SQLite and PostgreSQL (the "C" collation, see migration ``o0001``) walk the index.
:func:`guess_field` picks the field from what was typed.

The detail of one customer reads its rows through the per-account indexes: daily
readings by meter (the readings' key), charges by ``(day, account)`` key lookups for
the last days, messages by customer number, head-end jobs by meter, and the
workflow history (disconnections, reconnections, work orders, reminders, dunning)
by account.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.sql.elements import ColumnElement

from prepaid.models import day_date, day_number
from prepaid.rating import DAILY_FORWARD_DI

__all__ = [
    "PAGE",
    "AccountDetail",
    "ChargeRow",
    "CustomerRow",
    "HistoryRow",
    "JobRow",
    "MessageRow",
    "ReadingRow",
    "SearchField",
    "SearchPage",
    "account_detail",
    "charges",
    "guess_field",
    "history",
    "jobs",
    "messages",
    "readings",
    "search",
    "yuan",
]

PAGE: Final = 50


class SearchField(enum.StrEnum):
    AUTO = "auto"
    CUSTOMER_NO = "customer-no"
    NAME = "name"
    PHONE = "phone"
    METER = "meter"
    AREA = "area"

    @property
    def label(self) -> str:
        return {
            "auto": "any (guess)",
            "customer-no": "customer no (户号)",
            "name": "name (户名)",
            "phone": "phone (电话)",
            "meter": "meter (表号)",
            "area": "transformer area (台区)",
        }[self.value]


_TIMES: Final = frozenset(
    {"at", "created_at", "finished_at", "opened_at", "collected_at", "pay_by"}
)


def _col(name: str) -> sa.ColumnClause[Any]:
    """A column of a lightweight table; times typed so that SQLite gives datetimes."""
    return sa.column(name, sa.DateTime()) if name in _TIMES else sa.column(name)


def yuan(fen: int | None) -> str:
    """Integer fen as yuan text (``-540`` → ``-5.40``); ``-`` for None."""
    if fen is None:
        return "-"
    return f"{Decimal(fen) / 100:.2f}"


_a = sa.table(
    "prepaid_account",
    *(
        _col(c)
        for c in (
            "id",
            "customer_no",
            "name",
            "phone",
            "address",
            "supply_unit_id",
            "feeder_line_id",
            "transformer_area_id",
            "reading_segment_id",
            "meter_address",
            "tariff_id",
            "household_size",
            "notify_mode",
            "fee_control_mode",
            "power_guarantee",
            "vulnerable",
            "free_allowance",
            "active",
            "opened_on",
        )
    ),
)
_state = sa.table(
    "prepaid_rating_state",
    *(
        _col(c)
        for c in (
            "account_id",
            "reading_day",
            "reading_ckwh",
            "period_start",
            "period_ckwh",
            "charged_fen",
            "balance_fen",
            "reminder_fen",
            "avg_daily_ckwh",
            "tier",
            "outcome",
        )
    ),
)
_unit = sa.table("prepaid_supply_unit", sa.column("id"), sa.column("code"), sa.column("name"))
_line = sa.table("prepaid_feeder_line", sa.column("id"), sa.column("code"), sa.column("name"))
_area = sa.table("prepaid_transformer_area", sa.column("id"), sa.column("code"), sa.column("name"))
_segment = sa.table("prepaid_reading_segment", sa.column("id"), sa.column("code"))
_tariff = sa.table("prepaid_tariff", sa.column("id"), sa.column("code"), sa.column("name"))
_reading = sa.table(
    "headend_reading",
    sa.column("meter_address"),
    sa.column("di"),
    sa.column("freeze_date"),
    sa.column("value"),
    sa.column("energy_ckwh"),
    _col("collected_at"),
)
_charge = sa.table(
    "prepaid_charge",
    *(
        _col(c)
        for c in (
            "day",
            "account_id",
            "period_start",
            "reading_ckwh",
            "energy_ckwh",
            "period_ckwh",
            "amount_fen",
            "charged_fen",
            "balance_fen",
            "tariff_version",
            "tier",
            "outcome",
        )
    ),
)
_message = sa.table(
    "prepaid_message",
    *(_col(c) for c in ("id", "customer_no", "kind", "channel", "status", "text", "error")),
    _col("created_at"),
)
_job = sa.table(
    "headend_job",
    *(_col(c) for c in ("id", "kind", "meter_address", "state", "error")),
    _col("created_at"),
    _col("finished_at"),
)

# -- search ---------------------------------------------------------------------------

_AREA_CODE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")


def guess_field(text: str) -> SearchField:
    """What a typed search most likely means: 12 digits a meter, a mobile number a
    phone, other digits a customer number, a code with letters an area, else a name."""
    t = text.strip()
    digits = t.replace(" ", "").replace("-", "")
    if digits.isdigit():
        if len(digits) == 12:
            return SearchField.METER
        if len(digits) == 11 and digits.startswith("1") and not digits.startswith("10"):
            return SearchField.PHONE
        return SearchField.CUSTOMER_NO
    if t.startswith("+86"):
        return SearchField.PHONE
    if _AREA_CODE.match(t) and any(c.isdigit() for c in t):
        return SearchField.AREA
    return SearchField.NAME


def _upper(prefix: str) -> str:
    """The first string after every string that starts with ``prefix``."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


@dataclass(frozen=True, slots=True)
class CustomerRow:
    id: int
    customer_no: str
    name: str
    phone: str
    meter_address: str
    area: str
    supply_unit: str
    balance_fen: int | None
    flags: str


@dataclass(frozen=True, slots=True)
class SearchPage:
    rows: tuple[CustomerRow, ...]
    next_cursor: tuple[Any, ...] | None
    field: SearchField
    note: str = ""


def _ordered(col: ColumnElement[Any], postgres: bool) -> ColumnElement[Any]:
    return col.collate("C") if postgres else col


def search(
    engine: Engine,
    text: str,
    field: SearchField = SearchField.AUTO,
    *,
    after: tuple[Any, ...] | None = None,
    limit: int = PAGE,
    supply_unit: str | None = None,
) -> SearchPage:
    """One page of the accounts matching ``text`` in ``field``, after ``after``."""
    query_text = text.strip()
    if field is SearchField.AUTO:
        field = guess_field(query_text) if query_text else SearchField.CUSTOMER_NO
    postgres = engine.dialect.name == "postgresql"
    a = _a
    conditions: list[ColumnElement[bool]] = []
    note = ""
    with engine.connect() as conn:
        if supply_unit is not None:
            unit_id = conn.execute(
                sa.select(_unit.c.id).where(_unit.c.code == supply_unit)
            ).scalar_one_or_none()
            conditions.append(a.c.supply_unit_id == (unit_id if unit_id is not None else -1))
        order: list[ColumnElement[Any]]
        if field is SearchField.AREA:
            area_id = conn.execute(
                sa.select(_area.c.id).where(_area.c.code == query_text)
            ).scalar_one_or_none()
            if area_id is None:
                return SearchPage(
                    (), None, field, f"no transformer area has the code {query_text!r}"
                )
            conditions.append(a.c.transformer_area_id == area_id)
            order = [a.c.id]
            if after is not None:
                conditions.append(a.c.id > after[0])
        else:
            key: ColumnElement[Any] = {
                SearchField.CUSTOMER_NO: a.c.customer_no,
                SearchField.NAME: a.c.name,
                SearchField.PHONE: a.c.phone,
                SearchField.METER: a.c.meter_address,
            }[field]
            unique = field in (SearchField.CUSTOMER_NO, SearchField.METER)
            ordered = _ordered(key, postgres and not unique)
            value = query_text.replace(" ", "") if field is not SearchField.NAME else query_text
            if value:
                conditions += [ordered >= value, ordered < _upper(value)]
            if unique:
                order = [ordered]
                if after is not None:
                    conditions.append(ordered > after[0])
            else:
                order = [ordered, a.c.id]
                if after is not None:
                    conditions.append(sa.tuple_(ordered, a.c.id) > sa.tuple_(after[0], after[1]))
        s = _state
        query = (
            sa.select(
                a.c.id,
                a.c.customer_no,
                a.c.name,
                a.c.phone,
                a.c.meter_address,
                _area.c.code,
                _unit.c.code,
                s.c.balance_fen,
                a.c.power_guarantee,
                a.c.vulnerable,
                a.c.fee_control_mode,
                a.c.active,
            )
            .select_from(
                a.outerjoin(s, s.c.account_id == a.c.id)
                .outerjoin(_area, _area.c.id == a.c.transformer_area_id)
                .outerjoin(_unit, _unit.c.id == a.c.supply_unit_id)
            )
            .where(*conditions)
            .order_by(*order)
            .limit(limit + 1)
        )
        found = conn.execute(query).all()
    rows = tuple(
        CustomerRow(
            id=r[0],
            customer_no=r[1],
            name=r[2],
            phone=r[3],
            meter_address=r[4],
            area=r[5] or "",
            supply_unit=r[6] or "",
            balance_fen=r[7],
            flags=" ".join(
                f
                for f, on in (
                    ("保电", r[8]),
                    ("vulnerable", r[9]),
                    ("local", r[10] == "local"),
                    ("inactive", not r[11]),
                )
                if on
            ),
        )
        for r in found[:limit]
    )
    next_cursor: tuple[Any, ...] | None = None
    if len(found) > limit:
        last = rows[-1]
        next_cursor = {
            SearchField.AREA: (last.id,),
            SearchField.CUSTOMER_NO: (last.customer_no,),
            SearchField.METER: (last.meter_address,),
            SearchField.NAME: (last.name, last.id),
            SearchField.PHONE: (last.phone, last.id),
        }[field]
    if not rows and not note:
        note = f"no customer's {field.label} starts with {query_text!r}"
        if field is SearchField.AREA:
            note = f"no customer in transformer area {query_text}"
    return SearchPage(rows, next_cursor, field, note)


# -- detail ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AccountDetail:
    id: int
    customer_no: str
    name: str
    phone: str
    address: str
    meter_address: str
    supply_unit: str
    line: str
    area: str
    segment: str
    tariff: str
    household_size: int
    notify_mode: str
    fee_control_mode: str
    power_guarantee: bool
    vulnerable: bool
    free_allowance: bool
    active: bool
    opened_on: date
    balance_fen: int | None
    reading_day: date | None
    reading_ckwh: int | None
    period_start: date | None
    period_ckwh: int
    charged_fen: int
    avg_daily_ckwh: int
    tier: int

    def facts(self) -> list[tuple[str, str]]:
        """(label, value) lines for the account panel."""
        flags = [
            name
            for name, on in (
                ("power guarantee (保电)", self.power_guarantee),
                ("vulnerable (特殊群体)", self.vulnerable),
                ("free allowance (低保)", self.free_allowance),
                ("inactive", not self.active),
            )
            if on
        ]
        return [
            ("customer no (户号)", self.customer_no),
            ("name (户名)", self.name),
            ("phone", self.phone or "-"),
            ("address", self.address or "-"),
            ("meter (表号)", self.meter_address),
            ("supply unit / line / area", f"{self.supply_unit} / {self.line} / {self.area}"),
            ("reading segment (抄表段)", self.segment or "-"),
            ("tariff", self.tariff),
            ("household size", str(self.household_size or "unknown")),
            ("fee control", f"{self.fee_control_mode}; notified by {self.notify_mode}"),
            ("flags", ", ".join(flags) or "-"),
            ("opened on", self.opened_on.isoformat()),
            ("real-time balance (实时余额)", f"{yuan(self.balance_fen)} yuan"),
            (
                "last rated reading",
                f"{_kwh(self.reading_ckwh)} kWh on {self.reading_day}"
                if self.reading_day
                else "not rated yet",
            ),
            (
                "billing period so far",
                f"from {self.period_start}: {_kwh(self.period_ckwh)} kWh, "
                f"{yuan(self.charged_fen)} yuan, tier {self.tier}",
            ),
            ("average daily use", f"{_kwh(self.avg_daily_ckwh)} kWh"),
        ]


def _kwh(ckwh: int | None) -> str:
    return "-" if ckwh is None else f"{Decimal(ckwh) / 100:.2f}"


def account_detail(engine: Engine, account_id: int) -> AccountDetail | None:
    a, s = _a, _state
    query = (
        sa.select(
            a,
            _unit.c.code.label("unit_code"),
            _line.c.code.label("line_code"),
            _area.c.code.label("area_code"),
            _segment.c.code.label("segment_code"),
            _tariff.c.code.label("tariff_code"),
            s.c.balance_fen,
            s.c.reading_day,
            s.c.reading_ckwh,
            s.c.period_start,
            s.c.period_ckwh,
            s.c.charged_fen,
            s.c.avg_daily_ckwh,
            s.c.tier,
        )
        .select_from(
            a.outerjoin(s, s.c.account_id == a.c.id)
            .outerjoin(_unit, _unit.c.id == a.c.supply_unit_id)
            .outerjoin(_line, _line.c.id == a.c.feeder_line_id)
            .outerjoin(_area, _area.c.id == a.c.transformer_area_id)
            .outerjoin(_segment, _segment.c.id == a.c.reading_segment_id)
            .outerjoin(_tariff, _tariff.c.id == a.c.tariff_id)
        )
        .where(a.c.id == account_id)
    )
    with engine.connect() as conn:
        r = conn.execute(query).mappings().first()
    if r is None:
        return None
    opened = r["opened_on"]
    return AccountDetail(
        id=r["id"],
        customer_no=r["customer_no"],
        name=r["name"],
        phone=r["phone"] or "",
        address=r["address"] or "",
        meter_address=r["meter_address"],
        supply_unit=r["unit_code"] or "",
        line=r["line_code"] or "-",
        area=r["area_code"] or "-",
        segment=r["segment_code"] or "",
        tariff=r["tariff_code"] or "",
        household_size=int(r["household_size"] or 0),
        notify_mode=r["notify_mode"],
        fee_control_mode=r["fee_control_mode"],
        power_guarantee=bool(r["power_guarantee"]),
        vulnerable=bool(r["vulnerable"]),
        free_allowance=bool(r["free_allowance"]),
        active=bool(r["active"]),
        opened_on=opened if isinstance(opened, date) else date.fromisoformat(str(opened)),
        balance_fen=r["balance_fen"],
        reading_day=day_date(r["reading_day"]) if r["reading_day"] is not None else None,
        reading_ckwh=r["reading_ckwh"],
        period_start=day_date(r["period_start"]) if r["period_start"] is not None else None,
        period_ckwh=int(r["period_ckwh"] or 0),
        charged_fen=int(r["charged_fen"] or 0),
        avg_daily_ckwh=int(r["avg_daily_ckwh"] or 0),
        tier=int(r["tier"] or 0),
    )


@dataclass(frozen=True, slots=True)
class ReadingRow:
    day: date
    value: str
    energy_ckwh: int | None
    collected_at: datetime | None


def readings(engine: Engine, meter_address: str, *, days: int = 31) -> list[ReadingRow]:
    """The meter's daily freezes (日冻结, DI 05060101), newest first."""
    r = _reading
    query = (
        sa.select(r.c.freeze_date, r.c.value, r.c.energy_ckwh, r.c.collected_at)
        .where(r.c.meter_address == meter_address, r.c.di == DAILY_FORWARD_DI)
        .order_by(r.c.freeze_date.desc())
        .limit(days)
    )
    with engine.connect() as conn:
        return [
            ReadingRow(
                day=row[0] if isinstance(row[0], date) else date.fromisoformat(str(row[0])),
                value=str(row[1]),
                energy_ckwh=row[2],
                collected_at=row[3],
            )
            for row in conn.execute(query)
        ]


@dataclass(frozen=True, slots=True)
class ChargeRow:
    day: date
    reading_ckwh: int
    energy_ckwh: int
    amount_fen: int
    period_ckwh: int
    charged_fen: int
    balance_fen: int
    tier: int


def charges(engine: Engine, account_id: int, *, until: date, days: int = 60) -> list[ChargeRow]:
    """The account's daily charges (电费明细) of the ``days`` days up to ``until``, oldest
    first: one key lookup per day (the charges are keyed by (day, account))."""
    c = _charge
    wanted = [day_number(until - timedelta(days=n)) for n in range(days)]
    query = (
        sa.select(
            c.c.day,
            c.c.reading_ckwh,
            c.c.energy_ckwh,
            c.c.amount_fen,
            c.c.period_ckwh,
            c.c.charged_fen,
            c.c.balance_fen,
            c.c.tier,
        )
        .where(c.c.day.in_(wanted), c.c.account_id == account_id)
        .order_by(c.c.day)
    )
    with engine.connect() as conn:
        return [
            ChargeRow(day_date(r[0]), r[1], r[2], r[3], r[4], r[5], r[6], r[7])
            for r in conn.execute(query)
        ]


@dataclass(frozen=True, slots=True)
class MessageRow:
    id: int
    created_at: datetime
    kind: str
    channel: str
    status: str
    text: str
    error: str | None


def messages(engine: Engine, customer_no: str, *, limit: int = 30) -> list[MessageRow]:
    """The customer's messages (SMS and paper), newest first."""
    m = _message
    query = (
        sa.select(m.c.id, m.c.created_at, m.c.kind, m.c.channel, m.c.status, m.c.text, m.c.error)
        .where(m.c.customer_no == customer_no)
        .order_by(m.c.id.desc())
        .limit(limit)
    )
    with engine.connect() as conn:
        return [MessageRow(*r) for r in conn.execute(query)]


@dataclass(frozen=True, slots=True)
class JobRow:
    id: str
    kind: str
    state: str
    created_at: datetime
    finished_at: datetime | None
    error: str | None


def jobs(engine: Engine, meter_address: str, *, limit: int = 30) -> list[JobRow]:
    """The head-end commands and reads of the meter, newest first."""
    j = _job
    query = (
        sa.select(j.c.id, j.c.kind, j.c.state, j.c.created_at, j.c.finished_at, j.c.error)
        .where(j.c.meter_address == meter_address)
        .order_by(j.c.created_at.desc(), j.c.id.desc())
        .limit(limit)
    )
    with engine.connect() as conn:
        return [JobRow(*r) for r in conn.execute(query)]


@dataclass(frozen=True, slots=True)
class HistoryRow:
    at: datetime
    what: str
    who: str
    detail: str


_disc = sa.table(
    "prepaid_disconnection", sa.column("id"), sa.column("number"), sa.column("account_id")
)
_disc_event = sa.table(
    "prepaid_disconnection_event",
    *(_col(c) for c in ("disconnection_id", "at", "actor", "action", "to_state", "comment")),
)
_recon = sa.table(
    "prepaid_reconnection",
    *(
        _col(c)
        for c in ("number", "account_id", "state", "method", "created_by", "created_at", "error")
    ),
)
_wo = sa.table(
    "prepaid_work_order",
    *(
        _col(c)
        for c in (
            "id",
            "number",
            "kind",
            "account_id",
            "state",
            "summary",
            "created_by",
            "created_at",
        )
    ),
)
_wo_event = sa.table(
    "prepaid_work_order_event",
    *(_col(c) for c in ("work_order_id", "at", "actor", "action", "to_state", "comment")),
)
_reminder = sa.table(
    "prepaid_reminder",
    *(_col(c) for c in ("account_id", "opened_at", "balance_fen", "channel", "opened_by")),
)
_dunning = sa.table(
    "prepaid_dunning",
    *(
        _col(c)
        for c in ("account_id", "created_at", "balance_fen", "amount_due_fen", "method", "pay_by")
    ),
)


def history(engine: Engine, account_id: int, *, limit: int = 200) -> list[HistoryRow]:
    """The account's fee-control history, newest first: low-balance reminders, dunning,
    disconnection steps, reconnections and work-order steps."""
    out: list[HistoryRow] = []
    with engine.connect() as conn:
        for at, balance, channel, by in conn.execute(
            sa.select(
                _reminder.c.opened_at,
                _reminder.c.balance_fen,
                _reminder.c.channel,
                _reminder.c.opened_by,
            ).where(_reminder.c.account_id == account_id)
        ):
            out.append(
                HistoryRow(
                    at,
                    "low-balance reminder",
                    by or "system",
                    f"balance {yuan(balance)}; {channel}",
                )
            )
        for at, balance, due, method, pay_by in conn.execute(
            sa.select(
                _dunning.c.created_at,
                _dunning.c.balance_fen,
                _dunning.c.amount_due_fen,
                _dunning.c.method,
                _dunning.c.pay_by,
            ).where(_dunning.c.account_id == account_id)
        ):
            out.append(
                HistoryRow(
                    at,
                    "dunning",
                    "system",
                    f"balance {yuan(balance)}, due {yuan(due)} by {pay_by}; {method}",
                )
            )
        for number, at, actor, action, to_state, comment in conn.execute(
            sa.select(
                _disc.c.number,
                _disc_event.c.at,
                _disc_event.c.actor,
                _disc_event.c.action,
                _disc_event.c.to_state,
                _disc_event.c.comment,
            )
            .select_from(_disc.join(_disc_event, _disc_event.c.disconnection_id == _disc.c.id))
            .where(_disc.c.account_id == account_id)
        ):
            text = f"{number}: → {to_state}" + (f"; {comment}" if comment else "")
            out.append(HistoryRow(at, f"disconnection {action}", actor, text))
        for number, state, method, by, at, error in conn.execute(
            sa.select(
                _recon.c.number,
                _recon.c.state,
                _recon.c.method,
                _recon.c.created_by,
                _recon.c.created_at,
                _recon.c.error,
            ).where(_recon.c.account_id == account_id)
        ):
            text = f"{number}: {method}, {state}" + (f"; {error}" if error else "")
            out.append(HistoryRow(at, "reconnection", by or "system", text))
        for number, kind, at, actor, action, to_state, comment in conn.execute(
            sa.select(
                _wo.c.number,
                _wo.c.kind,
                _wo_event.c.at,
                _wo_event.c.actor,
                _wo_event.c.action,
                _wo_event.c.to_state,
                _wo_event.c.comment,
            )
            .select_from(_wo.join(_wo_event, _wo_event.c.work_order_id == _wo.c.id))
            .where(_wo.c.account_id == account_id)
        ):
            text = f"{number} ({kind}): → {to_state}" + (f"; {comment}" if comment else "")
            out.append(HistoryRow(at, f"work order {action}", actor, text))
    out.sort(key=lambda h: h.at, reverse=True)
    return out[:limit]


def balance_series(rows: Sequence[ChargeRow]) -> tuple[list[date], list[Decimal]]:
    """Days and the balance after each day's charge (yuan), for the chart."""
    return [r.day for r in rows], [Decimal(r.balance_fen) / 100 for r in rows]
