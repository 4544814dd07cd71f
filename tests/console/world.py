"""A small province for the console tests, built once per run and copied per test.

``prepaid.generate`` makes 240 accounts (seed 5) with daily readings from
1 to 8 March 2026; rating runs for 2..8 March, so each account has seven days of
charges and a real-time balance (some below zero, some below the reminder amount).
Staff: ``root`` (admin) and one operator per role (``operator``, ``approver.l1``, …),
all with :data:`PASSWORD`, plus ``gone`` (an operator, disabled). The console's
clock stands at Sunday 8 March 2026, 10:00.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from prepaid.db import migrate, open_database
from prepaid.generate import GenerateOptions, generate
from prepaid.rating import rate_day
from prepaid.users import Operator, Role, Users
from protocol.clock import SteppedClock

FAST_WORK_FACTOR = 2**10
PASSWORD = "correct horse battery"
START = date(2026, 3, 1)
DAYS = 8
NOW = datetime(2026, 3, 8, 10, 0)
CUSTOMERS = 240

_template: Path | None = None


def _build(path: Path) -> None:
    engine = open_database(f"sqlite:///{path}")
    migrate(engine)
    generate(engine, GenerateOptions(customers=CUSTOMERS, days=DAYS, seed=5, start=START))
    for n in range(1, DAYS):
        rate_day(engine, START + timedelta(days=n))
    users = Users(engine, clock=SteppedClock(NOW), work_factor=FAST_WORK_FACTOR)
    admin = users.add("root", display_name="管理员", password=PASSWORD, roles=[Role.ADMIN], by=None)
    for role in Role:
        if role is not Role.ADMIN:
            users.add(
                role.value.replace("-", "."),
                display_name=f"{role.value} user",
                password=PASSWORD,
                roles=[role],
                by=admin,
            )
    users.add("gone", display_name="离职", password=PASSWORD, roles=[Role.OPERATOR], by=admin)
    users.disable("gone", by=admin, reason="left")
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()


def _template_file() -> Path:
    global _template
    if _template is None:
        folder = Path(tempfile.mkdtemp(prefix="feikong-console-"))
        atexit.register(shutil.rmtree, folder, True)
        _template = folder / "template.db"
        _build(_template)
    return _template


@dataclass
class World:
    engine: Engine
    clock: SteppedClock
    users: Users
    path: Path

    @property
    def url(self) -> str:
        return f"sqlite:///{self.path}"

    def operator(self, login: str) -> Operator:
        return self.users.get(login)

    def rows(self, sql: str, **params: object) -> list[tuple[object, ...]]:
        with self.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.text(sql), params)]


def make_world(folder: Path) -> World:
    target = folder / "console.db"
    shutil.copyfile(_template_file(), target)
    engine = open_database(f"sqlite:///{target}")
    clock = SteppedClock(NOW)
    return World(engine, clock, Users(engine, clock=clock, work_factor=FAST_WORK_FACTOR), target)
