"""The same schema and upserts on a real PostgreSQL (skipped without initdb or psycopg).

The server is a throw-away cluster in a temporary directory on a free port; as
root (a container) it runs as the ``postgres`` user, since initdb refuses root.
"""

from __future__ import annotations

import glob
import io
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from headend.archive import export_archive, import_archive
from headend.db import head_revision, migrate, open_database
from headend.readings import NewReading, store_readings


def _pg_tool(name: str) -> str | None:
    """A PostgreSQL server tool: on PATH, or in Debian's versioned bin folder."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


INITDB, PG_CTL = _pg_tool("initdb"), _pg_tool("pg_ctl")
if os.environ.get("CI"):
    # In CI the server and the driver are installed by .ci/run and pyproject: never skip.
    import psycopg  # noqa: F401

    assert INITDB and PG_CTL, "PostgreSQL server tools missing: .ci/run installs postgresql"
else:
    pytest.importorskip("psycopg")
    if not (INITDB and PG_CTL):
        pytest.skip(
            "no PostgreSQL server tools (Debian package postgresql)", allow_module_level=True
        )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    # Not under pytest's tmp dir: that is private to root, and the server may run as postgres.
    base = Path(tempfile.mkdtemp(prefix="feikong-pg-"))
    data = base / "data"
    prefix: list[str] = []
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            pytest.skip("running as root without runuser")
        shutil.chown(base, "postgres")
        base.chmod(0o755)
        prefix = ["runuser", "-u", "postgres", "--"]
    user = "postgres" if prefix else os.environ.get("USER", "postgres")
    port = _free_port()

    def run(*args: str) -> None:
        done = subprocess.run([*prefix, *args], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr

    run(str(INITDB), "-D", str(data), "-U", user, "--auth=trust", "-E", "UTF8")
    run(
        str(PG_CTL),
        "-D",
        str(data),
        "-o",
        f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off",
        "-l",
        str(base / "log"),
        "-w",
        "start",
    )
    try:
        yield f"postgresql+psycopg://{user}@127.0.0.1:{port}/postgres"
    finally:
        run(str(PG_CTL), "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def pg(pg_url: str) -> Iterator[Engine]:
    engine = open_database(pg_url)
    migrate(engine)
    yield engine
    with engine.begin() as c:
        c.execute(text("TRUNCATE headend_job_attempt, headend_job, headend_reading CASCADE"))
        c.execute(text("TRUNCATE headend_meter, headend_channel CASCADE"))
    engine.dispose()


ARCHIVE = """\
record,name,kind,host,port,address,meter_number,channel,breaker_type
channel,gw,tcp,127.0.0.1,6455,,,,
meter,,remote,,,000000000001,M1,gw,internal
meter,,remote,,,bad,M2,gw,internal
"""


def test_migrate_import_export_and_readings_on_postgres(pg: Engine, tmp_path: Path) -> None:
    assert migrate(pg) == head_revision()
    report = import_archive(pg, io.StringIO(ARCHIVE))
    assert (report.loaded, [e.line for e in report.errors]) == (2, [4])
    assert import_archive(pg, io.StringIO(ARCHIVE)).updated == 2
    assert export_archive(pg, tmp_path / "out.csv") == (1, 1)
    reading = NewReading("000000000001", 0x00010000, date(2026, 3, 1), "1.00", 100)
    assert store_readings(pg, [reading]).written == 1
    assert store_readings(pg, [reading]).written == 0
    with pg.connect() as c:
        assert c.execute(text("SELECT count(*) FROM headend_reading")).scalar() == 1
