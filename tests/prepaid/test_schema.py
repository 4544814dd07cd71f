"""The prepaid migrations build exactly the tables the code declares.

A table changed without a migration (or the reverse) would pass every other test on a
fresh database and break a deployed one; Alembic's autogenerate comparison, over every
table module (:mod:`prepaid.migrations.discover`), finds the drift. Only ``prepaid_*``
tables are compared (the head-end has its own test).
"""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Engine

from prepaid.db import VERSION_TABLE
from prepaid.migrations.discover import import_table_modules, table_module_names
from prepaid.models import metadata

from .security_helpers import fresh_engine


def _ours(name: str | None) -> bool:
    return bool(name and name.startswith("prepaid_") and name != VERSION_TABLE)


def _include(obj: object, name: str | None, type_: str, _reflected: bool, _other: object) -> bool:
    if type_ == "table":
        return _ours(name)
    table = getattr(obj, "table", None)
    return table is None or _ours(getattr(table, "name", None))


def _drift(engine: Engine) -> list[object]:
    import_table_modules()
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "include_object": _include}
        )
        return list(compare_metadata(context, metadata))


def test_every_table_module_is_found() -> None:
    names = table_module_names()
    # modules that keep their tables next to their code, not in a models/tables module
    assert {"prepaid.users", "prepaid.audit", "prepaid.workorders", "prepaid.vending"} <= set(names)
    assert {"prepaid.models", "prepaid.workflows.tables", "prepaid.cis.tables"} <= set(names)


def test_migrated_schema_matches_the_code(tmp_path: Path) -> None:
    assert _drift(fresh_engine(tmp_path)) == []
