"""The audit log (审计日志): every state-changing action, append-only and hash-chained.

Each entry records who (the operator's login, or a system component such as
``system:rating``), when (the shared clock), what (an action such as
``settings.set``), the target (``setting:area:A7:reminder_amount``,
``operator:alice``, ``customer:0001``) and details (a JSON object). Entries are
numbered 1, 2, 3 … without gaps, and each carries the SHA-256 of its content and of
the previous entry's hash, so a changed, removed or inserted entry breaks the chain:
:meth:`AuditLog.verify` finds the first bad one. The database refuses UPDATE and
DELETE on the table (triggers created by the migration), and the chain head is kept
in ``prepaid_audit_head`` so that cutting entries off the end is found as well.

An action and its audit entry are written in one transaction: pass the caller's
``connection`` to :meth:`AuditLog.record`. Appends are serialised by the head row's
lock, so concurrent writers never fork the chain.
"""

from __future__ import annotations

import csv
import dataclasses
import enum
import hashlib
import json
import logging
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import PurePath
from typing import Any, Final, Protocol, TextIO

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlmodel import SQLModel

from protocol.clock import Clock

__all__ = [
    "GENESIS",
    "AuditEntry",
    "AuditError",
    "AuditLog",
    "ChainReport",
    "audit_head",
    "audit_table",
    "canonical_json",
]

log = logging.getLogger(__name__)

GENESIS: Final = "0" * 64
"""The "previous hash" of entry 1."""

_ACTION = re.compile(r"^[a-z][a-z0-9_.:-]{0,63}$")
_MAX_ACTOR: Final = 64
_MAX_TARGET: Final = 200

metadata = SQLModel.metadata

audit_table = sa.Table(
    "prepaid_audit",
    metadata,
    sa.Column(
        "id",
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
        primary_key=True,
        autoincrement=False,
    ),
    sa.Column("at", sa.DateTime(), nullable=False),
    sa.Column("actor", sa.String(_MAX_ACTOR), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("target", sa.String(_MAX_TARGET), nullable=False),
    sa.Column("details", sa.Text(), nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Index("ix_prepaid_audit_actor", "actor", "at"),
    sa.Index("ix_prepaid_audit_target", "target", "at"),
    sa.Index("ix_prepaid_audit_action", "action", "at"),
    sa.Index("ix_prepaid_audit_at", "at"),
)

audit_head = sa.Table(
    "prepaid_audit_head",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column("last_id", sa.BigInteger(), nullable=False),
    sa.Column("last_hash", sa.String(64), nullable=False),
    sa.CheckConstraint("id = 1", name="ck_prepaid_audit_head_single"),
)


class AuditError(Exception):
    """An audit entry that cannot be written, or a query that cannot be run."""


class _HasLogin(Protocol):
    @property
    def login(self) -> str: ...


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    if isinstance(value, PurePath):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    raise TypeError(
        f"audit details: {type(value).__name__} {value!r} cannot be written as JSON; "
        "pass text, numbers, Decimal, dates, enums, lists or dicts"
    )


def canonical_json(value: Any) -> str:
    """Compact JSON with sorted keys (the form that is stored and hashed)."""
    return json.dumps(
        value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=_json_default
    )


def _entry_hash(
    entry_id: int, at: datetime, actor: str, action: str, target: str, details: str, prev: str
) -> str:
    payload = canonical_json([entry_id, at.isoformat(), actor, action, target, details, prev])
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One audit-log entry."""

    id: int
    at: datetime
    actor: str
    action: str
    target: str
    details: Mapping[str, Any]
    prev_hash: str
    hash: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at.isoformat(),
            "actor": self.actor,
            "action": self.action,
            "target": self.target,
            "details": dict(self.details),
            "hash": self.hash,
        }


@dataclass(frozen=True, slots=True)
class ChainReport:
    """What :meth:`AuditLog.verify` found: ``ok``, or the first bad entry and why."""

    ok: bool
    checked: int
    last_id: int
    bad_id: int | None = None
    problem: str | None = None
    last_hash: str = ""
    """The hash of the last entry: write it down outside the database (an *anchor*,
    ``LAST_ID:HASH``) and give it to :meth:`AuditLog.verify` later — a log rewritten
    wholesale, hashes and all, no longer carries it."""

    @property
    def anchor(self) -> str:
        """``LAST_ID:HASH`` of the chain's head, for ``feikong audit verify --anchor``."""
        return f"{self.last_id}:{self.last_hash}"

    def __str__(self) -> str:
        if self.ok:
            return f"audit chain intact: {self.checked} entries, last #{self.last_id}"
        return f"audit chain BROKEN at entry #{self.bad_id}: {self.problem}"


def _naive(moment: datetime) -> datetime:
    return moment.astimezone().replace(tzinfo=None) if moment.tzinfo else moment


def _entry(row: Any) -> AuditEntry:
    return AuditEntry(
        id=row.id,
        at=row.at,
        actor=row.actor,
        action=row.action,
        target=row.target,
        details=json.loads(row.details),
        prev_hash=row.prev_hash,
        hash=row.hash,
    )


class AuditLog:
    """Append to, query, export and verify the audit log of a prepaid database."""

    def __init__(self, engine: Engine, clock: Clock) -> None:
        self.engine = engine
        self.clock = clock

    # -- writing -------------------------------------------------------------------------

    def record(
        self,
        actor: str | _HasLogin,
        action: str,
        target: str,
        details: Mapping[str, Any] | None = None,
        *,
        connection: Connection | None = None,
    ) -> AuditEntry:
        """Append one entry; in ``connection``'s transaction when given (then it commits
        or rolls back with the action it records)."""
        name = actor if isinstance(actor, str) else actor.login
        if not name or len(name) > _MAX_ACTOR:
            raise AuditError(
                f"audit actor {name!r}: expected a login of 1..{_MAX_ACTOR} characters"
            )
        if not _ACTION.match(action):
            raise AuditError(
                f"audit action {action!r}: expected lower-case words joined by '.', e.g. "
                "settings.set"
            )
        if not target or len(target) > _MAX_TARGET:
            raise AuditError(f"audit target {target!r}: expected 1..{_MAX_TARGET} characters")
        try:
            text = canonical_json(dict(details or {}))
        except TypeError as exc:
            raise AuditError(str(exc)) from None
        if connection is not None:
            return self._append(connection, name, action, target, text)
        with self.engine.begin() as conn:
            return self._append(conn, name, action, target, text)

    def _append(
        self, conn: Connection, actor: str, action: str, target: str, text: str
    ) -> AuditEntry:
        # Taking the head row's write lock first serialises appends (PostgreSQL row lock,
        # SQLite write lock), so two writers never chain onto the same previous entry.
        bumped = conn.execute(
            sa.update(audit_head)
            .where(audit_head.c.id == 1)
            .values(last_id=audit_head.c.last_id + 1)
        )
        if bumped.rowcount == 0:
            conn.execute(sa.insert(audit_head).values(id=1, last_id=1, last_hash=GENESIS))
        head = conn.execute(
            sa.select(audit_head.c.last_id, audit_head.c.last_hash).where(audit_head.c.id == 1)
        ).one()
        entry_id, prev = int(head.last_id), str(head.last_hash)
        at = _naive(self.clock.now())
        digest = _entry_hash(entry_id, at, actor, action, target, text, prev)
        conn.execute(
            sa.insert(audit_table).values(
                id=entry_id,
                at=at,
                actor=actor,
                action=action,
                target=target,
                details=text,
                prev_hash=prev,
                hash=digest,
            )
        )
        conn.execute(sa.update(audit_head).where(audit_head.c.id == 1).values(last_hash=digest))
        log.debug("audit #%d %s %s %s", entry_id, actor, action, target)
        return AuditEntry(entry_id, at, actor, action, target, json.loads(text), prev, digest)

    # -- reading -------------------------------------------------------------------------

    def _filtered(
        self,
        *,
        actor: str | None,
        action: str | None,
        target: str | None,
        since: datetime | None,
        until: datetime | None,
    ) -> sa.Select[Any]:
        query = sa.select(audit_table)
        if actor:
            query = query.where(audit_table.c.actor == actor)
        for column, pattern in ((audit_table.c.action, action), (audit_table.c.target, target)):
            if pattern and pattern.endswith("*"):
                prefix = pattern[:-1]
                query = query.where(sa.func.substr(column, 1, len(prefix)) == prefix)
            elif pattern:
                query = query.where(column == pattern)
        if since is not None:
            query = query.where(audit_table.c.at >= _naive(since))
        if until is not None:
            query = query.where(audit_table.c.at < _naive(until))
        return query

    def query(
        self,
        *,
        actor: str | None = None,
        action: str | None = None,
        target: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> list[AuditEntry]:
        """Entries by actor, action and target (exact, or a prefix ending in ``*``) and
        time range ``[since, until)``; oldest first unless ``newest_first``."""
        query = self._filtered(actor=actor, action=action, target=target, since=since, until=until)
        query = query.order_by(audit_table.c.id.desc() if newest_first else audit_table.c.id)
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            return [_entry(row) for row in conn.execute(query)]

    def iter_entries(self, *, batch: int = 5000, **filters: Any) -> Iterator[AuditEntry]:
        """Every matching entry, oldest first, read in batches (for exports)."""
        last = 0
        while True:
            query = (
                self._filtered(
                    actor=filters.get("actor"),
                    action=filters.get("action"),
                    target=filters.get("target"),
                    since=filters.get("since"),
                    until=filters.get("until"),
                )
                .where(audit_table.c.id > last)
                .order_by(audit_table.c.id)
                .limit(batch)
            )
            with self.engine.connect() as conn:
                rows = list(conn.execute(query))
            if not rows:
                return
            for row in rows:
                yield _entry(row)
            last = rows[-1].id

    def export_csv(self, out: TextIO, **filters: Any) -> int:
        """Write matching entries as CSV (id, at, actor, action, target, details, hash)."""
        writer = csv.writer(out)
        writer.writerow(["id", "at", "actor", "action", "target", "details", "hash"])
        count = 0
        for entry in self.iter_entries(**filters):
            writer.writerow(
                [
                    entry.id,
                    entry.at.isoformat(sep=" "),
                    entry.actor,
                    entry.action,
                    entry.target,
                    canonical_json(dict(entry.details)),
                    entry.hash,
                ]
            )
            count += 1
        return count

    # -- verifying -----------------------------------------------------------------------

    def verify(
        self,
        *,
        batch: int = 5000,
        progress: Callable[[int, int], None] | None = None,
        anchors: Sequence[tuple[int, str]] = (),
    ) -> ChainReport:
        """Recompute the chain from entry 1; the first gap, edit or broken link is reported.

        ``anchors`` are ``(entry id, hash)`` pairs noted down earlier outside the database
        (:attr:`ChainReport.anchor`): each entry must still be there with that hash, which
        finds a log rewritten with freshly computed hashes too.
        """
        expected = {int(ident): str(digest).lower() for ident, digest in anchors}
        with self.engine.connect() as conn:
            head = conn.execute(
                sa.select(audit_head.c.last_id, audit_head.c.last_hash).where(audit_head.c.id == 1)
            ).one_or_none()
            total = int(
                conn.execute(sa.select(sa.func.count()).select_from(audit_table)).scalar_one()
            )
        expected_id, prev, checked = 1, GENESIS, 0
        last = 0
        while True:
            with self.engine.connect() as conn:
                rows = list(
                    conn.execute(
                        sa.select(audit_table)
                        .where(audit_table.c.id > last)
                        .order_by(audit_table.c.id)
                        .limit(batch)
                    )
                )
            if not rows:
                break
            for row in rows:
                if row.id != expected_id:
                    return ChainReport(
                        False,
                        checked,
                        last,
                        expected_id,
                        f"entry #{expected_id} is missing (the next one is #{row.id})",
                    )
                if row.prev_hash != prev:
                    return ChainReport(
                        False,
                        checked,
                        last,
                        row.id,
                        "its previous-hash does not match the entry before it",
                    )
                digest = _entry_hash(
                    row.id, row.at, row.actor, row.action, row.target, row.details, row.prev_hash
                )
                if digest != row.hash:
                    return ChainReport(
                        False,
                        checked,
                        last,
                        row.id,
                        "its content does not match its hash (the entry was changed)",
                    )
                anchored = expected.pop(row.id, None)
                if anchored is not None and anchored != row.hash:
                    return ChainReport(
                        False,
                        checked,
                        last,
                        row.id,
                        f"its hash {row.hash[:16]}… is not the {anchored[:16]}… noted down for "
                        "it (the log was rewritten since)",
                    )
                prev, last, expected_id = row.hash, row.id, row.id + 1
                checked += 1
            if progress is not None:
                progress(checked, total)
        head_id, head_hash = (int(head.last_id), str(head.last_hash)) if head else (0, GENESIS)
        if (head_id, head_hash) != (last, prev):
            return ChainReport(
                False,
                checked,
                last,
                last + 1,
                f"the chain head says the last entry is #{head_id}, but the log ends at "
                f"#{last} (entries were removed from the end)",
            )
        if expected:
            missing = min(expected)
            return ChainReport(
                False,
                checked,
                last,
                missing,
                f"entry #{missing} was noted down but the log ends at #{last} "
                "(entries were removed from the end)",
            )
        return ChainReport(True, checked, last, last_hash=prev)
