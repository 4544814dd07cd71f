"""The example tariff files shipped in ``prepaid/tariffs/`` (package data)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from ._errors import TariffError


def _folder() -> Path:
    return Path(str(resources.files("prepaid.tariffs")))


def example_paths() -> list[Path]:
    """Every shipped example tariff file, by name."""
    return sorted(_folder().glob("*.toml"))


def example_path(name: str) -> Path:
    """A shipped example by file name, with or without ``.toml`` (``"residential_monthly"``)."""
    path = _folder() / (name if name.endswith(".toml") else f"{name}.toml")
    if not path.is_file():
        names = ", ".join(p.stem for p in example_paths())
        raise TariffError(f"no such example tariff: expected one of {names}", key=repr(name))
    return path
