"""Opening the head-end database and migrating it (持久化).

SQLite is the embedded default: a file under the data directory (``$FEIKONG_DATA``
or ``./data``), created on first run, in WAL mode with a busy timeout so that
several processes can share it. PostgreSQL is chosen by URL
(``postgresql+psycopg://user:pass@host/db``); its driver, psycopg 3, is only needed
when such a URL is used.

The schema is owned by Alembic (``headend/migrations``), with its own version
table (``headend_alembic_version``) so other packages can keep their own migration
trees in the same database.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.engine.url import URL
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError, SQLAlchemyError
from sqlmodel import Session, create_engine

from .errors import DatabaseError, DatabaseURLError, DriverMissingError

__all__ = [
    "DATA_ENV",
    "DEFAULT_FILE",
    "MIGRATIONS_DIR",
    "VERSION_TABLE",
    "current_revision",
    "default_url",
    "describe_error",
    "head_revision",
    "migrate",
    "open_database",
    "session",
]

log = logging.getLogger(__name__)

DATA_ENV: Final = "FEIKONG_DATA"
DEFAULT_FILE: Final = "feikong.db"
MIGRATIONS_DIR: Final = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE: Final = "headend_alembic_version"
SQLITE_BUSY_TIMEOUT_MS: Final = 5000

_DRIVER_HINTS: Final = {
    "psycopg": "pip install 'psycopg[binary]'",
    "psycopg2": "pip install psycopg2-binary (or use postgresql+psycopg:// with psycopg 3)",
}


def default_url() -> str:
    """``sqlite:///<data dir>/feikong.db``, the data dir being ``$FEIKONG_DATA`` or ``./data``."""
    data_dir = Path(os.environ.get(DATA_ENV) or "data")
    return URL.create("sqlite", database=str(data_dir / DEFAULT_FILE)).render_as_string()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS:d}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA synchronous = NORMAL")
    finally:
        cursor.close()


def open_database(url: str | None = None, *, echo: bool = False) -> Engine:
    """An engine for ``url`` (default: :func:`default_url`); the SQLite file is created.

    Raises :class:`DatabaseURLError` for a malformed or unsupported URL and
    :class:`DriverMissingError` when the database's driver is not installed.
    The schema is not touched: call :func:`migrate` for that.
    """
    text = url or default_url()
    try:
        parsed = make_url(text)
    except ArgumentError:
        raise DatabaseURLError(
            f"not a database URL: {text!r}; use sqlite:///path/to/feikong.db or "
            "postgresql+psycopg://user:password@host/dbname"
        ) from None
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise DatabaseURLError(
            f"unsupported database {backend!r} in {parsed.render_as_string()!r}; "
            "the head-end runs on sqlite:///FILE or postgresql+psycopg://…"
        )
    kwargs: dict[str, Any] = {"echo": echo}
    if backend == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            try:
                Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise DatabaseError(f"cannot create the directory for {database!r}: {exc}") from exc
    else:
        kwargs["pool_pre_ping"] = True
    try:
        engine = create_engine(parsed, **kwargs)
    except NoSuchModuleError:
        raise DatabaseURLError(
            f"unknown database driver in {parsed.render_as_string()!r}; "
            "use postgresql+psycopg:// (psycopg 3) or sqlite://"
        ) from None
    except ImportError as exc:
        driver = parsed.get_driver_name()
        hint = _DRIVER_HINTS.get(driver, f"install the {driver!r} driver")
        raise DriverMissingError(
            f"the database driver {driver!r} for {parsed.render_as_string()!r} "
            f"is not installed ({exc}); {hint}"
        ) from None
    if backend == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    log.debug("opened %s", parsed.render_as_string())
    return engine


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    return config


def _joined(revisions: Iterable[str]) -> str | None:
    return ",".join(sorted(revisions)) or None


def head_revision() -> str | None:
    """The newest migration revision shipped with this version of the code.

    The migrations may branch (one branch per feature, e.g. ``collection``, off the
    initial schema); then this is every branch head, sorted and joined with ``,``.
    """
    return _joined(ScriptDirectory.from_config(_alembic_config()).get_heads())


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (``None`` before the first :func:`migrate`).

    With branched migrations: every applied branch head, sorted and joined with ``,``
    (so it equals :func:`head_revision` once the database is up to date).
    """
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
        return _joined(context.get_current_heads())


def describe_error(engine: Engine, exc: SQLAlchemyError, doing: str) -> str:
    """One line for an operator: what failed on which database, and what to check
    (the driver's first line, without SQLAlchemy's background link)."""
    url = engine.url.render_as_string()  # the password hidden
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip().splitlines()
    first = text[0].strip() if text else type(exc).__name__
    if isinstance(exc, OperationalError) and (
        "connect" in first.lower() or "unable to open" in first.lower()
    ):
        return (
            f"cannot {doing} {url}: the database cannot be reached ({first}); "
            "check that the server is running and that the --db URL is right"
        )
    return f"cannot {doing} {url}: {first}"


def migrate(engine: Engine, revision: str = "heads") -> str | None:
    """Upgrade the schema to ``revision`` (Alembic; default: every branch head).

    A no-op when already there. Returns :func:`current_revision` afterwards.
    """
    config = _alembic_config()
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    except SQLAlchemyError as exc:
        raise DatabaseError(describe_error(engine, exc, "migrate")) from exc
    return current_revision(engine)


@contextmanager
def session(engine: Engine) -> Iterator[Session]:
    """A SQLModel session that commits on success and rolls back on error."""
    with Session(engine) as s:
        try:
            yield s
            s.commit()
        except BaseException:
            s.rollback()
            raise
