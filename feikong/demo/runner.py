"""The whole demo run (演示运行): district, processes, simulated days, the end.

:class:`DemoRunner` does, in order:

1. builds the district in a new database (:mod:`.district`) and the simulators' files;
2. starts the parts as separate processes (:mod:`.processes`): ``feikong breaker-sim``
   (one per 247 breakers, Modbus TCP), the meter fleet on a TCP gateway, the
   head-end and the prepaid platform (:mod:`.parts`), all on one
   :class:`~.clock.SharedClock` and one database;
3. while the simulated days pass, plays the customers (:mod:`.behaviour`): payments
   through the CIS adapter, breakers closed by hand over Modbus; and reports each
   finished day to ``on_day`` (a :class:`DayLine`);
4. stops the processes, writes ``summary.json`` and — when the report and invariant
   modules are installed — the report (text, JSON, charts, HTML) and the invariant
   check.

Nothing here prints: the CLI (``feikong demo``) shows the callbacks.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from .clock import SharedClock
from .invariants import Violation, check_invariants
from .processes import Part, PartFailed, free_port_block
from .report import build_report
from .scenario import Scenario

__all__ = ["DayLine", "DemoError", "DemoOptions", "DemoResult", "DemoRunner"]

log = logging.getLogger(__name__)

UNITS_PER_PORT = 247
"""Modbus units one breaker-sim port serves (meter_sim.fleet.modbus_unit)."""
START_LEAD_S = 2.0
"""Real seconds between writing the clock and the start of simulated time: every part
has loaded its code before; it builds its objects in this time and starts on the same
simulated moment."""


STALL_S = 120.0
"""Real seconds without a finished simulated day after which the run is given up (a
busy machine only makes the platform late; this is for a platform that hangs)."""


class DemoError(RuntimeError):
    """The demo cannot go on; the message says why and where to look."""


@dataclass(frozen=True, slots=True)
class DemoOptions:
    scenario: Scenario
    out_dir: Path
    db_url: str | None = None
    keep_db: bool = False


@dataclass(slots=True)
class DayLine:
    """One simulated day as the progress shows it (counts of that day, money in fen)."""

    day: date
    number: int
    collected: int = 0
    meters: int = 0
    rated: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    reminders: int = 0
    dunning: int = 0
    requested: int = 0
    approved: int = 0
    trips: int = 0
    failed_trips: int = 0
    work_orders: int = 0
    payments: int = 0
    paid_fen: int = 0
    reconnected: int = 0
    sms: int = 0
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["day"] = self.day.isoformat()
        return out


@dataclass(slots=True)
class DemoResult:
    out_dir: Path
    db_url: str
    seconds: float
    days: list[DayLine]
    summary: dict[str, Any]
    report_text: str | None = None
    report_files: list[Path] = field(default_factory=list)
    violations: list[Violation] = field(default_factory=list)


class DemoRunner:
    """One demo run (see the module doc)."""

    def __init__(
        self,
        options: DemoOptions,
        *,
        on_phase: Callable[[str], None] = lambda _t: None,
        on_day: Callable[[DayLine], None] = lambda _d: None,
    ) -> None:
        self.options = options
        self.scenario = options.scenario
        self.on_phase = on_phase
        self.on_day = on_day
        self.out_dir = options.out_dir
        self.run_dir = self.out_dir / "run"
        self.log_dir = self.out_dir / "logs"
        self.parts: list[Part] = []
        self.days: list[DayLine] = []
        self._progress_pos = 0
        self._sms_seen = 0
        self._pending_paid = [0, 0]

    # -- set-up -------------------------------------------------------------------------

    def _db_url(self) -> str:
        if self.options.db_url:
            return self.options.db_url
        path = (self.out_dir / "feikong-demo.db").resolve()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)  # the last demo's database
        return f"sqlite:///{path}"

    def _prepare_dirs(self) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for sub in (self.run_dir, self.log_dir, self.out_dir / "notices"):
            if sub.exists():
                shutil.rmtree(sub)
            sub.mkdir(parents=True)
        (self.out_dir / "sms.jsonl").unlink(missing_ok=True)

    def _config(
        self, url: str, clock: SharedClock, gateways: dict[str, int], breakers: int
    ) -> Path:
        """The parts' configuration (the clock comes later, in ``clock.json``)."""
        s = self.scenario
        sch = s.schedule
        config = {
            "db": url,
            "log_level": os.environ.get("FEIKONG_DEMO_LOG", "WARNING"),
            "meter_sim": {
                fleet: {
                    "meters_file": str(self.run_dir / f"meters-{fleet}.json"),
                    "state_file": str(self.run_dir / f"meters-{fleet}-state.json"),
                    "port": port,
                    "breakers": f"modbus://127.0.0.1:{breakers}" if fleet == "bench" else "inproc",
                    "permit_close_delay_s": 60.0,
                }
                for fleet, port in gateways.items()
            },
            "headend": {
                "collect_at": sch.collect_at.isoformat(timespec="minutes"),
                "timeout_s": 0.3,
                "recollect_rounds": 1,
                "recollect_interval_s": 7200.0,
            },
            "platform": {
                "start": s.run.start.isoformat(),
                "days": s.run.days,
                "rating_at": sch.rating_at.isoformat(timespec="minutes"),
                "requests_at": sch.requests_at.isoformat(timespec="minutes"),
                "approve_l1_at": sch.approve_l1_at.isoformat(timespec="minutes"),
                "approve_l2_at": sch.approve_l2_at.isoformat(timespec="minutes"),
                "onsite_at": sch.onsite_at.isoformat(timespec="minutes"),
                "operator": s.staff.operator,
                "approver_l1": s.staff.approver_l1,
                "approver_l2": s.staff.approver_l2,
                "fault_handler": s.staff.fault_handler,
                "dunning_period_days": s.dunning_period_days,
                "out_dir": str(self.out_dir),
                "progress_file": str(self.run_dir / "platform.jsonl"),
                "min_step_s": max(300.0, 0.05 * s.run.speed),
            },
        }
        path = self.run_dir / "config.json"
        path.write_text(json.dumps(config, indent=2), encoding="utf-8")
        return path

    # -- the run ------------------------------------------------------------------------

    def run(self) -> DemoResult:
        from prepaid.db import open_database
        from protocol.clock import SteppedClock

        from .district import build_district, now_origin, opening_state

        started = time.perf_counter()
        s = self.scenario
        self._prepare_dirs()
        url = self._db_url()
        origin = now_origin(s)
        gateways = {"bench": free_port_block(1), "main": free_port_block(1)}
        n_ports = math.ceil(min(s.district.customers, max(s.district.modbus_breakers, 240)) / 247)
        n_ports = n_ports if s.district.modbus_breakers > 0 else 0
        breaker_port = free_port_block(max(1, n_ports))
        self.breaker_port = breaker_port
        self.clock = SharedClock(origin, s.run.speed, epoch=0.0)  # the epoch is set at the go
        config = self._config(url, self.clock, gateways, breaker_port)
        try:
            # the processes start now and load their code while the district is built;
            # their time starts when the clock file is written (the go)
            self._launch(n_ports, breaker_port, gateways, config)
            self.on_phase(f"building the district: {s.district.customers} customers ({url})")
            engine = open_database(url)
            district = build_district(
                engine,
                s,
                clock=SteppedClock(origin),
                gateways={k: ("127.0.0.1", p) for k, p in gateways.items()},
                work_dir=self.run_dir,
            )
            self.district = district
            for fleet in gateways:
                meters = district.fleet(fleet)
                (self.run_dir / f"meters-{fleet}.json").write_text(json.dumps(meters), "utf-8")
                if meters:
                    opening_state(
                        meters, SteppedClock(origin), self.run_dir / f"meters-{fleet}-state.json"
                    )
            (self.run_dir / "district.json").write_text(
                json.dumps(district.to_dict(), indent=2, ensure_ascii=False), encoding="utf-8"
            )
            self._go(district, gateways)
            self._play(engine)
        finally:
            self.on_phase("stopping the processes")
            for part in reversed(self.parts):
                part.stop()
        self._read_progress(engine)
        summary = self._summary(engine, district)
        (self.out_dir / "summary.json").write_text(
            json.dumps(summary, indent=2, ensure_ascii=False, default=str), encoding="utf-8"
        )
        result = DemoResult(
            out_dir=self.out_dir,
            db_url=url,
            seconds=time.perf_counter() - started,
            days=self.days,
            summary=summary,
        )
        self._report(engine, result)
        engine.dispose()
        result.seconds = time.perf_counter() - started
        return result

    def _launch(
        self, n_ports: int, breaker_port: int, gateways: dict[str, int], config: Path
    ) -> None:
        """Start every process: the breaker simulators serve at once, the other parts load
        their code and wait for the clock."""
        for k in range(n_ports):
            part = Part(
                f"breaker-sim-{k + 1}",
                [
                    "-m",
                    "feikong",
                    "breaker-sim",
                    "--modbus-tcp",
                    f"127.0.0.1:{breaker_port + k}",
                    "--count",
                    str(UNITS_PER_PORT),
                ],
                self.log_dir,
            )
            self.parts.append(part.start())
        for fleet in gateways:
            part = Part(
                f"meter-sim-{fleet}",
                ["-m", "feikong.demo.parts", "meter-sim", str(config), fleet],
                self.log_dir,
            )
            self.parts.append(part.start())
        for name in ("headend", "platform"):
            part = Part(name, ["-m", "feikong.demo.parts", name, str(config)], self.log_dir)
            self.parts.append(part.start())

    def _go(self, district: Any, gateways: dict[str, int]) -> None:
        """Inject the breaker faults, start the shared clock, wait until every part serves."""
        s = self.scenario
        bench = district.fleet("bench")
        breakers = [p for p in self.parts if p.name.startswith("breaker-sim")]
        for k, part in enumerate(breakers):
            part.wait_port(self.breaker_port + k)
        if bench:
            self.on_phase(
                f"{len(breakers)} breaker-sim process(es) serve the {len(bench)} breakers of "
                f"area(s) {', '.join(district.bench_areas)} on Modbus TCP 127.0.0.1:"
                f"{self.breaker_port}…; the other areas' breakers run in the meter simulator"
            )
        index = {m["address"]: i for i, m in enumerate(bench)}
        failing = [index[a] for a in district.breakers_failing if a in index]
        if failing:
            asyncio.run(_set_faults(self.breaker_port, failing, "fails-to-trip"))
        self.clock.epoch = time.time() + START_LEAD_S
        clock_file = self.run_dir / "clock.json"
        tmp = clock_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.clock.to_dict()), encoding="utf-8")
        tmp.replace(clock_file)
        fleets = ", ".join(
            f"{len(district.fleet(f))} meters on TCP 127.0.0.1:{p}"
            for f, p in gateways.items()
            if district.fleet(f)
        )
        self.on_phase(
            f"meter fleet ({fleets}), head-end and prepaid platform running; "
            f"clock ×{s.run.speed:,.0f} from {self.clock.origin:%Y-%m-%d %H:%M}"
        )
        for fleet, port in gateways.items():
            part = next(p for p in self.parts if p.name == f"meter-sim-{fleet}")
            if district.fleet(fleet):
                part.wait_port(port, timeout=60 + START_LEAD_S)
        headend = next(p for p in self.parts if p.name == "headend")
        headend.wait_text("head-end:", timeout=60 + START_LEAD_S)

    def _play(self, engine: Engine) -> None:
        asyncio.run(self._customers(engine))

    async def _customers(self, engine: Engine) -> None:
        from breaker_sim import BreakerState, ModbusBreakerLink
        from prepaid.cis import LedgerCis
        from prepaid.cis.payments import PaymentService

        from .behaviour import Customers

        s = self.scenario
        clock = self.clock
        platform = next(p for p in self.parts if p.name == "platform")
        customers = Customers(engine, s.behaviour, s.run.seed)
        self.customers = customers
        service = PaymentService(engine, LedgerCis(engine, clock=clock), clock=clock)
        index = {m["address"]: i for i, m in enumerate(self.district.fleet("bench"))}
        closed: set[str] = set()
        links: dict[int, ModbusBreakerLink] = {}
        breaker_port = self.breaker_port
        next_pay = 1
        last_day = time.monotonic()
        try:
            while True:
                for part in self.parts:
                    if part is not platform:
                        if part.exited():
                            raise PartFailed(
                                f"{part.name} stopped during the run; its log "
                                f"{part.log_path} ends:\n{part.tail()}"
                            )
                    else:
                        part.check()
                if self._read_progress(engine):
                    last_day = time.monotonic()
                if platform.exited():
                    break
                now = clock.now()
                if time.monotonic() - last_day > STALL_S:
                    raise DemoError(
                        f"the platform finished no simulated day in {STALL_S:.0f} s; its log "
                        f"{platform.log_path} ends:\n{platform.tail()}"
                    )
                pay_at = datetime.combine(
                    s.run.start + timedelta(days=next_pay), s.schedule.payments_at
                )
                if next_pay <= s.run.days and now >= pay_at:
                    next_pay += 1
                    self._pay(customers, service, now)
                    for meter, paid, episode in customers.to_reclose(set(index)):
                        if episode in closed:
                            continue
                        i = index.get(meter)
                        if i is None:
                            continue
                        port_offset, unit = divmod(i, UNITS_PER_PORT)
                        link = links.get(port_offset)
                        if link is None:
                            link = ModbusBreakerLink("127.0.0.1", breaker_port + port_offset, 1)
                            links[port_offset] = link
                        try:
                            unit_link = link.for_unit(unit + 1)
                            state = await unit_link.read_state()
                            if state is BreakerState.OPEN_PERMITTED:
                                await unit_link.manual_close()
                            if paid and state is not BreakerState.OPEN_LOCKED:
                                closed.add(episode)  # power back: done with it
                        except Exception as exc:  # a breaker that does not answer: next day
                            log.info("closing the breaker of %s: %s", meter, exc)
                await asyncio.sleep(0.1)
        finally:
            for link in links.values():
                with contextlib.suppress(Exception):
                    await link.aclose()

    def _pay(self, customers: Any, service: Any, now: datetime) -> None:
        for decision in customers.due(now):
            payment_id = f"DEMO-{decision.customer_no}-{now:%Y%m%d}"
            try:
                service.pay(
                    decision.customer_no,
                    decision.amount_fen,
                    payment_id,
                    paid_at=now,
                    source=f"demo:{decision.why.value}",
                )
            except Exception as exc:  # a refused payment is recorded by the CIS adapter
                log.warning("payment %s refused: %s", payment_id, exc)
                continue
            customers.paid(decision, now)
            self._pending_paid[0] += 1
            self._pending_paid[1] += decision.amount_fen

    # -- progress -----------------------------------------------------------------------

    def _read_progress(self, engine: Engine) -> int:
        """Show the days the platform finished since the last call; how many."""
        path = self.run_dir / "platform.jsonl"
        try:
            with path.open("r", encoding="utf-8") as f:
                f.seek(self._progress_pos)
                lines = f.readlines()
                if lines and not lines[-1].endswith("\n"):
                    lines = lines[:-1]
                self._progress_pos += sum(len(line.encode("utf-8")) for line in lines)
        except FileNotFoundError:
            return 0
        for line in lines:
            data = json.loads(line)
            self.days.append(self._day_line(engine, data))
            self.on_day(self.days[-1])
        return len(lines)

    def _day_line(self, engine: Engine, data: dict[str, Any]) -> DayLine:
        day = date.fromisoformat(data["day"])
        rating = data.get("rating") or {}
        outcomes = rating.get("outcomes") or {}
        line = DayLine(
            day=day,
            number=(day - self.scenario.run.start).days,
            rated=int(rating.get("rated", 0)),
            outcomes={str(k): int(v) for k, v in outcomes.items()}
            if isinstance(outcomes, dict)
            else {},
            reminders=int(data.get("reminders", 0) or 0),
            dunning=int(data.get("dunning", 0) or 0),
            requested=int(data.get("requested", 0) or 0),
            approved=int(data.get("approved_l2", 0) or 0),
            errors=list(data.get("errors", [])),
        )
        lo = datetime.combine(day, datetime.min.time())
        hi = lo + timedelta(days=1)
        with engine.connect() as conn:

            def q(sql: str, **params: Any) -> int:
                return int(conn.execute(sa.text(sql), params).scalar() or 0)

            line.meters = int(q("SELECT count(*) FROM headend_meter WHERE active"))
            line.collected = int(
                q(
                    "SELECT count(*) FROM headend_reading WHERE di = :di AND freeze_date = :d",
                    di=0x05060101,
                    d=day,
                )
            )
            line.trips = int(
                q(
                    "SELECT count(*) FROM prepaid_disconnection_event WHERE action = 'tripped'"
                    " AND at >= :lo AND at < :hi",
                    lo=lo,
                    hi=hi,
                )
            )
            line.failed_trips = int(
                q(
                    "SELECT count(*) FROM prepaid_disconnection_event WHERE action = 'trip-failed'"
                    " AND at >= :lo AND at < :hi",
                    lo=lo,
                    hi=hi,
                )
            )
            line.work_orders = int(
                q(
                    "SELECT count(*) FROM prepaid_work_order WHERE created_at >= :lo"
                    " AND created_at < :hi",
                    lo=lo,
                    hi=hi,
                )
            )
            line.reconnected = int(
                q(
                    "SELECT count(*) FROM prepaid_disconnection WHERE state = 'ended'"
                    " AND ended_at >= :lo AND ended_at < :hi",
                    lo=lo,
                    hi=hi,
                )
            )
            sms = int(
                q("SELECT count(*) FROM prepaid_message WHERE status IN ('sent', 'delivered')")
            )
        line.sms, self._sms_seen = sms - self._sms_seen, sms
        line.payments, line.paid_fen = self._pending_paid
        self._pending_paid = [0, 0]
        return line

    # -- the end ------------------------------------------------------------------------

    def _summary(self, engine: Engine, district: Any) -> dict[str, Any]:
        s = self.scenario

        def rows(sql: str) -> dict[str, int]:
            with engine.connect() as conn:
                return {str(k): int(v) for k, v in conn.execute(sa.text(sql))}

        customers = getattr(self, "customers", None)
        return {
            "scenario": s.to_dict(),
            "district": district.to_dict(),
            "days": [d.to_dict() for d in self.days],
            "episodes": rows("SELECT state, count(*) FROM prepaid_disconnection GROUP BY state"),
            "messages": rows("SELECT kind, count(*) FROM prepaid_message GROUP BY kind"),
            "work_orders": rows("SELECT kind, count(*) FROM prepaid_work_order GROUP BY kind"),
            "jobs": rows("SELECT kind || ':' || state, count(*) FROM headend_job GROUP BY 1"),
            "customers": None if customers is None else customers.summary(),
            "processes": {p.name: p.log_path.name for p in self.parts},
        }

    def _report(self, engine: Engine, result: DemoResult) -> None:
        s = self.scenario
        result.violations = list(check_invariants(engine))
        report = build_report(
            engine, start=s.run.start, days=s.run.days, violations=result.violations
        )
        result.report_text = report.to_text()
        result.report_files = list(report.write(self.out_dir))


async def _set_faults(first_port: int, indices: list[int], fault: str) -> None:
    """Inject ``fault`` into the breakers of the meters at ``indices`` (fleet order)."""
    from breaker_sim import ModbusBreakerLink

    links: dict[int, ModbusBreakerLink] = {}
    try:
        for i in indices:
            offset, unit = divmod(i, UNITS_PER_PORT)
            link = links.get(offset)
            if link is None:
                link = links[offset] = ModbusBreakerLink("127.0.0.1", first_port + offset, 1)
            await link.for_unit(unit + 1).set_fault(fault)
    finally:
        for link in links.values():
            await link.aclose()
