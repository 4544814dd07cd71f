"""A small utility for the reminder, dunning, anomaly and customer-service tests.

A migrated SQLite file, one supply unit (3301), one feeder line (L1) with two
transformer areas (A1, A2), hand-built accounts with the phones, areas, notification
modes and balances a test needs, a :class:`SteppedClock`, and the settings store.
Balances are set the way rating and payments leave them: in
``prepaid_rating_state.balance_fen`` (the real-time balance).
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from headend.models import Channel, Meter
from prepaid.accounts import NewAccount, open_accounts
from prepaid.db import migrate, open_database
from prepaid.models import FeederLine, NotifyMode, RatingState, TransformerArea
from prepaid.settings import AccountsDirectory, SettingsStore, load_defaults
from prepaid.users import Operator, Role, Users
from protocol.clock import SteppedClock

from .rating_helpers import migrated, with_tariffs_and_unit

ADMIN = Operator("admin", "Admin", frozenset({Role.ADMIN}))
OPERATOR = Operator("op", "Operator", frozenset({Role.OPERATOR}))
CLERK = Operator("cs", "Customer service", frozenset({Role.CUSTOMER_SERVICE}))
HANDLER = Operator("tech", "Field technician", frozenset({Role.FAULT_HANDLER}))

_STATE = RatingState.__table__  # type: ignore[attr-defined]


@dataclass
class Rig:
    engine: Engine
    clock: SteppedClock
    settings: SettingsStore
    unit: int
    lines: dict[str, int]
    areas: dict[str, int]
    ids: dict[str, int] = field(default_factory=dict)

    def add(
        self,
        customer_no: str,
        *,
        balance: int,
        phone: str = "13800138000",
        area: str | None = "A1",
        paper: bool = False,
        name: str | None = None,
        meter: str | None = None,
        tariff: str = "res-monthly",
        opened_on: date = date(2026, 1, 1),
        guarantee: bool = False,
    ) -> int:
        n = len(self.ids) + 1
        new = NewAccount(
            customer_no=customer_no,
            name=name or f"户{customer_no}",
            meter_address=meter or f"{n:012d}",
            tariff=tariff,
            supply_unit_id=self.unit,
            opened_on=opened_on,
            phone=phone,
            address=f"幸福路{n}号",
            transformer_area_id=self.areas[area] if area else None,
            notify_mode=NotifyMode.PAPER if paper else NotifyMode.SMS,
            balance_fen=balance,
            power_guarantee=guarantee,
        )
        with self.engine.begin() as c:
            (ident,) = open_accounts(c, [new])
        self.ids[customer_no] = ident
        return ident

    def balance(self, customer_no: str, fen: int) -> None:
        """Set the real-time balance (what a rating or a payment leaves)."""
        with self.engine.begin() as c:
            c.execute(
                sa.update(_STATE)
                .where(_STATE.c.account_id == self.ids[customer_no])
                .values(balance_fen=fen)
            )

    def state(self, customer_no: str, **values: Any) -> None:
        with self.engine.begin() as c:
            c.execute(
                sa.update(_STATE)
                .where(_STATE.c.account_id == self.ids[customer_no])
                .values(**values)
            )

    def set(self, name: str, value: str, *, level: str = "default", key: str | None = None) -> None:
        self.settings.set(name, value, level=level, key=key, user=ADMIN)

    def operators(self) -> None:
        """Store the admin and the field technician (work orders are assigned to stored ones)."""
        users = Users(self.engine, clock=self.clock, work_factor=2**10)
        users.add("admin", display_name="Admin", password="admin-pass-1", roles=["admin"], by=None)
        users.add(
            "tech",
            display_name="Field technician",
            password="tech-pass-1",
            roles=["fault-handler"],
            by=ADMIN,
        )

    def next_day(self, days: int = 1) -> None:
        self.clock.set(self.clock.now() + timedelta(days=days))

    # -- head-end readings ---------------------------------------------------------

    def meters(self) -> None:
        """Put every account's meter in the head-end archive (for readings)."""
        channel = Channel.__table__  # type: ignore[attr-defined]
        meter = Meter.__table__  # type: ignore[attr-defined]
        account = sa.table("prepaid_account", sa.column("meter_address"), sa.column("customer_no"))
        with self.engine.begin() as c:
            if c.execute(sa.select(sa.func.count()).select_from(channel)).scalar_one() == 0:
                c.execute(
                    sa.insert(channel).values(
                        id=1, name="bench", kind="tcp", host="127.0.0.1", port=1, updated_at=_T0
                    )
                )
            have = set(c.execute(sa.select(meter.c.address)).scalars())
            for address, customer in c.execute(
                sa.select(account.c.meter_address, account.c.customer_no)
            ):
                if address in have:
                    continue
                c.execute(
                    sa.insert(meter).values(
                        address=address,
                        meter_number=address,
                        kind="remote",
                        channel_id=1,
                        breaker_type="external",
                        customer_no=customer,
                        active=True,
                        updated_at=_T0,
                    )
                )

    def reading(self, customer_no: str, day: date, ckwh: int) -> None:
        """The daily freeze of ``day`` (the register at 00:00), stored by the head-end."""
        from headend.collection import FORWARD_BLOCK_DI
        from headend.readings import NewReading, store_readings

        account = sa.table("prepaid_account", sa.column("id"), sa.column("meter_address"))
        with self.engine.connect() as c:
            address = c.execute(
                sa.select(account.c.meter_address).where(account.c.id == self.ids[customer_no])
            ).scalar_one()
        store_readings(
            self.engine, [NewReading(address, FORWARD_BLOCK_DI, day, Decimal(ckwh) / 100, ckwh)]
        )

    def rate(self, day: date) -> None:
        """The daily rating of the freeze dated ``day``, at 06:00 that day."""
        from prepaid.rating import rate_day

        self.clock.set(datetime.combine(day, datetime.min.time()) + timedelta(hours=6))
        rate_day(self.engine, day, clock=self.clock, pipeline=False)


_T0 = datetime(2026, 1, 1)


_template: Path | None = None


def _template_file() -> Path:
    """Migrating takes a second: done once per run, each test copies the file."""
    global _template
    if _template is None:
        folder = Path(tempfile.mkdtemp(prefix="feikong-dunning-"))
        atexit.register(shutil.rmtree, folder, True)
        engine = migrated(folder, "template.db")
        _populate(engine)
        engine.dispose()
        _template = folder / "template.db"
    return _template


def _populate(engine: Engine) -> None:
    line_t = FeederLine.__table__  # type: ignore[attr-defined]
    area_t = TransformerArea.__table__  # type: ignore[attr-defined]
    with engine.begin() as c:
        unit = with_tariffs_and_unit(c)
        line = c.execute(
            sa.insert(line_t)
            .values(supply_unit_id=unit, code="L1", name="10kV 幸福线")
            .returning(line_t.c.id)
        ).scalar_one()
        areas = {
            code: c.execute(
                sa.insert(area_t)
                .values(feeder_line_id=line, code=code, name=f"{code}台区")
                .returning(area_t.c.id)
            ).scalar_one()
            for code in ("A1", "A2")
        }
    assert (unit, line, areas) == (1, 1, {"A1": 1, "A2": 2})


def make_rig(
    tmp_path: Path, start: datetime = datetime(2026, 3, 2, 8, 0), *, url: str | None = None
) -> Rig:
    """The rig on a copy of the SQLite template, or on the empty database at ``url``."""
    if url is None:
        shutil.copyfile(_template_file(), tmp_path / "prepaid.db")
        engine = open_database(f"sqlite:///{tmp_path / 'prepaid.db'}")
    else:
        engine = open_database(url)
        migrate(engine)
        _populate(engine)
    clock = SteppedClock(start)
    settings = SettingsStore(
        engine,
        clock=clock,
        defaults=load_defaults(use_env=False),
        directory=AccountsDirectory(engine),
    )
    return Rig(engine, clock, settings, 1, {"L1": 1}, {"A1": 1, "A2": 2})
