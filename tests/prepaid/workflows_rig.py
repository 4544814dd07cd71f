"""A fee-control platform under test: simulated meters over TCP, the head-end's job runner,
a migrated prepaid database on the same SQLite file, staff, accounts and the workflows.

Built on the head-end's rig (:mod:`tests.headend.jobs_rig`): one stepped clock drives
the meters, the head-end and the workflows, so days pass in milliseconds. Accounts
(tariff ``res-monthly``, 0.52 yuan/kWh in its first tier):

========  ============  ====  ====  ========================
customer  meter         line  area  opening balance
========  ============  ====  ====  ========================
3300000001 000000000001  L1   A1    5.00 yuan
3300000002 000000000002  L1   A1    5.00 yuan
3300000003 000000000003  L2   A2    5.00 yuan
========  ============  ====  ====  ========================

Each meter has a daily reading of 1000.00 kWh yesterday (rated) and 1020.00 kWh
today (not rated): re-rating charges 20 kWh × 0.52 = 10.40 yuan, so every customer
is 5.40 yuan in arrears after it.
"""

from __future__ import annotations

import atexit
import dataclasses
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from headend.events import CommandFailed, CommandSucceeded
from headend.jobs import RetryPolicy
from headend.readings import NewReading, store_readings
from headend.service import HeadendService
from meter_sim.config import MeterConfig
from prepaid.accounts import open_accounts
from prepaid.balance import adopt_opening_balances
from prepaid.cis import LedgerCis
from prepaid.cis.payments import PaymentService
from prepaid.db import migrate, open_database
from prepaid.messages import Message
from prepaid.models import FeederLine, TransformerArea
from prepaid.rating import DAILY_FORWARD_DI, rate_accounts
from prepaid.settings import SettingsStore
from prepaid.users import Operator, Users
from prepaid.workflows import FeeControl, WorkflowConfig
from protocol.clock import SteppedClock

from ..headend.jobs_rig import HeadEnd, headend
from .rating_helpers import account, with_tariffs_and_unit
from .security_helpers import add_staff, make_users

MONDAY = datetime(2026, 3, 2, 9, 0)
"""The tests start on Monday 2 March 2026, 09:00 (a working day)."""
CUSTOMERS = ("3300000001", "3300000002", "3300000003")
METERS = ("000000000001", "000000000002", "000000000003")


@dataclasses.dataclass
class Platform:
    he: HeadEnd
    fc: FeeControl
    service: HeadendService
    payments: PaymentService
    users: Users
    staff: dict[str, Operator]
    settings: SettingsStore

    @property
    def clock(self) -> SteppedClock:
        clock: SteppedClock = self.he.clock
        return clock

    @property
    def engine(self) -> Any:
        return self.he.engine

    async def run_jobs(self) -> None:
        """Let the head-end finish every queued job and hand the events over, until the
        workflows queue nothing more."""
        runner = self.he.runner
        for _ in range(20):
            await self.he.run_until(lambda: runner.queued == 0 and runner.running == 0)
            self.fc.pump()
            if runner.queued == 0 and runner.running == 0:
                return
        raise AssertionError("the workflows keep queueing jobs")

    async def finish(self, job_id: str) -> CommandSucceeded | CommandFailed:
        event = await self.he.finish(job_id)
        self.fc.pump()
        return event

    async def go_to(self, when: datetime) -> None:
        """Move the clock to ``when`` (the meters' timers run on the way)."""
        await self.clock.advance((when - self.clock.now()).total_seconds())

    def messages(self, kind: str | None = None) -> list[Message]:
        return [m for m in self.fc.ctx.outbox.messages() if kind is None or m.kind == kind]

    def jobs(self, kind: str | None = None) -> list[str]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT id, kind FROM headend_job ORDER BY created_at"))
            return [r.id for r in rows if kind is None or r.kind == kind]


def _reading(engine: Any, meter: str, day: date, kwh: str) -> None:
    ckwh = int(Decimal(kwh) * 100)
    store_readings(engine, [NewReading(meter, DAILY_FORWARD_DI, day, Decimal(kwh), ckwh)])


def add_accounts(engine: Any) -> list[int]:
    """The three accounts of the module doc, rated up to yesterday."""
    line = FeederLine.__table__  # type: ignore[attr-defined]
    area = TransformerArea.__table__  # type: ignore[attr-defined]
    with engine.begin() as c:
        unit = with_tariffs_and_unit(c)
        c.execute(
            sa.insert(line),
            [
                {"id": 1, "supply_unit_id": unit, "code": "L1", "name": "10kV 一线"},
                {"id": 2, "supply_unit_id": unit, "code": "L2", "name": "10kV 二线"},
            ],
        )
        c.execute(
            sa.insert(area),
            [
                {"id": 1, "feeder_line_id": 1, "code": "A1", "name": "台区一"},
                {"id": 2, "feeder_line_id": 2, "code": "A2", "name": "台区二"},
            ],
        )
        ids = open_accounts(
            c,
            [
                account(
                    n,
                    unit,
                    balance_fen=500,
                    phone=f"1380013800{n}",
                    address=f"幸福路{n}号",
                    feeder_line_id=1 if n < 3 else 2,
                    transformer_area_id=1 if n < 3 else 2,
                )
                for n in (1, 2, 3)
            ],
        )
    return ids


_template: Path | None = None


def _template_file() -> Path:
    """A database with the head-end's and the prepaid schema, migrated once per run."""
    global _template
    if _template is None:
        folder = Path(tempfile.mkdtemp(prefix="feikong-workflows-"))
        atexit.register(shutil.rmtree, folder, True)
        path = folder / "template.db"
        engine = open_database(f"sqlite:///{path}")
        migrate(engine)
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        engine.dispose()
        _template = path
    return _template


@asynccontextmanager
async def platform(
    tmp_path: Path,
    *,
    config: WorkflowConfig | None = None,
    start: datetime = MONDAY,
    configs: list[MeterConfig] | None = None,
    db_url: str | None = None,
) -> AsyncIterator[Platform]:
    """The platform of the module doc; ``db_url``: an empty database of its own (e.g.
    PostgreSQL) instead of a copy of the migrated SQLite template."""
    if db_url is None:
        database = tmp_path / "feikong.db"
        shutil.copyfile(_template_file(), database)
    async with headend(
        tmp_path,
        count=3,
        configs=configs,
        retry=RetryPolicy(base_s=10),
        db_url=db_url or f"sqlite:///{database}",
    ) as he:
        clock: SteppedClock = he.clock
        await clock.advance((start - clock.now()).total_seconds())
        engine = he.engine
        if db_url is not None:
            migrate(engine, headend=False)
        ids = add_accounts(engine)
        yesterday = clock.now().date() - timedelta(days=1)
        for meter in METERS:
            _reading(engine, meter, yesterday, "1000.00")
        rate_accounts(engine, ids, yesterday, clock=clock)
        ledger = LedgerCis(engine, clock=clock)
        adopt_opening_balances(engine, ledger)
        for meter in METERS:
            _reading(engine, meter, clock.now().date(), "1020.00")
        users = make_users(engine, clock)
        staff = add_staff(users)
        service = HeadendService(he.runner)
        fc = FeeControl(
            engine,
            service,
            clock=clock,
            config=config or WorkflowConfig(require_dunning=False),
        )
        fc.subscribe(he.bus)
        payments = PaymentService(engine, ledger, clock=clock, on_payment=[fc.on_payment])
        try:
            yield Platform(he, fc, service, payments, users, staff, fc.ctx.settings)
        finally:
            fc.close()
