"""Tariffs as data: dicts (database rows) and TOML files, both ways.

A TOML file holds one or more ``[[tariff]]`` tables, one per version::

    [[tariff]]
    id = "res-monthly"
    name = "Residential, monthly tiers"
    version = 1
    effective_from = 2024-01-01      # effective_to = 2025-06-30 (inclusive, optional)
    kind = "tiered"                  # or "flat"
    cycle = "monthly"                # or "annual" (+ cycle_start_month = 1)
    thresholds_kwh = [200, 400]      # per cycle
    prices = [0.52, 0.57, 0.82]      # yuan/kWh, at most 4 decimals
    free_allowance_kwh = 15          # optional, per cycle

    [[tariff.season]]                # optional, monthly cycles only
    months = [5, 6, 7, 8, 9, 10]
    thresholds_kwh = [260, 600]

    [[tariff.household_uplift]]      # optional
    min_persons = 5
    add_kwh = [100, 100]

    [[tariff.tou]]                   # optional: 2 (peak, valley) or 4 periods
    period = "peak"
    delta = 0.03                     # yuan/kWh added to each tier's price
    segments = ["08:00-22:00"]

Numbers are read as ``Decimal`` (never float). The dict form (:func:`tariff_to_dict`)
has the same keys with decimals and dates as strings, so it is also valid JSON.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from ._book import TariffBook
from ._errors import TariffError
from ._model import Cycle, HouseholdUplift, Season, Tariff, TariffKind, TouPeriod, format_minute
from ._units import ckwh_to_kwh, e4_to_yuan, kwh_to_ckwh, yuan_to_e4

TARIFF_KEYS = (
    "id",
    "name",
    "version",
    "effective_from",
    "effective_to",
    "kind",
    "cycle",
    "cycle_start_month",
    "thresholds_kwh",
    "prices",
    "free_allowance_kwh",
    "season",
    "household_uplift",
    "tou",
)
_SEGMENT = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


class _Reader:
    """Reads one tariff table; every error names the key and what is expected."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.data = data
        self.label: str | None = None

    def fail(self, key: str, detail: str) -> TariffError:
        return TariffError(detail, key=key, source=self.label)

    def required(self, key: str, expected: str) -> Any:
        if key not in self.data:
            raise self.fail(key, f"missing key: expected {expected}")
        return self.data[key]

    def text(self, key: str, value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(key, f"expected a non-empty string, got {value!r}")
        return value

    def integer(self, key: str, value: Any, expected: str = "an integer") -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(key, f"expected {expected}, got {value!r}")
        return value

    def day(self, key: str, value: Any) -> date:
        if isinstance(value, datetime):
            raise self.fail(key, f"expected a date YYYY-MM-DD without a time, got {value}")
        if isinstance(value, date):
            return value
        if isinstance(value, str):
            try:
                return date.fromisoformat(value.strip())
            except ValueError:
                pass
        raise self.fail(key, f"expected a date YYYY-MM-DD, got {value!r}")

    def items(self, key: str, value: Any, expected: str) -> list[Any]:
        if not isinstance(value, list):
            raise self.fail(key, f"expected a list of {expected}, got {value!r}")
        return value

    def tables(self, key: str) -> list[Mapping[str, Any]]:
        value = self.data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
            raise self.fail(key, f"expected an array of tables [[tariff.{key}]], got {value!r}")
        return value

    def kwh_list(self, key: str, value: Any) -> tuple[int, ...]:
        values = self.items(key, value, "kWh values")
        return tuple(self._wrap(key, lambda v=v: kwh_to_ckwh(v, key=key)) for v in values)

    def _wrap(self, key: str, func: Any) -> Any:
        try:
            return func()
        except TariffError as exc:
            raise self.fail(key, exc.detail) from None

    def kwh(self, key: str, value: Any) -> int:
        return int(self._wrap(key, lambda: kwh_to_ckwh(value, key=key)))

    def price(self, key: str, value: Any, *, signed: bool = False) -> int:
        return int(self._wrap(key, lambda: yuan_to_e4(value, key=key, signed=signed)))

    def unknown_keys(
        self, key_prefix: str, table: Mapping[str, Any], known: tuple[str, ...]
    ) -> None:
        for name in table:
            if name not in known:
                raise self.fail(
                    f"{key_prefix}{name}",
                    f"unknown key: expected one of {', '.join(known)}",
                )

    def enum(self, key: str, value: Any, choices: tuple[str, ...]) -> str:
        if value not in choices:
            raise self.fail(key, f"expected one of {', '.join(choices)}, got {value!r}")
        return str(value)


def _parse_segment(reader: _Reader, key: str, text: Any) -> tuple[int, int]:
    match = _SEGMENT.match(text) if isinstance(text, str) else None
    if match:
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        start, end = h1 * 60 + m1, h2 * 60 + m2
        if m1 < 60 and m2 < 60 and start < 24 * 60 and end <= 24 * 60:
            return start, end
    raise reader.fail(
        key, f"expected a time segment 'HH:MM-HH:MM' (e.g. '22:00-08:00'), got {text!r}"
    )


def tariff_from_dict(data: Mapping[str, Any], *, source: str = "tariff") -> Tariff:
    """A :class:`Tariff` from a dict (database row) or a ``[[tariff]]`` TOML table."""
    if not isinstance(data, Mapping):
        raise TariffError(f"expected a table of tariff keys, got {data!r}", source=source)
    r = _Reader(data)
    try:
        return _read(r)
    except TariffError as exc:
        raise exc.located(source) from None


def _read(r: _Reader) -> Tariff:
    data = r.data
    ident = r.text("id", r.required("id", "a tariff id string"))
    r.label = repr(ident)
    version = r.integer(
        "version", r.required("version", "a version number ≥ 1"), "a version number ≥ 1"
    )
    r.label = f"{ident!r} v{version}"
    r.unknown_keys("", data, TARIFF_KEYS)
    name = r.text("name", r.required("name", "a display name"))
    effective_from = r.day("effective_from", r.required("effective_from", "a date YYYY-MM-DD"))
    effective_to = r.day("effective_to", data["effective_to"]) if "effective_to" in data else None
    kind = TariffKind(
        r.enum("kind", data.get("kind", "tiered"), tuple(k.value for k in TariffKind))
    )
    cycle = Cycle(r.enum("cycle", data.get("cycle", "monthly"), tuple(c.value for c in Cycle)))
    start_month = r.integer("cycle_start_month", data.get("cycle_start_month", 1), "a month 1..12")
    prices = tuple(
        r.price("prices", p)
        for p in r.items("prices", r.required("prices", "a list of prices"), "prices in yuan/kWh")
    )
    thresholds: tuple[int, ...] = ()
    if "thresholds_kwh" in data:
        thresholds = r.kwh_list("thresholds_kwh", data["thresholds_kwh"])
    elif kind is TariffKind.TIERED:
        r.required("thresholds_kwh", "ascending tier thresholds in kWh (e.g. [200, 400])")
    free = r.kwh("free_allowance_kwh", data.get("free_allowance_kwh", 0))

    seasons = []
    for i, table in enumerate(r.tables("season")):
        key = f"season[{i}]"
        r.unknown_keys(f"{key}.", table, ("months", "thresholds_kwh"))
        months = tuple(
            r.integer(f"{key}.months", m, "months 1..12")
            for m in r.items(
                f"{key}.months", table.get("months"), "months 1..12 (e.g. [5, 6, 7, 8, 9, 10])"
            )
        )
        if "thresholds_kwh" not in table:
            raise r.fail(f"{key}.thresholds_kwh", "missing key: expected the season's thresholds")
        seasons.append(Season(months, r.kwh_list(f"{key}.thresholds_kwh", table["thresholds_kwh"])))

    uplifts = []
    for i, table in enumerate(r.tables("household_uplift")):
        key = f"household_uplift[{i}]"
        r.unknown_keys(f"{key}.", table, ("min_persons", "add_kwh"))
        persons = r.integer(f"{key}.min_persons", table.get("min_persons"), "a household size ≥ 1")
        if "add_kwh" not in table:
            raise r.fail(f"{key}.add_kwh", "missing key: expected kWh added to each threshold")
        uplifts.append(HouseholdUplift(persons, r.kwh_list(f"{key}.add_kwh", table["add_kwh"])))

    periods = []
    for i, table in enumerate(r.tables("tou")):
        key = f"tou[{i}]"
        r.unknown_keys(f"{key}.", table, ("period", "delta", "segments"))
        period = r.text(f"{key}.period", table.get("period"))
        if "delta" not in table:
            raise r.fail(f"{key}.delta", "missing key: expected the price delta in yuan/kWh")
        delta = r.price(f"{key}.delta", table["delta"], signed=True)
        segments = tuple(
            _parse_segment(r, f"{key}.segments", s)
            for s in r.items(f"{key}.segments", table.get("segments"), "'HH:MM-HH:MM' strings")
        )
        periods.append(TouPeriod(period, delta, segments))

    return Tariff(
        id=ident,
        name=name,
        version=version,
        effective_from=effective_from,
        effective_to=effective_to,
        kind=kind,
        cycle=cycle,
        cycle_start_month=start_month,
        thresholds_ckwh=thresholds,
        prices_e4=prices,
        free_allowance_ckwh=free,
        seasons=tuple(seasons),
        uplifts=tuple(uplifts),
        tou=tuple(periods),
    )


def _kwh_text(ckwh: int) -> str:
    return str(ckwh_to_kwh(ckwh))


def tariff_to_dict(tariff: Tariff) -> dict[str, Any]:
    """The tariff as a JSON/TOML-compatible dict; :func:`tariff_from_dict` reads it back."""
    out: dict[str, Any] = {
        "id": tariff.id,
        "name": tariff.name,
        "version": tariff.version,
        "effective_from": tariff.effective_from.isoformat(),
    }
    if tariff.effective_to is not None:
        out["effective_to"] = tariff.effective_to.isoformat()
    out["kind"] = tariff.kind.value
    out["cycle"] = tariff.cycle.value
    if tariff.cycle is Cycle.ANNUAL:
        out["cycle_start_month"] = tariff.cycle_start_month
    if tariff.thresholds_ckwh:
        out["thresholds_kwh"] = [_kwh_text(t) for t in tariff.thresholds_ckwh]
    out["prices"] = [str(e4_to_yuan(p)) for p in tariff.prices_e4]
    if tariff.free_allowance_ckwh:
        out["free_allowance_kwh"] = _kwh_text(tariff.free_allowance_ckwh)
    if tariff.seasons:
        out["season"] = [
            {"months": list(s.months), "thresholds_kwh": [_kwh_text(t) for t in s.thresholds_ckwh]}
            for s in tariff.seasons
        ]
    if tariff.uplifts:
        out["household_uplift"] = [
            {"min_persons": u.min_persons, "add_kwh": [_kwh_text(a) for a in u.add_ckwh]}
            for u in tariff.uplifts
        ]
    if tariff.tou:
        out["tou"] = [
            {
                "period": p.name,
                "delta": str(e4_to_yuan(p.delta_e4)),
                "segments": [f"{format_minute(s)}-{format_minute(e)}" for s, e in p.segments],
            }
            for p in tariff.tou
        ]
    return out


def loads_book(text: str, *, source: str = "<string>") -> TariffBook:
    """A :class:`TariffBook` from TOML text with ``[[tariff]]`` tables."""
    try:
        document = tomllib.loads(text, parse_float=Decimal)
    except tomllib.TOMLDecodeError as exc:
        raise TariffError(f"not valid TOML: {exc}", source=source) from None
    for key in document:
        if key != "tariff":
            raise TariffError(
                "unknown top-level key: expected only [[tariff]] tables", key=key, source=source
            )
    tables = document.get("tariff")
    if not isinstance(tables, list) or not tables:
        raise TariffError(
            "missing key: expected at least one [[tariff]] table", key="tariff", source=source
        )
    tariffs = [tariff_from_dict(t, source=f"{source}: tariff[{i}]") for i, t in enumerate(tables)]
    try:
        return TariffBook(tariffs)
    except TariffError as exc:
        raise exc.located(source) from None


def load_book(path: str | Path) -> TariffBook:
    """Read a tariff TOML file; every problem raises :class:`TariffError` naming the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise TariffError(f"cannot read the tariff file: {reason}", source=str(path)) from None
    return loads_book(text, source=str(path))
