"""Power guarantee (保电): customers who are never disconnected, and 3AH to their meters.

A customer is under power guarantee when its account says so (``power_guarantee``)
or the settings hierarchy does (``power_guarantee`` for its feeder line, transformer
area or itself, :mod:`prepaid.settings`). The disconnection workflow asks
:meth:`WorkflowContext.guarantee_reason <prepaid.workflows.WorkflowContext.guarantee_reason>`
at the request, at each approval and again just before each trip, so a guarantee set
after the approval still stops the trip (the episode is cancelled with the reason).

Where ``guarantee_send_3ah`` is in force too, :meth:`GuaranteeWorkflow.sync` sends the
power-guarantee command (保电, DL/T 645 3AH) to those meters through the head-end —
the meter itself then refuses any trip — and the release (解除保电, 3BH) when the
guarantee is lifted. What was sent and what came of it is kept per account
(``prepaid_guarantee_meter``) so a second sync sends nothing new.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from headend.errors import JobNotFoundError
from headend.events import CommandFailed, CommandSucceeded, Event

from ..models import FeeControlMode
from ..users import Action, Operator, PermissionDeniedError, require
from ._common import ACCOUNT, WorkflowContext, actor_name, customer_query, load_customer
from .tables import guarantee_meter_table

__all__ = ["GuaranteeStatus", "GuaranteeSyncReport", "GuaranteeWorkflow"]

log = logging.getLogger(__name__)

SYSTEM: Final = "system:guarantee"
_G = guarantee_meter_table
_CHUNK: Final = 20_000


@dataclass(frozen=True, slots=True)
class GuaranteeStatus:
    """A customer's power guarantee: whether, why, and what its meter was sent."""

    customer_no: str
    guaranteed: bool
    reason: str | None
    send_3ah: bool
    meter_state: str | None
    """``sending``, ``on``, ``off``, ``failed`` — the last 3AH/3BH sent — or ``None``."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "customer_no": self.customer_no,
            "guaranteed": self.guaranteed,
            "reason": self.reason,
            "send_3ah": self.send_3ah,
            "meter_state": self.meter_state,
        }


@dataclass(slots=True)
class GuaranteeSyncReport:
    """What :meth:`GuaranteeWorkflow.sync` did: customer numbers per command."""

    at: datetime
    accounts: int = 0
    guaranteed: int = 0
    sent_on: list[str] = field(default_factory=list)
    sent_off: list[str] = field(default_factory=list)
    unchanged: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "accounts": self.accounts,
            "guaranteed": self.guaranteed,
            "sent_on": self.sent_on,
            "sent_off": self.sent_off,
            "unchanged": self.unchanged,
            "errors": [{"customer_no": c, "error": e} for c, e in self.errors],
        }


class GuaranteeWorkflow:
    """Power-guarantee status and 3AH/3BH commands (see the module doc)."""

    def __init__(self, ctx: WorkflowContext) -> None:
        self.ctx = ctx

    def status(self, customer: int | str) -> GuaranteeStatus:
        ctx = self.ctx
        with ctx.engine.connect() as conn:
            found = load_customer(conn, customer)
            state = conn.execute(
                sa.select(_G.c.state).where(_G.c.account_id == found.account_id)
            ).scalar()
        effective = ctx.effective(found)
        reason = ctx.guarantee_reason(found, effective)
        return GuaranteeStatus(
            found.customer_no,
            reason is not None,
            reason,
            reason is not None and effective.guarantee_send_3ah,
            state,
        )

    def _accounts(self) -> Iterator[Sequence[Any]]:
        query = customer_query().where(
            ACCOUNT.c.active == sa.true(),
            ACCOUNT.c.fee_control_mode == FeeControlMode.REMOTE.value,
        )
        last = 0
        while True:
            with self.ctx.engine.connect() as conn:
                rows = conn.execute(
                    query.where(ACCOUNT.c.id > last).order_by(ACCOUNT.c.id).limit(_CHUNK)
                ).all()
            if not rows:
                return
            yield rows
            last = int(rows[-1].id)

    def sync(self, *, by: Operator | str = SYSTEM) -> GuaranteeSyncReport:
        """Send 3AH to guaranteed customers' meters that lack it, 3BH where it was lifted.

        Only where ``guarantee_send_3ah`` is in force; a second run sends nothing new
        (a failed command is sent again)."""
        ctx = self.ctx
        if isinstance(by, Operator):
            try:
                require(by, Action.GUARANTEE)
            except PermissionDeniedError as exc:
                ctx.audit.record(
                    by, "guarantee.sync.refused", "guarantee:sync", {"reason": str(exc)}
                )
                raise
        actor = actor_name(by)
        report = GuaranteeSyncReport(ctx.now())
        snapshot = ctx.settings.snapshot(["power_guarantee", "guarantee_send_3ah"])
        for rows in self._accounts():
            lines = [r.line for r in rows]
            areas = [r.area for r in rows]
            customers = [r.customer_no for r in rows]
            guaranteed = snapshot.resolve_column("power_guarantee", lines, areas, customers)
            send = snapshot.resolve_column("guarantee_send_3ah", lines, areas, customers)
            ids = [int(r.id) for r in rows]
            with ctx.engine.connect() as conn:
                sent = {
                    int(r.account_id): (bool(r.wanted_on), self._state(r))
                    for r in conn.execute(sa.select(_G).where(_G.c.account_id.in_(ids)))
                }
            for row, on_setting, send_3ah in zip(rows, guaranteed, send, strict=True):
                report.accounts += 1
                is_on = bool(row.power_guarantee) or bool(on_setting)
                report.guaranteed += int(is_on)
                wanted = is_on and bool(send_3ah)
                last = sent.get(int(row.id))
                if wanted and (last is None or not last[0] or last[1] == "failed"):
                    self._send(row, True, actor, report)
                elif not wanted and last is not None and (last[0] or last[1] == "failed"):
                    self._send(row, False, actor, report)
                else:
                    report.unchanged += 1
        return report

    def _state(self, row: Any) -> str:
        """The row's state; ``failed`` for a command recorded as sending that the head-end
        never got (the process killed between the two steps), so it is sent again."""
        state = str(row.state)
        lookup = getattr(self.ctx.control, "job", None)
        if state != "sending" or lookup is None or row.job_id is None:
            return state
        try:
            lookup(str(row.job_id))
        except JobNotFoundError:
            log.warning("%s was recorded but never reached the head-end: sent again", row.job_id)
            return "failed"
        except Exception:  # the head-end cannot say: leave it
            return state
        return state

    def _send(self, row: Any, on: bool, actor: str, report: GuaranteeSyncReport) -> None:
        ctx = self.ctx
        now = ctx.now()
        verb = "on" if on else "off"
        job_id = f"{ctx.config.job_prefix}-BD{int(row.id)}-{verb}-{now:%Y%m%d%H%M%S}"
        with ctx.engine.begin() as conn:
            values = {
                "meter_address": row.meter_address,
                "wanted_on": on,
                "state": "sending",
                "job_id": job_id,
                "reason": None,
                "updated_at": now,
            }
            if conn.execute(sa.select(_G.c.account_id).where(_G.c.account_id == row.id)).first():
                conn.execute(sa.update(_G).where(_G.c.account_id == row.id).values(**values))
            else:
                conn.execute(sa.insert(_G).values(account_id=int(row.id), **values))
            ctx.audit.record(
                actor,
                f"guarantee.send-{verb}",
                f"customer:{row.customer_no}",
                {"meter_address": row.meter_address, "job_id": job_id},
                connection=conn,
            )
        try:
            ctx.control.guarantee(
                row.meter_address,
                on,
                reason=f"power guarantee {verb} for {row.customer_no}",
                job_id=job_id,
            )
        except Exception as exc:
            self._finish(job_id, "failed", f"not queued: {exc}")
            report.errors.append((row.customer_no, str(exc)))
            return
        (report.sent_on if on else report.sent_off).append(row.customer_no)

    def _finish(self, job_id: str, state: str, reason: str | None) -> None:
        with self.ctx.engine.begin() as conn:
            self._finish_in(conn, job_id, state, reason)

    def _finish_in(self, conn: Connection, job_id: str, state: str, reason: str | None) -> None:
        row = conn.execute(sa.select(_G).where(_G.c.job_id == job_id)).first()
        if row is None or row.state != "sending":
            return
        conn.execute(
            sa.update(_G)
            .where(_G.c.job_id == job_id)
            .values(state=state, reason=reason, updated_at=self.ctx.now())
        )
        self.ctx.audit.record(
            SYSTEM,
            f"guarantee.{'confirmed' if state != 'failed' else 'failed'}",
            f"meter:{row.meter_address}",
            {"job_id": job_id, "state": state, "reason": reason},
            connection=conn,
        )

    def handle(self, event: Event) -> bool:
        job_id = getattr(event, "job_id", None)
        if not job_id or not job_id.startswith(f"{self.ctx.config.job_prefix}-BD"):
            return False
        if isinstance(event, CommandSucceeded):
            self._finish(job_id, "on" if job_id.split("-")[-2] == "on" else "off", None)
        elif isinstance(event, CommandFailed):
            self._finish(job_id, "failed", event.reason)
        return True
