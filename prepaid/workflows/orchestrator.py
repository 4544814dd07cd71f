"""The fee-control orchestrator (费控调度): events, payments and the clock drive the workflows.

:class:`FeeControl` builds the workflows over one database and one head-end
(:class:`~prepaid.workflows.ControlPort`, normally :class:`headend.service.HeadendService`)
and wires them:

- **head-end events** (:class:`~headend.events.CommandSucceeded`,
  :class:`~headend.events.CommandFailed`, :class:`~headend.events.ReadingCollected`)
  from an :class:`~headend.events.EventBus` subscription — in-process, or fed by the
  MQTT bridge when the head-end runs elsewhere — go to the workflow whose job it was
  (job ids ``fk-TD…`` disconnection, ``fk-FD…`` reconnection, ``fk-BD…`` guarantee);
- **payments**: :meth:`FeeControl.on_payment` is the CIS payment service's
  ``on_payment`` hook (reconnection);
- **on-site results** of work orders reach the episode they belong to;
- **the clock**: :meth:`FeeControl.tick` does what is due (notices, trips outside
  protected hours, relay checks); :meth:`FeeControl.run` waits on the shared clock
  for the next due time or event.

:meth:`FeeControl.step` (events, then due work, then events) is what tests and the
``feikong disconnect tick`` command call; nothing in it sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime
from typing import Any, Final

from sqlalchemy.engine import Connection, Engine

from headend.events import (
    CommandFailed,
    CommandSucceeded,
    Event,
    EventBus,
    ReadingCollected,
    Subscription,
)
from protocol.clock import Clock

from ..audit import AuditLog
from ..balance import realtime_balances
from ..calendar import HolidayCalendar, default_calendar
from ..messages import Outbox
from ..settings import AccountsDirectory, SettingsStore
from ..workorders import WorkOrder, WorkOrders
from ._common import ControlPort, RateFunction, WorkflowConfig, WorkflowContext
from .disconnection import Disconnection, DisconnectionWorkflow, TickReport
from .guarantee import GuaranteeWorkflow
from .reconnection import ReconnectionWorkflow
from .sla import ApprovalSla
from .tables import ReconnectionState

__all__ = ["FeeControl"]

log = logging.getLogger(__name__)

EVENT_TYPES: Final = (CommandSucceeded, CommandFailed, ReadingCollected)
_IDLE_S: Final = 300.0


class FeeControl:
    """The fee-control workflows over ``engine`` and the head-end ``control``."""

    def __init__(
        self,
        engine: Engine,
        control: ControlPort,
        *,
        clock: Clock,
        settings: SettingsStore | None = None,
        outbox: Outbox | None = None,
        workorders: WorkOrders | None = None,
        audit: AuditLog | None = None,
        calendar: HolidayCalendar | None = None,
        config: WorkflowConfig | None = None,
        rate: RateFunction | None = None,
    ) -> None:
        audit = audit or AuditLog(engine, clock)
        self.ctx = WorkflowContext(
            engine=engine,
            clock=clock,
            control=control,
            settings=settings
            or SettingsStore(engine, clock=clock, audit=audit, directory=AccountsDirectory(engine)),
            outbox=outbox or Outbox(engine, clock=clock),
            workorders=workorders or WorkOrders(engine, clock=clock, audit=audit),
            audit=audit,
            calendar=calendar or default_calendar(),
            config=config or WorkflowConfig(),
            rate=rate,
            wake=self._wake,
        )
        self.disconnection = DisconnectionWorkflow(self.ctx)
        self.reconnection = ReconnectionWorkflow(self.ctx, self.disconnection)
        self.guarantee = GuaranteeWorkflow(self.ctx)
        self.sla = ApprovalSla(self.ctx, self.disconnection)
        self.disconnection.reconnect_hook = self._reconnect_after
        self.ctx.workorders.on_result(self._on_result)
        self._subscription: Subscription | None = None
        self._woken: asyncio.Event | None = None
        self.events_handled = 0

    @property
    def workorders(self) -> WorkOrders:
        return self.ctx.workorders

    @property
    def clock(self) -> Clock:
        return self.ctx.clock

    # -- wiring ----------------------------------------------------------------------

    def _wake(self) -> None:
        if self._woken is not None:
            self._woken.set()

    def _reconnect_after(self, episode: Disconnection, reason: str) -> object:
        """A tripped customer who must get power back without a payment event (the
        guarantee was set, or the arrears are gone): the reconnect instruction."""
        from ..balance import realtime_balance
        from ._common import load_customer

        with self.ctx.engine.connect() as conn:
            customer = load_customer(conn, episode.account_id)
        balance = realtime_balance(self.ctx.engine, episode.account_id).realtime_fen
        return self.reconnection._reconnect(
            episode,
            customer,
            self.ctx.effective(customer),
            balance,
            f"system:{reason}"[:64],
            "system:disconnection",
        )

    def _on_result(self, conn: Connection, order: WorkOrder) -> None:
        self.disconnection.on_work_order_result(conn, order)
        self.reconnection.on_work_order_result(conn, order)

    def on_payment(self, event: Any) -> None:
        """The CIS payment service's ``on_payment`` hook (``PaymentService.subscribe``)."""
        self.reconnection.on_payment(event)

    def subscribe(self, bus: EventBus) -> Subscription:
        """Start receiving head-end events from ``bus`` (handled by :meth:`pump`)."""
        if self._subscription is None:
            self._subscription = bus.subscribe(EVENT_TYPES)
        return self._subscription

    def close(self) -> None:
        if self._subscription is not None:
            self._subscription.close()
            self._subscription = None

    # -- doing -----------------------------------------------------------------------

    def handle(self, event: Event) -> bool:
        """Route one head-end event to the workflow whose job it was."""
        try:
            handled = (
                self.disconnection.handle(event)
                or self.reconnection.handle(event)
                or self.guarantee.handle(event)
            )
            if isinstance(event, CommandSucceeded | CommandFailed) and event.command == "trip":
                self.reconnection.release_after(
                    event.job_id, succeeded=isinstance(event, CommandSucceeded)
                )
        except Exception:  # one bad event must not stop the others
            log.exception("handling %s failed", event)
            return False
        if handled:
            self.events_handled += 1
        return handled

    def pump(self) -> int:
        """Handle every event waiting in the subscription; how many were ours."""
        if self._subscription is None:
            return 0
        count = 0
        while (event := self._subscription.get_nowait()) is not None:
            count += int(self.handle(event))
        self.reconnection.flush_messages()
        return count

    def sweep_paid(self) -> list[str]:
        """Active episodes whose customer now has a real-time balance above zero (paid
        through another process, whose payment hook did not reach us): reconnect."""
        episodes = self.disconnection.list(active=True)
        if not episodes:
            return []
        balances = realtime_balances(self.ctx.engine, [e.account_id for e in episodes])
        done = []
        for episode in episodes:
            balance = balances[episode.account_id].realtime_fen
            if balance > 0:
                recon = self.reconnection.on_balance(episode, balance, "balance above zero")
                if recon.state is not ReconnectionState.WAITING:
                    done.append(episode.number)
        return done

    def tick(self) -> TickReport:
        """Do what is due now (see :meth:`DisconnectionWorkflow.tick`), after reconnecting
        customers who paid elsewhere (:meth:`sweep_paid`)."""
        paid = self.sweep_paid()
        report = self.disconnection.tick()
        report.cancelled.extend(paid)
        report.escalated.extend(self.sla.tick())
        self.reconnection.release_stuck()
        self.reconnection.flush_messages()
        return report

    def step(self) -> TickReport:
        """Events waiting, then due work, then the events that produced at once."""
        self.pump()
        report = self.tick()
        self.pump()
        return report

    def next_due(self) -> datetime | None:
        """The next due work or approval deadline (``None``: nothing scheduled)."""
        times = [t for t in (self.disconnection.next_due(), self.sla.next_due()) if t is not None]
        return min(times, default=None)

    async def run(self, bus: EventBus, *, idle_s: float = _IDLE_S) -> None:
        """Run until cancelled: handle events as they come, do due work on the clock.

        Waits on the shared clock for the next due time (at most ``idle_s``), an
        event, or a wake-up from a step that made something due now.
        """
        subscription = self.subscribe(bus)
        self._woken = asyncio.Event()
        try:
            while True:
                self.step()
                due = self.next_due()
                now = self.clock.now()
                wait = idle_s if due is None else max(0.0, (due - now).total_seconds())
                wait = min(wait, idle_s)
                sleeper = asyncio.ensure_future(self.clock.sleep(wait))
                waiter = asyncio.ensure_future(self._next_event(subscription))
                woken = asyncio.ensure_future(self._woken.wait())
                try:
                    await asyncio.wait(
                        {sleeper, waiter, woken}, return_when=asyncio.FIRST_COMPLETED
                    )
                finally:
                    for task in (sleeper, waiter, woken):
                        task.cancel()
                    for task in (sleeper, waiter, woken):
                        with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                            await task
                self._woken.clear()
        finally:
            self._woken = None

    async def _next_event(self, subscription: Subscription) -> None:
        event = await subscription.get()
        self.handle(event)
