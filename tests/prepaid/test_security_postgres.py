"""Settings, operators and the audit log on a real PostgreSQL (skipped without initdb or
psycopg, like the head-end's): the append-only triggers, concurrent appends to one
chain, set-based SQL resolution."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DatabaseError

from prepaid.audit import AuditLog, audit_table
from prepaid.db import migrate, open_database
from prepaid.settings import Level, Scope, SettingsStore, Source, load_defaults
from prepaid.users import Role
from protocol.clock import SteppedClock

from ..headend.test_postgres import pg_url
from .security_helpers import PASSWORD, START, make_users

_names = itertools.count()
_ = pg_url


@pytest.fixture
def engine(pg_url: str) -> Iterator[Engine]:
    """A fresh database of its own on the test cluster, migrated."""
    name = f"feikong_security_{next(_names)}"
    admin = open_database(pg_url)
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.execute(sa.text(f"CREATE DATABASE {name}"))
    url = make_url(pg_url).set(database=name).render_as_string(hide_password=False)
    engine = open_database(url)
    migrate(engine)
    yield engine
    engine.dispose()
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.execute(sa.text(f"DROP DATABASE {name}"))
    admin.dispose()


def test_the_audit_log_is_append_only_on_postgres(engine: Engine) -> None:
    log = AuditLog(engine, SteppedClock(START))
    log.record("alice", "settings.set", "setting:line:L1:reminder_amount")
    for statement in (
        sa.update(audit_table).values(actor="mallory"),
        sa.delete(audit_table),
        sa.text("TRUNCATE prepaid_audit"),
        sa.text("DELETE FROM prepaid_setting_change"),
    ):
        with pytest.raises(DatabaseError, match="append-only"), engine.begin() as conn:
            conn.execute(statement)
    assert [e.actor for e in log.query()] == ["alice"] and log.verify().ok


def test_concurrent_writers_keep_one_chain_on_postgres(engine: Engine) -> None:
    clock = SteppedClock(START)
    errors: list[BaseException] = []

    def write(who: str) -> None:
        log = AuditLog(engine, clock)
        try:
            for i in range(30):
                log.record(who, "test.write", f"item:{i}")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in "abc"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    report = AuditLog(engine, clock).verify()
    assert report.ok and report.checked == 90


def test_settings_and_users_on_postgres(engine: Engine) -> None:
    clock = SteppedClock(START)
    users = make_users(engine, clock)
    users.add("root", display_name="r", password=PASSWORD, roles=[Role.ADMIN], by=None)
    admin = users.authenticate("root", PASSWORD)
    store = SettingsStore(
        engine, clock=clock, audit=users.audit, defaults=load_defaults(use_env=False)
    )
    store.set("reminder_amount", "12.34", level="area", key="A1", user=admin)
    store.set("reminder_amount", "-0", level="customer", key="C2", user=admin)
    found = store.lookup("reminder_amount", Scope(line="L1", area="A1", customer="C1"))
    assert (found.value, found.source) == (1234, Source(Level.AREA, "A1"))
    rows = sa.values(sa.column("c", sa.String), sa.column("a", sa.String), name="t").data(
        [("C1", "A1"), ("C2", "A1"), ("C3", "A9")]
    )
    query = sa.select(
        rows.c.c, store.sql_fen("reminder_amount", line=None, area=rows.c.a, customer=rows.c.c)
    ).order_by(rows.c.c)
    with engine.connect() as conn:
        assert [tuple(r) for r in conn.execute(query)] == [("C1", 1234), ("C2", 0), ("C3", 2000)]
    assert [e.action for e in users.audit.query()] == [
        "users.add",
        "login",
        "settings.set",
        "settings.set",
    ]
    assert users.audit.verify().ok
