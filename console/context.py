"""What every console screen is given: the database, the clock and who is logged in.

The console (操作台) never keeps its own copy of the data: each screen queries the
shared database (SQLite file or PostgreSQL URL) through the prepaid and head-end
packages, one page at a time, and every state-changing action goes through the
same services the CLI uses, so roles are checked and the audit log is written there.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Engine

from prepaid.users import Action, Operator, may
from protocol.clock import Clock

__all__ = ["ConsoleContext"]


@dataclass(frozen=True, slots=True)
class ConsoleContext:
    """The console session: database engine, shared clock and the operator logged in."""

    engine: Engine
    clock: Clock
    user: Operator

    def may(self, action: Action | str, *, supply_unit: str | None = None) -> bool:
        """Whether the operator may take ``action`` (for ``supply_unit``, when given)."""
        return may(self.user, action, supply_unit=supply_unit)
