"""The prepaid platform's day in the demo (平台日程), on the shared clock.

:class:`PlatformDay` is what the platform process runs: the fee-control orchestrator
(:class:`prepaid.workflows.FeeControl`) over the shared database, with the head-end
reached through its job table (:class:`JobTableControl`) and the outcomes read back
from it (the head-end runs in another process; no broker is needed), plus the daily
schedule of a utility's back office:

- ``rating_at``: the daily rating of the freeze dated today (:func:`prepaid.rating.rate_day`),
  then reminders, automatic dunning, tier reminders and anomaly work orders
  (:func:`prepaid.service.daily.after_rating`);
- ``requests_at``: the operator raises disconnection requests for the customers
  still in arrears after dunning (:meth:`DisconnectionWorkflow.select`);
- ``approve_l1_at`` / ``approve_l2_at``: the two approvers approve them — two
  different people, each with their own role;
- ``onsite_at``: the fault handler records the on-site result of the
  disconnection-failure work orders assigned to them;
- in between, :meth:`FeeControl.step` whenever something is due (notices, trips
  outside protected hours, relay checks, reconnections of customers who paid), after
  the head-end's outcomes have come in (:class:`JobOutcomeFeed`: the events, from the
  job table), and the SMS outbox is dispatched to a file (``sms.jsonl``).

Each finished day is one JSON line in the progress file, which the demo runner shows.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time as time_module
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from protocol.clock import Clock

__all__ = ["JobOutcomeFeed", "PlatformDay", "PlatformOptions"]

log = logging.getLogger(__name__)

MIN_STEP = timedelta(minutes=5)
"""Simulated time between two steps at least, even when something is overdue."""


class JobOutcomeFeed:
    """Head-end events from the database (事件): the outcome of every finished job of the
    platform (ids ``fk-…``) becomes the :class:`~headend.events.CommandSucceeded` or
    :class:`~headend.events.CommandFailed` the head-end published in its own process,
    on this process's bus — the same fields, from the job's stored result. (With a
    broker, :class:`headend.events.MqttEventSubscriber` does this instead.)"""

    def __init__(self, engine: Engine, bus: Any, *, prefix: str = "fk-") -> None:
        from headend.jobs import JobStore

        self.engine = engine
        self.store = JobStore(engine)
        self.bus = bus
        self.prefix = prefix
        self.seen: set[str] = set()
        self.since: Any = None
        self.delivered = 0

    def poll(self) -> int:
        """Publish the outcomes finished since the last poll; how many."""
        import sqlalchemy as sa

        from headend.events import CommandFailed, CommandSucceeded
        from headend.models import JobKind, JobState

        query = (
            "SELECT id, finished_at FROM headend_job WHERE id LIKE :prefix"
            " AND state IN ('succeeded', 'failed', 'expired')"
        )
        params: dict[str, Any] = {"prefix": f"{self.prefix}%"}
        if self.since is not None:
            query += " AND finished_at >= :since"
            params["since"] = self.since
        with self.engine.connect() as conn:
            rows = conn.execute(sa.text(query), params).all()
        count = 0
        for job_id, finished_at in rows:
            if job_id in self.seen:
                continue
            self.seen.add(job_id)
            if self.since is None or finished_at > self.since:
                self.since = finished_at
            job = self.store.require(job_id)
            at = job.finished_at or job.updated_at
            if job.state is JobState.SUCCEEDED:
                result = job.result or {}
                event: Any = CommandSucceeded(
                    address=job.address,
                    at=at,
                    job_id=job.id,
                    command=job.kind.value,
                    attempts=job.attempts,
                    relay=result.get("relay"),
                    guarantee=result.get("guarantee"),
                    energy_ckwh=result.get("energy_ckwh"),
                    reason=job.params.get("reason"),
                    info=tuple(str(i) for i in result.get("info") or ()),
                )
            elif job.kind is JobKind.READ:
                continue  # the platform's reads end in its relay checks (looked up)
            else:
                event = CommandFailed(
                    address=job.address,
                    at=at,
                    job_id=job.id,
                    command=job.kind.value,
                    reason=job.reason or "failed",
                    attempts=job.attempts,
                    error=job.error,
                    expired=job.state is JobState.EXPIRED,
                )
            self.bus.publish(event)
            count += 1
        self.delivered += count
        return count


@dataclass(frozen=True, slots=True)
class PlatformOptions:
    start: date
    days: int
    rating_at: time
    requests_at: time
    approve_l1_at: time
    approve_l2_at: time
    onsite_at: time
    operator: str
    approver_l1: str
    approver_l2: str
    fault_handler: str
    dunning_period_days: int
    out_dir: Path
    progress_file: Path
    step_every_min: float = 60.0
    min_step_s: float = 300.0
    """Simulated seconds between two steps at least (the runner keeps it ≥ 50 real ms)."""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PlatformOptions:
        values = dict(data)
        values["start"] = date.fromisoformat(values["start"])
        for key in ("rating_at", "requests_at", "approve_l1_at", "approve_l2_at", "onsite_at"):
            values[key] = time.fromisoformat(values[key])
        values["out_dir"] = Path(values["out_dir"])
        values["progress_file"] = Path(values["progress_file"])
        return cls(**values)


class PlatformDay:
    """The platform's schedule over ``options.days`` simulated days (see the module doc)."""

    def __init__(self, engine: Engine, clock: Clock, options: PlatformOptions) -> None:
        from prepaid.messages import FileSink, Outbox
        from prepaid.users import Users
        from prepaid.workflows import FeeControl, WorkflowConfig

        self.engine = engine
        self.clock = clock
        self.options = options
        from headend.events import EventBus
        from headend.service import QueuedHeadendService

        config = WorkflowConfig(dunning_period=timedelta(days=options.dunning_period_days))
        six_hours = timedelta(hours=6).total_seconds()
        control = QueuedHeadendService(
            engine,
            clock=clock,
            control_deadline_s=six_hours,
            read_deadline_s=six_hours,
            trip_window_end=self._protected_from,
        )
        self.fc = FeeControl(engine, control, clock=clock, config=config)
        self.bus = EventBus()
        self.fc.subscribe(self.bus)
        self.feed = JobOutcomeFeed(engine, self.bus)
        users = Users(engine, clock=clock, audit=self.fc.ctx.audit)
        self.operator = users.get(options.operator)
        self.approver_l1 = users.get(options.approver_l1)
        self.approver_l2 = users.get(options.approver_l2)
        self.handler = users.get(options.fault_handler)
        self.outbox: Outbox = self.fc.ctx.outbox
        self.sink = FileSink(options.out_dir / "sms.jsonl", clock=clock)
        self.notices_dir = options.out_dir / "notices"
        self.min_step = max(MIN_STEP, timedelta(seconds=options.min_step_s))
        self.last_step_s = 0.0
        self.day_stats: dict[str, Any] = {}

    def _protected_from(self, now: datetime) -> datetime:
        """Shortly before the next protected hours (district defaults) after ``now``: the
        deadline of a trip queued now, so that the head-end never starts it in them."""
        from prepaid.settings import Scope

        hours = self.fc.ctx.settings.resolve(Scope()).protection
        calendar = self.fc.ctx.calendar
        free, moment = now, now
        for _ in range(24 * 12):
            if calendar.is_protected(moment, hours):
                break
            free, moment = moment, moment + timedelta(minutes=5)
        else:
            return moment
        while (moment - free) > timedelta(seconds=1):  # the exact start, to the second
            middle = free + (moment - free) / 2
            if calendar.is_protected(middle, hours):
                moment = middle
            else:
                free = middle
        return max(now, moment - self.min_step)

    # -- the steps -------------------------------------------------------------------

    def _dispatch(self) -> None:
        try:
            self.outbox.dispatch(self.sink)
        except Exception:  # the outbox keeps what it could not send
            log.exception("SMS dispatch failed")

    def _guard(self, what: str, step: Callable[[], Any]) -> Any:
        try:
            return step()
        except Exception as exc:
            log.exception("%s failed", what)
            self.day_stats.setdefault("errors", []).append(f"{what}: {exc}")
            return None

    def rate(self, day: date) -> None:
        from prepaid.rating import rate_day
        from prepaid.service.daily import after_rating

        report = self._guard(
            f"rating {day}", lambda: rate_day(self.engine, day, clock=self.clock, pipeline=False)
        )
        if report is not None:
            self.day_stats["rating"] = report.to_dict()
        daily = self._guard(
            f"after rating {day}",
            lambda: after_rating(
                self.engine,
                day,
                clock=self.clock,
                settings=self.fc.ctx.settings,
                notices_dir=self.notices_dir,
            ),
        )
        if daily is not None:
            d = daily.to_dict()
            self.day_stats["reminders"] = d["reminders"].get("opened", 0)
            self.day_stats["dunning"] = d["dunning"].get("records", 0)
            self.day_stats["tiers"] = d["tiers"]
            self.day_stats["anomaly_orders"] = d["anomalies"]

    def request(self) -> None:
        report = self._guard(
            "disconnection selection", lambda: self.fc.disconnection.select(by=self.operator)
        )
        if report is not None:
            self.day_stats["requested"] = len(report.requested)
            self.day_stats["refused"] = len(report.refused)

    def approve(self, level: int) -> None:
        from prepaid.workflows import DisconnectionState, WorkflowError

        wf = self.fc.disconnection
        state = DisconnectionState.REQUESTED if level == 1 else DisconnectionState.APPROVED_L1
        done = 0
        for episode in wf.list(active=True):
            if episode.state is not state:
                continue
            try:
                if level == 1:
                    wf.approve_l1(episode.number, by=self.approver_l1, comment="demo approval")
                else:
                    wf.approve_l2(episode.number, by=self.approver_l2, comment="demo approval")
                done += 1
            except WorkflowError as exc:  # e.g. paid meanwhile: the refusal is audited
                log.info("approval of %s refused: %s", episode.number, exc)
        self.day_stats[f"approved_l{level}"] = done

    def onsite(self) -> None:
        """The fault handler goes out and disconnects on site (现场停电), records it."""
        from prepaid.workorders import WorkOrderOutcome, WorkOrderState

        orders = self.fc.workorders.list(assignee=self.handler.login, state=WorkOrderState.ASSIGNED)
        done = 0
        for order in orders:
            try:
                self.fc.workorders.record_result(
                    order.number,
                    outcome=WorkOrderOutcome.DONE,
                    result="现场断开用户开关 (disconnected on site)",
                    by=self.handler,
                )
                done += 1
            except Exception as exc:  # a refusal is recorded; the order stays open
                log.info("on-site result of %s refused: %s", order.number, exc)
        self.day_stats["onsite"] = done

    def step(self) -> None:
        started = time_module.perf_counter()
        self._guard("head-end outcomes", self.feed.poll)
        self._guard("fee-control step", self.fc.step)
        self._dispatch()
        self.last_step_s = time_module.perf_counter() - started

    def _pause(self) -> timedelta:
        """Simulated time to wait before the next step: at least ``min_step``, and twice
        what the last step took in real time, so that a busy platform on a loaded
        machine falls a little behind the clock instead of stepping without a break."""
        speed = float(getattr(self.clock, "speed", 1.0))
        return max(self.min_step, timedelta(seconds=2 * self.last_step_s * speed))

    # -- the schedule ----------------------------------------------------------------

    def _plan(self, day: date) -> list[tuple[datetime, str, Callable[[], None]]]:
        o = self.options

        def at(moment: time) -> datetime:
            return datetime.combine(day, moment)

        return sorted(
            [
                (at(o.rating_at), "rating", lambda: self.rate(day)),
                (at(o.requests_at), "requests", self.request),
                (at(o.approve_l1_at), "approval-l1", lambda: self.approve(1)),
                (at(o.approve_l2_at), "approval-l2", lambda: self.approve(2)),
                (at(o.onsite_at), "on-site", self.onsite),
            ],
            key=lambda x: x[0],
        )

    def _write_progress(self, day: date) -> None:
        line = {"day": day.isoformat(), "at": self.clock.now().isoformat(), **self.day_stats}
        with self.options.progress_file.open("a", encoding="utf-8") as f:
            f.write(json.dumps(line, ensure_ascii=False, default=str) + "\n")
        self.day_stats = {}

    async def _until(self, when: datetime) -> None:
        """Wait for ``when`` on the clock, stepping the workflows when they fall due (at
        least every ``step_every_min``, at most every ``MIN_STEP``)."""
        every = timedelta(minutes=self.options.step_every_min)
        while True:
            now = self.clock.now()
            if now >= when:
                return
            nxt = now + every
            due = self.fc.next_due()
            if due is not None:
                nxt = min(nxt, max(due, now + self._pause()))
            await self.clock.sleep((min(nxt, when) - now).total_seconds())
            if self.clock.now() < when:
                self.step()

    async def _collected(self, day: date, limit: datetime) -> None:
        """Wait until the head-end has tried every meter for the freeze of ``day`` (or until
        ``limit``): the rating of a meter not read yet would only find it missing."""
        from headend.collection import success_rates

        while self.clock.now() < limit:
            rates = self._guard("collection status", lambda: success_rates(self.engine, day))
            if rates and rates[0].pending == 0:
                return
            await self.clock.sleep(self._pause().total_seconds())
            self.step()

    async def run(self) -> None:
        """Every day from the first simulated day + 1 (the first freeze to rate) to the end."""
        o = self.options
        for n in range(1, o.days + 1):
            day = o.start + timedelta(days=n)
            late: dict[str, float] = {}
            for when, name, action in self._plan(day):
                await self._until(when)
                if name == "rating":
                    limit = datetime.combine(day, self.options.requests_at) - self.min_step
                    await self._collected(day, max(limit, when + self.min_step))
                late[name] = round((self.clock.now() - when).total_seconds() / 60, 1)
                action()
                self.step()
            self.day_stats["late_min"] = late
            self._write_progress(day)


def run_platform(engine: Engine, clock: Clock, options: PlatformOptions) -> None:
    """Run the platform's schedule (the platform process's main)."""
    asyncio.run(PlatformDay(engine, clock, options).run())
