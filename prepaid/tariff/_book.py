"""Versions of tariffs by id and effective date (电价版本)."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import date, timedelta
from typing import Any

from ._errors import TariffError
from ._model import Tariff


class TariffBook:
    """Every version of every tariff, looked up by id and day.

    A version without ``effective_to`` is in force until the day before the next
    version starts (or open-ended if it is the last). Versions of one id must have
    distinct, ascending version numbers in date order and must not overlap; gaps are
    allowed (a day in a gap has no tariff).
    """

    __slots__ = ("_ends", "_versions")

    def __init__(self, tariffs: Iterable[Tariff]) -> None:
        by_id: dict[str, list[Tariff]] = {}
        for tariff in tariffs:
            by_id.setdefault(tariff.id, []).append(tariff)
        self._versions: dict[str, tuple[Tariff, ...]] = {}
        self._ends: dict[tuple[str, int], date | None] = {}
        for ident, versions in by_id.items():
            versions.sort(key=lambda t: (t.effective_from, t.version))
            for older, newer in itertools.pairwise(versions):
                if newer.version <= older.version:
                    raise TariffError(
                        f"version {newer.version} starts {newer.effective_from}, after version "
                        f"{older.version} ({older.effective_from}): expected distinct versions "
                        "ascending with effective_from",
                        key="version",
                        source=repr(ident),
                    )
                if older.effective_to is not None and older.effective_to >= newer.effective_from:
                    raise TariffError(
                        f"v{older.version} runs to {older.effective_to} but v{newer.version} "
                        f"starts {newer.effective_from}: expected versions that do not overlap",
                        key="effective_to",
                        source=repr(ident),
                    )
                end = older.effective_to or newer.effective_from - timedelta(days=1)
                self._ends[(ident, older.version)] = end
            last = versions[-1]
            self._ends[(ident, last.version)] = last.effective_to
            self._versions[ident] = tuple(versions)

    # -- lookup ---------------------------------------------------------------------

    def ids(self) -> tuple[str, ...]:
        return tuple(self._versions)

    def __contains__(self, tariff_id: object) -> bool:
        return tariff_id in self._versions

    def __iter__(self) -> Iterator[Tariff]:
        for versions in self._versions.values():
            yield from versions

    def __len__(self) -> int:
        return sum(len(v) for v in self._versions.values())

    def versions(self, tariff_id: str) -> tuple[Tariff, ...]:
        """Every version of ``tariff_id``, oldest first."""
        try:
            return self._versions[tariff_id]
        except KeyError:
            known = ", ".join(self._versions) or "none"
            raise TariffError(
                f"unknown tariff id: this book has {known}", key=repr(tariff_id)
            ) from None

    def last_day(self, tariff: Tariff) -> date | None:
        """The last day ``tariff`` is in force in this book (``None``: open-ended)."""
        return self._ends[(tariff.id, tariff.version)]

    def at(self, tariff_id: str, day: date) -> Tariff:
        """The version of ``tariff_id`` in force on ``day``."""
        for tariff in self.versions(tariff_id):
            end = self.last_day(tariff)
            if tariff.effective_from <= day and (end is None or day <= end):
                return tariff
        raise TariffError(f"no version is in force on {day}", key=repr(tariff_id))

    def segments(self, tariff_id: str, start: date, end: date) -> list[tuple[Tariff, date, date]]:
        """``[(version, first day, last day), ...]`` covering ``start..end`` in order."""
        out: list[tuple[Tariff, date, date]] = []
        day = start
        while day <= end:
            tariff = self.at(tariff_id, day)
            last = self.last_day(tariff)
            seg_end = end if last is None or last >= end else last
            out.append((tariff, day, seg_end))
            day = seg_end + timedelta(days=1)
        return out

    # -- persistence ----------------------------------------------------------------

    def to_dicts(self) -> list[dict[str, Any]]:
        """Every version as a dict (one database row each)."""
        return [t.to_dict() for t in self]

    @classmethod
    def from_dicts(cls, rows: Sequence[Mapping[str, Any]], *, source: str = "row") -> TariffBook:
        return cls(Tariff.from_dict(row, source=f"{source}[{i}]") for i, row in enumerate(rows))
