"""The disconnection lifecycle and work orders on a real PostgreSQL (skipped without
initdb or psycopg, like the head-end's PostgreSQL tests)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from breaker_sim import BreakerState
from prepaid.db import open_database
from prepaid.messages import MessageKind
from prepaid.workflows import DisconnectionState, ReconnectionState, WorkflowStateError
from prepaid.workorders import WorkOrderKind, WorkOrderState

from ..headend.test_postgres import pg_url
from .workflows_rig import CUSTOMERS, METERS, platform

_ = pg_url
_names = itertools.count()


@pytest.fixture
def database(pg_url: str) -> Iterator[str]:
    name = f"feikong_workflows_{next(_names)}"
    admin = open_database(pg_url)
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.execute(text(f"CREATE DATABASE {name}"))
    yield make_url(pg_url).set(database=name).render_as_string(hide_password=False)
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.execute(text(f"DROP DATABASE {name} WITH (FORCE)"))
    admin.dispose()


async def test_lifecycle_and_failure_work_order_on_postgresql(
    tmp_path: Path, database: str
) -> None:
    async with platform(tmp_path, db_url=database) as p:
        flow, staff = p.fc.disconnection, p.staff
        first = flow.request(CUSTOMERS[0], by=staff["operator"])
        second = flow.request(CUSTOMERS[1], by=staff["operator"])
        assert flow.request(CUSTOMERS[0], by=staff["operator"]).number == first.number
        for episode in (first, second):
            with pytest.raises(WorkflowStateError, match="follows the level-1 approval"):
                flow.approve_l2(episode.number, by=staff["approver-l2"])
            flow.approve_l1(episode.number, by=staff["approver-l1"])
            flow.approve_l2(episode.number, by=staff["approver-l2"])
        p.he.breaker(METERS[1]).set_fault("fails-to-trip")
        await p.go_to(datetime(2026, 3, 3, 10, 0))
        for _ in range(3):
            p.fc.step()
            await p.run_jobs()
            due = flow.get(second.number).due_at
            if due is not None:
                await p.go_to(due)

        assert flow.get(first.number).state is DisconnectionState.DISCONNECTED
        assert p.he.breaker(METERS[0]).state is not BreakerState.CLOSED
        failed = flow.get(second.number)
        assert failed.state is DisconnectionState.FAILED
        order = p.fc.workorders.get(failed.work_order or "")
        assert order.kind is WorkOrderKind.DISCONNECTION_FAILURE
        assert order.state is WorkOrderState.ASSIGNED
        assert len(p.messages(MessageKind.DISCONNECTION_FAILURE)) == 1

        p.payments.pay(CUSTOMERS[0], 5_000, "PG-1")
        await p.run_jobs()
        (recon,) = p.fc.reconnection.list(customer_no=CUSTOMERS[0])
        assert recon.state is ReconnectionState.DONE
        await p.go_to(datetime(2026, 3, 3, 10, 0) + timedelta(days=3))
        assert p.fc.step().trips == []
        assert len(p.jobs("trip")) == 4  # one for the first, three attempts for the second
