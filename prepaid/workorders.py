"""Work orders (工单): field work for a fault handler, with states, history and an SLA.

A work order has a number (``GD20260302000001``: 工单 date and sequence), a
:class:`WorkOrderKind` (disconnection failure 停电失败, reconnection failure 复电失败,
anomaly 异常, other), the customer and meter it concerns, a summary, and moves
through :class:`WorkOrderState`::

    open ──assign──▶ assigned ──record_result──▶ result-recorded ──close──▶ closed
      │                 │  ▲                          │
      └─────────────────┴──┴── reassign ──────────────┘   cancel (not closed yet) ▶ cancelled

- ``create`` is done by an operator or by a system component (``system:…``, e.g. the
  disconnection workflow after N failed remote trips). A work order created with a
  ``reference`` (``disconnection:12``, ``anomaly:0001:20513``) exists once per kind
  and reference: creating it again returns the one there is.
- ``assign`` gives it to an enabled operator holding the ``fault-handler`` role
  (:meth:`WorkOrders.pick_handler` chooses the least-loaded one of the customer's
  supply unit); operators assign, systems may auto-assign.
- ``record_result`` is the assignee's on-site result (现场处理结果): an
  :class:`WorkOrderOutcome` and what was done. Listeners registered with
  :meth:`WorkOrders.on_result` see it in the same transaction (the disconnection
  workflow records an on-site disconnection that way).
- ``close`` by the assignee or an operator, after a result was recorded.
- ``cancel`` when the work is no longer needed (the customer paid), with a reason.

Every change appends to the work order's history (who, when, what, comment) and
to the audit log (``workorder.*``, target ``workorder:<number>``) in one
transaction; refused changes are audited as ``workorder.<verb>.refused``. The SLA
(时限) is a due time per kind from creation; :meth:`WorkOrders.overdue` lists the
late ones.
"""

from __future__ import annotations

import builtins
import enum
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlmodel import SQLModel

from protocol.clock import Clock

from .audit import AuditLog
from .users import (
    Action,
    Operator,
    PermissionDeniedError,
    Role,
    operator_role_table,
    operator_table,
)
from .users import require as require_permission

__all__ = [
    "DEFAULT_SLA",
    "SYSTEM_PREFIX",
    "Actor",
    "WorkOrder",
    "WorkOrderError",
    "WorkOrderEvent",
    "WorkOrderKind",
    "WorkOrderNotFoundError",
    "WorkOrderOutcome",
    "WorkOrderState",
    "WorkOrderStateError",
    "WorkOrders",
    "work_order_event_table",
    "work_order_table",
]

log = logging.getLogger(__name__)

SYSTEM_PREFIX: Final = "system:"
"""Actors that are not people (``system:disconnection``) start with this."""


# -- errors ---------------------------------------------------------------------------


class WorkOrderError(Exception):
    """Base class of every error raised on purpose by :mod:`prepaid.workorders`."""


class WorkOrderNotFoundError(WorkOrderError, LookupError):
    """No work order with that number."""


class WorkOrderStateError(WorkOrderError):
    """The change is not possible in the work order's current state (or by that person)."""


# -- codes ----------------------------------------------------------------------------


class WorkOrderKind(enum.StrEnum):
    """What the field work is for."""

    DISCONNECTION_FAILURE = "disconnection-failure"
    """停电失败工单: remote trips failed; disconnect on site."""
    RECONNECTION_FAILURE = "reconnection-failure"
    """复电失败工单: remote reconnection failed; reconnect on site."""
    ANOMALY = "anomaly"
    """异常工单: e.g. a reading missing N consecutive days."""
    OTHER = "other"
    """其他."""


class WorkOrderState(enum.StrEnum):
    OPEN = "open"
    """待派工: created, nobody assigned."""
    ASSIGNED = "assigned"
    """已派工: a fault handler has it."""
    RESULT_RECORDED = "result-recorded"
    """已回单: the on-site result is recorded."""
    CLOSED = "closed"
    """已归档."""
    CANCELLED = "cancelled"
    """已撤销: no longer needed."""

    @property
    def finished(self) -> bool:
        return self in (WorkOrderState.CLOSED, WorkOrderState.CANCELLED)


class WorkOrderOutcome(enum.StrEnum):
    """The on-site result (现场处理结果)."""

    DONE = "done"
    """The work was done (e.g. disconnected on site)."""
    NOT_DONE = "not-done"
    """It could not be done (no access, hardware fault …): say why in the result text."""
    NOT_NEEDED = "not-needed"
    """Nothing to do any more (the customer paid, the reading came back …)."""


DEFAULT_SLA: Final[Mapping[WorkOrderKind, timedelta]] = {
    WorkOrderKind.DISCONNECTION_FAILURE: timedelta(days=2),
    WorkOrderKind.RECONNECTION_FAILURE: timedelta(hours=24),
    WorkOrderKind.ANOMALY: timedelta(days=3),
    WorkOrderKind.OTHER: timedelta(days=3),
}
"""Time from creation by which a work order of each kind should be closed (时限)."""


Actor = Operator | str
"""An operator, or a system component's name starting with ``system:``."""


# -- tables ---------------------------------------------------------------------------

metadata = SQLModel.metadata
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _in(column: str, values: type[enum.StrEnum], table: str) -> sa.CheckConstraint:
    allowed = ", ".join(f"'{v.value}'" for v in values)
    return sa.CheckConstraint(f"{column} IN ({allowed})", name=f"ck_{table}_{column}")


work_order_table = sa.Table(
    "prepaid_work_order",
    metadata,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    sa.Column("number", sa.String(24), nullable=False),
    sa.Column("kind", sa.String(24), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("reference", sa.String(64), nullable=True),
    sa.Column("account_id", sa.Integer(), sa.ForeignKey("prepaid_account.id"), nullable=True),
    sa.Column("customer_no", sa.String(20), nullable=True),
    sa.Column("meter_address", sa.String(12), nullable=True),
    sa.Column("supply_unit", sa.String(16), nullable=True),
    sa.Column("summary", sa.Text(), nullable=False),
    sa.Column("assignee", sa.String(32), sa.ForeignKey("prepaid_operator.login"), nullable=True),
    sa.Column("outcome", sa.String(16), nullable=True),
    sa.Column("result", sa.Text(), nullable=True),
    sa.Column("created_at", sa.DateTime(), nullable=False),
    sa.Column("created_by", sa.String(64), nullable=False),
    sa.Column("due_at", sa.DateTime(), nullable=False),
    sa.Column("updated_at", sa.DateTime(), nullable=False),
    sa.Column("closed_at", sa.DateTime(), nullable=True),
    sa.UniqueConstraint("number", name="uq_prepaid_work_order_number"),
    sa.UniqueConstraint("kind", "reference", name="uq_prepaid_work_order_reference"),
    _in("kind", WorkOrderKind, "prepaid_work_order"),
    _in("state", WorkOrderState, "prepaid_work_order"),
    sa.Index("ix_prepaid_work_order_state", "state", "kind"),
    sa.Index("ix_prepaid_work_order_assignee", "assignee", "state"),
    sa.Index("ix_prepaid_work_order_account", "account_id"),
)

work_order_event_table = sa.Table(
    "prepaid_work_order_event",
    metadata,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    sa.Column(
        "work_order_id",
        _ID,
        sa.ForeignKey("prepaid_work_order.id", name="fk_prepaid_work_order_event_order"),
        nullable=False,
    ),
    sa.Column("at", sa.DateTime(), nullable=False),
    sa.Column("actor", sa.String(64), nullable=False),
    sa.Column("action", sa.String(24), nullable=False),
    sa.Column("from_state", sa.String(16), nullable=True),
    sa.Column("to_state", sa.String(16), nullable=False),
    sa.Column("comment", sa.Text(), nullable=False, server_default=""),
    sa.Index("ix_prepaid_work_order_event_order", "work_order_id", "id"),
)

_account = sa.table(
    "prepaid_account",
    sa.column("id"),
    sa.column("customer_no"),
    sa.column("meter_address"),
    sa.column("supply_unit_id"),
)
_unit = sa.table("prepaid_supply_unit", sa.column("id"), sa.column("code"))


# -- values ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WorkOrder:
    """A work order as stored."""

    id: int
    number: str
    kind: WorkOrderKind
    state: WorkOrderState
    summary: str
    created_at: datetime
    created_by: str
    due_at: datetime
    updated_at: datetime
    reference: str | None = None
    account_id: int | None = None
    customer_no: str | None = None
    meter_address: str | None = None
    supply_unit: str | None = None
    assignee: str | None = None
    outcome: WorkOrderOutcome | None = None
    result: str | None = None
    closed_at: datetime | None = None

    def overdue(self, now: datetime) -> bool:
        """Not finished and past its due time."""
        return not self.state.finished and now > self.due_at

    def to_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "kind": self.kind.value,
            "state": self.state.value,
            "summary": self.summary,
            "reference": self.reference,
            "account_id": self.account_id,
            "customer_no": self.customer_no,
            "meter_address": self.meter_address,
            "supply_unit": self.supply_unit,
            "assignee": self.assignee,
            "outcome": self.outcome.value if self.outcome else None,
            "result": self.result,
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
            "due_at": self.due_at.isoformat(),
            "closed_at": self.closed_at.isoformat() if self.closed_at else None,
        }


@dataclass(frozen=True, slots=True)
class WorkOrderEvent:
    """One line of a work order's history (处理记录): who, when, what, comment."""

    at: datetime
    actor: str
    action: str
    from_state: WorkOrderState | None
    to_state: WorkOrderState
    comment: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "actor": self.actor,
            "action": self.action,
            "from_state": self.from_state.value if self.from_state else None,
            "to_state": self.to_state.value,
            "comment": self.comment,
        }


def _order(row: Any) -> WorkOrder:
    return WorkOrder(
        id=int(row.id),
        number=row.number,
        kind=WorkOrderKind(row.kind),
        state=WorkOrderState(row.state),
        summary=row.summary,
        created_at=row.created_at,
        created_by=row.created_by,
        due_at=row.due_at,
        updated_at=row.updated_at,
        reference=row.reference,
        account_id=row.account_id,
        customer_no=row.customer_no,
        meter_address=row.meter_address,
        supply_unit=row.supply_unit,
        assignee=row.assignee,
        outcome=WorkOrderOutcome(row.outcome) if row.outcome else None,
        result=row.result,
        closed_at=row.closed_at,
    )


def _actor_name(actor: Actor) -> str:
    if isinstance(actor, Operator):
        return actor.login
    if not actor.startswith(SYSTEM_PREFIX) or len(actor) > 64:
        raise WorkOrderError(
            f"actor {actor!r}: pass the operator, or a system component's name starting "
            f"with {SYSTEM_PREFIX!r}"
        )
    return actor


def _authorise(actor: Actor, action: Action, supply_unit: str | None) -> None:
    if isinstance(actor, Operator):
        require_permission(actor, action, supply_unit=supply_unit)


def parse_kind(text: str) -> WorkOrderKind:
    try:
        return WorkOrderKind(text.strip().lower().replace("_", "-"))
    except ValueError:
        raise WorkOrderError(
            f"unknown work-order kind {text!r}: the kinds are "
            f"{', '.join(k.value for k in WorkOrderKind)}"
        ) from None


def parse_state(text: str) -> WorkOrderState:
    try:
        return WorkOrderState(text.strip().lower().replace("_", "-"))
    except ValueError:
        raise WorkOrderError(
            f"unknown work-order state {text!r}: the states are "
            f"{', '.join(s.value for s in WorkOrderState)}"
        ) from None


def parse_outcome(text: str) -> WorkOrderOutcome:
    try:
        return WorkOrderOutcome(text.strip().lower().replace("_", "-"))
    except ValueError:
        raise WorkOrderError(
            f"unknown on-site outcome {text!r}: the outcomes are "
            f"{', '.join(o.value for o in WorkOrderOutcome)}"
        ) from None


ResultListener = Callable[[Connection, WorkOrder], None]


# -- the repository -------------------------------------------------------------------


class WorkOrders:
    """Create, assign, record, close and query work orders; every change audited."""

    def __init__(
        self,
        engine: Engine,
        *,
        clock: Clock,
        audit: AuditLog | None = None,
        sla: Mapping[WorkOrderKind, timedelta] | None = None,
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.audit = audit or AuditLog(engine, clock)
        self.sla = {**DEFAULT_SLA, **(sla or {})}
        self._result_listeners: list[ResultListener] = []

    def on_result(self, listener: ResultListener) -> None:
        """Call ``listener(connection, order)`` when an on-site result is recorded (in the
        same transaction: if it raises, nothing is recorded)."""
        self._result_listeners.append(listener)

    # -- reading ---------------------------------------------------------------------

    def _row(self, conn: Connection, number: str, *, lock: bool = False) -> WorkOrder:
        query = sa.select(work_order_table).where(work_order_table.c.number == number.strip())
        if lock and conn.dialect.name == "postgresql":
            query = query.with_for_update()
        row = conn.execute(query).first()
        if row is None:
            raise WorkOrderNotFoundError(
                f"no work order {number!r}: check the number (feikong workorders list)"
            )
        return _order(row)

    def get(self, number: str, *, connection: Connection | None = None) -> WorkOrder:
        """The work order ``number``; :class:`WorkOrderNotFoundError` if there is none."""
        if connection is not None:
            return self._row(connection, number)
        with self.engine.connect() as conn:
            return self._row(conn, number)

    def find_by_reference(
        self, kind: WorkOrderKind, reference: str, *, connection: Connection | None = None
    ) -> WorkOrder | None:
        query = sa.select(work_order_table).where(
            work_order_table.c.kind == kind.value, work_order_table.c.reference == reference
        )
        if connection is not None:
            row = connection.execute(query).first()
        else:
            with self.engine.connect() as conn:
                row = conn.execute(query).first()
        return _order(row) if row is not None else None

    def query(
        self,
        *,
        kind: WorkOrderKind | None = None,
        state: WorkOrderState | Iterable[WorkOrderState] | None = None,
        assignee: str | None = None,
        account_id: int | None = None,
        customer_no: str | None = None,
        unfinished: bool = False,
        overdue_at: datetime | None = None,
        limit: int | None = None,
        connection: Connection | None = None,
    ) -> list[WorkOrder]:
        """Work orders matching every filter given, oldest first.

        ``unfinished``: neither closed nor cancelled; ``overdue_at``: unfinished and
        due before that time.
        """
        t = work_order_table
        query = sa.select(t)
        if kind is not None:
            query = query.where(t.c.kind == kind.value)
        if state is not None:
            states = [state] if isinstance(state, WorkOrderState) else list(state)
            query = query.where(t.c.state.in_([s.value for s in states]))
        if assignee is not None:
            query = query.where(t.c.assignee == assignee)
        if account_id is not None:
            query = query.where(t.c.account_id == account_id)
        if customer_no is not None:
            query = query.where(t.c.customer_no == customer_no)
        if unfinished or overdue_at is not None:
            query = query.where(
                t.c.state.not_in([WorkOrderState.CLOSED.value, WorkOrderState.CANCELLED.value])
            )
        if overdue_at is not None:
            query = query.where(t.c.due_at < overdue_at)
        query = query.order_by(t.c.id)
        if limit is not None:
            query = query.limit(limit)
        if connection is not None:
            return [_order(r) for r in connection.execute(query)]
        with self.engine.connect() as conn:
            return [_order(r) for r in conn.execute(query)]

    def list(self, **filters: Any) -> builtins.list[WorkOrder]:
        """The same as :meth:`query`."""
        return self.query(**filters)

    def overdue(self, now: datetime | None = None) -> builtins.list[WorkOrder]:
        """Unfinished work orders past their due time (SLA 超时)."""
        return self.query(overdue_at=now or self.clock.now())

    def history(self, number: str) -> builtins.list[WorkOrderEvent]:
        """Every change of the work order, oldest first."""
        with self.engine.connect() as conn:
            order = self._row(conn, number)
            rows = conn.execute(
                sa.select(work_order_event_table)
                .where(work_order_event_table.c.work_order_id == order.id)
                .order_by(work_order_event_table.c.id)
            )
            return [
                WorkOrderEvent(
                    at=r.at,
                    actor=r.actor,
                    action=r.action,
                    from_state=WorkOrderState(r.from_state) if r.from_state else None,
                    to_state=WorkOrderState(r.to_state),
                    comment=r.comment,
                )
                for r in rows
            ]

    # -- fault handlers --------------------------------------------------------------

    def handlers(self, supply_unit: str | None = None) -> builtins.list[tuple[str, int]]:
        """Enabled fault handlers who may work for ``supply_unit``, with their number of
        unfinished work orders, least loaded first (then by login)."""
        o, r, w = operator_table, operator_role_table, work_order_table
        load = (
            sa.select(w.c.assignee, sa.func.count().label("n"))
            .where(w.c.state.in_([WorkOrderState.ASSIGNED.value, WorkOrderState.OPEN.value]))
            .group_by(w.c.assignee)
            .subquery()
        )
        query = (
            sa.select(o.c.login, sa.func.coalesce(load.c.n, 0).label("n"))
            .select_from(
                o.join(r, r.c.login == o.c.login).outerjoin(load, load.c.assignee == o.c.login)
            )
            .where(r.c.role == Role.FAULT_HANDLER.value, o.c.disabled == sa.false())
        )
        if supply_unit is not None:
            query = query.where(sa.or_(o.c.supply_unit.is_(None), o.c.supply_unit == supply_unit))
        with self.engine.connect() as conn:
            rows = [(str(row.login), int(row.n)) for row in conn.execute(query)]
        return sorted(rows, key=lambda item: (item[1], item[0]))

    def pick_handler(self, supply_unit: str | None = None) -> str | None:
        """The least-loaded enabled fault handler for ``supply_unit`` (``None``: nobody)."""
        found = self.handlers(supply_unit)
        return found[0][0] if found else None

    def _check_assignee(self, conn: Connection, login: str, supply_unit: str | None) -> None:
        row = conn.execute(
            sa.select(operator_table.c.disabled, operator_table.c.supply_unit).where(
                operator_table.c.login == login
            )
        ).first()
        if row is None:
            raise WorkOrderError(f"no operator {login!r} to assign: check the login name")
        roles = {
            str(x)
            for x in conn.execute(
                sa.select(operator_role_table.c.role).where(operator_role_table.c.login == login)
            ).scalars()
        }
        if Role.FAULT_HANDLER.value not in roles:
            raise WorkOrderError(
                f"{login} is not a fault handler: work orders go to operators with the role "
                "fault-handler (feikong users grant LOGIN fault-handler)"
            )
        if row.disabled:
            raise WorkOrderError(f"{login} is disabled: assign the work order to someone else")
        if supply_unit is not None and row.supply_unit not in (None, supply_unit):
            raise WorkOrderError(
                f"{login} works for supply unit {row.supply_unit}, the work order is for "
                f"{supply_unit}: assign it to a handler of {supply_unit}"
            )

    # -- writing ---------------------------------------------------------------------

    def _event(
        self,
        conn: Connection,
        order_id: int,
        actor: str,
        action: str,
        from_state: WorkOrderState | None,
        to_state: WorkOrderState,
        comment: str,
    ) -> None:
        conn.execute(
            sa.insert(work_order_event_table).values(
                work_order_id=order_id,
                at=self.clock.now(),
                actor=actor,
                action=action,
                from_state=from_state.value if from_state else None,
                to_state=to_state.value,
                comment=comment,
            )
        )

    def _refused(self, actor: Actor, verb: str, target: str, exc: Exception) -> None:
        name = actor.login if isinstance(actor, Operator) else str(actor)[:64] or "anonymous"
        try:
            self.audit.record(name, f"workorder.{verb}.refused", target[:200], {"reason": str(exc)})
        except Exception:  # never hide the refusal behind an audit problem
            log.exception("could not audit a refused work-order %s", verb)
        log.info("work order %s refused for %s: %s", verb, name, exc)

    def _account(
        self, conn: Connection, account_id: int | None, customer_no: str | None
    ) -> tuple[int | None, str | None, str | None, str | None]:
        if account_id is None and customer_no is None:
            return None, None, None, None
        query = sa.select(
            _account.c.id, _account.c.customer_no, _account.c.meter_address, _unit.c.code
        ).select_from(_account.outerjoin(_unit, _unit.c.id == _account.c.supply_unit_id))
        if account_id is not None:
            query = query.where(_account.c.id == account_id)
        else:
            query = query.where(_account.c.customer_no == customer_no)
        row = conn.execute(query).first()
        if row is None:
            what = f"account id {account_id}" if account_id is not None else customer_no
            raise WorkOrderError(f"no customer {what!r}: check the customer number")
        return int(row.id), row.customer_no, row.meter_address, row.code

    def create(
        self,
        kind: WorkOrderKind | str,
        *,
        summary: str,
        by: Actor,
        account_id: int | None = None,
        customer_no: str | None = None,
        meter_address: str | None = None,
        reference: str | None = None,
        assignee: str | None = None,
        connection: Connection | None = None,
    ) -> WorkOrder:
        """Open a work order (and assign it at once when ``assignee`` is given).

        The customer is given by ``account_id`` or ``customer_no`` (its meter and
        supply unit are looked up); ``meter_address`` alone for a meter without an
        account. With a ``reference`` the work order exists once per kind: calling
        again returns the existing one unchanged. Operators need the permission to
        assign work orders; system components (``system:…``) may always create.
        """
        target = f"workorder:{kind}:{reference or 'new'}"
        try:
            if connection is not None:
                return self._create(
                    connection,
                    kind,
                    summary,
                    by,
                    account_id,
                    customer_no,
                    meter_address,
                    reference,
                    assignee,
                )
            with self.engine.begin() as conn:
                return self._create(
                    conn,
                    kind,
                    summary,
                    by,
                    account_id,
                    customer_no,
                    meter_address,
                    reference,
                    assignee,
                )
        except (WorkOrderError, PermissionDeniedError) as exc:
            self._refused(by, "create", target, exc)
            raise

    def _create(
        self,
        conn: Connection,
        kind_in: WorkOrderKind | str,
        summary: str,
        by: Actor,
        account_id: int | None,
        customer_no: str | None,
        meter_address: str | None,
        reference: str | None,
        assignee: str | None,
    ) -> WorkOrder:
        kind = kind_in if isinstance(kind_in, WorkOrderKind) else parse_kind(kind_in)
        actor = _actor_name(by)
        summary = summary.strip()
        if not summary:
            raise WorkOrderError("a work order needs a summary saying what is to be done")
        if reference is not None:
            reference = reference.strip()
            if not reference or len(reference) > 64:
                raise WorkOrderError(f"reference {reference!r}: expected 1..64 characters")
            existing = self.find_by_reference(kind, reference, connection=conn)
            if existing is not None:
                return existing
        acc_id, cust, meter, unit = self._account(conn, account_id, customer_no)
        meter = meter or (meter_address.strip() if meter_address else None)
        _authorise(by, Action.ASSIGN_WORK_ORDER, unit)
        if assignee is not None:
            self._check_assignee(conn, assignee, unit)
        now = self.clock.now()
        state = WorkOrderState.ASSIGNED if assignee else WorkOrderState.OPEN
        new_id = conn.execute(
            sa.insert(work_order_table)
            .values(
                number=f"tmp-{now:%H%M%S%f}-{id(conn) % 10**6}",
                kind=kind.value,
                state=state.value,
                reference=reference,
                account_id=acc_id,
                customer_no=cust,
                meter_address=meter,
                supply_unit=unit,
                summary=summary,
                assignee=assignee,
                created_at=now,
                created_by=actor,
                due_at=now + self.sla[kind],
                updated_at=now,
            )
            .returning(work_order_table.c.id)
        ).scalar_one()
        number = f"GD{now:%Y%m%d}{int(new_id):06d}"
        conn.execute(
            sa.update(work_order_table).where(work_order_table.c.id == new_id).values(number=number)
        )
        self._event(conn, int(new_id), actor, "create", None, WorkOrderState.OPEN, summary)
        if assignee:
            self._event(
                conn,
                int(new_id),
                actor,
                "assign",
                WorkOrderState.OPEN,
                WorkOrderState.ASSIGNED,
                f"to {assignee}",
            )
        self.audit.record(
            actor,
            "workorder.create",
            f"workorder:{number}",
            {
                "kind": kind.value,
                "reference": reference,
                "customer_no": cust,
                "meter_address": meter,
                "assignee": assignee,
                "summary": summary,
            },
            connection=conn,
        )
        log.info("work order %s (%s) opened by %s", number, kind.value, actor)
        return self._row(conn, number)

    def _change(
        self,
        verb: str,
        number: str,
        by: Actor,
        apply: Callable[[Connection, WorkOrder, str], tuple[dict[str, Any], str, str]],
        connection: Connection | None,
    ) -> WorkOrder:
        """Load, check and change one work order in a transaction; audit refusals."""

        def run(conn: Connection) -> WorkOrder:
            actor = _actor_name(by)
            order = self._row(conn, number, lock=True)
            values, comment, audit_action = apply(conn, order, actor)
            if not values:  # nothing to change (idempotent repeat)
                return order
            new_state = WorkOrderState(values.get("state", order.state))
            values["updated_at"] = self.clock.now()
            conn.execute(
                sa.update(work_order_table)
                .where(work_order_table.c.id == order.id)
                .values(**values)
            )
            self._event(conn, order.id, actor, verb, order.state, new_state, comment)
            details = {
                k: (v.isoformat() if isinstance(v, datetime) else v)
                for k, v in values.items()
                if k != "updated_at"
            }
            details["from_state"] = order.state.value
            if comment:
                details["comment"] = comment
            self.audit.record(
                actor, audit_action, f"workorder:{order.number}", details, connection=conn
            )
            changed = self._row(conn, number)
            if verb == "record":
                for listener in self._result_listeners:
                    listener(conn, changed)
            return changed

        try:
            if connection is not None:
                return run(connection)
            with self.engine.begin() as conn:
                return run(conn)
        except (WorkOrderError, PermissionDeniedError) as exc:
            self._refused(by, verb, f"workorder:{number}", exc)
            raise

    def assign(
        self,
        number: str,
        assignee: str,
        *,
        by: Actor,
        comment: str = "",
        connection: Connection | None = None,
    ) -> WorkOrder:
        """Give the work order to the fault handler ``assignee`` (again: reassign)."""

        def apply(
            conn: Connection, order: WorkOrder, actor: str
        ) -> tuple[dict[str, Any], str, str]:
            _authorise(by, Action.ASSIGN_WORK_ORDER, order.supply_unit)
            if order.state.finished:
                raise WorkOrderStateError(
                    f"work order {order.number} is {order.state.value}: it cannot be assigned"
                )
            if order.state is WorkOrderState.RESULT_RECORDED:
                raise WorkOrderStateError(
                    f"work order {order.number} has its result recorded: close it instead"
                )
            if order.assignee == assignee:
                return {}, "", ""
            self._check_assignee(conn, assignee, order.supply_unit)
            text = f"to {assignee}" + (f": {comment}" if comment else "")
            return (
                {"assignee": assignee, "state": WorkOrderState.ASSIGNED.value},
                text,
                "workorder.assign",
            )

        return self._change("assign", number, by, apply, connection)

    def record_result(
        self,
        number: str,
        *,
        outcome: WorkOrderOutcome | str,
        result: str,
        by: Operator,
        connection: Connection | None = None,
    ) -> WorkOrder:
        """The assignee records the on-site result (回单): outcome and what was done."""

        def apply(
            conn: Connection, order: WorkOrder, actor: str
        ) -> tuple[dict[str, Any], str, str]:
            _authorise(by, Action.RECORD_WORK_ORDER, order.supply_unit)
            wanted = outcome if isinstance(outcome, WorkOrderOutcome) else parse_outcome(outcome)
            text = result.strip()
            if order.state is not WorkOrderState.ASSIGNED:
                raise WorkOrderStateError(
                    f"work order {order.number} is {order.state.value}: a result is recorded "
                    "on an assigned work order"
                    + (" (assign it first)" if order.state is WorkOrderState.OPEN else "")
                )
            if order.assignee != actor:
                raise WorkOrderStateError(
                    f"work order {order.number} is assigned to {order.assignee}, not {actor}: "
                    "only the assignee records its result (an operator can reassign it)"
                )
            if not text:
                raise WorkOrderError(
                    f"work order {order.number}: say what was done on site (the result text)"
                )
            return (
                {
                    "state": WorkOrderState.RESULT_RECORDED.value,
                    "outcome": wanted.value,
                    "result": text,
                },
                f"{wanted.value}: {text}",
                "workorder.record",
            )

        return self._change("record", number, by, apply, connection)

    def close(
        self,
        number: str,
        *,
        by: Actor,
        comment: str = "",
        connection: Connection | None = None,
    ) -> WorkOrder:
        """Close a work order whose result is recorded (by its assignee or an operator)."""

        def apply(
            conn: Connection, order: WorkOrder, actor: str
        ) -> tuple[dict[str, Any], str, str]:
            if order.state is WorkOrderState.CLOSED:
                return {}, "", ""
            if isinstance(by, Operator) and by.login != order.assignee:
                _authorise(by, Action.ASSIGN_WORK_ORDER, order.supply_unit)
            elif isinstance(by, Operator):
                _authorise(by, Action.RECORD_WORK_ORDER, order.supply_unit)
            if order.state is not WorkOrderState.RESULT_RECORDED:
                raise WorkOrderStateError(
                    f"work order {order.number} is {order.state.value}: record the on-site "
                    "result before closing it (or cancel it if it is not needed)"
                )
            return (
                {"state": WorkOrderState.CLOSED.value, "closed_at": self.clock.now()},
                comment.strip(),
                "workorder.close",
            )

        return self._change("close", number, by, apply, connection)

    def cancel(
        self,
        number: str,
        *,
        by: Actor,
        reason: str,
        connection: Connection | None = None,
    ) -> WorkOrder:
        """Cancel a work order that is no longer needed (not once closed)."""

        def apply(
            conn: Connection, order: WorkOrder, actor: str
        ) -> tuple[dict[str, Any], str, str]:
            _authorise(by, Action.ASSIGN_WORK_ORDER, order.supply_unit)
            if order.state is WorkOrderState.CANCELLED:
                return {}, "", ""
            if order.state is WorkOrderState.CLOSED:
                raise WorkOrderStateError(f"work order {order.number} is closed already")
            if not reason.strip():
                raise WorkOrderError(f"work order {order.number}: give the reason to cancel it")
            return (
                {"state": WorkOrderState.CANCELLED.value, "closed_at": self.clock.now()},
                reason.strip(),
                "workorder.cancel",
            )

        return self._change("cancel", number, by, apply, connection)
