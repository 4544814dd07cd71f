"""What the workflows share: errors, configuration, the head-end port, customers, context."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from protocol.clock import Clock

from ..audit import AuditLog
from ..calendar import CalendarError, HolidayCalendar, default_calendar
from ..messages import Channel, Lang, MessageError, Outbox, Recipient
from ..settings import EffectiveSettings, NotificationMode, Scope, SettingsStore
from ..settings import next_allowed_trip_time as _next_allowed
from ..users import Operator, PermissionDeniedError, operator_table, require
from ..workorders import SYSTEM_PREFIX, WorkOrders
from .tables import handler_contact_table

__all__ = [
    "ControlPort",
    "Customer",
    "GuaranteeLockoutError",
    "RateFunction",
    "WorkflowConfig",
    "WorkflowContext",
    "WorkflowError",
    "WorkflowStateError",
]

log = logging.getLogger("prepaid.workflows")


# -- errors ---------------------------------------------------------------------------


class WorkflowError(Exception):
    """Base class of every error raised on purpose by :mod:`prepaid.workflows`."""


class WorkflowStateError(WorkflowError):
    """The step is not possible now (state, or who asks); the message says why."""


class GuaranteeLockoutError(WorkflowError):
    """The customer is under power guarantee (保电): never disconnected."""


class NotFoundError(WorkflowError, LookupError):
    """No such customer, episode or reconnection."""


# -- ports ----------------------------------------------------------------------------


class ControlPort(Protocol):
    """What the workflows need of the head-end (:class:`headend.service.HeadendService`).

    Every call returns a job id at once; the same ``job_id`` asked again is the same
    job (so re-running a step never trips twice). Outcomes come as events.
    """

    def trip(self, address: str, reason: str, *, job_id: str | None = None) -> str: ...

    def permit_close(
        self, address: str, *, reason: str | None = None, job_id: str | None = None
    ) -> str: ...

    def close(
        self, address: str, *, reason: str | None = None, job_id: str | None = None
    ) -> str: ...

    def guarantee(
        self, address: str, on: bool, *, reason: str | None = None, job_id: str | None = None
    ) -> str: ...

    def read(self, address: str, what: Any = ..., *, job_id: str | None = None) -> str: ...


class RateFunction(Protocol):
    """The rating's ``rate_accounts(engine, account_ids, day, *, clock=None)``."""

    def __call__(
        self, engine: Engine, account_ids: Sequence[int], day: date, *, clock: Clock | None = None
    ) -> object: ...


def _default_rate() -> RateFunction:
    from ..rating import rate_accounts

    rate: RateFunction = rate_accounts
    return rate


# -- configuration --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WorkflowConfig:
    """How the workflows run, beyond the settings hierarchy (every default here).

    The settings hierarchy (:mod:`prepaid.settings`) gives, per customer: thresholds,
    notice lead time, repeat-trip policy, protected hours, remote attempts, power
    guarantee, auto operations. These are the rest.
    """

    dunning_period: timedelta = timedelta(days=3)
    """A customer is selected for disconnection only this long after its dunning notice
    (催费通知) — the dunning message in the outbox."""
    require_dunning: bool = True
    """False: select customers in arrears whether or not they were dunned."""
    retry_interval: timedelta = timedelta(minutes=30)
    """After a failed remote trip, try again this long later (outside protected hours)."""
    check_retry: timedelta = timedelta(hours=1)
    """After a relay read that failed, read again this long later."""
    approval_l1_limit: timedelta = timedelta(hours=24)
    """Time limit (SLA) of the level-1 approval, from the request (see
    :mod:`prepaid.workflows.sla`: the request is then overdue and escalated)."""
    approval_l2_limit: timedelta = timedelta(hours=24)
    """Time limit (SLA) of the level-2 approval, from the level-1 approval."""
    stuck_after: timedelta = timedelta(hours=2)
    """A head-end job without an outcome for this long is looked up (lost event)."""
    lang: Lang = Lang.ZH
    signature: str | None = None
    job_prefix: str = "fk"
    """Head-end job ids start with this (``fk-TD…-trip1-1``)."""


# -- customers ------------------------------------------------------------------------

ACCOUNT = sa.table(
    "prepaid_account",
    *(
        sa.column(c)
        for c in (
            "id",
            "customer_no",
            "name",
            "phone",
            "address",
            "supply_unit_id",
            "feeder_line_id",
            "transformer_area_id",
            "meter_address",
            "notify_mode",
            "fee_control_mode",
            "power_guarantee",
            "active",
        )
    ),
)
_account = ACCOUNT
_unit = sa.table("prepaid_supply_unit", sa.column("id"), sa.column("code"))
_line = sa.table("prepaid_feeder_line", sa.column("id"), sa.column("code"))
_area = sa.table(
    "prepaid_transformer_area", sa.column("id"), sa.column("code"), sa.column("feeder_line_id")
)
_meter = sa.table("headend_meter", sa.column("address"), sa.column("breaker_type"))


@dataclass(frozen=True, slots=True)
class Customer:
    """A customer (用电户) as the workflows see it."""

    account_id: int
    customer_no: str
    name: str
    phone: str
    address: str
    meter_address: str
    supply_unit: str | None
    line: str | None
    area: str | None
    notify_mode: str
    fee_control_mode: str
    power_guarantee: bool
    active: bool
    breaker_type: str | None

    @property
    def scope(self) -> Scope:
        return Scope(line=self.line, area=self.area, customer=self.customer_no)


def customer_query() -> sa.Select[Any]:
    own_line = _line.alias("own_line")
    area_line = _line.alias("area_line")
    return sa.select(
        _account.c.id,
        _account.c.customer_no,
        _account.c.name,
        _account.c.phone,
        _account.c.address,
        _account.c.meter_address,
        _account.c.notify_mode,
        _account.c.fee_control_mode,
        _account.c.power_guarantee,
        _account.c.active,
        _unit.c.code.label("unit"),
        sa.func.coalesce(own_line.c.code, area_line.c.code).label("line"),
        _area.c.code.label("area"),
        _meter.c.breaker_type,
    ).select_from(
        _account.outerjoin(_unit, _unit.c.id == _account.c.supply_unit_id)
        .outerjoin(_area, _area.c.id == _account.c.transformer_area_id)
        .outerjoin(own_line, own_line.c.id == _account.c.feeder_line_id)
        .outerjoin(area_line, area_line.c.id == _area.c.feeder_line_id)
        .outerjoin(_meter, _meter.c.address == _account.c.meter_address)
    )


def _customer(row: Any) -> Customer:
    return Customer(
        account_id=int(row.id),
        customer_no=row.customer_no,
        name=row.name,
        phone=row.phone or "",
        address=row.address or "",
        meter_address=row.meter_address,
        supply_unit=row.unit,
        line=row.line,
        area=row.area,
        notify_mode=row.notify_mode,
        fee_control_mode=row.fee_control_mode,
        power_guarantee=bool(row.power_guarantee),
        active=bool(row.active),
        breaker_type=row.breaker_type,
    )


def load_customer(conn: Connection, account: int | str) -> Customer:
    """The customer by account id (int) or customer number (户号, str)."""
    query = customer_query()
    if isinstance(account, int):
        query = query.where(_account.c.id == account)
    else:
        query = query.where(_account.c.customer_no == account.strip())
    row = conn.execute(query).first()
    if row is None:
        what = f"id {account}" if isinstance(account, int) else f"number {account!r}"
        raise NotFoundError(f"no customer with {what}: check the customer number (户号)")
    return _customer(row)


def load_customers(conn: Connection, ids: Sequence[int]) -> dict[int, Customer]:
    out: dict[int, Customer] = {}
    for start in range(0, len(ids), 500):
        chunk = list(ids[start : start + 500])
        for row in conn.execute(customer_query().where(_account.c.id.in_(chunk))):
            out[int(row.id)] = _customer(row)
    return out


# -- the context ----------------------------------------------------------------------


def actor_name(actor: Operator | str) -> str:
    if isinstance(actor, Operator):
        return actor.login
    if not actor.startswith(SYSTEM_PREFIX):
        raise WorkflowError(
            f"actor {actor!r}: pass the operator, or a system component's name starting with "
            f"{SYSTEM_PREFIX!r}"
        )
    return actor


@dataclass(slots=True)
class WorkflowContext:
    """Everything a workflow step uses; built once by :class:`~prepaid.workflows.FeeControl`."""

    engine: Engine
    clock: Clock
    control: ControlPort
    settings: SettingsStore
    outbox: Outbox
    workorders: WorkOrders
    audit: AuditLog
    calendar: HolidayCalendar = field(default_factory=default_calendar)
    config: WorkflowConfig = field(default_factory=WorkflowConfig)
    rate: RateFunction | None = None
    wake: Callable[[], None] = lambda: None
    """Called when something became due now (the orchestrator's loop wakes up)."""

    def effective(self, customer: Customer) -> EffectiveSettings:
        return self.settings.resolve(customer.scope)

    def now(self) -> datetime:
        return self.clock.now()

    def allowed_at(self, moment: datetime, effective: EffectiveSettings) -> datetime:
        """The first time at or after ``moment`` that a trip may run (protected hours)."""
        try:
            return _next_allowed(moment, effective, self.calendar)
        except CalendarError as exc:
            # a year without a calendar file: wait a day and ask again (logged loudly)
            log.error("protected hours at %s cannot be decided: %s", moment, exc)
            return moment + timedelta(days=1)

    def rerate(self, ids: Sequence[int]) -> str | None:
        """Re-rate ``ids`` for today; the error text, or ``None`` when it went well."""
        if not ids:
            return None
        try:
            rate = self.rate or _default_rate()
            rate(self.engine, list(ids), self.clock.now().date(), clock=self.clock)
        except Exception as exc:
            log.exception("re-rating %d account(s) failed", len(ids))
            return f"re-rating failed: {exc}"
        return None

    def guarantee_reason(self, customer: Customer, effective: EffectiveSettings) -> str | None:
        """Why ``customer`` must not be disconnected (保电), or ``None``."""
        if customer.power_guarantee:
            return (
                f"customer {customer.customer_no} is under power guarantee (保电) on its "
                "account record: it is never disconnected"
            )
        if effective.power_guarantee:
            source = effective.source("power_guarantee")
            return (
                f"customer {customer.customer_no} is under power guarantee (保电) set for "
                f"{source}: it is never disconnected; lift the guarantee there first"
            )
        return None

    def recipient(self, customer: Customer, effective: EffectiveSettings) -> Recipient:
        paper = (
            effective.notification_mode is NotificationMode.PAPER
            or customer.notify_mode == NotificationMode.PAPER.value
        )
        return Recipient(
            customer_no=customer.customer_no,
            name=customer.name,
            phone=customer.phone or None,
            address=customer.address,
            area=customer.area or "",
            channel=Channel.PAPER if paper else Channel.SMS,
        )

    def send(
        self, recipient: Recipient, kind: str, params: dict[str, object], episode: str
    ) -> tuple[int | None, str | None]:
        """Enqueue one message for ``episode`` (once); (message id, error text)."""
        try:
            done = self.outbox.enqueue(
                recipient,
                kind,
                params,
                episode=episode,
                lang=self.config.lang,
                signature=self.config.signature,
            )
        except MessageError as exc:
            log.error("message %s for %s not stored: %s", kind, recipient.customer_no, exc)
            return None, str(exc)
        return done.message.id, None

    def handler_phone(self, login: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(
                sa.select(handler_contact_table.c.phone).where(
                    handler_contact_table.c.login == login
                )
            ).scalar()

    def set_handler_phone(self, login: str, phone: str, *, by: Operator) -> None:
        """Record the phone of fault handler ``login`` (for work-order SMS); audited."""
        from ..messages import check_phone
        from ..users import Action

        try:
            require(by, Action.ASSIGN_WORK_ORDER)
        except PermissionDeniedError as exc:
            self.audit.record(
                by, "handler.phone.refused", f"operator:{login}"[:200], {"reason": str(exc)}
            )
            raise
        check = check_phone(phone)
        if not check.valid:
            raise WorkflowError(f"phone {phone!r} for {login}: {check.detail}")
        now = self.clock.now()
        with self.engine.begin() as conn:
            known = conn.execute(
                sa.select(operator_table.c.login).where(operator_table.c.login == login)
            ).first()
            if known is None:
                raise NotFoundError(f"no operator {login!r}: check the login (feikong users list)")
            exists = conn.execute(
                sa.select(handler_contact_table.c.login).where(
                    handler_contact_table.c.login == login
                )
            ).first()
            values = {"phone": check.number, "updated_at": now, "updated_by": by.login}
            if exists:
                conn.execute(
                    sa.update(handler_contact_table)
                    .where(handler_contact_table.c.login == login)
                    .values(**values)
                )
            else:
                conn.execute(sa.insert(handler_contact_table).values(login=login, **values))
            self.audit.record(
                by,
                "workorder.handler-phone",
                f"operator:{login}",
                {"phone": check.number},
                connection=conn,
            )
