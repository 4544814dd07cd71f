"""Alembic environment of the prepaid schema.

Run programmatically by :func:`prepaid.db.migrate`, which passes an open connection.
For development (see ``alembic.ini``) the database is ``$FEIKONG_DB`` or the default
SQLite file. Only ``prepaid_*`` tables are compared, so the head-end's are left
alone. The table modules of every branch are found by what they declare (see
:mod:`prepaid.migrations.discover`), not by their names.
"""

from __future__ import annotations

import os
from typing import Any

from alembic import context
from sqlalchemy.engine import Connection

from prepaid.db import VERSION_TABLE, open_database
from prepaid.migrations.discover import import_table_modules
from prepaid.models import metadata


def _import_table_modules() -> None:
    import_table_modules()


def _ours(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    if type_ == "table":
        return bool(name and name.startswith("prepaid_") and name != VERSION_TABLE)
    table = getattr(obj, "table", None)
    return table is None or str(table.name).startswith("prepaid_")


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
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
    _import_table_modules()
    engine = open_database(os.environ.get("FEIKONG_DB"))
    with engine.begin() as conn:
        _run(conn)


main()
