"""The built-in defaults (``defaults.toml``) and site files that override them."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Final

from ._catalog import CATALOG, Level, spec_of
from ._errors import SettingsFileError, UnknownSettingError
from ._model import Resolved, Source, consistency_problems

__all__ = ["SETTINGS_ENV", "Defaults", "defaults_path", "load_defaults"]

SETTINGS_ENV: Final = "FEIKONG_SETTINGS"
"""A site defaults file (``os.pathsep``-separated list), read after the built-in one."""


def defaults_path() -> Path:
    """The built-in defaults file shipped with feikong."""
    return Path(str(resources.files("prepaid.settings").joinpath("defaults.toml")))


@dataclass(frozen=True, slots=True)
class Defaults:
    """Every setting's default value and the file it was read from."""

    values: Mapping[str, Any]
    files: Mapping[str, str]

    def resolved(self, name: str) -> Resolved:
        spec = CATALOG[name]
        return Resolved(spec, self.values[name], Source(Level.DEFAULT, None, self.files[name]))


def _read(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SettingsFileError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SettingsFileError(f"{path}: not valid TOML: {exc}") from None
    extra = sorted(set(data) - {"settings"})
    if extra or not isinstance(data.get("settings"), dict):
        raise SettingsFileError(
            f"{path}: expected one [settings] table of name = value lines"
            + (f"; unknown table(s) {', '.join(extra)}" if extra else "")
        )
    table: dict[str, Any] = data["settings"]
    return table


def load_defaults(*files: Path | str, use_env: bool = True) -> Defaults:
    """The built-in defaults, then ``$FEIKONG_SETTINGS`` (if ``use_env``), then ``files``.

    Every value is checked as a ``settings set`` would check it; the result must be
    consistent (reminder ≥ dunning ≥ disconnection thresholds).
    """
    builtin = defaults_path()
    paths = [builtin]
    if use_env:
        paths += [Path(p) for p in os.environ.get(SETTINGS_ENV, "").split(os.pathsep) if p]
    paths += [Path(f) for f in files]
    values: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for path in paths:
        for name, raw in _read(path).items():
            try:
                spec = spec_of(name)
            except UnknownSettingError as exc:
                raise SettingsFileError(f"{path}: {exc}") from None
            try:
                values[spec.name] = spec.kind.parse(raw)
            except ValueError as exc:
                raise SettingsFileError(f"{path}: {spec.name}: {exc}") from None
            origin[spec.name] = str(path)
    missing = [name for name in CATALOG if name not in values]
    if missing:
        raise SettingsFileError(
            f"{builtin}: no default for {', '.join(missing)}; every setting needs one here"
        )
    defaults = Defaults({n: values[n] for n in CATALOG}, {n: origin[n] for n in CATALOG})
    problems = consistency_problems({n: defaults.resolved(n) for n in CATALOG})
    if problems:
        read = ", ".join(str(p) for p in paths)
        raise SettingsFileError(
            f"inconsistent defaults ({read}): " + "; ".join(p for _, p in problems)
        )
    return defaults
