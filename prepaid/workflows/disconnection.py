"""The disconnection workflow (停电流程): request → two approvals → notice → trip → repeat.

One **episode** (:class:`Disconnection`, number ``TD20260302000001``) per customer in
arrears, at most one active at a time:

1. **Selection** (:meth:`DisconnectionWorkflow.select`): customers whose real-time
   balance is below their disconnection threshold (停电阈值) and whose dunning notice
   (催费通知) is at least the dunning period old are **re-rated**; those still in
   arrears get a request — raised by the system where the area's
   ``auto_disconnection_request`` is on, else listed for an operator
   (:meth:`~DisconnectionWorkflow.request`). Guaranteed customers (保电) are refused
   with the reason.
2. **Approval** level 1 then level 2 (一级/二级审批), by two different people holding
   those roles; the requester approves nothing. A refusal (:meth:`reject`) ends it.
3. **Notice** (停电通知): at the level-2 approval the customer is told the planned time,
   at least the notice lead time ahead (and outside protected hours); one message per
   episode.
4. **Trip** (远程跳闸) at the due time — never in protected hours (保护时段): a due
   trip waits for the end of them — through the head-end (:class:`ControlPort`),
   after a last re-rating and power-guarantee check. A trip that succeeds sends the
   "disconnection done" message (once per episode).
5. **Repeat** (重复跳闸): while the arrears last, the relay is read at the repeat
   interval; a customer who closed it again by hand is tripped again, up to the
   maximum repeats.
6. **Failure** (停电失败): after N failed remote attempts, a disconnection-failure work
   order goes to a fault handler, who gets an SMS with its number and a summary;
   the on-site result (:mod:`prepaid.workorders`) is recorded on the episode.

Every change is in the episode's history and the audit log (``disconnection.*``).
Re-running any step is harmless: head-end job ids are derived from the episode
(``fk-TD…-trip1-1``), messages are stored once per episode, state changes are
conditional on the state they start from.
"""

from __future__ import annotations

import builtins
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from headend.errors import JobNotFoundError
from headend.events import CommandFailed, CommandSucceeded, Event, ReadingCollected

from ..balance import realtime_balance, realtime_balances
from ..messages import MessageKind, Recipient
from ..models import FeeControlMode
from ..settings import EffectiveSettings
from ..users import Action, Operator, PermissionDeniedError, operator_table, require
from ..workorders import (
    WorkOrder,
    WorkOrderKind,
    WorkOrderOutcome,
    WorkOrderState,
)
from ._common import (
    ACCOUNT,
    Customer,
    GuaranteeLockoutError,
    NotFoundError,
    WorkflowContext,
    WorkflowError,
    WorkflowStateError,
    actor_name,
    customer_query,
    load_customer,
    load_customers,
)
from .tables import (
    ACTIVE_STATES,
    DisconnectionState,
    NextAction,
    disconnection_event_table,
    disconnection_table,
)

__all__ = [
    "Candidate",
    "Disconnection",
    "DisconnectionEvent",
    "DisconnectionWorkflow",
    "SelectionReport",
    "TickReport",
]

log = logging.getLogger(__name__)

SYSTEM: Final = "system:disconnection"
_T = disconnection_table
_E = disconnection_event_table
_S = DisconnectionState
_PRE_TRIP: Final = frozenset({_S.REQUESTED, _S.APPROVED_L1, _S.APPROVED, _S.NOTIFIED})
_message = sa.table(
    "prepaid_message",
    sa.column("customer_no"),
    sa.column("kind"),
    sa.column("created_at"),
)
_state = sa.table("prepaid_rating_state", sa.column("account_id"), sa.column("balance_fen"))


def _yuan(fen: int) -> str:
    sign = "-" if fen < 0 else ""
    return f"{sign}{abs(fen) // 100}.{abs(fen) % 100:02d}"


# -- values ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Disconnection:
    """A disconnection episode as stored (see the module doc)."""

    id: int
    number: str
    account_id: int
    customer_no: str
    meter_address: str
    supply_unit: str | None
    line: str | None
    area: str | None
    state: DisconnectionState
    origin: str
    reason: str
    balance_fen: int
    threshold_fen: int
    requested_by: str
    requested_at: datetime
    updated_at: datetime
    l1_by: str | None = None
    l1_at: datetime | None = None
    l2_by: str | None = None
    l2_at: datetime | None = None
    earliest_at: datetime | None = None
    planned_at: datetime | None = None
    notice_message_id: int | None = None
    notified_at: datetime | None = None
    due_at: datetime | None = None
    next_action: NextAction | None = None
    job_id: str | None = None
    job_kind: str | None = None
    job_at: datetime | None = None
    trips: int = 0
    attempts: int = 0
    checks: int = 0
    last_relay: str | None = None
    first_trip_at: datetime | None = None
    last_trip_at: datetime | None = None
    trip_energy_ckwh: int | None = None
    work_order: str | None = None
    ended_at: datetime | None = None
    end_reason: str | None = None

    @classmethod
    def from_row(cls, row: Any) -> Disconnection:
        values = dict(row._mapping)
        values["state"] = _S(values["state"])
        values["next_action"] = NextAction(values["next_action"]) if values["next_action"] else None
        values["id"] = int(values["id"])
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in self.__slots__:
            value = getattr(self, name)
            if isinstance(value, datetime):
                value = value.isoformat()
            elif hasattr(value, "value"):
                value = value.value
            out[name] = value
        out["balance"] = _yuan(self.balance_fen)
        out["threshold"] = _yuan(self.threshold_fen)
        return out


@dataclass(frozen=True, slots=True)
class DisconnectionEvent:
    """One line of an episode's history."""

    at: datetime
    actor: str
    action: str
    from_state: DisconnectionState | None
    to_state: DisconnectionState
    comment: str = ""
    job_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "actor": self.actor,
            "action": self.action,
            "from_state": self.from_state.value if self.from_state else None,
            "to_state": self.to_state.value,
            "comment": self.comment,
            "job_id": self.job_id,
        }


@dataclass(frozen=True, slots=True)
class Candidate:
    """A customer selected for disconnection, after re-rating."""

    account_id: int
    customer_no: str
    balance_fen: int
    threshold_fen: int
    area: str | None
    auto: bool
    """The area raises requests automatically (else an operator must)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "customer_no": self.customer_no,
            "balance": _yuan(self.balance_fen),
            "threshold": _yuan(self.threshold_fen),
            "area": self.area,
            "auto": self.auto,
        }


@dataclass(slots=True)
class SelectionReport:
    """What :meth:`DisconnectionWorkflow.select` did."""

    at: datetime
    selected: int = 0
    rerated: int = 0
    rating_error: str | None = None
    requested: list[Disconnection] = field(default_factory=list)
    awaiting_operator: list[Candidate] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)
    """(customer number, reason): guaranteed, local fee control, …"""
    recovered: list[str] = field(default_factory=list)
    """Customers no longer in arrears after the re-rating."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "selected": self.selected,
            "rerated": self.rerated,
            "rating_error": self.rating_error,
            "requested": [d.number for d in self.requested],
            "awaiting_operator": [c.to_dict() for c in self.awaiting_operator],
            "refused": [{"customer_no": c, "reason": r} for c, r in self.refused],
            "recovered": self.recovered,
        }


@dataclass(slots=True)
class TickReport:
    """What one :meth:`DisconnectionWorkflow.tick` did (episode numbers per step)."""

    at: datetime
    notices: list[str] = field(default_factory=list)
    trips: list[str] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    recovered: list[str] = field(default_factory=list)
    escalated: list[str] = field(default_factory=list)
    """Requests whose approval became overdue (see :mod:`prepaid.workflows.sla`)."""

    @property
    def total(self) -> int:
        return len(self.notices) + len(self.trips) + len(self.checks) + len(self.cancelled)

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "notices": self.notices,
            "trips": self.trips,
            "checks": self.checks,
            "waiting": self.waiting,
            "cancelled": self.cancelled,
            "recovered": self.recovered,
            "escalated": self.escalated,
        }


ReconnectHook = Callable[[Disconnection, str], object]


# -- the workflow ---------------------------------------------------------------------


class DisconnectionWorkflow:
    """Disconnection episodes of a prepaid database (see the module doc)."""

    def __init__(self, ctx: WorkflowContext) -> None:
        self.ctx = ctx
        self.reconnect_hook: ReconnectHook | None = None
        """Called (episode, reason) when a tripped customer must get power back
        (guarantee set, or arrears gone without a payment event): the orchestrator
        wires the reconnection workflow here."""

    # -- reading ---------------------------------------------------------------------

    def _load(self, conn: Connection, key: int | str) -> Disconnection:
        column = _T.c.id if isinstance(key, int) else _T.c.number
        row = conn.execute(sa.select(_T).where(column == key)).first()
        if row is None:
            raise NotFoundError(
                f"no disconnection {key!r}: check the number (feikong disconnect list)"
            )
        return Disconnection.from_row(row)

    def get(self, key: int | str) -> Disconnection:
        """An episode by id or number (``TD…``)."""
        with self.ctx.engine.connect() as conn:
            return self._load(conn, key.strip() if isinstance(key, str) else key)

    def active_for(self, account_id: int, conn: Connection | None = None) -> Disconnection | None:
        """The customer's active episode, if any."""
        query = sa.select(_T).where(
            _T.c.account_id == account_id, _T.c.state.in_([s.value for s in ACTIVE_STATES])
        )
        if conn is not None:
            row = conn.execute(query).first()
        else:
            with self.ctx.engine.connect() as c:
                row = c.execute(query).first()
        return Disconnection.from_row(row) if row is not None else None

    def list(
        self,
        *,
        state: DisconnectionState | Iterable[DisconnectionState] | None = None,
        customer_no: str | None = None,
        active: bool = False,
        limit: int | None = None,
    ) -> builtins.list[Disconnection]:
        query = sa.select(_T)
        if state is not None:
            states = [state] if isinstance(state, DisconnectionState) else list(state)
            query = query.where(_T.c.state.in_([s.value for s in states]))
        if active:
            query = query.where(_T.c.state.in_([s.value for s in ACTIVE_STATES]))
        if customer_no is not None:
            query = query.where(_T.c.customer_no == customer_no)
        query = query.order_by(_T.c.id)
        if limit is not None:
            query = query.limit(limit)
        with self.ctx.engine.connect() as conn:
            return [Disconnection.from_row(r) for r in conn.execute(query)]

    def history(self, key: int | str) -> builtins.list[DisconnectionEvent]:
        with self.ctx.engine.connect() as conn:
            episode = self._load(conn, key)
            rows = conn.execute(
                sa.select(_E).where(_E.c.disconnection_id == episode.id).order_by(_E.c.id)
            )
            return [
                DisconnectionEvent(
                    at=r.at,
                    actor=r.actor,
                    action=r.action,
                    from_state=_S(r.from_state) if r.from_state else None,
                    to_state=_S(r.to_state),
                    comment=r.comment,
                    job_id=r.job_id,
                )
                for r in rows
            ]

    # -- writing helpers ---------------------------------------------------------------

    def _record(
        self,
        conn: Connection,
        episode: Disconnection,
        actor: str,
        action: str,
        to_state: DisconnectionState,
        comment: str = "",
        *,
        event_job: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        job_id = event_job
        conn.execute(
            sa.insert(_E).values(
                disconnection_id=episode.id,
                at=self.ctx.now(),
                actor=actor,
                action=action,
                from_state=episode.state.value,
                to_state=to_state.value,
                comment=comment,
                job_id=job_id,
            )
        )
        audit: dict[str, Any] = {
            "customer_no": episode.customer_no,
            "from_state": episode.state.value,
            "to_state": to_state.value,
        }
        if comment:
            audit["comment"] = comment
        if job_id:
            audit["job_id"] = job_id
        audit.update(details or {})
        self.ctx.audit.record(
            actor,
            f"disconnection.{action}",
            f"disconnection:{episode.number}",
            audit,
            connection=conn,
        )

    def _change(
        self,
        conn: Connection,
        episode: Disconnection,
        to_state: DisconnectionState,
        actor: str,
        action: str,
        comment: str = "",
        *,
        event_job: str | None = None,
        details: dict[str, Any] | None = None,
        **values: Any,
    ) -> Disconnection:
        """Move ``episode`` to ``to_state`` (only from the state it was loaded in)."""
        values = {k: (v.value if isinstance(v, NextAction) else v) for k, v in values.items()}
        values.update(state=to_state.value, updated_at=self.ctx.now())
        result = conn.execute(
            sa.update(_T)
            .where(_T.c.id == episode.id, _T.c.state == episode.state.value)
            .values(**values)
        )
        if result.rowcount != 1:
            raise WorkflowStateError(
                f"disconnection {episode.number} changed meanwhile (it is no longer "
                f"{episode.state.value}); look at it again (feikong disconnect show "
                f"{episode.number})"
            )
        self._record(
            conn, episode, actor, action, to_state, comment, event_job=event_job, details=details
        )
        return self._load(conn, episode.id)

    def _refused(self, by: Operator | str, action: str, target: str, exc: Exception) -> None:
        name = by.login if isinstance(by, Operator) else str(by)[:64]
        try:
            self.ctx.audit.record(
                name, f"disconnection.{action}.refused", target[:200], {"reason": str(exc)}
            )
        except Exception:
            log.exception("could not audit a refused %s", action)
        log.info("disconnection %s refused for %s: %s", action, name, exc)

    # -- selection and request ---------------------------------------------------------

    def candidates(self) -> builtins.list[int]:
        """Accounts (ids) below their disconnection threshold by the stored real-time
        balance, dunned at least the dunning period ago, remote fee control, active,
        without an active episode. Set-based: one query."""
        ctx = self.ctx
        query = customer_query()
        account = ACCOUNT
        line = query.selected_columns.line
        area = query.selected_columns.area
        threshold = ctx.settings.sql_fen(
            "disconnection_threshold", line=line, area=area, customer=account.c.customer_no
        )
        busy = sa.select(_T.c.account_id).where(_T.c.state.in_([s.value for s in ACTIVE_STATES]))
        select = (
            query.with_only_columns(account.c.id)
            .join(_state, _state.c.account_id == account.c.id)
            .where(
                account.c.active == sa.true(),
                account.c.fee_control_mode == FeeControlMode.REMOTE.value,
                _state.c.balance_fen < threshold,
                account.c.id.not_in(busy),
            )
            .order_by(account.c.id)
        )
        if ctx.config.require_dunning:
            cutoff = ctx.now() - ctx.config.dunning_period
            dunned = sa.select(_message.c.customer_no).where(
                _message.c.kind == MessageKind.DUNNING.value, _message.c.created_at <= cutoff
            )
            select = select.where(account.c.customer_no.in_(dunned))
        with ctx.engine.connect() as conn:
            return [int(r[0]) for r in conn.execute(select)]

    def select(self, *, by: Operator | str = SYSTEM) -> SelectionReport:
        """Select, re-rate, and raise requests for those still in arrears (see the module
        doc). Customers of areas without ``auto_disconnection_request`` are listed in
        ``awaiting_operator`` — unless ``by`` is an operator, who raises them all."""
        ctx = self.ctx
        if isinstance(by, Operator):
            try:
                require(by, Action.REQUEST_DISCONNECTION)
            except PermissionDeniedError as exc:
                self._refused(by, "select", "disconnection:selection", exc)
                raise
        report = SelectionReport(ctx.now())
        ids = self.candidates()
        report.selected = len(ids)
        if not ids:
            return report
        report.rating_error = ctx.rerate(ids)
        if report.rating_error is not None:
            return report  # never disconnect on a balance that could not be brought up to date
        report.rerated = len(ids)
        balances = realtime_balances(ctx.engine, ids)
        with ctx.engine.connect() as conn:
            customers = load_customers(conn, ids)
        for ident in ids:
            customer = customers[ident]
            effective = ctx.effective(customer)
            balance = balances[ident].realtime_fen
            threshold = effective.disconnection_threshold_fen
            if balance >= threshold:
                report.recovered.append(customer.customer_no)
                continue
            reason = ctx.guarantee_reason(customer, effective)
            if reason is not None:
                report.refused.append((customer.customer_no, reason))
                self._refused(
                    by, "request", f"customer:{customer.customer_no}", GuaranteeLockoutError(reason)
                )
                continue
            candidate = Candidate(
                ident,
                customer.customer_no,
                balance,
                threshold,
                customer.area,
                effective.auto_disconnection_request,
            )
            if isinstance(by, str) and not candidate.auto:
                report.awaiting_operator.append(candidate)
                continue
            try:
                report.requested.append(
                    self._request(
                        customer,
                        effective,
                        balance,
                        by=by,
                        origin="auto",
                        reason="arrears after dunning and re-rating",
                    )
                )
            except (WorkflowError, PermissionDeniedError) as exc:
                report.refused.append((customer.customer_no, str(exc)))
        log.info(
            "disconnection selection: %d selected, %d requested, %d for an operator, %d refused",
            report.selected,
            len(report.requested),
            len(report.awaiting_operator),
            len(report.refused),
        )
        return report

    def request(
        self,
        customer: int | str,
        *,
        by: Operator | str,
        reason: str = "arrears",
        planned_at: datetime | None = None,
    ) -> Disconnection:
        """Raise a disconnection request for ``customer`` (account id or number).

        The account is re-rated first; the request is refused (with the reason, and
        audited) when the customer is not in arrears, is under power guarantee, is on
        local (card) fee control or inactive. A customer who has an active episode
        gets that one back (nothing new). ``by`` is an operator (role operator), or
        ``system:…`` where the area raises requests automatically. ``planned_at``: the
        trip no earlier than this (the notice lead time applies anyway).
        """
        ctx = self.ctx
        target = f"customer:{customer}"
        try:
            with ctx.engine.connect() as conn:
                found = load_customer(conn, customer)
            target = f"customer:{found.customer_no}"
            if isinstance(by, Operator):
                require(by, Action.REQUEST_DISCONNECTION, supply_unit=found.supply_unit)
            existing = self.active_for(found.account_id)
            if existing is not None:
                return existing
            effective = ctx.effective(found)
            if isinstance(by, str) and not effective.auto_disconnection_request:
                raise WorkflowStateError(
                    f"customer {found.customer_no}: disconnection requests in area "
                    f"{found.area or '-'} are raised by a person (auto_disconnection_request "
                    f"is off, from {effective.source('auto_disconnection_request')})"
                )
            error = ctx.rerate([found.account_id])
            if error is not None:
                raise WorkflowStateError(
                    f"customer {found.customer_no} could not be re-rated ({error}); a "
                    "disconnection needs an up-to-date balance: rate the account and retry"
                )
            balance = realtime_balance(ctx.engine, found.account_id).realtime_fen
            return self._request(
                found,
                effective,
                balance,
                by=by,
                origin="manual" if isinstance(by, Operator) else "auto",
                reason=reason,
                planned_at=planned_at,
            )
        except (WorkflowError, PermissionDeniedError) as exc:
            self._refused(by, "request", target, exc)
            raise

    def _request(
        self,
        customer: Customer,
        effective: EffectiveSettings,
        balance: int,
        *,
        by: Operator | str,
        origin: str,
        reason: str,
        planned_at: datetime | None = None,
    ) -> Disconnection:
        ctx = self.ctx
        actor = actor_name(by)
        if isinstance(by, Operator):  # select() raises for everyone: check each unit
            require(by, Action.REQUEST_DISCONNECTION, supply_unit=customer.supply_unit)
        if not customer.active:
            raise WorkflowStateError(f"customer {customer.customer_no} is inactive (closed)")
        if customer.fee_control_mode != FeeControlMode.REMOTE.value:
            raise WorkflowStateError(
                f"customer {customer.customer_no} is on local (card) fee control: the meter "
                "disconnects by itself when its credit runs out; no remote disconnection"
            )
        lockout = ctx.guarantee_reason(customer, effective)
        if lockout is not None:
            raise GuaranteeLockoutError(lockout)
        threshold = effective.disconnection_threshold_fen
        if balance >= threshold:
            raise WorkflowStateError(
                f"customer {customer.customer_no} is not in arrears: real-time balance "
                f"{_yuan(balance)} yuan is not below the disconnection threshold "
                f"{_yuan(threshold)} yuan (from {effective.source('disconnection_threshold')})"
            )
        now = ctx.now()
        try:
            with ctx.engine.begin() as conn:
                new_id = conn.execute(
                    sa.insert(_T)
                    .values(
                        number=f"tmp-{customer.account_id}-{now:%H%M%S%f}"[:24],
                        account_id=customer.account_id,
                        customer_no=customer.customer_no,
                        meter_address=customer.meter_address,
                        supply_unit=customer.supply_unit,
                        line=customer.line,
                        area=customer.area,
                        state=_S.REQUESTED.value,
                        origin=origin,
                        reason=reason.strip() or "arrears",
                        balance_fen=balance,
                        threshold_fen=threshold,
                        requested_by=actor,
                        requested_at=now,
                        earliest_at=planned_at,
                        updated_at=now,
                    )
                    .returning(_T.c.id)
                ).scalar_one()
                number = f"TD{now:%Y%m%d}{int(new_id):06d}"
                conn.execute(sa.update(_T).where(_T.c.id == new_id).values(number=number))
                episode = self._load(conn, int(new_id))
                conn.execute(
                    sa.insert(_E).values(
                        disconnection_id=episode.id,
                        at=now,
                        actor=actor,
                        action="request",
                        from_state=None,
                        to_state=_S.REQUESTED.value,
                        comment=f"{episode.reason}; balance {_yuan(balance)} yuan < "
                        f"threshold {_yuan(threshold)} yuan",
                    )
                )
                ctx.audit.record(
                    actor,
                    "disconnection.request",
                    f"disconnection:{number}",
                    {
                        "customer_no": customer.customer_no,
                        "origin": origin,
                        "reason": episode.reason,
                        "balance_fen": balance,
                        "threshold_fen": threshold,
                        "planned_at": planned_at,
                    },
                    connection=conn,
                )
        except IntegrityError:
            existing = self.active_for(customer.account_id)
            if existing is None:
                raise
            return existing  # raised at the same moment by someone else
        log.info("disconnection %s requested for %s by %s", number, customer.customer_no, actor)
        return episode

    # -- approvals ---------------------------------------------------------------------

    def _guard(
        self, action: str, number: str, by: Operator | str, step: Callable[[], Disconnection]
    ) -> Disconnection:
        try:
            return step()
        except (WorkflowError, PermissionDeniedError) as exc:
            self._refused(by, action, f"disconnection:{number}", exc)
            raise

    def _lockout_if_guaranteed(self, episode: Disconnection, actor: str) -> None:
        """Cancel ``episode`` and raise when the customer is now under power guarantee."""
        ctx = self.ctx
        with ctx.engine.connect() as conn:
            customer = load_customer(conn, episode.account_id)
        reason = ctx.guarantee_reason(customer, ctx.effective(customer))
        if reason is None:
            return
        with ctx.engine.begin() as conn:
            self._change(
                conn,
                episode,
                _S.CANCELLED,
                actor,
                "guarantee-lockout",
                reason,
                ended_at=ctx.now(),
                end_reason=reason,
                due_at=None,
                next_action=None,
            )
        raise GuaranteeLockoutError(f"disconnection {episode.number} cancelled: {reason}")

    def approve_l1(self, number: str, *, by: Operator, comment: str = "") -> Disconnection:
        """Level-1 approval (一级审批) by an approver-l1 who did not request it."""

        def step() -> Disconnection:
            episode = self.get(number)
            require(by, Action.APPROVE_L1, supply_unit=episode.supply_unit)
            if episode.l1_by == by.login and episode.state is not _S.REQUESTED:
                return episode  # approved already by the same person: nothing to do
            if episode.state is not _S.REQUESTED:
                raise WorkflowStateError(
                    f"disconnection {episode.number} is {episode.state.value}: level-1 "
                    "approval is for a requested disconnection"
                )
            if by.login == episode.requested_by:
                raise WorkflowStateError(
                    f"{by.login} requested disconnection {episode.number} and may not approve "
                    "it: the requester approves nothing (two other people approve)"
                )
            self._lockout_if_guaranteed(episode, by.login)
            with self.ctx.engine.begin() as conn:
                return self._change(
                    conn,
                    episode,
                    _S.APPROVED_L1,
                    by.login,
                    "approve-l1",
                    comment,
                    l1_by=by.login,
                    l1_at=self.ctx.now(),
                )

        return self._guard("approve-l1", number, by, step)

    def approve_l2(self, number: str, *, by: Operator, comment: str = "") -> Disconnection:
        """Level-2 approval (二级审批) by an approver-l2 who is neither the requester nor
        the level-1 approver; then the customer notice goes out (:meth:`notify`)."""

        def step() -> Disconnection:
            ctx = self.ctx
            episode = self.get(number)
            require(by, Action.APPROVE_L2, supply_unit=episode.supply_unit)
            if episode.l2_by == by.login and episode.state is not _S.APPROVED_L1:
                return episode
            if episode.state is not _S.APPROVED_L1:
                raise WorkflowStateError(
                    f"disconnection {episode.number} is {episode.state.value}: level-2 "
                    "approval follows the level-1 approval"
                )
            if by.login == episode.requested_by:
                raise WorkflowStateError(
                    f"{by.login} requested disconnection {episode.number} and may not approve "
                    "it: the requester approves nothing (two other people approve)"
                )
            if by.login == episode.l1_by:
                raise WorkflowStateError(
                    f"{by.login} gave the level-1 approval of disconnection {episode.number}: "
                    "the level-2 approval must come from a different person"
                )
            self._lockout_if_guaranteed(episode, by.login)
            with ctx.engine.connect() as conn:
                customer = load_customer(conn, episode.account_id)
            effective = ctx.effective(customer)
            now = ctx.now()
            earliest = max(now + effective.notice_lead_time, episode.earliest_at or now)
            planned = ctx.allowed_at(earliest, effective)
            with ctx.engine.begin() as conn:
                approved = self._change(
                    conn,
                    episode,
                    _S.APPROVED,
                    by.login,
                    "approve-l2",
                    comment,
                    details={"earliest_at": earliest, "planned_at": planned},
                    l2_by=by.login,
                    l2_at=now,
                    earliest_at=earliest,
                    planned_at=planned,
                    due_at=now,
                    next_action=NextAction.NOTICE,
                )
            return self.notify(approved)

        return self._guard("approve-l2", number, by, step)

    def reject(self, number: str, *, by: Operator, reason: str) -> Disconnection:
        """Refuse the request (审批不通过) at the level awaiting approval; ends it."""

        def step() -> Disconnection:
            episode = self.get(number)
            if episode.state is _S.REQUESTED:
                require(by, Action.APPROVE_L1, supply_unit=episode.supply_unit)
            elif episode.state is _S.APPROVED_L1:
                require(by, Action.APPROVE_L2, supply_unit=episode.supply_unit)
            else:
                raise WorkflowStateError(
                    f"disconnection {episode.number} is {episode.state.value}: only a request "
                    "awaiting approval can be rejected (cancel it otherwise)"
                )
            if by.login in (episode.requested_by, episode.l1_by):
                raise WorkflowStateError(
                    f"{by.login} already took part in disconnection {episode.number}: the "
                    "decision belongs to the next approver"
                )
            if not reason.strip():
                raise WorkflowError(f"give the reason for rejecting {episode.number}")
            with self.ctx.engine.begin() as conn:
                return self._change(
                    conn,
                    episode,
                    _S.REJECTED,
                    by.login,
                    "reject",
                    reason.strip(),
                    ended_at=self.ctx.now(),
                    end_reason=reason.strip(),
                    due_at=None,
                    next_action=None,
                )

        return self._guard("reject", number, by, step)

    def cancel(self, number: str, *, by: Operator | str, reason: str) -> Disconnection:
        """Cancel an episode before any trip (撤销); a tripped customer is reconnected
        instead (feikong reconnect)."""

        def step() -> Disconnection:
            episode = self.get(number)
            if isinstance(by, Operator):
                require(by, Action.CANCEL_DISCONNECTION, supply_unit=episode.supply_unit)
            if episode.state is _S.CANCELLED:
                return episode
            if episode.state not in _PRE_TRIP:
                raise WorkflowStateError(
                    f"disconnection {episode.number} is {episode.state.value}: once a trip is "
                    "under way the customer is reconnected instead (feikong reconnect "
                    f"{episode.customer_no})"
                )
            if not reason.strip():
                raise WorkflowError(f"give the reason for cancelling {episode.number}")
            with self.ctx.engine.begin() as conn:
                return self.cancel_in(conn, episode, actor_name(by), reason.strip())

        return self._guard("cancel", number, by, step)

    def cancel_in(
        self, conn: Connection, episode: Disconnection, actor: str, reason: str
    ) -> Disconnection:
        """Cancel a pre-trip episode in the caller's transaction."""
        return self._change(
            conn,
            episode,
            _S.CANCELLED,
            actor,
            "cancel",
            reason,
            ended_at=self.ctx.now(),
            end_reason=reason,
            due_at=None,
            next_action=None,
        )

    def end_in(
        self, conn: Connection, episode: Disconnection, actor: str, reason: str
    ) -> Disconnection:
        """End a tripped (or failed) episode in the caller's transaction: no more trips."""
        return self._change(
            conn,
            episode,
            _S.ENDED,
            actor,
            "end",
            reason,
            ended_at=self.ctx.now(),
            end_reason=reason,
            due_at=None,
            next_action=None,
            job_id=None,
            job_kind=None,
        )

    # -- notice ------------------------------------------------------------------------

    def notify(self, episode: Disconnection) -> Disconnection:
        """Send the customer notice (停电通知) with the planned time; once per episode."""
        ctx = self.ctx
        if episode.state is not _S.APPROVED:
            return episode
        with ctx.engine.connect() as conn:
            customer = load_customer(conn, episode.account_id)
        effective = ctx.effective(customer)
        balance = realtime_balance(ctx.engine, episode.account_id).realtime_fen
        assert episode.planned_at is not None and episode.earliest_at is not None
        due = max(0, max(effective.disconnection_threshold_fen, 0) - balance)
        message_id, error = ctx.send(
            ctx.recipient(customer, effective),
            MessageKind.DISCONNECTION_NOTICE.value,
            {
                "name": customer.name,
                "customer_no": customer.customer_no,
                "address": customer.address or "-",
                "balance": balance,
                "amount_due": max(due, 1),
                "planned_at": episode.planned_at,
            },
            episode.number,
        )
        comment = f"planned {episode.planned_at:%Y-%m-%d %H:%M}"
        if error:
            comment += f"; the message could not be stored: {error}"
        with ctx.engine.begin() as conn:
            return self._change(
                conn,
                episode,
                _S.NOTIFIED,
                SYSTEM,
                "notify",
                comment,
                details={"message_id": message_id},
                notice_message_id=message_id,
                notified_at=ctx.now(),
                due_at=episode.earliest_at,
                next_action=NextAction.TRIP,
            )

    # -- the clock ---------------------------------------------------------------------

    def next_due(self) -> datetime | None:
        """When :meth:`tick` has something to do next (``None``: nothing scheduled)."""
        with self.ctx.engine.connect() as conn:
            value = conn.execute(
                sa.select(sa.func.min(_T.c.due_at)).where(
                    _T.c.state.in_([_S.APPROVED.value, _S.NOTIFIED.value, _S.DISCONNECTED.value]),
                    _T.c.job_id.is_(None),
                    _T.c.due_at.is_not(None),
                )
            ).scalar()
        return value

    def tick(self) -> TickReport:
        """Do what is due now: notices, trips (outside protected hours), relay checks."""
        ctx = self.ctx
        now = ctx.now()
        report = TickReport(now)
        with ctx.engine.connect() as conn:
            rows = conn.execute(
                sa.select(_T)
                .where(
                    _T.c.state.in_([_S.APPROVED.value, _S.NOTIFIED.value, _S.DISCONNECTED.value]),
                    _T.c.job_id.is_(None),
                    _T.c.due_at <= now,
                )
                .order_by(_T.c.due_at, _T.c.id)
            ).all()
        due = [Disconnection.from_row(r) for r in rows]
        for episode in [e for e in due if e.state is _S.APPROVED]:
            self.notify(episode)
            report.notices.append(episode.number)
        trips = [e for e in due if e.next_action is NextAction.TRIP]
        rating_error = ctx.rerate([e.account_id for e in trips])
        balances = realtime_balances(ctx.engine, [e.account_id for e in trips]) if trips else {}
        for episode in trips:
            try:
                self._due_trip(
                    episode, balances[episode.account_id].realtime_fen, rating_error, report
                )
            except WorkflowStateError as exc:  # changed meanwhile: the next tick sees it
                log.info("%s", exc)
        for episode in [e for e in due if e.next_action is NextAction.CHECK]:
            try:
                self._due_check(episode, report)
            except WorkflowStateError as exc:
                log.info("%s", exc)
        self._recover_stuck(report)
        return report

    def _due_trip(
        self, episode: Disconnection, balance: int, rating_error: str | None, report: TickReport
    ) -> None:
        ctx = self.ctx
        now = ctx.now()
        with ctx.engine.connect() as conn:
            customer = load_customer(conn, episode.account_id)
        effective = ctx.effective(customer)
        lockout = ctx.guarantee_reason(customer, effective)
        if lockout is not None:
            if episode.state is _S.NOTIFIED:
                with ctx.engine.begin() as conn:
                    self._change(
                        conn,
                        episode,
                        _S.CANCELLED,
                        SYSTEM,
                        "guarantee-lockout",
                        lockout,
                        ended_at=now,
                        end_reason=lockout,
                        due_at=None,
                        next_action=None,
                    )
            elif self.reconnect_hook is not None:
                self.reconnect_hook(episode, lockout)
            report.cancelled.append(episode.number)
            return
        if rating_error is not None:
            with ctx.engine.begin() as conn:
                self._change(
                    conn,
                    episode,
                    episode.state,
                    SYSTEM,
                    "wait",
                    f"{rating_error}; the trip waits for a re-rated balance",
                    due_at=now + ctx.config.retry_interval,
                )
            report.waiting.append(episode.number)
            return
        threshold = effective.disconnection_threshold_fen
        # before the first trip the threshold decides; once tripped, the customer gets
        # power back only with a balance above zero (the reconnection rule)
        recovered = balance >= threshold if episode.trips == 0 else balance > 0
        if recovered:
            text = f"no longer in arrears: real-time balance {_yuan(balance)} yuan " + (
                f"≥ threshold {_yuan(threshold)} yuan" if episode.trips == 0 else "> 0"
            )
            if episode.trips == 0:
                with ctx.engine.begin() as conn:
                    self.cancel_in(conn, episode, SYSTEM, text)
            elif self.reconnect_hook is not None:
                self.reconnect_hook(episode, text)
            report.cancelled.append(episode.number)
            return
        allowed = ctx.allowed_at(now, effective)
        if allowed > now:
            why = ctx.calendar.protection(now, effective.protection)
            with ctx.engine.begin() as conn:
                self._change(
                    conn,
                    episode,
                    episode.state,
                    SYSTEM,
                    "wait",
                    f"protected hours ({why}): the trip waits until {allowed:%Y-%m-%d %H:%M}",
                    due_at=allowed,
                )
            report.waiting.append(episode.number)
            return
        number = episode.trips + 1
        job_id = f"{ctx.config.job_prefix}-{episode.number}-trip{number}-{episode.attempts + 1}"
        with ctx.engine.begin() as conn:
            tripping = self._change(
                conn,
                episode,
                _S.TRIPPING,
                SYSTEM,
                "trip",
                f"trip {number} (attempt {episode.attempts + 1}); balance {_yuan(balance)} yuan",
                event_job=job_id,
                details={"trip": number, "attempt": episode.attempts + 1},
                due_at=None,
                next_action=None,
                job_id=job_id,
                job_kind="trip",
                job_at=now,
            )
        self._submit_trip(tripping, job_id)
        report.trips.append(episode.number)

    def _submit_trip(self, episode: Disconnection, job_id: str) -> None:
        """Give the trip to the head-end (the job id is on the episode already: asking
        again with it never trips twice)."""
        ctx = self.ctx
        try:
            ctx.control.trip(
                episode.meter_address, f"arrears, disconnection {episode.number}", job_id=job_id
            )
        except Exception as exc:  # an unknown meter, a closed head-end: a failed attempt
            log.warning("trip %s could not be queued: %s", job_id, exc)
            self._trip_failed(self.get(episode.id), job_id, f"not queued: {exc}", None)

    def _due_check(self, episode: Disconnection, report: TickReport) -> None:
        ctx = self.ctx
        job_id = f"{ctx.config.job_prefix}-{episode.number}-check{episode.checks + 1}"
        with ctx.engine.begin() as conn:
            result = conn.execute(
                sa.update(_T)
                .where(
                    _T.c.id == episode.id, _T.c.state == episode.state.value, _T.c.job_id.is_(None)
                )
                .values(
                    job_id=job_id,
                    job_kind="check",
                    job_at=ctx.now(),
                    checks=episode.checks + 1,
                    last_relay=None,
                    due_at=None,
                    updated_at=ctx.now(),
                )
            )
            if result.rowcount != 1:
                return
        try:
            ctx.control.read(episode.meter_address, "relay", job_id=job_id)
        except Exception as exc:
            log.warning("relay check %s could not be queued: %s", job_id, exc)
            self._check_done(self.get(episode.id), job_id, None, f"not queued: {exc}")
        report.checks.append(episode.number)

    def _recover_stuck(self, report: TickReport) -> None:
        """Jobs whose outcome never arrived (a lost event): ask the head-end's job store."""
        ctx = self.ctx
        lookup = getattr(ctx.control, "job", None)
        if lookup is None:
            return
        cutoff = ctx.now() - ctx.config.stuck_after
        with ctx.engine.connect() as conn:
            rows = conn.execute(
                sa.select(_T).where(_T.c.job_id.is_not(None), _T.c.job_at < cutoff)
            ).all()
        for row in rows:
            episode = Disconnection.from_row(row)
            assert episode.job_id is not None
            try:
                record = lookup(episode.job_id)
            except JobNotFoundError:
                # the process stopped (killed) between recording the job on the episode
                # and queueing it: queue it now, under the same id
                self._queue_again(episode, episode.job_id)
                continue
            except Exception as exc:
                log.warning(
                    "job %s of %s cannot be looked up: %s", episode.job_id, episode.number, exc
                )
                continue
            state = str(getattr(getattr(record, "state", None), "value", ""))
            result = getattr(record, "result", None) or {}
            if state == "succeeded":
                if episode.job_kind == "trip":
                    self._tripped(episode, episode.job_id, result.get("energy_ckwh"))
                else:
                    self._check_done(episode, episode.job_id, result.get("relay"), None)
            elif state in ("failed", "expired"):
                reason = str(getattr(record, "reason", None) or state)
                if episode.job_kind == "trip":
                    self._trip_failed(
                        episode, episode.job_id, reason, getattr(record, "error", None)
                    )
                else:
                    self._check_done(episode, episode.job_id, None, reason)
            else:
                continue
            report.recovered.append(episode.number)

    def _queue_again(self, episode: Disconnection, job_id: str) -> None:
        """A trip or relay check recorded on ``episode`` that the head-end never got."""
        log.warning(
            "%s of %s was recorded but never reached the head-end: queued now",
            job_id,
            episode.number,
        )
        if episode.job_kind == "trip":
            self._submit_trip(episode, job_id)
            return
        try:
            self.ctx.control.read(episode.meter_address, "relay", job_id=job_id)
        except Exception as exc:
            log.warning("relay check %s could not be queued: %s", job_id, exc)
            self._check_done(self.get(episode.id), job_id, None, f"not queued: {exc}")

    # -- head-end outcomes -------------------------------------------------------------

    def handle(self, event: Event) -> bool:
        """Take a head-end event; ``True`` when it was about one of our jobs."""
        job_id = getattr(event, "job_id", None)
        if not job_id or not job_id.startswith(f"{self.ctx.config.job_prefix}-TD"):
            return False
        with self.ctx.engine.connect() as conn:
            row = conn.execute(sa.select(_T).where(_T.c.job_id == job_id)).first()
        if row is None:
            self._late_outcome(job_id, event)
            return True
        episode = Disconnection.from_row(row)
        try:
            if isinstance(event, ReadingCollected):
                if episode.job_kind == "check" and event.quantity == "relay":
                    with self.ctx.engine.begin() as conn:
                        conn.execute(
                            sa.update(_T)
                            .where(_T.c.id == episode.id, _T.c.job_id == job_id)
                            .values(last_relay=event.value)
                        )
            elif isinstance(event, CommandSucceeded):
                if episode.job_kind == "trip":
                    self._tripped(episode, job_id, event.energy_ckwh)
                else:
                    self._check_done(episode, job_id, episode.last_relay, None)
            elif isinstance(event, CommandFailed):
                if episode.job_kind == "trip":
                    self._trip_failed(episode, job_id, event.reason, event.error)
                else:
                    self._check_done(episode, job_id, None, event.reason)
        except WorkflowStateError as exc:
            log.info("%s", exc)
        return True

    def _late_outcome(self, job_id: str, event: Event) -> None:
        """An outcome for an episode that moved on (ended by a payment while the trip was
        under way): recorded in its history; the reconnection sends its permit-close."""
        number = job_id.split("-")[1] if job_id.count("-") >= 2 else ""
        if not isinstance(event, CommandSucceeded | CommandFailed):
            return
        with self.ctx.engine.begin() as conn:
            row = conn.execute(sa.select(_T).where(_T.c.number == number)).first()
            if row is None:
                return
            episode = Disconnection.from_row(row)
            outcome = "succeeded" if isinstance(event, CommandSucceeded) else "failed"
            conn.execute(
                sa.insert(_E).values(
                    disconnection_id=episode.id,
                    at=self.ctx.now(),
                    actor=SYSTEM,
                    action="late-outcome",
                    from_state=episode.state.value,
                    to_state=episode.state.value,
                    comment=f"{event.command} {outcome} after the episode was "
                    f"{episode.state.value}",
                    job_id=job_id,
                )
            )

    def _tripped(self, episode: Disconnection, job_id: str, energy: int | None) -> None:
        ctx = self.ctx
        if episode.state is not _S.TRIPPING or episode.job_id != job_id:
            return
        now = ctx.now()
        with ctx.engine.connect() as conn:
            customer = load_customer(conn, episode.account_id)
        effective = ctx.effective(customer)
        trips = episode.trips + 1
        repeats_left = effective.repeat_trip_max - (trips - 1)
        if repeats_left > 0:
            due: datetime | None = now + effective.repeat_trip_interval
            plan = (
                f"relay checked again at {due:%Y-%m-%d %H:%M} ({repeats_left} repeat trip(s) left)"
            )
            action: NextAction | None = NextAction.CHECK
        else:
            due, action = None, None
            plan = f"no more repeat trips (repeat_trip_max {effective.repeat_trip_max})"
        with ctx.engine.begin() as conn:
            done = self._change(
                conn,
                episode,
                _S.DISCONNECTED,
                SYSTEM,
                "tripped",
                f"trip {trips} succeeded; {plan}",
                event_job=job_id,
                details={"trip": trips, "energy_ckwh": energy},
                trips=trips,
                attempts=0,
                job_id=None,
                job_kind=None,
                job_at=None,
                first_trip_at=episode.first_trip_at or now,
                last_trip_at=now,
                trip_energy_ckwh=energy,
                due_at=due,
                next_action=action,
            )
        if trips == 1:
            balance = realtime_balance(ctx.engine, episode.account_id).realtime_fen
            ctx.send(
                ctx.recipient(customer, effective),
                MessageKind.DISCONNECTED.value,
                {
                    "name": customer.name,
                    "customer_no": customer.customer_no,
                    "balance": balance,
                    "at": now,
                },
                done.number,
            )
        log.info(
            "disconnection %s: trip %d succeeded (%s)", episode.number, trips, episode.meter_address
        )

    def _trip_failed(
        self, episode: Disconnection, job_id: str, reason: str, error: str | None
    ) -> None:
        ctx = self.ctx
        if episode.state is not _S.TRIPPING or episode.job_id != job_id:
            return
        now = ctx.now()
        with ctx.engine.connect() as conn:
            customer = load_customer(conn, episode.account_id)
        effective = ctx.effective(customer)
        back = _S.DISCONNECTED if episode.trips else _S.NOTIFIED
        if error == "guaranteed":  # the meter itself is under 3AH guarantee
            text = f"the meter refused the trip: it is under power guarantee (保电): {reason}"
            with ctx.engine.begin() as conn:
                if episode.trips == 0:
                    self._change(
                        conn,
                        episode,
                        _S.CANCELLED,
                        SYSTEM,
                        "guarantee-lockout",
                        text,
                        event_job=job_id,
                        ended_at=now,
                        end_reason=text,
                        due_at=None,
                        next_action=None,
                    )
                else:
                    self._change(
                        conn,
                        episode,
                        _S.DISCONNECTED,
                        SYSTEM,
                        "guarantee-lockout",
                        text,
                        event_job=job_id,
                        due_at=None,
                        next_action=None,
                        job_id=None,
                        job_kind=None,
                        job_at=None,
                    )
            return
        attempts = episode.attempts + 1
        limit = effective.remote_attempts
        if attempts < limit:
            retry = ctx.allowed_at(now + ctx.config.retry_interval, effective)
            with ctx.engine.begin() as conn:
                self._change(
                    conn,
                    episode,
                    back,
                    SYSTEM,
                    "trip-failed",
                    f"attempt {attempts} of {limit} failed: {reason}; next attempt "
                    f"{retry:%Y-%m-%d %H:%M}",
                    event_job=job_id,
                    details={"attempt": attempts, "error": error},
                    attempts=attempts,
                    job_id=None,
                    job_kind=None,
                    job_at=None,
                    due_at=retry,
                    next_action=NextAction.TRIP,
                )
            return
        self._open_failure_order(episode, customer, job_id, attempts, reason, error)

    def _open_failure_order(
        self,
        episode: Disconnection,
        customer: Customer,
        job_id: str,
        attempts: int,
        reason: str,
        error: str | None,
    ) -> None:
        ctx = self.ctx
        balance = realtime_balance(ctx.engine, episode.account_id).realtime_fen
        summary = (
            f"停电{episode.number}远程跳闸{attempts}次失败（{error or 'failed'}），请现场停电。"
            f"表址{episode.meter_address}，余额{_yuan(balance)}元。"
        )
        handler = ctx.workorders.pick_handler(episode.supply_unit)
        with ctx.engine.begin() as conn:
            order = ctx.workorders.create(
                WorkOrderKind.DISCONNECTION_FAILURE,
                summary=summary,
                by=SYSTEM,
                account_id=episode.account_id,
                reference=f"disconnection:{episode.number}",
                assignee=handler,
                connection=conn,
            )
            note = (
                f"to {handler}" if handler else "nobody to assign: assign it (feikong workorders)"
            )
            self._change(
                conn,
                episode,
                _S.FAILED,
                SYSTEM,
                "failed",
                f"{attempts} remote attempt(s) failed, last: {reason}; work order "
                f"{order.number} {note}",
                event_job=job_id,
                details={"attempts": attempts, "error": error, "work_order": order.number},
                attempts=attempts,
                job_id=None,
                job_kind=None,
                job_at=None,
                due_at=None,
                next_action=None,
                work_order=order.number,
            )
        if handler is not None:
            self.sms_handler(order, customer)

    def sms_handler(self, order: WorkOrder, customer: Customer) -> tuple[int | None, str | None]:
        """Tell the assignee of ``order`` by SMS: number, customer, address, summary."""
        ctx = self.ctx
        assert order.assignee is not None
        with ctx.engine.connect() as conn:
            name = conn.execute(
                sa.select(operator_table.c.display_name).where(
                    operator_table.c.login == order.assignee
                )
            ).scalar()
        recipient = Recipient(
            customer_no=f"op:{order.assignee}"[:32],
            name=str(name or order.assignee),
            phone=ctx.handler_phone(order.assignee),
        )
        return ctx.send(
            recipient,
            MessageKind.DISCONNECTION_FAILURE.value,
            {
                "name": str(name or order.assignee),
                "work_order_no": order.number,
                "customer_no": customer.customer_no,
                "address": customer.address or "-",
                "summary": order.summary,
            },
            order.number,
        )

    def _check_done(
        self, episode: Disconnection, job_id: str, relay: str | None, failure: str | None
    ) -> None:
        ctx = self.ctx
        if episode.state is not _S.DISCONNECTED or episode.job_id != job_id:
            return
        now = ctx.now()
        with ctx.engine.connect() as conn:
            customer = load_customer(conn, episode.account_id)
        effective = ctx.effective(customer)
        clear: dict[str, Any] = {"job_id": None, "job_kind": None, "job_at": None}
        if failure is not None or relay is None:
            retry = now + ctx.config.check_retry
            text = f"relay read failed ({failure or 'no value'}); read again {retry:%H:%M}"
            values: dict[str, Any] = {**clear, "due_at": retry, "next_action": NextAction.CHECK}
        elif relay == "closed":
            if effective.repeat_trip_max - (episode.trips - 1) > 0:
                text = "the customer closed the breaker again: repeat trip"
                values = {**clear, "due_at": now, "next_action": NextAction.TRIP}
                ctx.wake()
            else:
                text = (
                    "the customer closed the breaker again after the last allowed repeat "
                    f"trip (repeat_trip_max {effective.repeat_trip_max}): no more trips"
                )
                values = {**clear, "due_at": None, "next_action": None}
        else:
            nxt = now + effective.repeat_trip_interval
            text = f"relay {relay}; checked again {nxt:%Y-%m-%d %H:%M}"
            values = {**clear, "due_at": nxt, "next_action": NextAction.CHECK}
        with ctx.engine.begin() as conn:
            self._change(
                conn,
                episode,
                _S.DISCONNECTED,
                SYSTEM,
                "relay-check",
                text,
                event_job=job_id,
                **values,
            )

    # -- on-site results ---------------------------------------------------------------

    def on_work_order_result(self, conn: Connection, order: WorkOrder) -> None:
        """A fault handler recorded the on-site result of a disconnection-failure order."""
        if order.kind is not WorkOrderKind.DISCONNECTION_FAILURE or not order.reference:
            return
        if not order.reference.startswith("disconnection:"):
            return
        row = conn.execute(
            sa.select(_T).where(_T.c.number == order.reference.split(":", 1)[1])
        ).first()
        if row is None:
            return
        episode = Disconnection.from_row(row)
        if episode.state is not _S.FAILED:
            return
        actor = order.assignee or SYSTEM
        text = f"work order {order.number}: {order.outcome}: {order.result}"
        if order.outcome is WorkOrderOutcome.DONE:
            now = self.ctx.now()
            self._change(
                conn,
                episode,
                _S.ON_SITE,
                actor,
                "on-site",
                text,
                first_trip_at=episode.first_trip_at or now,
                last_trip_at=now,
            )
        elif order.outcome is WorkOrderOutcome.NOT_NEEDED:
            self._change(
                conn,
                episode,
                _S.ENDED,
                actor,
                "on-site",
                text,
                ended_at=self.ctx.now(),
                end_reason=text,
            )
        else:
            self._change(conn, episode, _S.FAILED, actor, "on-site", text)

    def failure_orders_open(self) -> builtins.list[WorkOrder]:
        """Disconnection-failure work orders not finished yet (the failure list)."""
        return self.ctx.workorders.query(
            kind=WorkOrderKind.DISCONNECTION_FAILURE,
            state=[WorkOrderState.OPEN, WorkOrderState.ASSIGNED, WorkOrderState.RESULT_RECORDED],
        )

    def summary(self, episode: Disconnection) -> str:
        """One line: number, customer, state, what is next."""
        nxt = ""
        if episode.due_at and episode.next_action:
            nxt = f", {episode.next_action.value} at {episode.due_at:%Y-%m-%d %H:%M}"
        if episode.job_id:
            nxt = f", {episode.job_kind} job {episode.job_id} in progress"
        return (
            f"{episode.number} {episode.customer_no} {episode.state.value}"
            f" (trips {episode.trips}){nxt}"
        )
