"""Approval time limits (审批时限, SLA) of disconnection requests.

A request waits for two people: the level-1 approver, then the level-2 approver. Each
wait has a time limit (:attr:`WorkflowConfig.approval_l1_limit` /
:attr:`~WorkflowConfig.approval_l2_limit`, default 24 hours each, counted on the shared
clock from the request, resp. the level-1 approval):

- **before the limit**: nothing happens; :meth:`ApprovalSla.pending` lists the wait and
  its deadline;
- **at the limit** the request becomes **overdue** (超时) and is **escalated** once per
  level (:meth:`ApprovalSla.tick`, run by every :meth:`FeeControl.tick
  <prepaid.workflows.FeeControl.tick>`, woken at the deadline by
  :meth:`FeeControl.run <prepaid.workflows.FeeControl.run>`): a ``sla-overdue`` line in
  the episode's history and the audit log naming who may approve now (the holders of the
  role for the supply unit, never the requester nor the level-1 approver) — or, when
  nobody may, that an admin must grant the role. ``feikong disconnect overdue`` lists the
  overdue requests, most overdue first.

What does **not** happen at the limit: a request is never approved, refused or
cancelled by the clock. A disconnection needs two people's decision (S2), and an
overdue request is still needed while the arrears last; a customer who pays meanwhile
is cancelled by the payment as usual, and every trip re-rates first.
"""

from __future__ import annotations

import builtins
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

import sqlalchemy as sa

from ..users import operator_role_table, operator_table
from ._common import WorkflowContext
from .disconnection import Disconnection, DisconnectionWorkflow
from .tables import DisconnectionState, disconnection_event_table, disconnection_table

__all__ = ["OVERDUE_ACTION", "ApprovalSla", "ApprovalWait"]

log = logging.getLogger(__name__)

OVERDUE_ACTION: Final = "sla-overdue"
SYSTEM: Final = "system:sla"
_T = disconnection_table
_E = disconnection_event_table
_S = DisconnectionState
_ROLE: Final = {_S.REQUESTED: "approver-l1", _S.APPROVED_L1: "approver-l2"}


def _duration(value: timedelta) -> str:
    minutes = int(value.total_seconds() // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    parts = [f"{days}d" if days else "", f"{hours}h" if hours else "", f"{minutes}m"]
    text = "".join(p for p in parts if p)
    return text if not text.endswith("h0m") else text[:-2]


@dataclass(frozen=True, slots=True)
class ApprovalWait:
    """A request waiting for an approval, with its time limit."""

    number: str
    customer_no: str
    supply_unit: str | None
    state: DisconnectionState
    level: int
    """1: waiting for the level-1 approval, 2: for the level-2 approval."""
    since: datetime
    deadline: datetime
    now: datetime
    escalated_at: datetime | None
    approvers: tuple[str, ...]
    """Who may approve it now (the role's holders for the unit, not the requester nor
    the level-1 approver)."""

    @property
    def overdue(self) -> bool:
        return self.now >= self.deadline

    @property
    def overdue_by(self) -> timedelta:
        return max(self.now - self.deadline, timedelta(0))

    def to_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "customer_no": self.customer_no,
            "supply_unit": self.supply_unit,
            "state": self.state.value,
            "level": self.level,
            "since": self.since.isoformat(timespec="seconds"),
            "deadline": self.deadline.isoformat(timespec="seconds"),
            "overdue": self.overdue,
            "overdue_by": _duration(self.overdue_by),
            "escalated_at": (
                self.escalated_at.isoformat(timespec="seconds") if self.escalated_at else None
            ),
            "approvers": list(self.approvers),
        }


class ApprovalSla:
    """The approval time limits of one database's disconnection requests."""

    def __init__(self, ctx: WorkflowContext, flow: DisconnectionWorkflow) -> None:
        self.ctx = ctx
        self.flow = flow

    def limit(self, state: DisconnectionState) -> timedelta:
        config = self.ctx.config
        if state is _S.REQUESTED:
            return config.approval_l1_limit
        if state is _S.APPROVED_L1:
            return config.approval_l2_limit
        raise ValueError(f"{state.value} waits for no approval")

    # -- reading --------------------------------------------------------------------

    def _approvers(self) -> dict[str, builtins.list[tuple[str, str | None]]]:
        """role → [(login, supply unit or None)] of the enabled operators holding it."""
        o, r = operator_table, operator_role_table
        out: dict[str, builtins.list[tuple[str, str | None]]] = {}
        with self.ctx.engine.connect() as conn:
            rows = conn.execute(
                sa.select(r.c.role, o.c.login, o.c.supply_unit)
                .join(o, o.c.login == r.c.login)
                .where(r.c.role.in_(list(_ROLE.values())), o.c.disabled.is_(False))
                .order_by(o.c.login)
            )
            for role, login, unit in rows:
                out.setdefault(str(role), []).append((str(login), unit))
        return out

    def pending(
        self, *, overdue_only: bool = False, now: datetime | None = None
    ) -> builtins.list[ApprovalWait]:
        """Requests waiting for an approval (most overdue first), with their deadlines."""
        now = now or self.ctx.now()
        config = self.ctx.config
        escalated = (
            sa.select(sa.func.max(_E.c.at))
            .where(
                _E.c.disconnection_id == _T.c.id,
                _E.c.action == OVERDUE_ACTION,
                _E.c.from_state == _T.c.state,
            )
            .scalar_subquery()
        )
        waiting_l1 = _T.c.state == _S.REQUESTED.value
        waiting_l2 = _T.c.state == _S.APPROVED_L1.value
        if overdue_only:
            waiting_l1 = sa.and_(waiting_l1, _T.c.requested_at <= now - config.approval_l1_limit)
            waiting_l2 = sa.and_(waiting_l2, _T.c.l1_at <= now - config.approval_l2_limit)
        with self.ctx.engine.connect() as conn:
            rows = conn.execute(
                sa.select(_T, escalated.label("escalated_at")).where(sa.or_(waiting_l1, waiting_l2))
            ).all()
        holders = self._approvers()
        out = []
        for row in rows:
            values = dict(row._mapping)
            escalated_at = values.pop("escalated_at")
            episode = Disconnection.from_row(_Row(values))
            out.append(self._wait(episode, escalated_at, holders, now))
        out.sort(key=lambda w: (w.deadline, w.number))
        return out

    def _wait(
        self,
        episode: Disconnection,
        escalated_at: datetime | None,
        holders: dict[str, builtins.list[tuple[str, str | None]]],
        now: datetime,
    ) -> ApprovalWait:
        level = 1 if episode.state is _S.REQUESTED else 2
        since = episode.requested_at if level == 1 else (episode.l1_at or episode.requested_at)
        excluded = {episode.requested_by, episode.l1_by}
        approvers = tuple(
            login
            for login, unit in holders.get(_ROLE[episode.state], [])
            if login not in excluded
            and (unit is None or episode.supply_unit is None or unit == episode.supply_unit)
        )
        return ApprovalWait(
            number=episode.number,
            customer_no=episode.customer_no,
            supply_unit=episode.supply_unit,
            state=episode.state,
            level=level,
            since=since,
            deadline=since + self.limit(episode.state),
            now=now,
            escalated_at=escalated_at,
            approvers=approvers,
        )

    def overdue(self, now: datetime | None = None) -> builtins.list[ApprovalWait]:
        """The overdue requests, most overdue first."""
        return self.pending(overdue_only=True, now=now)

    def next_due(self) -> datetime | None:
        """The next deadline of a request not yet escalated at its level (two queries)."""
        config = self.ctx.config
        found = []
        with self.ctx.engine.connect() as conn:
            for state, column, limit in (
                (_S.REQUESTED, _T.c.requested_at, config.approval_l1_limit),
                (_S.APPROVED_L1, _T.c.l1_at, config.approval_l2_limit),
            ):
                escalated = sa.exists().where(
                    _E.c.disconnection_id == _T.c.id,
                    _E.c.action == OVERDUE_ACTION,
                    _E.c.from_state == state.value,
                )
                first = conn.execute(
                    sa.select(sa.func.min(column)).where(_T.c.state == state.value, ~escalated)
                ).scalar()
                if first is not None:
                    found.append(first + limit)
        return min(found, default=None)

    # -- the timer ------------------------------------------------------------------

    def tick(self) -> builtins.list[str]:
        """Escalate the requests that became overdue (once per level); their numbers."""
        done = []
        for wait in self.overdue():
            if wait.escalated_at is not None:
                continue
            role = _ROLE[wait.state]
            if wait.approvers:
                who = f"escalated to {role}: {', '.join(wait.approvers)}"
            else:
                unit = f" of supply unit {wait.supply_unit}" if wait.supply_unit else ""
                who = (
                    f"nobody{unit} may approve it ({role}, not the requester nor the "
                    "level-1 approver): an admin must grant the role (feikong users grant)"
                )
            limit = _duration(self.limit(wait.state))
            comment = (
                f"level-{wait.level} approval overdue: waiting since "
                f"{wait.since:%Y-%m-%d %H:%M}, limit {limit} (deadline "
                f"{wait.deadline:%Y-%m-%d %H:%M}); {who}"
            )
            with self.ctx.engine.begin() as conn:
                row = conn.execute(sa.select(_T).where(_T.c.number == wait.number)).first()
                if row is None:
                    continue
                episode = Disconnection.from_row(row)
                if episode.state is not wait.state:
                    continue  # approved meanwhile
                again = conn.execute(
                    sa.select(sa.func.count())
                    .select_from(_E)
                    .where(
                        _E.c.disconnection_id == episode.id,
                        _E.c.action == OVERDUE_ACTION,
                        _E.c.from_state == episode.state.value,
                    )
                ).scalar_one()
                if again:
                    continue
                self.flow._record(
                    conn,
                    episode,
                    SYSTEM,
                    OVERDUE_ACTION,
                    episode.state,
                    comment,
                    details={
                        "level": wait.level,
                        "deadline": wait.deadline.isoformat(timespec="seconds"),
                        "approvers": list(wait.approvers),
                    },
                )
            log.warning("disconnection %s: %s", wait.number, comment)
            done.append(wait.number)
        return done


class _Row:
    """A mapping as a row (``Disconnection.from_row`` reads ``row._mapping``)."""

    def __init__(self, mapping: dict[str, Any]) -> None:
        self._mapping = mapping
