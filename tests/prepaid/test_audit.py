"""The audit log: entries, queries, CSV export, the hash chain and append-only storage."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import threading
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DatabaseError
from typer.testing import CliRunner

from prepaid.audit import GENESIS, AuditError, AuditLog, audit_table, canonical_json
from prepaid.users import Role
from protocol.clock import SteppedClock

from .security_helpers import START, cli_app, fresh_engine, url_of

runner = CliRunner()


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    return fresh_engine(tmp_path)


@pytest.fixture
def clock() -> SteppedClock:
    return SteppedClock(START)


@pytest.fixture
def log(engine: Engine, clock: SteppedClock) -> AuditLog:
    return AuditLog(engine, clock)


def fill(log: AuditLog, clock: SteppedClock) -> None:
    """Five entries an hour apart by two people."""
    log.record("alice", "settings.set", "setting:area:A1:reminder_amount", {"new": "15.00"})
    clock.set(clock.now() + timedelta(hours=1))
    log.record("bob", "users.grant", "operator:carol", {"role": "approver-l1"})
    clock.set(clock.now() + timedelta(hours=1))
    log.record("alice", "settings.unset", "setting:area:A1:reminder_amount")
    clock.set(clock.now() + timedelta(hours=1))
    log.record("bob", "users.disable", "operator:dave", {"reason": "left"})
    clock.set(clock.now() + timedelta(hours=1))
    log.record("alice", "disconnection.request", "customer:3300000001", {"arrears": "12.30"})


def test_entries_are_numbered_timed_by_the_clock_and_chained(
    log: AuditLog, clock: SteppedClock
) -> None:
    first = log.record("alice", "settings.set", "setting:line:L1:reminder_amount", {"new": "15"})
    clock.set(START + timedelta(minutes=5))
    second = log.record("bob", "users.add", "operator:carol")
    assert (first.id, second.id) == (1, 2)
    assert first.at == START and second.at == START + timedelta(minutes=5)
    assert first.prev_hash == GENESIS and second.prev_hash == first.hash
    # the hash is SHA-256 of the canonical content, including the previous hash
    payload = canonical_json(
        [
            1,
            START.isoformat(),
            "alice",
            "settings.set",
            "setting:line:L1:reminder_amount",
            '{"new":"15"}',
            GENESIS,
        ]
    )
    assert first.hash == hashlib.sha256(payload.encode()).hexdigest()
    stored = log.query()
    assert [(e.id, e.actor, e.action, e.target) for e in stored] == [
        (1, "alice", "settings.set", "setting:line:L1:reminder_amount"),
        (2, "bob", "users.add", "operator:carol"),
    ]
    assert stored[0].details == {"new": "15"} and stored[1].details == {}


def test_query_by_user_action_target_and_time(log: AuditLog, clock: SteppedClock) -> None:
    fill(log, clock)
    assert [e.id for e in log.query(actor="alice")] == [1, 3, 5]
    assert [e.id for e in log.query(action="settings.*")] == [1, 3]
    assert [e.id for e in log.query(action="users.disable")] == [4]
    assert [e.id for e in log.query(target="operator:*")] == [2, 4]
    assert [e.id for e in log.query(target="customer:3300000001")] == [5]
    one_hour = START + timedelta(hours=1)
    assert [e.id for e in log.query(since=one_hour, until=one_hour + timedelta(hours=2))] == [2, 3]
    assert [e.id for e in log.query(actor="bob", since=START + timedelta(hours=2))] == [4]
    assert [e.id for e in log.query(limit=2, newest_first=True)] == [5, 4]
    assert log.query(actor="nobody") == []


def test_details_keep_exact_values(log: AuditLog) -> None:
    entry = log.record(
        "alice",
        "vend",
        "customer:1",
        {"amount": Decimal("100.10"), "at": datetime(2026, 3, 2, 9, 30), "role": Role.OPERATOR},
    )
    assert entry.details == {"amount": "100.10", "at": "2026-03-02T09:30:00", "role": "operator"}
    with pytest.raises(AuditError, match="cannot be written as JSON"):
        log.record("alice", "vend", "customer:1", {"amount": object()})


@pytest.mark.parametrize(
    ("actor", "action", "target", "message"),
    [
        ("", "x.y", "t", "audit actor"),
        ("a" * 65, "x.y", "t", "audit actor"),
        ("alice", "Settings Set", "t", "audit action"),
        ("alice", "x.y", "", "audit target"),
    ],
)
def test_bad_entries_are_refused(
    log: AuditLog, actor: str, action: str, target: str, message: str
) -> None:
    with pytest.raises(AuditError, match=message):
        log.record(actor, action, target)
    assert log.query() == []


def test_export_csv(log: AuditLog, clock: SteppedClock) -> None:
    fill(log, clock)
    out = io.StringIO()
    assert log.export_csv(out, actor="bob") == 2
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [(r["id"], r["actor"], r["action"], r["target"]) for r in rows] == [
        ("2", "bob", "users.grant", "operator:carol"),
        ("4", "bob", "users.disable", "operator:dave"),
    ]
    assert json.loads(rows[1]["details"]) == {"reason": "left"}
    assert rows[0]["at"] == "2026-03-02 10:00:00"
    # batches join up: every entry once, in order
    out = io.StringIO()
    entries = list(log.iter_entries(batch=2))
    assert [e.id for e in entries] == [1, 2, 3, 4, 5]


def test_an_action_rolled_back_leaves_no_entry(log: AuditLog, engine: Engine) -> None:
    log.record("alice", "settings.set", "setting:default:*:reminder_amount")
    with pytest.raises(RuntimeError), engine.begin() as conn:
        log.record("alice", "settings.set", "setting:line:L1:reminder_amount", connection=conn)
        raise RuntimeError("the action failed after its audit entry was written")
    third = log.record("bob", "users.add", "operator:x")
    assert [e.id for e in log.query()] == [1, third.id] and third.id == 2
    assert log.verify().ok


def test_the_table_is_append_only(log: AuditLog, engine: Engine) -> None:
    log.record("alice", "settings.set", "setting:line:L1:reminder_amount")
    with pytest.raises(DatabaseError, match="append-only"), engine.begin() as conn:
        conn.execute(sa.update(audit_table).values(actor="mallory"))
    with pytest.raises(DatabaseError, match="append-only"), engine.begin() as conn:
        conn.execute(sa.delete(audit_table))
    assert [e.actor for e in log.query()] == ["alice"]


def _untrigger(engine: Engine) -> None:
    """What an attacker with the database file could do: drop the guards."""
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TRIGGER prepaid_audit_no_update")
        conn.exec_driver_sql("DROP TRIGGER prepaid_audit_no_delete")


def test_verify_finds_a_changed_entry(log: AuditLog, clock: SteppedClock, engine: Engine) -> None:
    fill(log, clock)
    assert str(log.verify()) == "audit chain intact: 5 entries, last #5"
    _untrigger(engine)
    with engine.begin() as conn:
        conn.execute(
            sa.update(audit_table).where(audit_table.c.id == 2).values(details='{"role":"admin"}')
        )
    report = log.verify()
    assert not report.ok and report.bad_id == 2 and report.checked == 1
    assert "was changed" in str(report)


def test_verify_finds_a_removed_entry_and_a_cut_end(
    log: AuditLog, clock: SteppedClock, engine: Engine
) -> None:
    fill(log, clock)
    _untrigger(engine)
    with engine.begin() as conn:
        conn.execute(sa.delete(audit_table).where(audit_table.c.id == 5))
    report = log.verify()
    assert not report.ok and "removed from the end" in str(report)
    with engine.begin() as conn:
        conn.execute(sa.delete(audit_table).where(audit_table.c.id == 3))
    report = log.verify()
    assert not report.ok and report.bad_id == 3 and "missing" in str(report)


def test_verify_finds_a_rewritten_link(log: AuditLog, clock: SteppedClock, engine: Engine) -> None:
    fill(log, clock)
    _untrigger(engine)
    # recompute entry 3's own hash after changing it: the link to entry 4 breaks
    with engine.begin() as conn:
        conn.execute(sa.update(audit_table).where(audit_table.c.id == 3).values(actor="mallory"))
    assert log.verify().bad_id == 3


def test_concurrent_writers_keep_one_chain(tmp_path: Path, clock: SteppedClock) -> None:
    engine = fresh_engine(tmp_path)
    logs = [AuditLog(engine, clock), AuditLog(engine, clock)]
    errors: list[BaseException] = []

    def write(log: AuditLog, who: str) -> None:
        try:
            for i in range(40):
                log.record(who, "test.write", f"item:{i}")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [
        threading.Thread(target=write, args=(lg, n)) for lg, n in zip(logs, "ab", strict=True)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    report = logs[0].verify()
    assert report.ok and report.checked == 80


# -- CLI -------------------------------------------------------------------------------------


def test_cli_lists_exports_and_verifies(
    log: AuditLog, clock: SteppedClock, engine: Engine, tmp_path: Path
) -> None:
    fill(log, clock)
    app = cli_app()
    db = ["--db", url_of(engine)]
    result = runner.invoke(app, ["audit", *db, "--user", "alice", "--json"])
    assert result.exit_code == 0, result.output
    assert [e["id"] for e in json.loads(result.output)] == [5, 3, 1]
    result = runner.invoke(app, ["audit", *db, "--since", "2026-03-02T11:00"])
    assert result.exit_code == 0, result.output
    assert "users.disable" in result.output and "users.grant" not in result.output
    result = runner.invoke(app, ["audit", *db, "--since", "yesterday"])
    assert result.exit_code == 2 and "--since wants a date" in result.output
    target = tmp_path / "audit.csv"
    result = runner.invoke(app, ["audit", "export", str(target), *db, "--action", "users.*"])
    assert result.exit_code == 0, result.output
    assert [r["id"] for r in csv.DictReader(target.open(encoding="utf-8"))] == ["2", "4"]
    result = runner.invoke(app, ["audit", "verify", *db])
    assert result.exit_code == 0 and "intact: 5 entries" in result.output
    _untrigger(engine)
    with engine.begin() as conn:
        conn.execute(sa.update(audit_table).where(audit_table.c.id == 4).values(target="x"))
    result = runner.invoke(app, ["audit", "verify", *db])
    assert result.exit_code == 1 and "BROKEN at entry #4" in result.output
