"""The prepaid platform's database: the head-end's engine, the prepaid migration tree.

The prepaid tables live in the same database as the head-end's (they read
``headend_reading``), opened with :func:`headend.db.open_database` (SQLite file or
PostgreSQL URL). Their schema is a separate Alembic tree (``prepaid/migrations``)
with its own version table ``prepaid_alembic_version``. The tree has independent
branches (``accounts``: customers, rating state and charges; other features add
theirs), so :func:`migrate` upgrades to ``heads``; a branch that needs another's
tables declares ``depends_on`` that branch's revision.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from headend import db as headend_db
from headend.errors import HeadendError

__all__ = [
    "MIGRATIONS_DIR",
    "VERSION_TABLE",
    "PrepaidDatabaseError",
    "bulk_session",
    "current_revisions",
    "head_revisions",
    "migrate",
    "open_database",
]

log = logging.getLogger(__name__)

MIGRATIONS_DIR: Final = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE: Final = "prepaid_alembic_version"


class PrepaidDatabaseError(Exception):
    """The prepaid database cannot be opened or migrated; the message says why."""


def open_database(url: str | None = None, *, echo: bool = False) -> Engine:
    """An engine for ``url`` (see :func:`headend.db.open_database`); schema untouched."""
    try:
        return headend_db.open_database(url, echo=echo)
    except HeadendError as exc:
        raise PrepaidDatabaseError(str(exc)) from exc


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    return config


def head_revisions() -> tuple[str, ...]:
    """The newest revision of every branch shipped with this version of the code."""
    return tuple(sorted(ScriptDirectory.from_config(_alembic_config()).get_heads()))


def current_revisions(engine: Engine) -> tuple[str, ...]:
    """The newest applied revision of every branch (empty before the first :func:`migrate`).

    Alembic stores only the heads not implied by others: a branch another one depends
    on is applied without being stored. This lists it anyway, so ``"m0001" in
    current_revisions(engine)`` says whether that branch is there.
    """
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
        stored = tuple(context.get_current_heads())
    if not stored:
        return ()
    script = ScriptDirectory.from_config(_alembic_config())
    applied = list(script.iterate_revisions(stored, "base"))
    parents: set[str] = set()
    for revision in applied:
        down = revision.down_revision
        parents.update((down,) if isinstance(down, str) else (down or ()))
    return tuple(sorted({r.revision for r in applied} - parents))


def migrate(engine: Engine, *, headend: bool = True) -> tuple[str, ...]:
    """Upgrade the prepaid schema to every branch head (and first the head-end's).

    The prepaid tables read the head-end's (``headend_reading``, ``headend_meter``),
    so the head-end schema is migrated first unless ``headend=False``. A no-op when
    already there; returns :func:`current_revisions`.
    """
    if headend:
        try:
            headend_db.migrate(engine)
        except HeadendError as exc:
            raise PrepaidDatabaseError(str(exc)) from exc
    config = _alembic_config()
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "heads")
    except SQLAlchemyError as exc:
        raise PrepaidDatabaseError(
            headend_db.describe_error(engine, exc, "migrate the prepaid tables of")
        ) from exc
    return current_revisions(engine)


# -- bulk work ------------------------------------------------------------------------

#: SQLite settings for a connection doing bulk work (rating, generation): a big page
#: cache, fewer and larger checkpoints. WAL with synchronous=NORMAL (set on connect) keeps
#: every committed chunk across a crash of the process.
_SQLITE_BULK: Final = (
    "PRAGMA cache_size = -262144",  # 256 MiB
    "PRAGMA temp_store = MEMORY",
    "PRAGMA wal_autocheckpoint = 16384",  # checkpoint every 64 MiB of WAL, not every 4
)


def _apply_bulk_pragmas(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        # many similar statements: compiling each with the JIT costs more than it saves
        connection.exec_driver_sql("SET jit = off")
        return
    if connection.dialect.name != "sqlite":
        return
    raw: Any = connection.connection.driver_connection
    for pragma in _SQLITE_BULK:
        raw.execute(pragma)


@contextmanager
def bulk_session(engine: Engine) -> Iterator[Connection]:
    """A connection tuned for bulk work; the caller begins and commits transactions."""
    with engine.connect() as connection:
        _apply_bulk_pragmas(connection)
        connection.commit()
        yield connection
