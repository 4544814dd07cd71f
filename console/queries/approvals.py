"""Disconnection approvals (停电审批) and the disconnection schedule (停电计划) for the console.

The console's actions go through :class:`prepaid.workflows.FeeControl` — the same
service as ``feikong disconnect`` — so roles, the two-person rule and the audit log
are enforced there. Head-end commands the workflows would send from the console are
queued as head-end jobs (:class:`JobQueueControl`), carried out by a running
``feikong headend run``, exactly as the CLI does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy.engine import Engine

from headend.jobs import JobSpec, JobStore
from headend.models import JobKind
from prepaid.users import Action
from prepaid.workflows import (
    Disconnection,
    DisconnectionEvent,
    DisconnectionState,
    FeeControl,
    WorkflowConfig,
)
from protocol.clock import Clock

from ..context import ConsoleContext

__all__ = [
    "SCHEDULE_STATES",
    "JobQueueControl",
    "QueueLevel",
    "QueueRow",
    "ScheduleRow",
    "approval_queue",
    "fee_control",
    "history",
    "levels_of",
    "schedule",
]

SCHEDULE_STATES: Final = (
    DisconnectionState.APPROVED,
    DisconnectionState.NOTIFIED,
    DisconnectionState.TRIPPING,
    DisconnectionState.DISCONNECTED,
    DisconnectionState.FAILED,
)
"""The episodes on the disconnection schedule: approved, notified, being tripped, …"""


class JobQueueControl:
    """The head-end port of a console session: commands become head-end jobs, which a
    running ``feikong headend run`` carries out (outcomes are picked up by its tick)."""

    def __init__(
        self, engine: Engine, clock: Clock, *, deadline: timedelta = timedelta(minutes=30)
    ) -> None:
        self.store = JobStore(engine)
        self.clock = clock
        self.deadline = deadline

    def _submit(self, kind: JobKind, address: str, job_id: str | None, **params: Any) -> str:
        now = self.clock.now()
        spec = JobSpec(
            kind=kind,
            address=address,
            id=job_id,
            priority=0 if kind is JobKind.READ else 10,
            deadline=now + self.deadline,
            params={k: v for k, v in params.items() if v is not None},
        )
        job, _ = self.store.submit(spec, now)
        return job.id

    def trip(self, address: str, reason: str, *, job_id: str | None = None) -> str:
        return self._submit(JobKind.TRIP, address, job_id, reason=reason)

    def permit_close(
        self, address: str, *, reason: str | None = None, job_id: str | None = None
    ) -> str:
        return self._submit(JobKind.PERMIT_CLOSE, address, job_id, reason=reason)

    def close(self, address: str, *, reason: str | None = None, job_id: str | None = None) -> str:
        return self._submit(JobKind.CLOSE, address, job_id, reason=reason)

    def guarantee(
        self, address: str, on: bool, *, reason: str | None = None, job_id: str | None = None
    ) -> str:
        kind = JobKind.GUARANTEE_ON if on else JobKind.GUARANTEE_OFF
        return self._submit(kind, address, job_id, reason=reason)

    def read(self, address: str, what: Any = "energy", *, job_id: str | None = None) -> str:
        di = {"relay": "04000503", "energy": "00010000"}.get(str(what))
        return self._submit(JobKind.READ, address, job_id, what=str(what), di=di)


def fee_control(ctx: ConsoleContext) -> FeeControl:
    """The fee-control workflows over the console's database and clock."""
    config = WorkflowConfig(stuck_after=timedelta(0))
    return FeeControl(
        ctx.engine, JobQueueControl(ctx.engine, ctx.clock), clock=ctx.clock, config=config
    )


@dataclass(frozen=True, slots=True)
class QueueLevel:
    """An approval level: its action, the state it approves and its name on screen."""

    action: Action
    state: DisconnectionState
    title: str


_LEVELS: Final = (
    QueueLevel(Action.APPROVE_L1, DisconnectionState.REQUESTED, "Level 1 (一级审批)"),
    QueueLevel(Action.APPROVE_L2, DisconnectionState.APPROVED_L1, "Level 2 (二级审批)"),
)


def levels_of(ctx: ConsoleContext) -> list[QueueLevel]:
    """The approval levels the logged-in operator holds (none, one or both)."""
    return [level for level in _LEVELS if ctx.may(level.action)]


def _in_unit(ctx: ConsoleContext, episode: Disconnection) -> bool:
    unit = ctx.user.supply_unit
    return unit is None or episode.supply_unit is None or episode.supply_unit == unit


@dataclass(frozen=True, slots=True)
class QueueRow:
    """A request in an approval queue and its time limit (审批时限)."""

    episode: Disconnection
    deadline: datetime | None
    overdue_by: timedelta

    @property
    def overdue_text(self) -> str:
        if self.overdue_by <= timedelta(0):
            return ""
        hours, rest = divmod(int(self.overdue_by.total_seconds()), 3600)
        return f"OVERDUE {hours}h{rest // 60:02d}m"


def approval_queue(
    fc: FeeControl, ctx: ConsoleContext, level: QueueLevel, *, limit: int = 500
) -> list[QueueRow]:
    """Requests waiting for ``level``'s approval in the operator's supply unit, oldest
    first, with the deadline of the wait (:class:`prepaid.workflows.ApprovalSla`)."""
    episodes = [
        e for e in fc.disconnection.list(state=level.state, limit=limit) if _in_unit(ctx, e)
    ]
    waits = {w.number: w for w in fc.sla.pending()} if episodes else {}
    rows = []
    for e in episodes:
        wait = waits.get(e.number)
        rows.append(
            QueueRow(
                e,
                wait.deadline if wait else None,
                wait.overdue_by if wait else timedelta(0),
            )
        )
    return rows


def history(fc: FeeControl, number: str) -> list[DisconnectionEvent]:
    return fc.disconnection.history(number)


@dataclass(frozen=True, slots=True)
class ScheduleRow:
    """One line of the disconnection schedule."""

    number: str
    customer_no: str
    area: str
    state: str
    approvals: str
    notified_at: datetime | None
    due_at: datetime | None
    """The earliest trip time: the notice lead time after the approval."""
    planned_at: datetime | None
    """When the trip may run: the due time moved out of protected hours."""
    protected_wait: timedelta
    """How long the trip waits for protected hours (保护时段) after it falls due."""
    trips: int

    @property
    def wait_text(self) -> str:
        if self.protected_wait <= timedelta(0):
            return "-"
        hours, rest = divmod(int(self.protected_wait.total_seconds()), 3600)
        return f"{hours}h{rest // 60:02d}m"


def schedule(fc: FeeControl, ctx: ConsoleContext, *, limit: int = 500) -> list[ScheduleRow]:
    """Approved disconnections: notice sent, due time, protected-hours wait; soonest first."""
    rows = []
    for e in fc.disconnection.list(state=SCHEDULE_STATES, limit=limit):
        if not _in_unit(ctx, e):
            continue
        wait = (
            e.planned_at - e.earliest_at
            if e.planned_at is not None and e.earliest_at is not None
            else timedelta(0)
        )
        rows.append(
            ScheduleRow(
                number=e.number,
                customer_no=e.customer_no,
                area=e.area or "-",
                state=e.state.value,
                approvals=f"{e.l1_by or '-'} / {e.l2_by or '-'}",
                notified_at=e.notified_at,
                due_at=e.earliest_at,
                planned_at=e.planned_at,
                protected_wait=wait,
                trips=e.trips,
            )
        )
    rows.sort(key=lambda r: (r.planned_at or datetime.max, r.number))
    return rows
