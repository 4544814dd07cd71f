"""Alembic environment of the head-end schema.

Run programmatically by :func:`headend.db.migrate`, which passes an open connection.
For development (``alembic -c headend/migrations/alembic.ini revision
--autogenerate -m "…"``) the database is ``$FEIKONG_DB`` or the default SQLite file.
Only ``headend_*`` tables are compared, so other packages' tables are left alone.
"""

from __future__ import annotations

import os
from typing import Any

from alembic import context
from sqlalchemy.engine import Connection

from headend import models
from headend.db import VERSION_TABLE, open_database


def _ours(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    if type_ == "table":
        return bool(name and name.startswith("headend_") and name != VERSION_TABLE)
    table = getattr(obj, "table", None)
    return table is None or str(table.name).startswith("headend_")


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=models.metadata,
        version_table=VERSION_TABLE,
        render_as_batch=connection.dialect.name == "sqlite",
        include_object=_ours,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def main() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = open_database(os.environ.get("FEIKONG_DB"))
    with engine.begin() as conn:
        _run(conn)


main()
