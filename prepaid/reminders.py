"""Low-balance reminders (余额不足提醒): one message per episode, after each rating.

An account whose real-time balance (实时余额, ``prepaid_rating_state.balance_fen``) is
below its **reminder amount** (提醒金额, the settings hierarchy: customer over area over
line over default) is in a *low-balance episode*. The episode starts when a run finds
it below and ends when a run finds the balance back at or above the amount (a
payment, a lowered amount). Each episode gets exactly one ``low_balance`` message —
not one per rating run — and a new drop after a recovery is a new episode with a new
message.

- **Notification mode** (通知方式): SMS, or paper (the settings' ``notification_mode``,
  or the account's own ``notify_mode`` from the CIS). A paper customer's reminder is
  stored as a paper notice (``paper``) for ``feikong messages print-notices``; an SMS
  to an invalid number is stored ``invalid-number`` (the manual list).
- **Auto reminder** (自动提醒, per area): the run after the daily rating
  (``auto=True``) only opens episodes in areas whose ``auto_reminder`` is on; an
  operator's run (``auto=False``) reminds the chosen accounts of any area.

Everything is set-based: one statement closes the recovered episodes, one selects
the accounts to remind (settings resolved in SQL), and each chunk of them is written
in one transaction — episodes and their messages together (:func:`enqueue_many`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from protocol.clock import Clock

from .messages import Channel, Lang, MessageKind, Recipient, TemplateSet, default_templates
from .service._bulk import MESSAGE, Outgoing, enqueue_many
from .service._errors import ReminderError
from .service._population import ACCOUNT, AREA, FETCH_CHUNK, Population, Selection, chunks
from .service.tables import reminder
from .settings import SettingsStore

__all__ = ["ReminderEpisode", "ReminderReport", "list_reminders", "run_reminders"]

log = logging.getLogger(__name__)

Progress = Callable[[int], None]


@dataclass(slots=True)
class ReminderReport:
    """What a reminder run did: episodes closed (recovered) and opened, by channel."""

    at: datetime
    closed: int = 0
    opened: int = 0
    sms: int = 0
    paper: int = 0
    invalid_phone: int = 0
    skipped_auto_off: int = 0
    already_open: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(timespec="seconds"),
            "closed": self.closed,
            "opened": self.opened,
            "sms": self.sms,
            "paper": self.paper,
            "invalid_phone": self.invalid_phone,
            "skipped_auto_off": self.skipped_auto_off,
            "already_open": self.already_open,
        }


@dataclass(frozen=True, slots=True)
class ReminderEpisode:
    """One low-balance episode of one account (a row of ``prepaid_reminder``)."""

    id: int
    customer_no: str
    name: str
    area: str
    opened_at: datetime
    balance_fen: int
    reminder_fen: int
    channel: Channel
    message_id: int | None
    message_status: str | None
    closed_at: datetime | None
    closed_balance_fen: int | None

    @property
    def open(self) -> bool:
        return self.closed_at is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "customer_no": self.customer_no,
            "name": self.name,
            "area": self.area,
            "opened_at": self.opened_at.isoformat(timespec="seconds"),
            "balance_fen": self.balance_fen,
            "reminder_fen": self.reminder_fen,
            "channel": self.channel.value,
            "message_id": self.message_id,
            "message_status": self.message_status,
            "closed_at": self.closed_at.isoformat(timespec="seconds") if self.closed_at else None,
            "closed_balance_fen": self.closed_balance_fen,
        }


def _episode_insert(connection: Connection) -> Any:
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    return (
        dialect.insert(reminder)
        .on_conflict_do_nothing(
            index_elements=["account_id"], index_where=reminder.c.closed_at.is_(None)
        )
        .returning(reminder.c.id, reminder.c.account_id)
    )


def close_recovered(connection: Connection, pop: Population, now: datetime) -> int:
    """End the open episodes whose balance is back at or above the reminder amount."""
    s, a = pop.state, pop.account
    # the settings expression needs the account's area and line: join them in
    recovered = (
        sa.select(reminder.c.id)
        .select_from(pop.from_().join(reminder, reminder.c.account_id == a.c.id))
        .where(reminder.c.closed_at.is_(None), s.c.balance_fen >= pop.fen("reminder_amount"))
    )
    balance = (
        sa.select(s.c.balance_fen).where(s.c.account_id == reminder.c.account_id).scalar_subquery()
    )
    result = connection.execute(
        sa.update(reminder)
        .where(reminder.c.id.in_(recovered))
        .values(closed_at=now, closed_balance_fen=balance)
    )
    return int(result.rowcount or 0)


def run_reminders(
    engine: Engine,
    *,
    clock: Clock,
    settings: SettingsStore | None = None,
    templates: TemplateSet | None = None,
    auto: bool = True,
    selection: Selection | None = None,
    by: str = "auto",
    lang: Lang = Lang.ZH,
    progress: Progress | None = None,
) -> ReminderReport:
    """Close recovered episodes, then open one for each account newly below its amount.

    ``auto``: the run after rating — only areas with ``auto_reminder`` on. ``by``: who
    runs it (a login, or ``auto``), recorded with each episode. ``progress(n)`` is
    called with the number of episodes opened so far. Idempotent: running again at
    once opens nothing.
    """
    settings = settings or SettingsStore(engine, clock=clock)
    templates = templates or default_templates()
    pop = Population(settings)
    now = clock.now()
    report = ReminderReport(now)
    a, s = pop.account, pop.state
    try:
        with engine.begin() as connection:
            report.closed = close_recovered(connection, pop, now)
        amount = pop.fen("reminder_amount")
        below = sa.and_(
            a.c.active.is_(True),
            s.c.balance_fen < pop.max_fen("reminder_amount"),  # cheap pre-filter first
            s.c.balance_fen < amount,
            pop.chosen(selection),
        )
        open_now = sa.exists().where(
            reminder.c.account_id == a.c.id, reminder.c.closed_at.is_(None)
        )
        statement = (
            sa.select(
                *pop.recipient_columns(),
                s.c.balance_fen,
                amount.label("reminder_fen"),
                pop.flag("auto_reminder").label("auto_on"),
            )
            .select_from(pop.from_())
            .where(below, ~open_now)
            .order_by(a.c.id)
        )
        with engine.connect() as reader:
            for rows in chunks(reader, statement, FETCH_CHUNK):
                wanted = [r for r in rows if r.auto_on or not auto]
                report.skipped_auto_off += len(rows) - len(wanted)
                if wanted:
                    with engine.begin() as writer:
                        _open(writer, wanted, report, templates, now, by, lang)
                if progress is not None:
                    progress(report.opened)
    except SQLAlchemyError as exc:
        raise ReminderError(
            f"the reminder run stopped in the database ({type(exc).__name__}: {exc}); "
            "what was committed is kept: run it again to finish"
        ) from exc
    log.info("reminders: %s", report.to_dict())
    return report


def _open(
    writer: Connection,
    rows: list[Any],
    report: ReminderReport,
    templates: TemplateSet,
    now: datetime,
    by: str,
    lang: Lang,
) -> None:
    values = [
        {
            "account_id": r.account_id,
            "opened_at": now,
            "balance_fen": int(r.balance_fen),
            "reminder_fen": int(r.reminder_fen),
            "channel": (Channel.PAPER if r.paper else Channel.SMS).value,
            "opened_by": by,
        }
        for r in rows
    ]
    opened = {
        int(acc): int(ident) for ident, acc in writer.execute(_episode_insert(writer), values)
    }
    report.already_open += len(rows) - len(opened)
    items: list[Outgoing] = []
    episode_of: dict[str, int] = {}
    for r in rows:
        ident = opened.get(int(r.account_id))
        if ident is None:
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
            MessageKind.LOW_BALANCE.value,
            f"low-{ident}",
            {
                "balance": int(r.balance_fen),
                "reminder": int(r.reminder_fen),
                "as_of": now,
            },
        )
        items.append(item)
        episode_of[item.key] = ident
    stored = enqueue_many(writer, items, templates=templates, now=now, lang=lang)
    if stored:
        writer.execute(
            sa.update(reminder)
            .where(reminder.c.id == sa.bindparam("episode_id"))
            .values(message_id=sa.bindparam("mid")),
            [{"episode_id": episode_of[key], "mid": m.id} for key, m in stored.items()],
        )
    for m in stored.values():
        report.opened += 1
        if m.status.value == "paper":
            report.paper += 1
        elif m.status.value == "invalid-number":
            report.invalid_phone += 1
        else:
            report.sms += 1


def list_reminders(
    engine: Engine,
    *,
    open_only: bool = False,
    customer_no: str | None = None,
    area: str | None = None,
    limit: int | None = 200,
) -> list[ReminderEpisode]:
    """Low-balance episodes, newest first (with their message's status)."""
    account, area_t, message = ACCOUNT, AREA, MESSAGE
    statement = (
        sa.select(
            reminder,
            account.c.customer_no,
            account.c.name,
            sa.func.coalesce(area_t.c.code, "").label("area_code"),
            message.c.status.label("message_status"),
        )
        .select_from(
            reminder.join(account, account.c.id == reminder.c.account_id)
            .outerjoin(area_t, area_t.c.id == account.c.transformer_area_id)
            .outerjoin(message, message.c.id == reminder.c.message_id)
        )
        .order_by(reminder.c.id.desc())
    )
    if open_only:
        statement = statement.where(reminder.c.closed_at.is_(None))
    if customer_no:
        statement = statement.where(account.c.customer_no == customer_no)
    if area:
        statement = statement.where(area_t.c.code == area)
    if limit is not None:
        statement = statement.limit(limit)
    with engine.connect() as connection:
        return [
            ReminderEpisode(
                id=int(r.id),
                customer_no=r.customer_no,
                name=r.name,
                area=r.area_code,
                opened_at=r.opened_at,
                balance_fen=int(r.balance_fen),
                reminder_fen=int(r.reminder_fen),
                channel=Channel(r.channel),
                message_id=r.message_id,
                message_status=r.message_status,
                closed_at=r.closed_at,
                closed_balance_fen=r.closed_balance_fen,
            )
            for r in connection.execute(statement)
        ]
