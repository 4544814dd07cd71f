"""Fleet scenarios (仿真场景): which meters to simulate, from flags or a TOML file.

:class:`FleetSpec` is the fleet-wide part (first address, count, defaults of
every meter); :func:`load_scenario` reads a file that sets those defaults and
overrides them per meter or per address range. ``feikong meter-sim --scenario
FILE`` uses it; flags given on the command line win over the ``[fleet]`` table.

Format (every key optional; see ``meter_sim/scenarios/example.toml``)::

    [fleet]
    first_address = 1              # integer or 12-digit string; meters get N, N+1, …
    count = 20
    kind = "remote"                # remote | local
    breaker = "external"           # external | external-remote-close | internal
    permit_close_delay_s = 60.0
    mean_daily_kwh = 8.0
    seed = 0                       # meter i (0-based) gets seed + i
    test_mode = false              # plaintext 1CH accepted

    [fleet.faults]                 # faults of every meter (FaultConfig fields)
    late_reply_s = 0.0

    [fleet.extra]                  # kind-specific settings of every meter
    remaining_yuan = 100.0

    [[meter]]                      # one override: a single meter …
    address = "000000000003"
    kind = "local"
    extra = { remaining_yuan = 5.0 }

    [[meter]]                      # … or an inclusive address range
    range = ["000000000010", "000000000014"]
    faults = { no_reply = true, breaker_fault = "welded" }

An override may set ``kind``, ``breaker``, ``permit_close_delay_s``,
``mean_daily_kwh``, ``test_mode``, ``faults`` (a table of
:class:`~meter_sim.config.FaultConfig` fields, merged onto the fleet's) and
``extra`` (merged onto the fleet's). Overrides apply in file order, so a later
one wins. A mistake raises :class:`ScenarioError` naming the file, the key and
what was expected.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from breaker_sim import BreakerError, parse_fault
from protocol import Address, ProtocolError

from .config import BreakerKind, FaultConfig, MeterConfig, MeterKind

__all__ = [
    "MAX_ADDRESS",
    "FleetSpec",
    "MeterOverride",
    "Scenario",
    "ScenarioError",
    "load_scenario",
    "parse_address_number",
]

logger = logging.getLogger(__name__)

MAX_ADDRESS: Final = 999_999_999_998
"""The highest meter address (999999999999 is broadcast)."""


class ScenarioError(ValueError):
    """A scenario file (or fleet option) is wrong; the message names file, key and expectation."""

    def __init__(self, source: str, key: str, expected: str, got: Any = None) -> None:
        self.source = source
        self.key = key
        self.expected = expected
        text = f"{source}: {key}: expected {expected}"
        if got is not None:
            text += f", got {got!r}"
        super().__init__(text)


def parse_address_number(value: Any, source: str, key: str) -> int:
    """A meter address as an integer: from an int or a 12-digit string."""
    if isinstance(value, bool):
        raise ScenarioError(source, key, "a meter address (12 digits or an integer)", value)
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and value.strip().isdigit() and len(value.strip()) <= 12:
        number = int(value.strip())
    else:
        raise ScenarioError(source, key, "a meter address (12 digits or an integer)", value)
    if not 0 <= number <= MAX_ADDRESS:
        raise ScenarioError(source, key, f"an address 0..{MAX_ADDRESS}", value)
    return number


@dataclass(frozen=True, slots=True)
class FleetSpec:
    """The fleet: ``count`` meters from ``first_address`` on, and their common settings."""

    first_address: int = 1
    count: int = 1
    kind: MeterKind = MeterKind.REMOTE
    breaker: BreakerKind = BreakerKind.EXTERNAL
    permit_close_delay_s: float = 60.0
    mean_daily_kwh: float = 8.0
    seed: int = 0
    test_mode: bool = False
    faults: FaultConfig = field(default_factory=FaultConfig)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ScenarioError("fleet", "count", "at least 1 meter", self.count)
        if not 0 <= self.first_address <= MAX_ADDRESS:
            raise ScenarioError("fleet", "first_address", f"0..{MAX_ADDRESS}", self.first_address)
        last = self.first_address + self.count - 1
        if last > MAX_ADDRESS:
            raise ScenarioError(
                "fleet",
                "count",
                f"meters that fit below address 999999999999 (the last would be {last})",
                self.count,
            )

    @property
    def addresses(self) -> list[Address]:
        return [Address(n) for n in range(self.first_address, self.first_address + self.count)]

    def configs(self) -> list[MeterConfig]:
        """One :class:`MeterConfig` per meter; meter ``i`` gets seed ``seed + i``."""
        return [
            MeterConfig(
                address=f"{self.first_address + i:012d}",
                kind=self.kind,
                breaker=self.breaker,
                permit_close_delay_s=self.permit_close_delay_s,
                seed=self.seed + i,
                mean_daily_kwh=self.mean_daily_kwh,
                test_mode=self.test_mode,
                faults=self.faults,
                extra=dict(self.extra),
            )
            for i in range(self.count)
        ]


@dataclass(frozen=True, slots=True)
class MeterOverride:
    """Changes for the meters with addresses ``first..last`` (inclusive)."""

    first: int
    last: int
    changes: dict[str, Any]
    """MeterConfig fields to replace; ``faults`` and ``extra`` are partial (merged)."""

    def covers(self, address: int) -> bool:
        return self.first <= address <= self.last

    def apply(self, config: MeterConfig) -> MeterConfig:
        changes = dict(self.changes)
        if "faults" in changes:
            changes["faults"] = dataclasses.replace(config.faults, **changes["faults"])
        if "extra" in changes:
            changes["extra"] = {**config.extra, **changes["extra"]}
        return dataclasses.replace(config, **changes)


@dataclass(frozen=True, slots=True)
class Scenario:
    """A loaded scenario: the ``[fleet]`` values given and the ``[[meter]]`` overrides."""

    source: str
    fleet: dict[str, Any]
    """Only the ``[fleet]`` keys the file sets (validated, as FleetSpec field values)."""
    overrides: tuple[MeterOverride, ...] = ()

    def spec(self, **given: Any) -> FleetSpec:
        """The fleet: FleetSpec defaults, then the file's ``[fleet]``, then ``given`` (flags)."""
        values = {**self.fleet, **{k: v for k, v in given.items() if v is not None}}
        try:
            return FleetSpec(**values)
        except ScenarioError as exc:
            raise ScenarioError(self.source, f"fleet.{exc.key}", exc.expected) from None

    def configs(self, spec: FleetSpec) -> list[MeterConfig]:
        """The meters of ``spec`` with this scenario's overrides applied."""
        configs = spec.configs()
        used = [False] * len(self.overrides)
        for i, config in enumerate(configs):
            number = int(config.address)
            for j, override in enumerate(self.overrides):
                if override.covers(number):
                    used[j] = True
                    try:
                        config = override.apply(config)
                    except ValueError as exc:
                        raise ScenarioError(
                            self.source, f"meter[{j}]", f"valid settings ({exc})"
                        ) from None
            configs[i] = config
        for j, override in enumerate(self.overrides):
            if not used[j]:
                logger.warning(
                    "%s: meter[%d] (%012d..%012d) matches no meter of the fleet",
                    self.source,
                    j,
                    override.first,
                    override.last,
                )
        return configs


def load_scenario(path: str | Path) -> Scenario:
    """Read and check a scenario file; raises :class:`ScenarioError`."""
    source = str(path)
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ScenarioError(source, "(file)", "an existing TOML file") from None
    except OSError as exc:
        raise ScenarioError(source, "(file)", f"a readable file ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(source, "(file)", f"valid TOML ({exc})") from None
    return parse_scenario(data, source)


def parse_scenario(data: Mapping[str, Any], source: str = "<scenario>") -> Scenario:
    """Check a scenario already parsed from TOML."""
    _no_unknown(data, {"fleet", "meter"}, source, "")
    fleet_table = _table(data.get("fleet", {}), source, "fleet")
    _no_unknown(fleet_table, set(_FLEET_KEYS), source, "fleet.")
    fleet: dict[str, Any] = {}
    for key, value in fleet_table.items():
        fleet[key] = _FLEET_KEYS[key](value, source, f"fleet.{key}")
    meters = data.get("meter", [])
    if not isinstance(meters, list):
        raise ScenarioError(source, "meter", "an array of tables ([[meter]])", meters)
    overrides = tuple(_override(m, source, f"meter[{i}]") for i, m in enumerate(meters))
    return Scenario(source, fleet, overrides)


# -- checking values ------------------------------------------------------------------


def _no_unknown(table: Mapping[str, Any], known: set[str], source: str, prefix: str) -> None:
    for key in table:
        if key not in known:
            raise ScenarioError(source, f"{prefix}{key}", f"one of {', '.join(sorted(known))}")


def _table(value: Any, source: str, key: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ScenarioError(source, key, "a table", value)
    return value


def _int(minimum: int) -> Callable[[Any, str, str], int]:
    def check(value: Any, source: str, key: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ScenarioError(source, key, f"an integer >= {minimum}", value)
        return value

    return check


def _float(value: Any, source: str, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ScenarioError(source, key, "a number", value)
    if value < 0:
        raise ScenarioError(source, key, "a number >= 0", value)
    return float(value)


def _bool(value: Any, source: str, key: str) -> bool:
    if not isinstance(value, bool):
        raise ScenarioError(source, key, "true or false", value)
    return value


def _kind(value: Any, source: str, key: str) -> MeterKind:
    try:
        return MeterKind(value)
    except ValueError:
        raise ScenarioError(source, key, _choices(MeterKind), value) from None


def _breaker(value: Any, source: str, key: str) -> BreakerKind:
    try:
        return BreakerKind(value)
    except ValueError:
        raise ScenarioError(source, key, _choices(BreakerKind), value) from None


def _choices(enum: type[MeterKind] | type[BreakerKind]) -> str:
    return "one of " + ", ".join(f'"{m.value}"' for m in enum)


def _address_text(value: Any, source: str, key: str) -> str:
    if not isinstance(value, str):
        raise ScenarioError(source, key, "a 12-digit address string", value)
    try:
        return str(Address(value))
    except ProtocolError:
        raise ScenarioError(source, key, "a 12-digit address string", value) from None


def _signed_float(value: Any, source: str, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ScenarioError(source, key, "a number", value)
    return float(value)


def _breaker_fault(value: Any, source: str, key: str) -> str:
    if not isinstance(value, str):
        raise ScenarioError(source, key, "none, fails-to-trip, welded or no-feedback", value)
    try:
        return parse_fault(value).name.lower().replace("_", "-")
    except BreakerError:
        raise ScenarioError(
            source, key, "none, fails-to-trip, welded or no-feedback", value
        ) from None


_FAULT_KEYS: Final[dict[str, Callable[[Any, str, str], Any]]] = {
    "offline": _bool,
    "no_reply": _bool,
    "late_reply_s": _float,
    "bad_checksum": _bool,
    "wrong_address": _address_text,
    "missing_freeze_days": _int(0),
    "clock_drift_s_per_day": _signed_float,
    "breaker_fault": _breaker_fault,
}


def _faults(value: Any, source: str, key: str) -> dict[str, Any]:
    table = _table(value, source, key)
    _no_unknown(table, set(_FAULT_KEYS), source, f"{key}.")
    return {k: _FAULT_KEYS[k](v, source, f"{key}.{k}") for k, v in table.items()}


def _fleet_faults(value: Any, source: str, key: str) -> FaultConfig:
    return FaultConfig(**_faults(value, source, key))


def _extra(value: Any, source: str, key: str) -> dict[str, Any]:
    return dict(_table(value, source, key))


def _first_address(value: Any, source: str, key: str) -> int:
    return parse_address_number(value, source, key)


_FLEET_KEYS: Final[dict[str, Callable[[Any, str, str], Any]]] = {
    "first_address": _first_address,
    "count": _int(1),
    "kind": _kind,
    "breaker": _breaker,
    "permit_close_delay_s": _float,
    "mean_daily_kwh": _float,
    "seed": _int(0),
    "test_mode": _bool,
    "faults": _fleet_faults,
    "extra": _extra,
}

_OVERRIDE_KEYS: Final[dict[str, Callable[[Any, str, str], Any]]] = {
    "kind": _kind,
    "breaker": _breaker,
    "permit_close_delay_s": _float,
    "mean_daily_kwh": _float,
    "test_mode": _bool,
    "faults": _faults,
    "extra": _extra,
}


def _override(value: Any, source: str, key: str) -> MeterOverride:
    table = _table(value, source, key)
    _no_unknown(table, {"address", "range", *_OVERRIDE_KEYS}, source, f"{key}.")
    if ("address" in table) == ("range" in table):
        raise ScenarioError(source, key, 'exactly one of address = "…" or range = ["…", "…"]')
    if "address" in table:
        first = last = parse_address_number(table["address"], source, f"{key}.address")
    else:
        bounds = table["range"]
        if not isinstance(bounds, Sequence) or isinstance(bounds, str) or len(bounds) != 2:
            raise ScenarioError(source, f"{key}.range", "[first, last] (two addresses)", bounds)
        first = parse_address_number(bounds[0], source, f"{key}.range")
        last = parse_address_number(bounds[1], source, f"{key}.range")
        if last < first:
            raise ScenarioError(source, f"{key}.range", "first <= last", bounds)
    changes = {
        k: check(table[k], source, f"{key}.{k}")
        for k, check in _OVERRIDE_KEYS.items()
        if k in table
    }
    return MeterOverride(first, last, changes)
