"""Set-based selection of accounts with their settings in force, in one SQL statement.

Every workflow here starts from the same rows: an active account, its rating state
(the real-time balance), its transformer area and feeder line codes, and the settings
in force for it (customer over area over line over default), resolved by the database
(:meth:`prepaid.settings.SettingsStore.sql_value`: three primary-key lookups per row,
no query per account from Python). :class:`Population` builds those statements;
:class:`Selection` narrows them to chosen areas, lines, supply units or customers.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from ..models import Account, NotifyMode, RatingState, SupplyUnit
from ..settings import Level, SettingsStore, spec_of
from ._errors import SelectionError

__all__ = [
    "ACCOUNT",
    "AREA",
    "FETCH_CHUNK",
    "STATE",
    "Population",
    "Selection",
    "chunks",
    "id_chunks",
]

FETCH_CHUNK: Final = 5_000
"""Rows per chunk when candidates are fetched, rendered and written (one transaction)."""

_MAX_LISTED: Final = 50_000

ACCOUNT: Final[sa.Table] = Account.__table__  # type: ignore[attr-defined]
STATE: Final[sa.Table] = RatingState.__table__  # type: ignore[attr-defined]
UNIT: Final[sa.Table] = SupplyUnit.__table__  # type: ignore[attr-defined]
AREA: Final = sa.table(
    "prepaid_transformer_area", sa.column("id"), sa.column("code"), sa.column("feeder_line_id")
)
_LINE: Final = sa.table("prepaid_feeder_line", sa.column("id"), sa.column("code"))


def _codes(values: Iterable[str], what: str) -> tuple[str, ...]:
    out = tuple(dict.fromkeys(v.strip() for v in values if v and v.strip()))
    if len(out) > _MAX_LISTED:
        raise SelectionError(
            f"{len(out)} {what} listed; at most {_MAX_LISTED} at once: choose by area or line"
        )
    return out


@dataclass(frozen=True, slots=True)
class Selection:
    """Which accounts: those of the given supply units, lines, areas **or** customers.

    The criteria add up (a union): ``Selection(areas=("A7",), customers=("3301",))``
    is every account of area A7 plus customer 3301. An empty selection is everyone.
    """

    supply_units: tuple[str, ...] = ()
    lines: tuple[str, ...] = ()
    areas: tuple[str, ...] = ()
    customers: tuple[str, ...] = ()

    @classmethod
    def of(
        cls,
        *,
        supply_units: Iterable[str] = (),
        lines: Iterable[str] = (),
        areas: Iterable[str] = (),
        customers: Iterable[str] = (),
    ) -> Selection:
        return cls(
            _codes(supply_units, "supply units"),
            _codes(lines, "lines"),
            _codes(areas, "areas"),
            _codes(customers, "customers"),
        )

    @property
    def everyone(self) -> bool:
        return not (self.supply_units or self.lines or self.areas or self.customers)

    def to_dict(self) -> dict[str, list[str]]:
        return {
            "supply_units": list(self.supply_units),
            "lines": list(self.lines),
            "areas": list(self.areas),
            "customers": list(self.customers),
        }

    def __str__(self) -> str:
        if self.everyone:
            return "every account"
        parts = []
        for label, values in (
            ("supply unit", self.supply_units),
            ("line", self.lines),
            ("area", self.areas),
            ("customer", self.customers),
        ):
            if values:
                shown = ", ".join(values[:5]) + (
                    f" (+{len(values) - 5})" if len(values) > 5 else ""
                )
                parts.append(f"{label} {shown}")
        return " or ".join(parts)


class Population:
    """The FROM clause and columns shared by the workflows' statements.

    ``line`` and ``area`` are the codes the settings are keyed by: an account's own
    feeder line, else its area's line (as :class:`prepaid.settings.AccountsDirectory`
    places customers).
    """

    def __init__(self, settings: SettingsStore) -> None:
        self.settings = settings
        self.account = ACCOUNT
        self.state = STATE
        self.area_t = AREA.alias("pop_area")
        own_line = _LINE.alias("pop_line")
        area_line = _LINE.alias("pop_area_line")
        self.unit_t = UNIT.alias("pop_unit")
        self._own_line = own_line
        self._area_line = area_line
        self.line: ColumnElement[Any] = sa.func.coalesce(own_line.c.code, area_line.c.code)
        self.area: ColumnElement[Any] = self.area_t.c.code
        self.customer: ColumnElement[Any] = ACCOUNT.c.customer_no

    def from_(self, *, state: bool = True) -> Any:
        """account ⋈ rating state, ⟕ area, lines and supply unit."""
        a = self.account
        base: Any = a
        if state:
            base = base.join(self.state, self.state.c.account_id == a.c.id)
        return (
            base.outerjoin(self.area_t, self.area_t.c.id == a.c.transformer_area_id)
            .outerjoin(self._own_line, self._own_line.c.id == a.c.feeder_line_id)
            .outerjoin(self._area_line, self._area_line.c.id == self.area_t.c.feeder_line_id)
            .join(self.unit_t, self.unit_t.c.id == a.c.supply_unit_id)
        )

    # -- settings in SQL -----------------------------------------------------------

    def setting(self, name: str, *, per_customer: bool = True) -> ColumnElement[str]:
        """The stored text of ``name`` in force for each row (see ``SettingsStore.sql_value``)."""
        return self.settings.sql_value(
            name,
            line=self.line,
            area=self.area,
            customer=self.customer if per_customer else None,
        )

    def fen(self, name: str) -> ColumnElement[int]:
        return sa.cast(self.setting(name), sa.BigInteger())

    def flag(self, name: str) -> ColumnElement[bool]:
        """A per-area flag (auto reminder, auto dunning) is true for the row's area."""
        per_customer = Level.CUSTOMER in spec_of(name).levels
        return self.setting(name, per_customer=per_customer) == "true"

    def paper(self) -> ColumnElement[bool]:
        """The account is notified on paper: by the settings, or by its own record (CIS)."""
        return sa.or_(
            self.setting("notification_mode") == NotifyMode.PAPER.value,
            self.account.c.notify_mode == NotifyMode.PAPER.value,
        )

    def max_fen(self, name: str) -> int:
        """The highest value of a money setting anywhere (a cheap pre-filter)."""
        snapshot = self.settings.snapshot([name])
        values = [int(snapshot.default_value(name))]
        for level in (Level.LINE, Level.AREA, Level.CUSTOMER):
            values += [int(v) for v in snapshot.overrides_at(name, level).values()]
        return max(values)

    def min_count(self, name: str) -> int:
        """The lowest value of a count setting anywhere (a cheap pre-filter)."""
        snapshot = self.settings.snapshot([name])
        values = [int(snapshot.default_value(name))]
        for level in (Level.LINE, Level.AREA, Level.CUSTOMER):
            values += [int(v) for v in snapshot.overrides_at(name, level).values()]
        return min(values)

    # -- choosing accounts ---------------------------------------------------------

    def chosen(self, selection: Selection | None) -> ColumnElement[bool]:
        """The WHERE condition of ``selection`` (true for everyone when empty)."""
        if selection is None or selection.everyone:
            return sa.true()
        parts: list[ColumnElement[bool]] = []
        if selection.supply_units:
            parts.append(self.unit_t.c.code.in_(selection.supply_units))
        if selection.lines:
            parts.append(self.line.in_(selection.lines))
        if selection.areas:
            parts.append(self.area.in_(selection.areas))
        if selection.customers:
            parts.append(self.customer.in_(selection.customers))
        return sa.or_(*parts)

    def recipient_columns(self) -> list[Any]:
        a = self.account
        return [
            a.c.id.label("account_id"),
            a.c.customer_no,
            a.c.name,
            a.c.phone,
            a.c.address,
            sa.func.coalesce(self.area, "").label("area"),
            self.paper().label("paper"),
        ]


def chunks(connection: Connection, statement: Any, size: int = FETCH_CHUNK) -> Iterator[list[Any]]:
    """The rows of ``statement`` in lists of ``size`` (one server-side read)."""
    result = connection.execution_options(yield_per=size).execute(statement)
    while True:
        rows = result.fetchmany(size)
        if not rows:
            return
        yield list(rows)


def id_chunks(ids: Sequence[int], size: int = 900) -> Iterator[Sequence[int]]:
    for i in range(0, len(ids), size):
        yield ids[i : i + size]
