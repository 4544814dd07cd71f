"""Many messages into the outbox at once, in the caller's transaction.

:meth:`prepaid.messages.Outbox.enqueue` stores one message per call (three queries);
a dunning run or a monthly bill run stores tens of thousands. :func:`enqueue_many`
renders each message with the same templates and stores them with one multi-row
``INSERT … ON CONFLICT (episode_key) DO NOTHING`` per chunk, then reads their ids
back with one query: the same rows as ``Outbox.enqueue`` would write (status
``queued``, ``paper`` or ``invalid-number``), the same one-message-per-episode rule,
inside the transaction that records why they were sent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from ..messages import (
    Channel,
    Lang,
    MessageStatus,
    Recipient,
    TemplateSet,
    check_phone,
    episode_key,
)
from ..messages.tables import MessageRow
from ._population import id_chunks

__all__ = ["Outgoing", "Stored", "enqueue_many"]

MESSAGE: Final[sa.Table] = MessageRow.__table__  # type: ignore[attr-defined]
_RECIPIENT_FIELDS: Final = ("name", "customer_no", "address")
_INSERT_CHUNK: Final = 500


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message to store: to whom, which template, which episode, with what values."""

    recipient: Recipient
    kind: str
    episode: str
    params: Mapping[str, object]

    @property
    def key(self) -> str:
        return episode_key(self.recipient.customer_no, self.kind, self.episode)


@dataclass(frozen=True, slots=True)
class Stored:
    """A message in the outbox after :func:`enqueue_many`: its id and status."""

    id: int
    status: MessageStatus
    created: bool


def _row(item: Outgoing, templates: TemplateSet, lang: Lang, now: datetime) -> dict[str, Any]:
    recipient = item.recipient
    declared = templates.get(item.kind, lang).params
    values = dict(item.params)
    for name in _RECIPIENT_FIELDS:
        if name in declared and values.get(name) is None:
            values[name] = getattr(recipient, name)
    rendered = templates.render(item.kind, values, lang)
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
    return {
        "episode_key": item.key,
        "kind": item.kind,
        "episode": item.episode,
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


def _insert(connection: Connection) -> Any:
    if connection.dialect.name == "postgresql":
        return postgresql.insert(MESSAGE).on_conflict_do_nothing(index_elements=["episode_key"])
    if connection.dialect.name == "sqlite":
        return sqlite.insert(MESSAGE).on_conflict_do_nothing(index_elements=["episode_key"])
    raise ValueError(
        f"messages are queued on SQLite or PostgreSQL, not {connection.dialect.name}: "
        "give a sqlite:/// or postgresql+psycopg:// --db URL"
    )


def enqueue_many(
    connection: Connection,
    items: Sequence[Outgoing],
    *,
    templates: TemplateSet,
    now: datetime,
    lang: Lang = Lang.ZH,
) -> dict[str, Stored]:
    """Render and store ``items`` once per episode key; ``{key: Stored}`` for every item.

    Runs in ``connection``'s transaction. An item whose episode already has a message
    stores nothing and gets that message (``created=False``). Template errors (a
    missing value) are raised before anything is written.
    """
    if not items:
        return {}
    rows = [_row(item, templates, lang, now) for item in items]
    keys = [row["episode_key"] for row in rows]
    before: set[str] = set()
    for part in id_chunks(keys):
        before.update(
            connection.execute(
                sa.select(MESSAGE.c.episode_key).where(MESSAGE.c.episode_key.in_(part))
            ).scalars()
        )
    statement = _insert(connection)
    fresh = [row for row in rows if row["episode_key"] not in before]
    for i in range(0, len(fresh), _INSERT_CHUNK):
        connection.execute(statement, fresh[i : i + _INSERT_CHUNK])
    out: dict[str, Stored] = {}
    for part in id_chunks(keys):
        for ident, key, status in connection.execute(
            sa.select(MESSAGE.c.id, MESSAGE.c.episode_key, MESSAGE.c.status).where(
                MESSAGE.c.episode_key.in_(part)
            )
        ):
            out[key] = Stored(int(ident), MessageStatus(status), key not in before)
    return out
