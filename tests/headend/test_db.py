"""Opening and migrating the head-end database."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from headend.db import (
    VERSION_TABLE,
    current_revision,
    head_revision,
    migrate,
    open_database,
    session,
)
from headend.errors import DatabaseURLError, DriverMissingError, HeadendError
from headend.models import Channel, ChannelKind, Job, JobAttempt, Meter

TABLES = {
    "headend_channel",
    "headend_meter",
    "headend_reading",
    "headend_job",
    "headend_job_attempt",
    VERSION_TABLE,
}


def test_migrate_creates_the_tables_on_a_fresh_file(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "dir" / "fresh.db"
    engine = open_database(f"sqlite:///{path}")
    assert current_revision(engine) is None
    assert migrate(engine) == head_revision()
    assert path.exists()
    assert set(inspect(engine).get_table_names()) >= TABLES
    with engine.connect() as c:
        assert c.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert c.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000
        assert c.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_migrate_twice_is_a_no_op(tmp_path: Path) -> None:
    engine = open_database(f"sqlite:///{tmp_path / 'twice.db'}")
    first = migrate(engine)
    with engine.begin() as c:
        c.execute(
            Channel.__table__.insert().values(name="a", kind="tcp", host="h", port=1)  # type: ignore[attr-defined]
        )
    assert migrate(engine) == first
    with engine.connect() as c:
        assert c.execute(text("SELECT count(*) FROM headend_channel")).scalar() == 1
        # one version row per migration branch head, however often migrate() runs
        heads = (head_revision() or "").split(",")
        assert c.execute(text(f"SELECT count(*) FROM {VERSION_TABLE}")).scalar() == len(heads)


def test_other_tables_in_the_same_database_are_left_alone(tmp_path: Path) -> None:
    engine = open_database(f"sqlite:///{tmp_path / 'shared.db'}")
    with engine.begin() as c:
        c.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)"))
        c.execute(text("INSERT INTO alembic_version VALUES ('someone_elses')"))
        c.execute(text("CREATE TABLE prepaid_account (id INTEGER PRIMARY KEY)"))
    migrate(engine)
    with engine.connect() as c:
        assert c.execute(text("SELECT version_num FROM alembic_version")).scalar() == (
            "someone_elses"
        )
    assert "prepaid_account" in inspect(engine).get_table_names()


def test_default_url_is_under_the_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEIKONG_DATA", str(tmp_path / "data"))
    engine = open_database(None)
    migrate(engine)
    assert (tmp_path / "data" / "feikong.db").exists()


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("not a url", "not a database URL"),
        ("mysql://u@h/db", "unsupported database 'mysql'"),
        ("postgresql+nosuchdriver://h/db", "unknown database driver"),
    ],
)
def test_bad_urls_say_what_to_use(url: str, words: str) -> None:
    with pytest.raises(DatabaseURLError, match=words) as info:
        open_database(url)
    assert isinstance(info.value, HeadendError)
    assert "sqlite" in str(info.value)


def test_missing_postgres_driver_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # Hide the driver, as on a machine where it was never installed.
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(DriverMissingError, match=r"psycopg\[binary\]") as info:
        open_database("postgresql+psycopg://user:secret@localhost/feikong")
    assert "secret" not in str(info.value)


def test_session_helper_and_command_log_keeps_every_attempt(engine: object) -> None:
    from sqlalchemy.engine import Engine

    assert isinstance(engine, Engine)
    with session(engine) as s:
        channel = Channel(name="gw", kind=ChannelKind.TCP.value, host="h", port=6455)
        s.add(channel)
        s.flush()
        assert channel.id is not None
        s.add(
            Meter(
                address="123456781012",
                meter_number="M1",
                kind="remote",
                channel_id=channel.id,
                breaker_type="internal",
            )
        )
        s.flush()
        s.add(Job(id="job-1", kind="trip", meter_address="123456781012"))
        s.flush()
        for n in (1, 2, 3):
            s.add(JobAttempt(job_id="job-1", attempt_no=n, outcome="timeout", error="no reply"))
    with engine.connect() as c:
        assert c.execute(text("SELECT count(*) FROM headend_job_attempt")).scalar() == 3
        assert c.execute(text("SELECT state FROM headend_job")).scalar() == "queued"
