"""Shared helpers of the CIS, balance and timely-rating tests: a migrated SQLite database."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from headend.models import Channel, Meter
from prepaid.cis import LedgerCis
from prepaid.db import migrate, open_database
from protocol.clock import SteppedClock

START = datetime(2026, 3, 10, 9, 30)


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'prepaid.db'}"


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = open_database(db_url)
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def clock() -> SteppedClock:
    return SteppedClock(START)


@pytest.fixture
def ledger(engine: Engine, clock: SteppedClock) -> LedgerCis:
    return LedgerCis(engine, clock=clock)


def add_meters(engine: Engine, addresses: list[str]) -> None:
    """Meters in the head-end archive (on one TCP channel), so readings can be stored."""
    channel = Channel.__table__  # type: ignore[attr-defined]
    meter = Meter.__table__  # type: ignore[attr-defined]
    with engine.begin() as c:
        cid = c.execute(sa.select(channel.c.id).where(channel.c.name == "gw")).scalar()
        if cid is None:
            cid = c.execute(
                sa.insert(channel)
                .values(name="gw", kind="tcp", host="127.0.0.1", port=9000, concurrency=1)
                .returning(channel.c.id)
            ).scalar_one()
        c.execute(
            sa.insert(meter),
            [
                {
                    "address": a,
                    "meter_number": a,
                    "kind": "remote",
                    "channel_id": cid,
                    "breaker_type": "external",
                    "active": True,
                }
                for a in addresses
            ],
        )
