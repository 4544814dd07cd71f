"""The tariff package's exceptions: bad tariff data and bad rating input."""

from __future__ import annotations


class TariffError(ValueError):
    """Tariff data that cannot be used, with where it came from and what is expected.

    ``str(error)`` reads ``"<source>: <key>: <detail>"``, e.g.
    ``"tariffs/res.toml: tariff[0] 'res-monthly' v1: thresholds_kwh: expected ascending
    values, got [400, 200]"``. ``source`` and ``key`` are ``None`` when unknown.
    """

    def __init__(self, detail: str, *, key: str | None = None, source: str | None = None) -> None:
        self.detail = detail
        self.key = key
        self.source = source
        super().__init__(self._text())

    def _text(self) -> str:
        parts = [p for p in (self.source, self.key) if p]
        return ": ".join([*parts, self.detail])

    def located(self, source: str) -> TariffError:
        """The same error with ``source`` (a file and table, a database row) in front."""
        where = f"{source}: {self.source}" if self.source else source
        return type(self)(self.detail, key=self.key, source=where)


class RatingError(TariffError):
    """Rating input that cannot be charged (energy, dates, TOU split, household size)."""
