"""Shared set-up for the settings, users and audit tests: a migrated SQLite database.

Migrating takes about a second, so it is done once per test run into a template
file; each test gets a fresh copy of it (a few milliseconds).
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa
import typer
from sqlalchemy.engine import Engine

from feikong import cmd_settings, cmd_users
from prepaid.db import migrate, open_database
from prepaid.users import Operator, Role, Users
from protocol.clock import SteppedClock

FAST_WORK_FACTOR = 2**10
"""scrypt cost for the tests' many throw-away operators (the default is tested on its own)."""

START = datetime(2026, 3, 2, 9, 0)  # a Monday, a working day

_template: Path | None = None


def _template_file() -> Path:
    global _template
    if _template is None:
        folder = Path(tempfile.mkdtemp(prefix="feikong-security-"))
        atexit.register(shutil.rmtree, folder, True)
        path = folder / "template.db"
        engine = open_database(f"sqlite:///{path}")
        migrate(engine)
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        engine.dispose()
        _template = path
    return _template


def fresh_engine(folder: Path, name: str = "feikong.db") -> Engine:
    """A migrated database of its own in ``folder``."""
    target = folder / name
    shutil.copyfile(_template_file(), target)
    return open_database(f"sqlite:///{target}")


def cli_app() -> typer.Typer:
    """The ``settings``, ``users`` and ``audit`` commands, as ``feikong`` registers them."""
    app = typer.Typer()
    cmd_settings.register(app)
    cmd_users.register(app)
    return app


def url_of(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def make_users(engine: Engine, clock: SteppedClock) -> Users:
    return Users(engine, clock=clock, work_factor=FAST_WORK_FACTOR)


PASSWORD = "correct horse battery"


def add_staff(users: Users) -> dict[str, Operator]:
    """An admin (bootstrap) and one operator per role; all with :data:`PASSWORD`."""
    admin = users.add("root", display_name="管理员", password=PASSWORD, roles=[Role.ADMIN], by=None)
    staff = {"admin": admin}
    for role in Role:
        if role is Role.ADMIN:
            continue
        login = role.value.replace("-", ".")
        staff[role.value] = users.add(
            login, display_name=f"{role.value} user", password=PASSWORD, roles=[role], by=admin
        )
    return staff


def add_places(engine: Engine) -> None:
    """Supply units 3301 and 3302; lines L1 (3301), L2 (3302); areas A1, A2 (L1), A3 (L2);
    customers C1, C2 in A1 (C2 with its line on the account), C3 in A3."""
    unit = sa.table("prepaid_supply_unit", sa.column("id"), sa.column("code"), sa.column("name"))
    line = sa.table(
        "prepaid_feeder_line",
        sa.column("id"),
        sa.column("supply_unit_id"),
        sa.column("code"),
        sa.column("name"),
    )
    area = sa.table(
        "prepaid_transformer_area",
        sa.column("id"),
        sa.column("feeder_line_id"),
        sa.column("code"),
        sa.column("name"),
    )
    tariff = sa.table("prepaid_tariff", sa.column("id"), sa.column("code"), sa.column("name"))
    account = sa.table(
        "prepaid_account",
        *(
            sa.column(c)
            for c in (
                "id",
                "customer_no",
                "name",
                "phone",
                "address",
                "supply_unit_id",
                "feeder_line_id",
                "transformer_area_id",
                "meter_address",
                "tariff_id",
                "household_size",
                "notify_mode",
                "fee_control_mode",
                "power_guarantee",
                "vulnerable",
                "free_allowance",
                "active",
                "opened_on",
            )
        ),
    )
    with engine.begin() as conn:
        conn.execute(
            sa.insert(unit),
            [{"id": 1, "code": "3301", "name": "杭州"}, {"id": 2, "code": "3302", "name": "宁波"}],
        )
        conn.execute(
            sa.insert(line),
            [
                {"id": 1, "supply_unit_id": 1, "code": "L1", "name": "10kV 一线"},
                {"id": 2, "supply_unit_id": 2, "code": "L2", "name": "10kV 二线"},
            ],
        )
        conn.execute(
            sa.insert(area),
            [
                {"id": 1, "feeder_line_id": 1, "code": "A1", "name": "台区一"},
                {"id": 2, "feeder_line_id": 1, "code": "A2", "name": "台区二"},
                {"id": 3, "feeder_line_id": 2, "code": "A3", "name": "台区三"},
            ],
        )
        conn.execute(sa.insert(tariff).values(id=1, code="flat", name="flat"))
        rows = [("C1", 1, None, 1), ("C2", 1, 1, 1), ("C3", 2, None, 3)]
        for n, (customer, unit_id, line_id, area_id) in enumerate(rows, start=1):
            conn.execute(
                sa.insert(account).values(
                    id=n,
                    customer_no=customer,
                    name=f"户{n}",
                    phone="",
                    address="",
                    supply_unit_id=unit_id,
                    feeder_line_id=line_id,
                    transformer_area_id=area_id,
                    meter_address=f"{n:012d}",
                    tariff_id=1,
                    household_size=0,
                    notify_mode="sms",
                    fee_control_mode="remote",
                    power_guarantee=False,
                    vulnerable=False,
                    free_allowance=False,
                    active=True,
                    opened_on=datetime(2026, 1, 1).date(),
                )
            )
