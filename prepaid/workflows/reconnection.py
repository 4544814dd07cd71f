"""The reconnection workflow (复电): after payment, no more trips, and power back.

On a payment (the CIS payment service's ``on_payment`` hook, with the account already
re-rated) whose real-time balance is above zero, the **reconnect instruction**
(复电指令) for the customer's active disconnection episode:

- an episode not tripped yet (requested, approved, notified) is **cancelled**: the
  pending and scheduled trips and open requests are dropped;
- a tripped episode **ends** (no further trip commands) and the meter gets a
  **permit-close** (合闸允许, the customer closes the external breaker by hand) — or a
  **direct close** (直接合闸) where ``reconnect_direct_close`` is set and the switch
  can be closed remotely (``external-remote-close`` or built-in relay); a direct
  close the meter refuses falls back to a permit-close;
- a trip still under way gets its permit-close queued behind it (same meter queue);
- a failed episode ends, and its disconnection-failure work order is cancelled;
- a customer disconnected on site is reconnected on site: a reconnection work order
  (复电工单) for a fault handler.

A command that succeeds sends the "reconnected" message (once); one that fails opens
an on-site reconnection work order. Where the area's ``auto_reconnect`` is off the
instruction waits for an operator (``feikong reconnect CUSTOMER``). Every step is in
the episode's history and the audit log (``reconnection.*``).
"""

from __future__ import annotations

import builtins
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from headend.errors import JobNotFoundError
from headend.events import CommandFailed, CommandSucceeded, Event

from ..balance import realtime_balance
from ..messages import MessageKind, Recipient
from ..settings import EffectiveSettings
from ..users import Action, Operator, PermissionDeniedError, operator_table, require
from ..workorders import WorkOrder, WorkOrderKind, WorkOrderOutcome
from ._common import (
    Customer,
    NotFoundError,
    WorkflowContext,
    WorkflowError,
    WorkflowStateError,
    load_customer,
)
from .disconnection import Disconnection, DisconnectionWorkflow, _yuan
from .tables import (
    DisconnectionState,
    ReconnectionMethod,
    ReconnectionState,
    reconnection_table,
)

__all__ = ["Reconnection", "ReconnectionWorkflow"]

log = logging.getLogger(__name__)

SYSTEM: Final = "system:reconnection"
_R = reconnection_table
_S = DisconnectionState
_PRE_TRIP: Final = frozenset({_S.REQUESTED, _S.APPROVED_L1, _S.APPROVED, _S.NOTIFIED})
_REMOTE_CLOSABLE: Final = frozenset({"external-remote-close", "internal"})


@dataclass(frozen=True, slots=True)
class Reconnection:
    """A reconnection (复电) of one disconnection episode."""

    id: int
    number: str
    disconnection_id: int
    account_id: int
    customer_no: str
    meter_address: str
    state: ReconnectionState
    method: ReconnectionMethod
    trigger: str
    balance_fen: int
    created_by: str
    created_at: datetime
    updated_at: datetime
    job_id: str | None = None
    after_job: str | None = None
    work_order: str | None = None
    error: str | None = None
    done_at: datetime | None = None

    @classmethod
    def from_row(cls, row: Any) -> Reconnection:
        values = dict(row._mapping)
        values["id"] = int(values["id"])
        values["disconnection_id"] = int(values["disconnection_id"])
        values["state"] = ReconnectionState(values["state"])
        values["method"] = ReconnectionMethod(values["method"])
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
        return out


def choose_method(customer: Customer, effective: EffectiveSettings) -> ReconnectionMethod:
    """Permit-close, or a direct close where configured and the switch supports it."""
    if effective.reconnect_direct_close and customer.breaker_type in _REMOTE_CLOSABLE:
        return ReconnectionMethod.CLOSE
    return ReconnectionMethod.PERMIT_CLOSE


class ReconnectionWorkflow:
    """Reconnections of a prepaid database (see the module doc)."""

    def __init__(self, ctx: WorkflowContext, disconnection: DisconnectionWorkflow) -> None:
        self.ctx = ctx
        self.disconnection = disconnection
        self.pending_messages: builtins.list[str] = []
        """Reconnections done on site whose message waits for the work order's commit."""

    # -- reading ---------------------------------------------------------------------

    def _load(self, conn: Connection, key: int | str) -> Reconnection:
        column = _R.c.id if isinstance(key, int) else _R.c.number
        row = conn.execute(sa.select(_R).where(column == key)).first()
        if row is None:
            raise NotFoundError(
                f"no reconnection {key!r}: check the number (feikong reconnect list)"
            )
        return Reconnection.from_row(row)

    def get(self, key: int | str) -> Reconnection:
        with self.ctx.engine.connect() as conn:
            return self._load(conn, key)

    def of_episode(self, disconnection_id: int) -> Reconnection | None:
        with self.ctx.engine.connect() as conn:
            row = conn.execute(
                sa.select(_R).where(_R.c.disconnection_id == disconnection_id)
            ).first()
        return Reconnection.from_row(row) if row is not None else None

    def list(
        self,
        *,
        state: ReconnectionState | None = None,
        customer_no: str | None = None,
        limit: int | None = None,
    ) -> builtins.list[Reconnection]:
        query = sa.select(_R)
        if state is not None:
            query = query.where(_R.c.state == state.value)
        if customer_no is not None:
            query = query.where(_R.c.customer_no == customer_no)
        query = query.order_by(_R.c.id)
        if limit is not None:
            query = query.limit(limit)
        with self.ctx.engine.connect() as conn:
            return [Reconnection.from_row(r) for r in conn.execute(query)]

    # -- triggers --------------------------------------------------------------------

    def on_payment(self, event: Any) -> Reconnection | None:
        """The payment service's ``on_payment`` hook (:class:`prepaid.cis.payments.
        PaymentEvent`: the account is re-rated, ``balance`` is its new real-time balance)."""
        balance = int(event.balance.realtime_fen)
        trigger = f"payment:{event.receipt.operation_id}"[:64]
        if balance <= 0:
            log.info(
                "payment %s leaves account %s at %s yuan: no reconnection",
                trigger,
                event.account_id,
                _yuan(balance),
            )
            return None
        episode = self.disconnection.active_for(int(event.account_id))
        if episode is None:
            return None
        return self.on_balance(episode, balance, trigger)

    def on_balance(self, episode: Disconnection, balance: int, trigger: str) -> Reconnection:
        """The customer of ``episode`` has ``balance`` > 0: the reconnect instruction, or a
        reconnection waiting for an operator where auto reconnect is off."""
        with self.ctx.engine.connect() as conn:
            customer = load_customer(conn, episode.account_id)
        effective = self.ctx.effective(customer)
        if not effective.auto_reconnect:
            return self._waiting(episode, balance, trigger, effective)
        return self._reconnect(episode, customer, effective, balance, trigger, SYSTEM)

    def reconnect(self, customer: int | str, *, by: Operator, reason: str = "") -> Reconnection:
        """An operator issues the reconnect instruction (after payment, or where auto
        reconnect is off). The account is re-rated; its balance must be above zero."""
        ctx = self.ctx
        target = f"customer:{customer}"
        try:
            with ctx.engine.connect() as conn:
                found = load_customer(conn, customer)
            target = f"customer:{found.customer_no}"
            require(by, Action.RECONNECT, supply_unit=found.supply_unit)
            episode = self.disconnection.active_for(found.account_id)
            if episode is None:
                latest = self.list(customer_no=found.customer_no)
                if latest:
                    return latest[-1]
                raise WorkflowStateError(
                    f"customer {found.customer_no} has no disconnection to undo"
                )
            error = ctx.rerate([found.account_id])
            if error is not None:
                raise WorkflowStateError(f"customer {found.customer_no}: {error}")
            balance = realtime_balance(ctx.engine, found.account_id).realtime_fen
            if balance <= 0:
                raise WorkflowStateError(
                    f"customer {found.customer_no} has a real-time balance of {_yuan(balance)} "
                    "yuan: a reconnection needs a balance above zero (the customer pays first)"
                )
            trigger = f"operator:{reason.strip() or by.login}"[:64]
            return self._reconnect(episode, found, ctx.effective(found), balance, trigger, by.login)
        except (WorkflowError, PermissionDeniedError) as exc:
            name = by.login
            ctx.audit.record(name, "reconnection.refused", target[:200], {"reason": str(exc)})
            log.info("reconnection refused for %s: %s", name, exc)
            raise

    # -- the instruction -------------------------------------------------------------

    def _insert(
        self,
        conn: Connection,
        episode: Disconnection,
        state: ReconnectionState,
        method: ReconnectionMethod,
        trigger: str,
        balance: int,
        actor: str,
    ) -> Reconnection:
        now = self.ctx.now()
        new_id = conn.execute(
            sa.insert(_R)
            .values(
                number=f"tmp-{episode.id}-{now:%H%M%S%f}"[:24],
                disconnection_id=episode.id,
                account_id=episode.account_id,
                customer_no=episode.customer_no,
                meter_address=episode.meter_address,
                state=state.value,
                method=method.value,
                trigger=trigger,
                balance_fen=balance,
                created_by=actor,
                created_at=now,
                updated_at=now,
            )
            .returning(_R.c.id)
        ).scalar_one()
        number = f"FD{now:%Y%m%d}{int(new_id):06d}"
        conn.execute(sa.update(_R).where(_R.c.id == new_id).values(number=number))
        made = self._load(conn, int(new_id))
        self.ctx.audit.record(
            actor,
            "reconnection.create",
            f"reconnection:{number}",
            {
                "disconnection": episode.number,
                "customer_no": episode.customer_no,
                "state": state.value,
                "method": method.value,
                "trigger": trigger,
                "balance_fen": balance,
            },
            connection=conn,
        )
        return made

    def _set(
        self, conn: Connection, recon: Reconnection, actor: str, action: str, **values: Any
    ) -> Reconnection:
        values = {k: (v.value if hasattr(v, "value") else v) for k, v in values.items()}
        values["updated_at"] = self.ctx.now()
        conn.execute(sa.update(_R).where(_R.c.id == recon.id).values(**values))
        details = {
            k: (v.isoformat() if isinstance(v, datetime) else v)
            for k, v in values.items()
            if k != "updated_at"
        }
        details["from_state"] = recon.state.value
        self.ctx.audit.record(
            actor,
            f"reconnection.{action}",
            f"reconnection:{recon.number}",
            details,
            connection=conn,
        )
        return self._load(conn, recon.id)

    def _waiting(
        self, episode: Disconnection, balance: int, trigger: str, effective: EffectiveSettings
    ) -> Reconnection:
        existing = self.of_episode(episode.id)
        if existing is not None:
            return existing
        try:
            with self.ctx.engine.begin() as conn:
                made = self._insert(
                    conn,
                    episode,
                    ReconnectionState.WAITING,
                    ReconnectionMethod.NONE,
                    trigger,
                    balance,
                    SYSTEM,
                )
                self.disconnection._record(
                    conn,
                    episode,
                    SYSTEM,
                    "paid",
                    episode.state,
                    f"{trigger}: balance {_yuan(balance)} yuan; auto reconnect is off (from "
                    f"{effective.source('auto_reconnect')}): reconnection {made.number} waits "
                    "for an operator",
                )
                return made
        except IntegrityError:
            found = self.of_episode(episode.id)
            assert found is not None
            return found

    def _reconnect(
        self,
        episode: Disconnection,
        customer: Customer,
        effective: EffectiveSettings,
        balance: int,
        trigger: str,
        actor: str,
    ) -> Reconnection:
        ctx = self.ctx
        existing = self.of_episode(episode.id)
        if existing is not None and existing.state is not ReconnectionState.WAITING:
            return existing
        reason = f"{trigger}: real-time balance {_yuan(balance)} yuan"
        state = episode.state
        order: WorkOrder | None = None
        try:
            with ctx.engine.begin() as conn:
                if state in _PRE_TRIP:
                    self.disconnection.cancel_in(conn, episode, actor, f"reconnect: {reason}")
                    method, new_state = ReconnectionMethod.NONE, ReconnectionState.CANCELLED_ONLY
                elif state is _S.FAILED:
                    self.disconnection.end_in(conn, episode, actor, f"reconnect: {reason}")
                    method, new_state = ReconnectionMethod.NONE, ReconnectionState.CANCELLED_ONLY
                    if episode.work_order:
                        failure = ctx.workorders.get(episode.work_order, connection=conn)
                        if not failure.state.finished:
                            ctx.workorders.cancel(
                                failure.number,
                                by=SYSTEM,
                                reason=f"the customer paid ({reason}): no on-site disconnection",
                                connection=conn,
                            )
                elif state is _S.ON_SITE:
                    self.disconnection.end_in(conn, episode, actor, f"reconnect: {reason}")
                    method, new_state = ReconnectionMethod.ON_SITE, ReconnectionState.ON_SITE
                else:  # tripping or disconnected
                    self.disconnection.end_in(conn, episode, actor, f"reconnect: {reason}")
                    method, new_state = choose_method(customer, effective), ReconnectionState.SENT
                if existing is not None:
                    recon = self._set(
                        conn,
                        existing,
                        actor,
                        "issue",
                        state=new_state,
                        method=method,
                        trigger=trigger,
                        balance_fen=balance,
                    )
                else:
                    recon = self._insert(conn, episode, new_state, method, trigger, balance, actor)
                if method is ReconnectionMethod.ON_SITE:
                    order = self._open_order(
                        conn,
                        recon,
                        episode,
                        f"复电{recon.number}：客户已缴费（余额{_yuan(balance)}元），该户于停电"
                        f"{episode.number}中现场停电，请现场复电。表址{episode.meter_address}。",
                    )
                    recon = self._set(conn, recon, SYSTEM, "on-site", work_order=order.number)
                elif method in (ReconnectionMethod.PERMIT_CLOSE, ReconnectionMethod.CLOSE):
                    # a trip still with the head-end: the close waits for its outcome, so
                    # the meter gets trip then close, never the other way round
                    recon = self._set(
                        conn,
                        recon,
                        SYSTEM,
                        "send",
                        job_id=self._job_id(recon, method),
                        after_job=episode.job_id if state is _S.TRIPPING else None,
                    )
        except IntegrityError:
            found = self.of_episode(episode.id)
            assert found is not None
            return found
        if order is not None and order.assignee:
            self._sms(order, customer)
        if recon.state is ReconnectionState.SENT and recon.job_id and not recon.after_job:
            self._submit(recon, recon.method, recon.job_id)
        log.info("reconnection %s of %s: %s", recon.number, recon.customer_no, recon.method.value)
        return recon

    def _job_id(self, recon: Reconnection, method: ReconnectionMethod) -> str:
        return f"{self.ctx.config.job_prefix}-{recon.number}-{method.value}"

    def _submit(self, recon: Reconnection, method: ReconnectionMethod, job_id: str) -> None:
        control = self.ctx.control
        reason = f"paid, reconnection {recon.number}"
        try:
            if method is ReconnectionMethod.CLOSE:
                control.close(recon.meter_address, reason=reason, job_id=job_id)
            else:
                control.permit_close(recon.meter_address, reason=reason, job_id=job_id)
        except Exception as exc:
            log.warning("reconnection %s could not be queued: %s", job_id, exc)
            self._failed(recon, job_id, f"not queued: {exc}", None)

    def release_after(self, job_id: str, *, succeeded: bool) -> None:
        """The trip ``job_id`` a reconnection was waiting for has ended: send its command
        (the trip succeeded), or drop it (the trip failed: the power never went off)."""
        ctx = self.ctx
        with ctx.engine.connect() as conn:
            rows = conn.execute(
                sa.select(_R).where(
                    _R.c.after_job == job_id, _R.c.state == ReconnectionState.SENT.value
                )
            ).all()
        for row in rows:
            recon = Reconnection.from_row(row)
            with ctx.engine.begin() as conn:
                if succeeded:
                    recon = self._set(conn, recon, SYSTEM, "release", after_job=None)
                else:
                    recon = self._set(
                        conn,
                        recon,
                        SYSTEM,
                        "release",
                        after_job=None,
                        job_id=None,
                        state=ReconnectionState.CANCELLED_ONLY,
                        method=ReconnectionMethod.NONE,
                    )
            if recon.state is ReconnectionState.SENT and recon.job_id:
                self._submit(recon, recon.method, recon.job_id)

    def release_stuck(self) -> int:
        """Commands held back longer than ``stuck_after`` for a trip outcome that never
        came (a lost event) are sent anyway (a permit-close never harms)."""
        ctx = self.ctx
        cutoff = ctx.now() - ctx.config.stuck_after
        with ctx.engine.connect() as conn:
            rows = conn.execute(
                sa.select(_R.c.after_job).where(
                    _R.c.after_job.is_not(None),
                    _R.c.state == ReconnectionState.SENT.value,
                    _R.c.updated_at < cutoff,
                )
            ).all()
        for row in rows:
            self.release_after(str(row.after_job), succeeded=True)
        return len(rows) + self._queue_unsent(cutoff)

    def _queue_unsent(self, cutoff: datetime) -> int:
        """Commands recorded as sent that the head-end never got — the process stopped
        (killed) between the two steps — are queued now, under the same job id."""
        lookup = getattr(self.ctx.control, "job", None)
        if lookup is None:
            return 0
        with self.ctx.engine.connect() as conn:
            rows = conn.execute(
                sa.select(_R).where(
                    _R.c.state == ReconnectionState.SENT.value,
                    _R.c.job_id.is_not(None),
                    _R.c.after_job.is_(None),
                    _R.c.updated_at < cutoff,
                )
            ).all()
        queued = 0
        for row in rows:
            recon = Reconnection.from_row(row)
            assert recon.job_id is not None
            try:
                lookup(recon.job_id)
            except JobNotFoundError:
                log.warning(
                    "%s of %s was recorded but never reached the head-end: queued now",
                    recon.job_id,
                    recon.number,
                )
                self._submit(recon, recon.method, recon.job_id)
                queued += 1
            except Exception as exc:
                log.warning("job %s of %s cannot be looked up: %s", recon.job_id, recon.number, exc)
        return queued

    # -- head-end outcomes -----------------------------------------------------------

    def handle(self, event: Event) -> bool:
        job_id = getattr(event, "job_id", None)
        if not job_id or not job_id.startswith(f"{self.ctx.config.job_prefix}-FD"):
            return False
        if not isinstance(event, CommandSucceeded | CommandFailed):
            return True
        with self.ctx.engine.connect() as conn:
            row = conn.execute(sa.select(_R).where(_R.c.job_id == job_id)).first()
        if row is None:
            return True
        recon = Reconnection.from_row(row)
        if recon.state is not ReconnectionState.SENT:
            return True
        if isinstance(event, CommandSucceeded):
            self._done(recon, job_id)
        else:
            self._failed(recon, job_id, event.reason, event.error)
        return True

    def _done(self, recon: Reconnection, job_id: str) -> None:
        ctx = self.ctx
        now = ctx.now()
        with ctx.engine.begin() as conn:
            done = self._set(conn, recon, SYSTEM, "done", state=ReconnectionState.DONE, done_at=now)
            customer = load_customer(conn, recon.account_id)
        self._message(done, customer)
        log.info("reconnection %s done (%s)", recon.number, job_id)

    def _message(self, recon: Reconnection, customer: Customer) -> None:
        ctx = self.ctx
        effective = ctx.effective(customer)
        balance = realtime_balance(ctx.engine, recon.account_id).realtime_fen
        ctx.send(
            ctx.recipient(customer, effective),
            MessageKind.RECONNECTED.value,
            {
                "name": customer.name,
                "customer_no": customer.customer_no,
                "balance": balance,
                "at": ctx.now(),
            },
            recon.number,
        )

    def _failed(self, recon: Reconnection, job_id: str, reason: str, error: str | None) -> None:
        ctx = self.ctx
        if recon.method is ReconnectionMethod.CLOSE and job_id.endswith("-close"):
            # a switch that cannot close remotely after all: permit the customer instead
            fallback = self._job_id(recon, ReconnectionMethod.PERMIT_CLOSE)
            with ctx.engine.begin() as conn:
                recon = self._set(
                    conn,
                    recon,
                    SYSTEM,
                    "fallback",
                    method=ReconnectionMethod.PERMIT_CLOSE,
                    job_id=fallback,
                    error=f"direct close failed: {reason}",
                )
            self._submit(recon, ReconnectionMethod.PERMIT_CLOSE, fallback)
            return
        with ctx.engine.begin() as conn:
            customer = load_customer(conn, recon.account_id)
            episode = self.disconnection._load(conn, recon.disconnection_id)
            order = self._open_order(
                conn,
                recon,
                episode,
                f"复电{recon.number}远程{recon.method.value}失败（{error or 'failed'}），"
                f"请现场复电。表址{recon.meter_address}。",
            )
            self._set(
                conn,
                recon,
                SYSTEM,
                "failed",
                state=ReconnectionState.FAILED,
                work_order=order.number,
                error=reason,
            )
        if order.assignee:
            self._sms(order, customer)

    def _open_order(
        self, conn: Connection, recon: Reconnection, episode: Disconnection, summary: str
    ) -> WorkOrder:
        ctx = self.ctx
        return ctx.workorders.create(
            WorkOrderKind.RECONNECTION_FAILURE,
            summary=summary,
            by=SYSTEM,
            account_id=recon.account_id,
            reference=f"reconnection:{recon.number}",
            assignee=ctx.workorders.pick_handler(episode.supply_unit),
            connection=conn,
        )

    def _sms(self, order: WorkOrder, customer: Customer) -> None:
        """The handler's SMS for an on-site reconnection (custom text: the number, summary)."""
        ctx = self.ctx
        assert order.assignee is not None
        with ctx.engine.connect() as conn:
            name = conn.execute(
                sa.select(operator_table.c.display_name).where(
                    operator_table.c.login == order.assignee
                )
            ).scalar()
        ctx.send(
            Recipient(
                customer_no=f"op:{order.assignee}"[:32],
                name=str(name or order.assignee),
                phone=ctx.handler_phone(order.assignee),
            ),
            MessageKind.CUSTOM.value,
            {
                "name": str(name or order.assignee),
                "text": f"复电工单{order.number}已派发给您。户号{customer.customer_no}，"
                f"地址{customer.address or '-'}。{order.summary}",
            },
            order.number,
        )

    def on_work_order_result(self, conn: Connection, order: WorkOrder) -> None:
        """The on-site reconnection was done: the reconnection is done (and messaged)."""
        if order.kind is not WorkOrderKind.RECONNECTION_FAILURE or not order.reference:
            return
        if not order.reference.startswith("reconnection:"):
            return
        row = conn.execute(
            sa.select(_R).where(_R.c.number == order.reference.split(":", 1)[1])
        ).first()
        if row is None:
            return
        recon = Reconnection.from_row(row)
        if recon.state not in (ReconnectionState.FAILED, ReconnectionState.ON_SITE):
            return
        if order.outcome is WorkOrderOutcome.DONE:
            self._set(
                conn,
                recon,
                order.assignee or SYSTEM,
                "on-site-done",
                state=ReconnectionState.DONE,
                done_at=self.ctx.now(),
            )
            # the message goes after the work order's transaction (see FeeControl)
            self.pending_messages.append(recon.number)

    def flush_messages(self) -> None:
        """Send the "reconnected" messages of on-site reconnections recorded just now."""
        numbers, self.pending_messages = self.pending_messages, []
        for number in numbers:
            recon = self.get(number)
            with self.ctx.engine.connect() as conn:
                customer = load_customer(conn, recon.account_id)
            self._message(recon, customer)
