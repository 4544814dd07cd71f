"""Dunning (催费): per transformer area, batches of dunning records, SMS or paper.

An account whose real-time balance is below its **dunning threshold** (催费阈值, the
settings hierarchy) is dunned once per *arrears episode*: a dunning record (催费记录)
is opened in a batch (催费批次) of its transformer area (台区), and it stays open until
a run finds the balance back at or above the threshold. While it is open the account
is not dunned again — running again the same day, or every day after each rating,
adds nothing.

Each record is one of three **methods**:

- ``sms`` — SMS mode and a valid mobile number: a ``dunning`` SMS is queued;
- ``paper`` — the customer is notified on paper (the settings' ``notification_mode``
  or the account's own mode): a paper notice;
- ``manual`` — SMS mode but no usable number (empty, too short, letters, bad
  prefix): a paper notice, and the record is on the manual-dunning list (人工催费)
  with the phone problem, so staff visit or call and fix the number.

The notices of a batch's ``paper`` and ``manual`` records are printed as one file
per batch (:func:`print_batch`: HTML with a page per notice, plus plain text), named
by the batch number ``DN<yyyymmdd>-<area>-<nn>``. Each record carries the pay-by time
(now + the notice lead time, 停电通知提前时间), after which the disconnection workflow
may select it (:func:`overdue_records`).

- **Auto dunning** (自动催费, per area): the run after the daily rating (``auto=True``)
  only dunns areas whose ``auto_dunning`` is on; an operator's run (``by`` an
  :class:`~prepaid.users.Operator` with ``create-dunning``) dunns the chosen areas.
- **Power guarantee** (保电) customers are not sent disconnection warnings; they are
  counted in the report (``skipped_guarantee``) so that staff can follow them up.

Set-based: one statement closes recovered records, one selects the accounts to dun
(settings resolved in SQL), each area's batch is written in one transaction with its
messages (:func:`prepaid.service._bulk.enqueue_many`); every batch is audited.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from protocol.clock import Clock

from .audit import AuditLog
from .messages import (
    Channel,
    Lang,
    MessageKind,
    NoticeBatch,
    NoticeError,
    NoticeFiles,
    Outbox,
    PageSize,
    Recipient,
    TemplateSet,
    check_phone,
    default_templates,
    notices_of,
    write_batch,
)
from .service._bulk import MESSAGE, Outgoing, enqueue_many
from .service._errors import DunningError
from .service._population import ACCOUNT, FETCH_CHUNK, Population, Selection, chunks
from .service.tables import dunning, dunning_batch
from .settings import SettingsStore
from .users import Action, Operator, PermissionDeniedError, require

__all__ = [
    "SYSTEM_ACTOR",
    "BatchSummary",
    "DunningError",
    "DunningMethod",
    "DunningRecord",
    "DunningReport",
    "close_recovered",
    "list_batches",
    "list_records",
    "overdue_records",
    "print_batch",
    "run_dunning",
]

log = logging.getLogger(__name__)

SYSTEM_ACTOR: Final = "system:dunning"
_SAFE: Final = re.compile(r"[^\w.\-]")

Progress = Callable[[int], None]


class DunningMethod:
    """How a dunning record reaches the customer (a string constant each)."""

    SMS: Final = "sms"
    PAPER: Final = "paper"
    MANUAL: Final = "manual"


@dataclass(frozen=True, slots=True)
class BatchSummary:
    """One dunning batch (催费批次): its number, area and how its records are sent."""

    batch_no: str
    area: str
    created_at: datetime
    created_by: str
    records: int
    sms: int
    paper: int
    manual: int
    printed_at: datetime | None = None
    notice_file: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "batch_no": self.batch_no,
            "area": self.area,
            "created_at": self.created_at.isoformat(timespec="seconds"),
            "created_by": self.created_by,
            "records": self.records,
            "sms": self.sms,
            "paper": self.paper,
            "manual": self.manual,
            "printed_at": self.printed_at.isoformat(timespec="seconds")
            if self.printed_at
            else None,
            "notice_file": self.notice_file,
        }


@dataclass(frozen=True, slots=True)
class DunningRecord:
    """One dunning record (催费记录): an arrears episode of one account."""

    id: int
    batch_no: str
    customer_no: str
    name: str
    phone: str
    address: str
    area: str
    balance_fen: int
    threshold_fen: int
    amount_due_fen: int
    pay_by: datetime
    method: str
    phone_problem: str | None
    message_id: int | None
    message_status: str | None
    created_at: datetime
    closed_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "batch_no": self.batch_no,
            "customer_no": self.customer_no,
            "name": self.name,
            "phone": self.phone,
            "address": self.address,
            "area": self.area,
            "balance_fen": self.balance_fen,
            "threshold_fen": self.threshold_fen,
            "amount_due_fen": self.amount_due_fen,
            "pay_by": self.pay_by.isoformat(timespec="minutes"),
            "method": self.method,
            "phone_problem": self.phone_problem,
            "message_id": self.message_id,
            "message_status": self.message_status,
            "created_at": self.created_at.isoformat(timespec="seconds"),
            "closed_at": self.closed_at.isoformat(timespec="seconds") if self.closed_at else None,
        }


@dataclass(slots=True)
class DunningReport:
    """What a dunning run did."""

    at: datetime
    closed: int = 0
    batches: list[BatchSummary] = field(default_factory=list)
    files: list[NoticeFiles] = field(default_factory=list)
    skipped_auto_off: int = 0
    skipped_guarantee: int = 0
    already_open: int = 0

    @property
    def records(self) -> int:
        return sum(b.records for b in self.batches)

    def count(self, method: str) -> int:
        return sum(getattr(b, method) for b in self.batches)

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(timespec="seconds"),
            "closed": self.closed,
            "records": self.records,
            "sms": self.count(DunningMethod.SMS),
            "paper": self.count(DunningMethod.PAPER),
            "manual": self.count(DunningMethod.MANUAL),
            "skipped_auto_off": self.skipped_auto_off,
            "skipped_guarantee": self.skipped_guarantee,
            "already_open": self.already_open,
            "batches": [b.to_dict() for b in self.batches],
            "files": [str(f.html) for f in self.files],
        }


# -- closing -------------------------------------------------------------------------


def close_recovered(connection: Connection, pop: Population, now: datetime) -> int:
    """End the open dunning records whose balance is back at or above the threshold."""
    a, s = pop.account, pop.state
    recovered = (
        sa.select(dunning.c.id)
        .select_from(pop.from_().join(dunning, dunning.c.account_id == a.c.id))
        .where(dunning.c.closed_at.is_(None), s.c.balance_fen >= pop.fen("dunning_threshold"))
    )
    balance = (
        sa.select(s.c.balance_fen).where(s.c.account_id == dunning.c.account_id).scalar_subquery()
    )
    result = connection.execute(
        sa.update(dunning)
        .where(dunning.c.id.in_(recovered))
        .values(closed_at=now, closed_balance_fen=balance)
    )
    return int(result.rowcount or 0)


# -- running -------------------------------------------------------------------------


def _actor(by: Operator | str) -> str:
    return by.login if isinstance(by, Operator) else by


def _authorise(by: Operator | str) -> str | None:
    """An operator needs ``create-dunning``; returns the supply unit it is bound to."""
    if not isinstance(by, Operator):
        if not by.startswith("system:"):
            raise DunningError(f"actor {by!r}: pass the operator, or a name starting 'system:'")
        return None
    require(by, Action.CREATE_DUNNING)
    return by.supply_unit


class _BatchNumbers:
    """Batch numbers ``DN<yyyymmdd>-<area>-<nn>``: the next free ``nn`` per area and day."""

    def __init__(self, engine: Engine, now: datetime) -> None:
        self.day = f"DN{now:%Y%m%d}-"
        self.taken: dict[str, int] = {}
        with engine.connect() as connection:
            for number in connection.execute(
                sa.select(dunning_batch.c.batch_no).where(
                    dunning_batch.c.batch_no.like(f"{self.day}%")
                )
            ).scalars():
                stem, _, seq = str(number).rpartition("-")
                if seq.isdigit():
                    self.taken[stem] = max(self.taken.get(stem, 0), int(seq))

    def next(self, area: str) -> str:
        stem = f"{self.day}{_SAFE.sub('_', area) or 'none'}"[:60]
        self.taken[stem] = self.taken.get(stem, 0) + 1
        return f"{stem}-{self.taken[stem]:02d}"


def _record_insert(connection: Connection) -> Any:
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    return (
        dialect.insert(dunning)
        .on_conflict_do_nothing(
            index_elements=["account_id"], index_where=dunning.c.closed_at.is_(None)
        )
        .returning(dunning.c.id, dunning.c.account_id)
    )


def _by_area(rows: Iterator[list[Any]]) -> Iterator[tuple[str, list[Any]]]:
    """Rows ordered by area, regrouped as (area, rows of that area)."""
    current: str | None = None
    group: list[Any] = []
    for chunk in rows:
        for row in chunk:
            if row.area != current and group:
                yield current or "", group
                group = []
            current = row.area
            group.append(row)
    if group:
        yield current or "", group


def run_dunning(
    engine: Engine,
    *,
    clock: Clock,
    by: Operator | str = SYSTEM_ACTOR,
    settings: SettingsStore | None = None,
    templates: TemplateSet | None = None,
    auto: bool = True,
    selection: Selection | None = None,
    notices_dir: Path | None = None,
    page: PageSize = PageSize.A5,
    issuer: str = "",
    lang: Lang = Lang.ZH,
    progress: Progress | None = None,
) -> DunningReport:
    """Close recovered records, then dun each account newly below its threshold.

    One batch per transformer area and run. ``auto``: the run after rating — only
    areas with ``auto_dunning`` on. ``notices_dir``: print each batch's paper notices
    there at once (else later with :func:`print_batch`). ``progress(n)``: records so
    far. Raises :class:`~prepaid.users.PermissionDeniedError` for an operator without
    ``create-dunning``.
    """
    try:
        unit = _authorise(by)
    except PermissionDeniedError as exc:
        AuditLog(engine, clock).record(
            _actor(by), "dunning.run.refused", "dunning:run", {"reason": str(exc)}
        )
        raise
    actor = _actor(by)
    settings = settings or SettingsStore(engine, clock=clock)
    templates = templates or default_templates()
    audit = AuditLog(engine, clock)
    pop = Population(settings)
    now = clock.now()
    report = DunningReport(now)
    a, s = pop.account, pop.state
    try:
        with engine.begin() as connection:
            report.closed = close_recovered(connection, pop, now)
        threshold = pop.fen("dunning_threshold")
        chosen = pop.chosen(selection)
        if unit is not None:  # an operator of one supply unit duns only its accounts
            chosen = sa.and_(chosen, pop.unit_t.c.code == unit)
        open_now = sa.exists().where(dunning.c.account_id == a.c.id, dunning.c.closed_at.is_(None))
        statement = (
            sa.select(
                *pop.recipient_columns(),
                s.c.balance_fen,
                threshold.label("threshold_fen"),
                pop.fen("reminder_amount").label("reminder_fen"),
                sa.cast(pop.setting("notice_lead_time"), sa.BigInteger()).label("lead_s"),
                pop.flag("auto_dunning").label("auto_on"),
                sa.or_(
                    a.c.power_guarantee.is_(True), pop.setting("power_guarantee") == "true"
                ).label("guarantee"),
            )
            .select_from(pop.from_())
            .where(
                a.c.active.is_(True),
                s.c.balance_fen < pop.max_fen("dunning_threshold"),
                s.c.balance_fen < threshold,
                chosen,
                ~open_now,
            )
            .order_by(pop.area, a.c.id)
        )
        numbers = _BatchNumbers(engine, now)
        pending: list[tuple[str, list[Any]]] = []
        size = 0

        def flush() -> None:
            nonlocal pending, size
            if not pending:
                return
            with engine.begin() as writer:
                written = _write_batches(
                    writer, pending, numbers, report, templates, now, actor, lang
                )
                if written:
                    audit.record(
                        actor,
                        "dunning.batches",
                        f"dunning:{written[0].batch_no}"
                        + (f"+{len(written) - 1}" if len(written) > 1 else ""),
                        {
                            "auto": auto,
                            "batches": {
                                b.batch_no: {
                                    "area": b.area,
                                    "records": b.records,
                                    "sms": b.sms,
                                    "paper": b.paper,
                                    "manual": b.manual,
                                }
                                for b in written
                            },
                        },
                        connection=writer,
                    )
            report.batches += written
            pending, size = [], 0
            if progress is not None:
                progress(report.records)

        with engine.connect() as reader:
            for area, rows in _by_area(chunks(reader, statement, FETCH_CHUNK)):
                wanted = []
                for r in rows:
                    if auto and not r.auto_on:
                        report.skipped_auto_off += 1
                    elif r.guarantee:
                        report.skipped_guarantee += 1
                    else:
                        wanted.append(r)
                if wanted:
                    pending.append((area, wanted))
                    size += len(wanted)
                if size >= FETCH_CHUNK:
                    flush()
            flush()
    except SQLAlchemyError as exc:
        raise DunningError(
            f"the dunning run stopped in the database ({type(exc).__name__}: {exc}); the "
            "batches committed so far are kept: run it again to finish"
        ) from exc
    if notices_dir is not None:
        for i, batch in enumerate(report.batches):
            if batch.paper or batch.manual:
                report.files.append(
                    print_batch(
                        engine,
                        batch.batch_no,
                        notices_dir,
                        clock=clock,
                        page=page,
                        issuer=issuer,
                        templates=templates,
                    )
                )
                report.batches[i] = dataclasses.replace(
                    batch, printed_at=clock.now(), notice_file=str(report.files[-1].html)
                )
    log.info("dunning: %s", {k: v for k, v in report.to_dict().items() if k != "batches"})
    return report


def _method(row: Any) -> tuple[str, str | None]:
    if row.paper:
        return DunningMethod.PAPER, None
    check = check_phone(row.phone)
    if check.valid:
        return DunningMethod.SMS, None
    return DunningMethod.MANUAL, f"{check.problem}: {check.detail}"[:128]


def _write_batches(
    writer: Connection,
    groups: list[tuple[str, list[Any]]],
    numbers: _BatchNumbers,
    report: DunningReport,
    templates: TemplateSet,
    now: datetime,
    actor: str,
    lang: Lang,
) -> list[BatchSummary]:
    """One batch per (area, rows) group, written together in ``writer``'s transaction."""
    batch_nos = [numbers.next(area) for area, _ in groups]
    empty = {"created_at": now, "created_by": actor, "records": 0, "sms": 0, "paper": 0}
    wanted: list[dict[str, Any]] = [
        {"batch_no": no, "area": area, **empty, "manual": 0}
        for no, (area, _) in zip(batch_nos, groups, strict=True)
    ]
    ids = {
        str(number): int(ident)
        for ident, number in writer.execute(
            sa.insert(dunning_batch).returning(dunning_batch.c.id, dunning_batch.c.batch_no),
            wanted,
        )
    }
    values: list[dict[str, Any]] = []
    rows: list[Any] = []
    for batch_no, (area, group) in zip(batch_nos, groups, strict=True):
        for r in group:
            method, problem = _method(r)
            values.append(
                {
                    "batch_id": ids[batch_no],
                    "account_id": r.account_id,
                    "customer_no": r.customer_no,
                    "balance_fen": int(r.balance_fen),
                    "threshold_fen": int(r.threshold_fen),
                    "amount_due_fen": max(1, int(r.reminder_fen) - int(r.balance_fen)),
                    "pay_by": now + timedelta(seconds=int(r.lead_s)),
                    "method": method,
                    "phone_problem": problem,
                    "created_at": now,
                }
            )
            rows.append((area, r))
    inserted = {
        int(acc): int(ident) for ident, acc in writer.execute(_record_insert(writer), values)
    }
    report.already_open += len(values) - len(inserted)
    items: list[Outgoing] = []
    record_of: dict[str, int] = {}
    counts: dict[int, dict[str, int]] = {
        i: {"records": 0, "sms": 0, "paper": 0, "manual": 0} for i in ids.values()
    }
    for (area, r), v in zip(rows, values, strict=True):
        ident = inserted.get(int(r.account_id))
        if ident is None:
            continue
        counts[v["batch_id"]]["records"] += 1
        counts[v["batch_id"]][v["method"]] += 1
        item = Outgoing(
            Recipient(
                customer_no=r.customer_no,
                name=r.name,
                phone=r.phone,
                address=r.address,
                area=area,
                channel=Channel.PAPER if v["method"] == DunningMethod.PAPER else Channel.SMS,
            ),
            MessageKind.DUNNING.value,
            f"dunning-{ident}",
            {
                "balance": v["balance_fen"],
                "amount_due": v["amount_due_fen"],
                "pay_by": v["pay_by"],
            },
        )
        items.append(item)
        record_of[item.key] = ident
    stored = enqueue_many(writer, items, templates=templates, now=now, lang=lang)
    if stored:
        writer.execute(
            sa.update(dunning)
            .where(dunning.c.id == sa.bindparam("record_id"))
            .values(message_id=sa.bindparam("mid")),
            [{"record_id": record_of[key], "mid": m.id} for key, m in stored.items()],
        )
    kept = {i: c for i, c in counts.items() if c["records"]}
    gone = [i for i, c in counts.items() if not c["records"]]
    if gone:  # every account of the group was dunned by a concurrent run
        writer.execute(sa.delete(dunning_batch).where(dunning_batch.c.id.in_(gone)))
    if kept:
        writer.execute(
            sa.update(dunning_batch)
            .where(dunning_batch.c.id == sa.bindparam("bid"))
            .values(
                records=sa.bindparam("n"),
                sms=sa.bindparam("n_sms"),
                paper=sa.bindparam("n_paper"),
                manual=sa.bindparam("n_manual"),
            ),
            [
                {
                    "bid": i,
                    "n": c["records"],
                    "n_sms": c["sms"],
                    "n_paper": c["paper"],
                    "n_manual": c["manual"],
                }
                for i, c in kept.items()
            ],
        )
    return [
        BatchSummary(
            no,
            area,
            now,
            actor,
            kept[ids[no]]["records"],
            kept[ids[no]]["sms"],
            kept[ids[no]]["paper"],
            kept[ids[no]]["manual"],
        )
        for no, (area, _) in zip(batch_nos, groups, strict=True)
        if ids[no] in kept
    ]


# -- paper notices -------------------------------------------------------------------


def print_batch(
    engine: Engine,
    batch_no: str,
    directory: Path,
    *,
    clock: Clock,
    page: PageSize = PageSize.A5,
    issuer: str = "",
    templates: TemplateSet | None = None,
) -> NoticeFiles:
    """Print the paper notices of a batch (its ``paper`` and ``manual`` records).

    Writes ``<batch_no>.html`` (a page per notice) and ``<batch_no>.txt`` into
    ``directory``, marks the messages printed and records the file on the batch.
    Printing again writes the same notices again (a lost or spoiled print run).
    """
    templates = templates or default_templates()
    with engine.connect() as connection:
        batch = connection.execute(
            sa.select(dunning_batch).where(dunning_batch.c.batch_no == batch_no)
        ).first()
        if batch is None:
            raise DunningError(
                f"no dunning batch {batch_no!r}: check the number (feikong dunning batches)"
            )
        ids = [
            int(i)
            for i in connection.execute(
                sa.select(dunning.c.message_id)
                .where(
                    dunning.c.batch_id == batch.id,
                    dunning.c.method != DunningMethod.SMS,
                    dunning.c.message_id.is_not(None),
                )
                .order_by(dunning.c.id)
            ).scalars()
        ]
    if not ids:
        raise DunningError(
            f"batch {batch_no} has no paper or manual records: every customer in it got an SMS"
        )
    outbox = Outbox(engine, templates=templates, clock=clock)
    wanted = set(ids)
    messages = [
        m
        for m in outbox.messages(kind=MessageKind.DUNNING.value, area=batch.area)
        if m.id in wanted
    ]
    order = {ident: i for i, ident in enumerate(ids)}
    messages.sort(key=lambda m: order[m.id])
    try:
        files = write_batch(
            NoticeBatch.of(batch_no, clock.now(), notices_of(messages, templates), issuer),
            directory,
            page=page,
        )
    except NoticeError as exc:
        raise DunningError(str(exc)) from exc
    outbox.mark_printed(ids, batch_no)
    with engine.begin() as connection:
        connection.execute(
            sa.update(dunning_batch)
            .where(dunning_batch.c.id == batch.id)
            .values(printed_at=clock.now(), notice_file=str(files.html)[:255])
        )
    log.info("printed %d dunning notices of batch %s to %s", files.count, batch_no, files.html)
    return files


# -- reading -------------------------------------------------------------------------


def list_batches(
    engine: Engine, *, area: str | None = None, limit: int | None = 100
) -> list[BatchSummary]:
    """Dunning batches, newest first."""
    statement = sa.select(dunning_batch).order_by(dunning_batch.c.id.desc())
    if area:
        statement = statement.where(dunning_batch.c.area == area)
    if limit is not None:
        statement = statement.limit(limit)
    with engine.connect() as connection:
        return [
            BatchSummary(
                r.batch_no,
                r.area,
                r.created_at,
                r.created_by,
                r.records,
                r.sms,
                r.paper,
                r.manual,
                r.printed_at,
                r.notice_file,
            )
            for r in connection.execute(statement)
        ]


def list_records(
    engine: Engine,
    *,
    batch_no: str | None = None,
    area: str | None = None,
    methods: tuple[str, ...] | None = None,
    open_only: bool = False,
    customer_no: str | None = None,
    due_by: datetime | None = None,
    limit: int | None = None,
) -> list[DunningRecord]:
    """Dunning records (oldest first) by batch, area, method, open or not, customer.

    The manual-dunning list (人工催费清单) is ``methods=("paper", "manual"),
    open_only=True``.
    """
    statement = (
        sa.select(
            dunning,
            dunning_batch.c.batch_no,
            dunning_batch.c.area,
            ACCOUNT.c.name,
            ACCOUNT.c.phone,
            ACCOUNT.c.address,
            MESSAGE.c.status.label("message_status"),
        )
        .select_from(
            dunning.join(dunning_batch, dunning_batch.c.id == dunning.c.batch_id)
            .join(ACCOUNT, ACCOUNT.c.id == dunning.c.account_id)
            .outerjoin(MESSAGE, MESSAGE.c.id == dunning.c.message_id)
        )
        .order_by(dunning.c.id)
    )
    if batch_no:
        statement = statement.where(dunning_batch.c.batch_no == batch_no)
    if area:
        statement = statement.where(dunning_batch.c.area == area)
    if methods:
        statement = statement.where(dunning.c.method.in_(methods))
    if open_only:
        statement = statement.where(dunning.c.closed_at.is_(None))
    if customer_no:
        statement = statement.where(dunning.c.customer_no == customer_no)
    if due_by is not None:
        statement = statement.where(dunning.c.pay_by <= due_by)
    if limit is not None:
        statement = statement.limit(limit)
    with engine.connect() as connection:
        return [_record(r) for r in connection.execute(statement)]


def _record(r: Any) -> DunningRecord:
    return DunningRecord(
        id=int(r.id),
        batch_no=r.batch_no,
        customer_no=r.customer_no,
        name=r.name,
        phone=r.phone,
        address=r.address,
        area=r.area,
        balance_fen=int(r.balance_fen),
        threshold_fen=int(r.threshold_fen),
        amount_due_fen=int(r.amount_due_fen),
        pay_by=r.pay_by,
        method=r.method,
        phone_problem=r.phone_problem,
        message_id=r.message_id,
        message_status=r.message_status,
        created_at=r.created_at,
        closed_at=r.closed_at,
    )


def overdue_records(engine: Engine, now: datetime) -> list[DunningRecord]:
    """Open dunning records whose pay-by time has passed (the notice period is over).

    What the disconnection workflow selects from (SPEC S4.2-3): it re-rates these
    accounts and raises requests for those still in arrears.
    """
    return list_records(engine, open_only=True, due_by=now)
