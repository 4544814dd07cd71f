"""``feikong disconnect | reconnect | guarantee | workorders``, and the head-end port of a
CLI process (jobs queued in the database, outcomes read back by the next tick)."""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from breaker_sim import BreakerState
from feikong.cli import app
from headend.jobs import JobSpec
from headend.models import JobKind
from headend.service import QueuedHeadendService
from prepaid.balance import adopt_opening_balances
from prepaid.cis import LedgerCis
from prepaid.db import open_database
from prepaid.models import RatingState
from prepaid.workflows import DisconnectionState, FeeControl, WorkflowConfig
from protocol.clock import SteppedClock

from . import workflows_rig
from .security_helpers import PASSWORD, add_staff, make_users
from .workflows_rig import CUSTOMERS, METERS, add_accounts, platform

runner = CliRunner()
ENV = {"FEIKONG_PASSWORD": PASSWORD}


@pytest.fixture
def db(tmp_path: Path) -> str:
    """Accounts 5.40 yuan in arrears (no readings: re-rating today changes nothing), staff."""
    path = tmp_path / "feikong.db"
    shutil.copyfile(workflows_rig._template_file(), path)
    url = f"sqlite:///{path}"
    engine = open_database(url)
    add_accounts(engine)
    state = RatingState.__table__  # type: ignore[attr-defined]
    with engine.begin() as conn:
        conn.execute(sa.update(state).values(balance_fen=-540))
    adopt_opening_balances(engine, LedgerCis(engine))
    add_staff(make_users(engine, SteppedClock(datetime.now())))
    engine.dispose()
    return url


def _cli(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args), env=ENV)
    return result.exit_code, result.output


def test_request_approve_show_and_refusals_on_the_command_line(db: str) -> None:
    code, out = _cli("disconnect", "request", CUSTOMERS[0], "--user", "operator", "--db", db)
    assert code == 0, out
    number = out.split(":")[0]
    assert number.startswith("TD") and "requested, balance -5.40 yuan" in out

    code, out = _cli("disconnect", "approve", number, "--user", "operator", "--db", db)
    assert code == 1 and "refused:" in out and "may not approve-l1" in out
    code, out = _cli("disconnect", "approve", number, "--user", "approver.l1", "--db", db)
    assert code == 0 and "approved-l1" in out, out
    code, out = _cli("disconnect", "approve", number, "--user", "approver.l2", "--db", db)
    assert code == 0 and "notified; the customer is told the trip is planned for" in out, out

    code, out = _cli("disconnect", "show", number, "--json", "--db", db)
    data = json.loads(out)
    assert data["state"] == "notified" and data["l2_by"] == "approver.l2"
    assert [h["action"] for h in data["history"]] == [
        "request",
        "approve-l1",
        "approve-l2",
        "notify",
    ]
    code, out = _cli("disconnect", "list", "--active", "--db", db)
    assert code == 0 and number in out and "notified" in out
    code, out = _cli(
        "disconnect", "cancel", number, "--reason", "缓缴", "--user", "operator", "--db", db
    )
    assert code == 0 and "cancelled" in out
    code, out = _cli("disconnect", "show", "TD404", "--db", db)
    assert code == 2 and "no disconnection 'TD404'" in out
    code, out = _cli("disconnect", "list", "--state", "gone", "--db", db)
    assert code == 2 and "unknown state 'gone'" in out


def test_work_orders_and_guarantee_on_the_command_line(db: str) -> None:
    code, out = _cli(
        "workorders",
        "handler-phone",
        "fault.handler",
        "13900000001",
        "--user",
        "operator",
        "--db",
        db,
    )
    assert code == 0, out
    code, out = _cli(
        "workorders",
        "create",
        "--kind",
        "other",
        "--customer",
        CUSTOMERS[1],
        "--summary",
        "表箱门锁损坏",
        "--assignee",
        "fault.handler",
        "--user",
        "operator",
        "--db",
        db,
    )
    assert code == 0 and "other assigned" in out, out
    number = out.split(":")[0]
    code, out = _cli("workorders", "close", number, "--user", "operator", "--db", db)
    assert code == 1 and "record the on-site result before closing" in out
    code, out = _cli(
        "workorders",
        "record",
        number,
        "--outcome",
        "done",
        "--result",
        "已更换门锁",
        "--user",
        "fault.handler",
        "--db",
        db,
    )
    assert code == 0, out
    code, out = _cli("workorders", "close", number, "--user", "fault.handler", "--db", db)
    assert code == 0 and "closed" in out
    code, out = _cli("workorders", "show", number, "--json", "--db", db)
    data = json.loads(out)
    assert data["state"] == "closed" and data["result"] == "已更换门锁"
    assert [h["action"] for h in data["history"]] == ["create", "assign", "record", "close"]
    code, out = _cli("workorders", "list", "--open", "--db", db)
    assert code == 0 and "0 work order(s)" in out

    code, out = _cli(
        "settings",
        "set",
        "power_guarantee",
        "true",
        "--level",
        "area",
        "--key",
        "A1",
        "--user",
        "root",
        "--db",
        db,
    )
    assert code == 0, out
    code, out = _cli("guarantee", "status", CUSTOMERS[0], "--db", db)
    assert code == 0 and "set for area A1" in out
    code, out = _cli("disconnect", "request", CUSTOMERS[0], "--user", "operator", "--db", db)
    assert code == 1 and "power guarantee" in out


async def test_a_cli_process_queues_jobs_and_reads_their_outcomes(tmp_path: Path) -> None:
    """The CLI's port: the trip is a queued job for a head-end process; the next tick
    reads its outcome from the job table (no events reach a CLI process)."""
    async with platform(tmp_path) as p:
        staff, clock = p.staff, p.clock
        p.fc.close()  # only the CLI-style orchestrator below works on this database
        fc = FeeControl(
            p.engine,
            QueuedHeadendService(p.engine),
            clock=clock,
            config=WorkflowConfig(require_dunning=False, stuck_after=timedelta(0)),
        )
        episode = fc.disconnection.request(CUSTOMERS[0], by=staff["operator"])
        fc.disconnection.approve_l1(episode.number, by=staff["approver-l1"])
        fc.disconnection.approve_l2(episode.number, by=staff["approver-l2"])
        await p.go_to(datetime(2026, 3, 3, 10, 0))
        assert fc.step().trips == [episode.number]
        (job_id,) = p.jobs("trip")
        assert fc.step().recovered == []  # still queued
        # the head-end process picks the job up from the database and carries it out
        p.he.runner.submit(JobSpec(JobKind.TRIP, METERS[0], id=job_id))
        await p.he.finish(job_id)
        assert p.he.breaker(METERS[0]).state is BreakerState.OPEN_LOCKED
        report = fc.step()
        assert report.recovered == [episode.number]
        assert fc.disconnection.get(episode.number).state is DisconnectionState.DISCONNECTED
        assert fc.step().recovered == []
