"""The demo scenario (演示场景): every knob of ``feikong demo``, from TOML, checked.

The defaults ship in ``feikong/demo/scenarios/default.toml`` (read with
:func:`default_scenario_path`); :func:`load_scenario` reads a file on top of them,
so a scenario file needs only the keys it changes. Every value is checked and a
mistake raises :class:`ScenarioError` naming the file and the key
(``run.days: expected an integer 1..366, got 'ten'``). A run that would go past the
holiday calendar (2026 only) is refused with the calendar's own message.
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, time, timedelta
from importlib import resources
from pathlib import Path
from typing import Any, Final

__all__ = [
    "Behaviour",
    "District",
    "Run",
    "Scenario",
    "ScenarioError",
    "Schedule",
    "Staff",
    "default_scenario_path",
    "load_scenario",
]


class ScenarioError(ValueError):
    """A scenario value is wrong; the message names the file, the key and what is expected."""


@dataclass(frozen=True, slots=True)
class Run:
    start: date = date(2026, 3, 1)
    days: int = 60
    seed: int = 1
    seconds_per_day: float = 4.0

    @property
    def speed(self) -> float:
        """The accelerated clock's factor: simulated seconds per real second."""
        return 86_400.0 / self.seconds_per_day

    @property
    def end(self) -> date:
        """The day after the last simulated day (its freeze is rated on it)."""
        return self.start + timedelta(days=self.days)


@dataclass(frozen=True, slots=True)
class District:
    customers: int = 1000
    guaranteed: int = 5
    without_phone: int = 25
    breakers_failing: int = 6
    offline_meters: int = 1
    modbus_breakers: int = 120


@dataclass(frozen=True, slots=True)
class Schedule:
    collect_at: time = time(0, 5)
    rating_at: time = time(7, 0)
    requests_at: time = time(14, 0)
    approve_l1_at: time = time(14, 30)
    approve_l2_at: time = time(15, 0)
    payments_at: time = time(12, 0)
    onsite_at: time = time(16, 30)


@dataclass(frozen=True, slots=True)
class Behaviour:
    pay_on_reminder: float = 0.45
    pay_after_dunning: float = 0.25
    pay_after_cutoff: float = 0.20
    delay_days_max: int = 3
    topup_days_min: int = 20
    topup_days_max: int = 60
    reclose_unpaid: float = 0.5

    @property
    def never(self) -> float:
        return max(0.0, 1.0 - self.pay_on_reminder - self.pay_after_dunning - self.pay_after_cutoff)


@dataclass(frozen=True, slots=True)
class Staff:
    operator: str = "zhang.wei"
    approver_l1: str = "li.na"
    approver_l2: str = "wang.fang"
    fault_handler: str = "chen.jie"
    handler_phone: str = "13800138000"


@dataclass(frozen=True, slots=True)
class Scenario:
    """A whole demo: run, district, schedule, customer behaviour, settings, staff."""

    source: str = "(built-in)"
    run: Run = field(default_factory=Run)
    district: District = field(default_factory=District)
    schedule: Schedule = field(default_factory=Schedule)
    behaviour: Behaviour = field(default_factory=Behaviour)
    settings: Mapping[str, str | int | bool] = field(default_factory=dict)
    """Fee-control settings at the default level (``prepaid.settings`` names)."""
    dunning_period_days: int = 1
    staff: Staff = field(default_factory=Staff)

    def with_overrides(
        self,
        *,
        days: int | None = None,
        customers: int | None = None,
        seed: int | None = None,
    ) -> Scenario:
        """The scenario with command-line overrides applied (and checked again)."""
        run, district = self.run, self.district
        if days is not None:
            run = dataclasses.replace(run, days=_days(days, "--days", "option"))
        if seed is not None:
            run = dataclasses.replace(run, seed=_nonneg_int(seed, "--seed", "option"))
        if customers is not None:
            n = _customers(customers, "--customers", "option")
            cap = max(1, n // 20)  # a smaller district keeps its special customers few
            district = dataclasses.replace(
                district,
                customers=n,
                guaranteed=min(district.guaranteed, cap),
                without_phone=min(district.without_phone, cap),
                breakers_failing=min(district.breakers_failing, cap),
                offline_meters=min(district.offline_meters, cap),
            )
        scenario = dataclasses.replace(self, run=run, district=district)
        _check_whole(scenario)
        return scenario

    def to_dict(self) -> dict[str, Any]:
        def plain(value: Any) -> Any:
            if isinstance(value, date | time):
                return (
                    value.isoformat(timespec="minutes") if isinstance(value, time) else str(value)
                )
            return value

        out: dict[str, Any] = {"source": self.source}
        for name in ("run", "district", "schedule", "behaviour", "staff"):
            part = getattr(self, name)
            out[name] = {f.name: plain(getattr(part, f.name)) for f in dataclasses.fields(part)}
        out["settings"] = {**self.settings, "dunning_period_days": self.dunning_period_days}
        return out


# -- checking ---------------------------------------------------------------------------


def _where(source: str, key: str) -> str:
    return key if source == "option" else f"{source}: {key}"


def _fail(source: str, key: str, expected: str, got: Any) -> ScenarioError:
    return ScenarioError(f"{_where(source, key)}: expected {expected}, got {got!r}")


def _int_range(lo: int, hi: int) -> Callable[[Any, str, str], int]:
    def check(value: Any, key: str, source: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise _fail(source, key, f"an integer {lo}..{hi}", value)
        return value

    return check


_days = _int_range(1, 366)
_customers = _int_range(10, 100_000)
_nonneg_int = _int_range(0, 2**31 - 1)
_small_count = _int_range(0, 10_000)


def _share(value: Any, key: str, source: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise _fail(source, key, "a share between 0 and 1 (e.g. 0.25)", value)
    return float(value)


def _seconds(value: Any, key: str, source: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.2 <= value <= 3600:
        raise _fail(source, key, "real seconds per simulated day, 0.2..3600", value)
    return float(value)


def _date(value: Any, key: str, source: str) -> date:
    if isinstance(value, date) and not hasattr(value, "hour"):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise _fail(source, key, "a date YYYY-MM-DD", value)


def _hhmm(value: Any, key: str, source: str) -> time:
    if isinstance(value, str):
        try:
            parsed = time.fromisoformat(value.strip())
        except ValueError:
            parsed = None
        if parsed is not None and parsed.tzinfo is None:
            return parsed
    raise _fail(source, key, 'a time of day "HH:MM"', value)


def _login(value: Any, key: str, source: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _fail(source, key, "an operator login (e.g. li.na)", value)
    return value.strip()


_SECTIONS: Final[dict[str, tuple[type[Any], dict[str, Callable[[Any, str, str], Any]]]]] = {
    "run": (
        Run,
        {"start": _date, "days": _days, "seed": _nonneg_int, "seconds_per_day": _seconds},
    ),
    "district": (
        District,
        {
            "customers": _customers,
            "guaranteed": _small_count,
            "without_phone": _small_count,
            "breakers_failing": _small_count,
            "offline_meters": _small_count,
            "modbus_breakers": _int_range(0, 100_000),
        },
    ),
    "schedule": (Schedule, {f.name: _hhmm for f in dataclasses.fields(Schedule)}),
    "behaviour": (
        Behaviour,
        {
            "pay_on_reminder": _share,
            "pay_after_dunning": _share,
            "pay_after_cutoff": _share,
            "delay_days_max": _int_range(0, 60),
            "topup_days_min": _int_range(1, 366),
            "topup_days_max": _int_range(1, 366),
            "reclose_unpaid": _share,
        },
    ),
    "users": (Staff, {f.name: _login for f in dataclasses.fields(Staff)}),
}


def _settings(table: Any, source: str) -> tuple[dict[str, str | int | bool], int | None]:
    from prepaid.settings import CATALOG, UnknownSettingError, spec_of

    if not isinstance(table, dict):
        raise _fail(source, "settings", "a table of fee-control settings", table)
    out: dict[str, str | int | bool] = {}
    period: int | None = None
    for name, raw in table.items():
        key = f"settings.{name}"
        if name == "dunning_period_days":
            period = _int_range(0, 60)(raw, key, source)
            continue
        try:
            spec = spec_of(name)
        except UnknownSettingError:
            known = ", ".join(sorted([*CATALOG, "dunning_period_days"]))
            raise ScenarioError(
                f"{_where(source, key)}: not a fee-control setting; one of {known}"
            ) from None
        try:
            spec.kind.parse(raw)
        except ValueError as exc:
            raise ScenarioError(f"{_where(source, key)}: {exc}") from None
        out[spec.name] = raw
    return out, period


def _check_whole(scenario: Scenario) -> None:
    from prepaid.calendar import CalendarNotCoveredError, default_calendar

    b = scenario.behaviour
    src = scenario.source
    if b.pay_on_reminder + b.pay_after_dunning + b.pay_after_cutoff > 1.0 + 1e-9:
        raise ScenarioError(
            f"{_where(src, 'behaviour')}: pay_on_reminder + pay_after_dunning + "
            "pay_after_cutoff must not exceed 1 (the rest never pay)"
        )
    if b.topup_days_min > b.topup_days_max:
        raise _fail(src, "behaviour.topup_days_max", "at least topup_days_min", b.topup_days_max)
    d = scenario.district
    special = d.guaranteed + d.without_phone + d.breakers_failing + d.offline_meters
    if special > d.customers // 2:
        raise ScenarioError(
            f"{_where(src, 'district')}: guaranteed + without_phone + breakers_failing + "
            f"offline_meters = {special} is more than half of the {d.customers} customers"
        )
    calendar = default_calendar()
    run = scenario.run
    for day in (run.start, run.end):
        if not calendar.covers(day):
            error = CalendarNotCoveredError(day, calendar.region, calendar.years)
            raise ScenarioError(
                f"{_where(src, 'run')}: the simulated days {run.start}..{run.end} "
                f"leave the holiday calendar: {error}"
            )


def _parse(data: Mapping[str, Any], source: str, base: Scenario) -> Scenario:
    known = {*_SECTIONS, "settings"}
    for name in data:
        if name not in known:
            raise ScenarioError(
                f"{_where(source, name)}: unknown table; one of {', '.join(sorted(known))}"
            )
    changes: dict[str, Any] = {}
    for name, (cls, checks) in _SECTIONS.items():
        if name not in data:
            continue
        table = data[name]
        if not isinstance(table, dict):
            raise _fail(source, name, "a table", table)
        values = {}
        for key, raw in table.items():
            if key not in checks:
                raise ScenarioError(
                    f"{_where(source, f'{name}.{key}')}: unknown key; one of "
                    f"{', '.join(sorted(checks))}"
                )
            values[key] = checks[key](raw, f"{name}.{key}", source)
        attr = "staff" if name == "users" else name
        current = getattr(base, attr)
        assert isinstance(current, cls)
        changes[attr] = dataclasses.replace(current, **values)
    if "settings" in data:
        settings, period = _settings(data["settings"], source)
        changes["settings"] = {**base.settings, **settings}
        if period is not None:
            changes["dunning_period_days"] = period
    scenario = dataclasses.replace(base, source=source, **changes)
    _check_whole(scenario)
    return scenario


def default_scenario_path() -> Path:
    """The scenario file shipped with feikong (the defaults of ``feikong demo``)."""
    return Path(str(resources.files("feikong.demo.scenarios").joinpath("default.toml")))


def _read(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ScenarioError(f"{path}: no such scenario file") from None
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"{path}: not valid TOML: {exc}") from None


def load_scenario(path: Path | str | None = None) -> Scenario:
    """The shipped defaults, then ``path`` (if given) on top; raises :class:`ScenarioError`."""
    builtin = default_scenario_path()
    scenario = _parse(_read(builtin), str(builtin), Scenario())
    if path is None:
        return scenario
    return _parse(_read(Path(path)), str(path), scenario)
