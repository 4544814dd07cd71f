"""Finding every module of ``prepaid`` that declares tables, for Alembic's autogenerate
and the schema-drift test.

A table module is any module of the ``prepaid`` package tree (migrations excepted) whose
source declares a table: ``sa.Table(`` / ``Table(`` or an SQLModel ``table=True`` class.
Naming conventions (``models`` / ``tables``) are not relied on: ``prepaid.users``,
``prepaid.audit``, ``prepaid.workorders`` and ``prepaid.vending`` keep their tables next
to their code. Importing them registers their tables in ``SQLModel.metadata``.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import re
from pathlib import Path
from typing import Final

import prepaid

__all__ = ["import_table_modules", "table_module_names"]

_DECLARES: Final = re.compile(r"(^|[^.\w])(sa\.)?Table\(|table=True")


def table_module_names() -> list[str]:
    """The dotted names of the modules that declare tables, sorted."""
    names = []
    for info in pkgutil.walk_packages(prepaid.__path__, "prepaid."):
        if info.name.startswith("prepaid.migrations"):
            continue
        spec = importlib.util.find_spec(info.name)
        origin = spec.origin if spec is not None else None
        if not origin or not origin.endswith(".py"):
            continue
        if _DECLARES.search(Path(origin).read_text(encoding="utf-8")):
            names.append(info.name)
    return sorted(names)


def import_table_modules() -> list[str]:
    """Import every table module (see the module doc); returns their names."""
    names = table_module_names()
    for name in names:
        importlib.import_module(name)
    return names
