"""The outbox (发件箱): messages stored once per episode, then dispatched through a gateway.

:meth:`Outbox.enqueue` renders a template for a recipient and stores it under an
**episode key** — ``customer_no/kind/episode``, e.g. ``C001/dunning/arrears-42`` or
``C001/monthly_bill/2026-03``. The key is unique in the database, so asking again for
the same episode (the next rating run, a retry after a crash, another thread at the
same moment) returns the message already stored and sends nothing new.

An SMS to an invalid number is stored as ``invalid-number`` and never dispatched; a
customer notified on paper is stored as ``paper``. Both are on the manual list
(:meth:`Outbox.manual_list`) that paper notices are printed from.

:meth:`Outbox.dispatch` claims queued messages one at a time (``queued`` → ``sending``,
so two dispatchers never send the same message), hands each to the gateway outside
any transaction and records every try and the final status.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from protocol.clock import Clock, RealClock

from ._errors import OutboxError
from ._format import Lang
from ._gateway import OutgoingSms, SmsGateway
from ._phones import check_phone
from ._recipient import Channel, Recipient
from ._templates import TemplateSet, default_templates
from .tables import MANUAL_STATUSES, AttemptRow, MessageRow, MessageStatus

__all__ = ["DispatchReport", "Enqueued", "Message", "Outbox", "episode_key"]

log = logging.getLogger(__name__)

_M = MessageRow.__table__  # type: ignore[attr-defined]
_A = AttemptRow.__table__  # type: ignore[attr-defined]

_RECIPIENT_FIELDS = ("name", "customer_no", "address")


def episode_key(customer_no: str, kind: str, episode: str) -> str:
    """``"C001/dunning/arrears-42"``: what makes a message unique."""
    for part, value in (("customer_no", customer_no), ("kind", kind), ("episode", episode)):
        if not str(value).strip():
            raise OutboxError(f"a message needs a non-empty {part} for its episode key")
    return f"{customer_no}/{kind}/{episode}"


@dataclass(frozen=True, slots=True)
class Message:
    """A stored message (a read-only view of a ``prepaid_message`` row)."""

    id: int
    episode_key: str
    kind: str
    episode: str
    customer_no: str
    name: str
    phone_raw: str | None
    phone: str | None
    address: str
    area: str
    channel: Channel
    lang: Lang
    title: str
    body: str
    text: str
    fields: Mapping[str, str]
    segments: int
    status: MessageStatus
    attempts: int
    error: str | None
    gateway: str | None
    gateway_ref: str | None
    batch_no: str | None
    created_at: datetime
    updated_at: datetime
    sent_at: datetime | None
    delivered_at: datetime | None

    @classmethod
    def _from_row(cls, row: Any) -> Message:
        m = row._mapping
        return cls(
            id=m["id"],
            episode_key=m["episode_key"],
            kind=m["kind"],
            episode=m["episode"],
            customer_no=m["customer_no"],
            name=m["name"],
            phone_raw=m["phone_raw"],
            phone=m["phone"],
            address=m["address"],
            area=m["area"],
            channel=Channel(m["channel"]),
            lang=Lang(m["lang"]),
            title=m["title"],
            body=m["body"],
            text=m["text"],
            fields=dict(m["fields"] or {}),
            segments=m["segments"],
            status=MessageStatus(m["status"]),
            attempts=m["attempts"],
            error=m["error"],
            gateway=m["gateway"],
            gateway_ref=m["gateway_ref"],
            batch_no=m["batch_no"],
            created_at=m["created_at"],
            updated_at=m["updated_at"],
            sent_at=m["sent_at"],
            delivered_at=m["delivered_at"],
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "episode_key": self.episode_key,
            "kind": self.kind,
            "customer_no": self.customer_no,
            "name": self.name,
            "phone": self.phone or self.phone_raw,
            "area": self.area,
            "channel": self.channel.value,
            "lang": self.lang.value,
            "status": self.status.value,
            "attempts": self.attempts,
            "segments": self.segments,
            "error": self.error,
            "batch_no": self.batch_no,
            "created_at": self.created_at.isoformat(timespec="seconds"),
            "text": self.text,
        }


@dataclass(frozen=True, slots=True)
class Enqueued:
    """What :meth:`Outbox.enqueue` did: the message, and whether it is new."""

    message: Message
    created: bool


@dataclass(slots=True)
class DispatchReport:
    """How a :meth:`Outbox.dispatch` run went: a count per final status."""

    gateway: str
    counts: dict[str, int] = field(default_factory=dict)
    requeued: int = 0  # stuck in ``sending`` (a crashed dispatcher) and put back

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def to_dict(self) -> dict[str, Any]:
        totals = {"gateway": self.gateway, "total": self.total, "requeued": self.requeued}
        return {**totals, **self.counts}


class Outbox:
    """The stored messages of one database (tables from :mod:`prepaid.db`'s migration)."""

    def __init__(
        self,
        engine: Engine,
        *,
        templates: TemplateSet | None = None,
        clock: Clock | None = None,
        max_attempts: int = 3,
    ) -> None:
        self.engine = engine
        self.templates = templates or default_templates()
        self.clock = clock or RealClock()
        self.max_attempts = max_attempts

    # -- writing ---------------------------------------------------------------------

    def enqueue(
        self,
        recipient: Recipient,
        kind: str,
        params: Mapping[str, object],
        *,
        episode: str,
        lang: Lang | str = Lang.ZH,
        signature: str | None = None,
    ) -> Enqueued:
        """Render ``kind`` for ``recipient`` and store it once for ``episode``.

        ``name``, ``customer_no`` and ``address`` are taken from the recipient when the
        template has them and ``params`` does not. Returns the stored message and
        ``created=False`` when the episode already had one (nothing else happens).
        Raises the template errors (a missing placeholder, …) before storing anything.
        """
        key = episode_key(recipient.customer_no, str(kind), episode)
        existing = self.get_by_episode(key)
        if existing is not None:
            return Enqueued(existing, False)
        declared = self.templates.get(kind, lang).params
        values = dict(params)
        for name in _RECIPIENT_FIELDS:
            if name in declared and values.get(name) is None:
                values[name] = getattr(recipient, name)
        rendered = self.templates.render(kind, values, lang, signature=signature)
        check = check_phone(recipient.phone)
        error: str | None = None
        if recipient.channel is Channel.PAPER:
            status = MessageStatus.PAPER
        elif check.valid:
            status = MessageStatus.QUEUED
        else:
            status = MessageStatus.INVALID_NUMBER
            assert check.problem is not None
            error = f"{check.problem.value}: {check.detail}"
        now = self.clock.now()
        row = {
            "episode_key": key,
            "kind": str(kind),
            "episode": episode,
            "customer_no": recipient.customer_no,
            "name": recipient.name,
            "phone_raw": recipient.phone,
            "phone": check.number,
            "address": recipient.address,
            "area": recipient.area,
            "channel": recipient.channel.value,
            "lang": rendered.lang.value,
            "title": rendered.title,
            "body": rendered.body,
            "text": rendered.text,
            "fields": dict(rendered.fields),
            "segments": rendered.length.segments,
            "status": status.value,
            "attempts": 0,
            "error": error,
            "created_at": now,
            "updated_at": now,
        }
        try:
            with self.engine.begin() as connection:
                connection.execute(insert(_M).values(**row))
        except IntegrityError:
            # another writer stored this episode first: theirs is the message
            existing = self.get_by_episode(key)
            if existing is None:
                raise OutboxError(f"cannot store the message {key}: integrity error") from None
            log.debug("message %s was stored by another writer at the same time", key)
            return Enqueued(existing, False)
        except SQLAlchemyError as exc:
            raise OutboxError(f"cannot store the message {key}: {exc}") from exc
        message = self.get_by_episode(key)
        assert message is not None
        if status is MessageStatus.INVALID_NUMBER:
            log.info("message %s not sent: invalid phone %r (%s)", key, recipient.phone, error)
        return Enqueued(message, True)

    # -- reading ---------------------------------------------------------------------

    def _select(self, statement: Any) -> list[Message]:
        try:
            with self.engine.connect() as connection:
                return [Message._from_row(row) for row in connection.execute(statement)]
        except SQLAlchemyError as exc:
            raise OutboxError(
                f"cannot read the outbox in {self.engine.url.render_as_string()}: {exc}; "
                "has the database been migrated (feikong messages outbox migrates it)?"
            ) from exc

    def get(self, message_id: int) -> Message | None:
        found = self._select(select(_M).where(_M.c.id == message_id))
        return found[0] if found else None

    def get_by_episode(self, key: str) -> Message | None:
        found = self._select(select(_M).where(_M.c.episode_key == key))
        return found[0] if found else None

    def messages(
        self,
        *,
        status: MessageStatus | str | Iterable[MessageStatus | str] | None = None,
        kind: str | None = None,
        area: str | None = None,
        customer_no: str | None = None,
        limit: int | None = None,
    ) -> list[Message]:
        """Stored messages, oldest first, filtered by status(es), kind, area, customer."""
        statement = select(_M).order_by(_M.c.id)
        if status is not None:
            wanted = [status] if isinstance(status, str) else list(status)
            statement = statement.where(_M.c.status.in_([MessageStatus(s).value for s in wanted]))
        if kind is not None:
            statement = statement.where(_M.c.kind == str(kind))
        if area is not None:
            statement = statement.where(_M.c.area == area)
        if customer_no is not None:
            statement = statement.where(_M.c.customer_no == customer_no)
        if limit is not None:
            statement = statement.limit(limit)
        return self._select(statement)

    def manual_list(self, *, area: str | None = None, kind: str | None = None) -> list[Message]:
        """Messages whose customers need a paper notice or a visit (invalid number, paper)."""
        return self.messages(status=MANUAL_STATUSES, area=area, kind=kind)

    def counts(self) -> dict[str, int]:
        """Number of messages per status."""
        statement = select(_M.c.status, func.count()).group_by(_M.c.status)
        try:
            with self.engine.connect() as connection:
                return {status: n for status, n in connection.execute(statement)}
        except SQLAlchemyError as exc:
            raise OutboxError(f"cannot read the outbox: {exc}") from exc

    def attempts(self, message_id: int) -> list[dict[str, Any]]:
        """Every try of a message: attempt, at, gateway, outcome, http_status, error."""
        statement = select(_A).where(_A.c.message_id == message_id).order_by(_A.c.attempt)
        with self.engine.connect() as connection:
            return [
                {k: v for k, v in row._mapping.items() if k not in ("id", "message_id")}
                for row in connection.execute(statement)
            ]

    # -- paper -----------------------------------------------------------------------

    def mark_printed(self, message_ids: Iterable[int], batch_no: str) -> int:
        """Record that these manual-list messages were printed in batch ``batch_no``."""
        ids = list(message_ids)
        if not ids:
            return 0
        statement = (
            update(_M)
            .where(_M.c.id.in_(ids), _M.c.status.in_([s.value for s in MANUAL_STATUSES]))
            .values(
                status=MessageStatus.PRINTED.value, batch_no=batch_no, updated_at=self.clock.now()
            )
        )
        with self.engine.begin() as connection:
            return int(connection.execute(statement).rowcount)

    # -- dispatch --------------------------------------------------------------------

    def requeue_stuck(self, older_than: timedelta = timedelta(minutes=10)) -> int:
        """Put back messages left ``sending`` by a dispatcher that died; returns how many."""
        cutoff = self.clock.now() - older_than
        statement = (
            update(_M)
            .where(_M.c.status == MessageStatus.SENDING.value, _M.c.claimed_at < cutoff)
            .values(status=MessageStatus.QUEUED.value, claimed_at=None)
        )
        with self.engine.begin() as connection:
            return int(connection.execute(statement).rowcount)

    def _claim(self, message_id: int, statuses: tuple[str, ...]) -> bool:
        statement = (
            update(_M)
            .where(_M.c.id == message_id, _M.c.status.in_(statuses))
            .values(status=MessageStatus.SENDING.value, claimed_at=self.clock.now())
        )
        with self.engine.begin() as connection:
            return int(connection.execute(statement).rowcount) == 1

    def dispatch(
        self,
        gateway: SmsGateway,
        *,
        limit: int | None = None,
        retry_failed: bool = False,
        progress: Callable[[int, int], None] | None = None,
    ) -> DispatchReport:
        """Send queued messages through ``gateway``; returns a count per final status.

        ``retry_failed`` also re-sends failed messages that have had fewer than
        ``max_attempts`` attempts. ``progress(done, total)`` is called after each one.
        """
        report = DispatchReport(gateway.name)
        report.requeued = self.requeue_stuck()
        statuses: tuple[str, ...] = (MessageStatus.QUEUED.value,)
        statement = select(_M.c.id).where(_M.c.status == MessageStatus.QUEUED.value)
        if retry_failed:
            statuses += (MessageStatus.FAILED.value,)
            retry = (_M.c.status == MessageStatus.FAILED.value) & (
                _M.c.attempts < self.max_attempts
            )
            statement = select(_M.c.id).where((_M.c.status == MessageStatus.QUEUED.value) | retry)
        statement = statement.order_by(_M.c.id)
        if limit is not None:
            statement = statement.limit(limit)
        with self.engine.connect() as connection:
            ids = [row[0] for row in connection.execute(statement)]
        for done, message_id in enumerate(ids, start=1):
            if self._claim(message_id, statuses):
                status = self._send_one(gateway, message_id)
                report.counts[status.value] = report.counts.get(status.value, 0) + 1
            if progress is not None:
                progress(done, len(ids))
        log.info("dispatched %d messages via %s: %s", report.total, gateway.name, report.counts)
        return report

    def _send_one(self, gateway: SmsGateway, message_id: int) -> MessageStatus:
        message = self.get(message_id)
        assert message is not None
        phone = message.phone
        if phone is None:  # cannot happen for a queued SMS; never send blind
            self._finish(message, gateway.name, MessageStatus.INVALID_NUMBER, [], None, "no number")
            return MessageStatus.INVALID_NUMBER
        m = message
        sms = OutgoingSms(m.id, phone, m.text, m.episode_key, m.kind, m.segments)
        try:
            result = gateway.send(sms)
        except Exception as exc:  # a gateway must not raise; record it rather than crash
            log.exception("SMS gateway %s raised for message %d", gateway.name, message.id)
            error = f"gateway {gateway.name} raised {type(exc).__name__}: {exc}"
            self._finish(message, gateway.name, MessageStatus.FAILED, [], None, error)
            return MessageStatus.FAILED
        status = MessageStatus(result.outcome.value)
        tries = [(t.outcome.value, t.http_status, t.error) for t in result.tries]
        self._finish(message, gateway.name, status, tries, result.gateway_ref, result.error)
        return status

    def _finish(
        self,
        message: Message,
        gateway: str,
        status: MessageStatus,
        tries: list[tuple[str, int | None, str | None]],
        gateway_ref: str | None,
        error: str | None,
    ) -> None:
        now = self.clock.now()
        attempts = message.attempts + max(1, len(tries))
        values: dict[str, Any] = {
            "status": status.value,
            "attempts": attempts,
            "error": error,
            "gateway": gateway,
            "gateway_ref": gateway_ref,
            "updated_at": now,
            "claimed_at": None,
        }
        if status in (MessageStatus.SENT, MessageStatus.DELIVERED):
            values["sent_at"] = now
        if status is MessageStatus.DELIVERED:
            values["delivered_at"] = now
        rows = [
            {
                "message_id": message.id,
                "attempt": message.attempts + i,
                "at": now,
                "gateway": gateway,
                "outcome": outcome,
                "http_status": http_status,
                "error": try_error,
            }
            for i, (outcome, http_status, try_error) in enumerate(tries, start=1)
        ] or [
            {
                "message_id": message.id,
                "attempt": attempts,
                "at": now,
                "gateway": gateway,
                "outcome": status.value,
                "http_status": None,
                "error": error,
            }
        ]
        with self.engine.begin() as connection:
            connection.execute(update(_M).where(_M.c.id == message.id).values(**values))
            connection.execute(insert(_A), rows)

    async def run(
        self,
        gateway: SmsGateway,
        *,
        every_s: float = 60.0,
        retry_failed: bool = True,
        on_report: Callable[[DispatchReport], None] | None = None,
    ) -> None:
        """Dispatch every ``every_s`` seconds of the outbox's clock until cancelled.

        Each run happens in a worker thread (a gateway may block on HTTP), so the
        event loop keeps going; ``on_report`` gets every run's report.
        """
        if every_s <= 0:
            raise OutboxError(f"the dispatch interval must be > 0 seconds, got {every_s}")
        while True:
            try:
                report = await asyncio.to_thread(self.dispatch, gateway, retry_failed=retry_failed)
            except (OutboxError, SQLAlchemyError) as exc:  # the database is away: try later
                log.error("SMS dispatch via %s failed: %s", gateway.name, exc)
            else:
                if on_report is not None:
                    on_report(report)
            await self.clock.sleep(every_s)

    def record_receipt(
        self, message_id: int, delivered: bool, *, error: str | None = None
    ) -> Message:
        """A delivery receipt for a ``sent`` message: now delivered, or failed with ``error``."""
        message = self.get(message_id)
        if message is None:
            raise OutboxError(f"no message {message_id} in the outbox")
        if message.status is not MessageStatus.SENT:
            if message.status is MessageStatus.DELIVERED and delivered:
                return message  # a repeated receipt
            raise OutboxError(
                f"message {message_id} is {message.status.value}; a receipt is for a sent message"
            )
        now = self.clock.now()
        values: dict[str, Any] = {"updated_at": now}
        if delivered:
            values |= {"status": MessageStatus.DELIVERED.value, "delivered_at": now}
        else:
            values |= {"status": MessageStatus.FAILED.value, "error": error or "not delivered"}
        with self.engine.begin() as connection:
            connection.execute(update(_M).where(_M.c.id == message_id).values(**values))
        result = self.get(message_id)
        assert result is not None
        return result
