"""Shared helpers of the CIS, balance and timely-rating tests: a migrated SQLite database."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

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
