"""The Alembic migrations build exactly the tables the models declare.

A model changed without a migration (or the reverse) would pass every other test on
a fresh database and then break a deployed one; Alembic's autogenerate comparison
finds the drift.
"""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Engine

import headend.collection  # noqa: F401  (registers the collection-status table)
from headend.models import metadata


def _drift(engine: Engine) -> list[object]:
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection,
            opts={
                "compare_type": False,
                "include_name": _ours,
                "include_object": _our_object,
            },
        )
        return list(compare_metadata(context, metadata))


def _ours(name: str | None, type_: str, _parent: object) -> bool:
    if type_ != "table":
        return True
    table = name or ""
    return table.startswith("headend_") and "alembic" not in table


def _our_object(
    obj: object, name: str | None, type_: str, _reflected: bool, _compare_to: object
) -> bool:
    """Tables of other packages share the metadata; only the head-end's count here."""
    if type_ == "table":
        return _ours(name, type_, None)
    table = getattr(obj, "table", None)
    return table is None or _ours(getattr(table, "name", None), "table", None)


def test_migrated_schema_matches_the_models(engine: Engine) -> None:
    assert _drift(engine) == []
