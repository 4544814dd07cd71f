"""A small utility for the reminder, dunning, anomaly and customer-service tests.

A migrated SQLite file, one supply unit (3301), one feeder line (L1) with two
transformer areas (A1, A2), hand-built accounts with the phones, areas, notification
modes and balances a test needs, a :class:`SteppedClock`, and the settings store.
Balances are set the way rating and payments leave them: in
``prepaid_rating_state.balance_fen`` (the real-time balance).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from headend.models import Channel, Meter, Reading
from prepaid.accounts import NewAccount, open_accounts
from prepaid.models import FeederLine, NotifyMode, RatingState, TransformerArea
from prepaid.settings import AccountsDirectory, SettingsStore, load_defaults
from prepaid.users import Operator, Role
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

    def reading(self, customer_no: str, day: date, kwh_centi: int) -> None:
        """The daily freeze of ``day`` (00:00) as the head-end stores it."""
        from headend.collection import FORWARD_BLOCK_DI

        reading = Reading.__table__  # type: ignore[attr-defined]
        account = sa.table("prepaid_account", sa.column("id"), sa.column("meter_address"))
        with self.engine.begin() as c:
            address = c.execute(
                sa.select(account.c.meter_address).where(account.c.id == self.ids[customer_no])
            ).scalar_one()
            c.execute(
                sa.insert(reading).values(
                    meter_address=address,
                    di=FORWARD_BLOCK_DI,
                    freeze_date=day,
                    value=f"{kwh_centi / 100:.2f}",
                    energy_ckwh=kwh_centi,
                    collected_at=datetime.combine(day, datetime.min.time()),
                )
            )


_T0 = datetime(2026, 1, 1)


def make_rig(tmp_path: Path, start: datetime = datetime(2026, 3, 2, 8, 0)) -> Rig:
    engine = migrated(tmp_path)
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
    clock = SteppedClock(start)
    settings = SettingsStore(
        engine,
        clock=clock,
        defaults=load_defaults(use_env=False),
        directory=AccountsDirectory(engine),
    )
    return Rig(engine, clock, settings, unit, {"L1": line}, areas)
