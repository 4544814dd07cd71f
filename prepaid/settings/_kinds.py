"""Kinds of setting values: how each is read (CLI text, TOML), stored, shown and checked.

A kind's :meth:`~Kind.parse` raises :class:`ValueError` with a detail that says what is
expected; the caller adds the setting's name and level. Stored values are canonical
text (``dump``/``load``): money as integer fen, durations as integer seconds, so SQL can
cast them.
"""

from __future__ import annotations

import enum
import re
from abc import ABC, abstractmethod
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from ..calendar import CalendarError, DailyWindow

__all__ = ["Count", "Duration", "Flag", "Kind", "Money", "OneOf", "Window", "format_duration"]

_MONEY = re.compile(r"^[+-]?\d+(\.\d{1,2})?$")
_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_TRUE: Final = frozenset({"true", "yes", "on", "1", "y"})
_FALSE: Final = frozenset({"false", "no", "off", "0", "n"})
_MAX_FEN: Final = 100_000_000  # one million yuan


class Kind(ABC):
    """How one kind of setting value is parsed, stored and shown."""

    expected: str = "a value"

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {self.expected}>"

    @abstractmethod
    def parse(self, raw: object) -> Any:
        """A value from CLI text or a TOML value; :class:`ValueError` with a detail if not."""

    @abstractmethod
    def dump(self, value: Any) -> str:
        """Canonical stored text of ``value``."""

    @abstractmethod
    def load(self, text: str) -> Any:
        """The value of stored text (trusted: written by :meth:`dump`)."""

    def show(self, value: Any) -> str:
        """People-friendly text (the CLI and console)."""
        return self.dump(value)

    def to_json(self, value: Any) -> Any:
        """A JSON-friendly form (exact: money as a decimal string)."""
        return self.show(value)


class Money(Kind):
    """An amount in yuan with at most 2 decimals; the value is integer fen."""

    def __init__(self, *, minimum_fen: int = -_MAX_FEN) -> None:
        self.minimum_fen = minimum_fen
        self.expected = "an amount in yuan with at most 2 decimals, e.g. 20 or 20.50" + (
            ", not negative" if minimum_fen >= 0 else ""
        )

    def parse(self, raw: object) -> int:
        if isinstance(raw, bool | float):
            raise ValueError(
                f"expected {self.expected}; got {raw!r} (write amounts as text or integers: "
                "floats are not exact)"
            )
        if isinstance(raw, int):
            fen = raw * 100
        elif isinstance(raw, Decimal | str):
            text = str(raw).strip().removesuffix("元").removesuffix("yuan").strip()
            if not _MONEY.match(text):
                raise ValueError(f"expected {self.expected}; got {raw!r}")
            try:
                fen = int(Decimal(text) * 100)
            except InvalidOperation:  # pragma: no cover - the regex admits only numbers
                raise ValueError(f"expected {self.expected}; got {raw!r}") from None
        else:
            raise ValueError(f"expected {self.expected}; got {raw!r}")
        if fen < self.minimum_fen:
            floor = "0.00" if self.minimum_fen == 0 else self.show(self.minimum_fen)
            raise ValueError(f"{self.show(fen)} yuan is below the minimum {floor} yuan")
        if abs(fen) > _MAX_FEN:
            raise ValueError(f"{self.show(fen)} yuan is beyond ±{self.show(_MAX_FEN)} yuan")
        return fen

    def dump(self, value: int) -> str:
        return str(int(value))

    def load(self, text: str) -> int:
        return int(text)

    def show(self, value: int) -> str:
        sign = "-" if value < 0 else ""
        return f"{sign}{abs(value) // 100}.{abs(value) % 100:02d}"


class Flag(Kind):
    """On or off."""

    expected = "true or false (yes/no, on/off, 1/0)"

    def parse(self, raw: object) -> bool:
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str):
            text = raw.strip().lower()
            if text in _TRUE:
                return True
            if text in _FALSE:
                return False
        raise ValueError(f"expected {self.expected}; got {raw!r}")

    def dump(self, value: bool) -> str:
        return "true" if value else "false"

    def load(self, text: str) -> bool:
        return text == "true"

    def to_json(self, value: bool) -> bool:
        return bool(value)


class OneOf(Kind):
    """One of the values of a string enum."""

    def __init__(self, choices: type[enum.StrEnum]) -> None:
        self.choices = choices
        self.expected = "one of " + ", ".join(c.value for c in choices)

    def parse(self, raw: object) -> enum.StrEnum:
        if isinstance(raw, str):
            try:
                return self.choices(raw.strip().lower())
            except ValueError:
                pass
        raise ValueError(f"expected {self.expected}; got {raw!r}")

    def dump(self, value: enum.StrEnum) -> str:
        return str(value.value)

    def load(self, text: str) -> enum.StrEnum:
        return self.choices(text)


def format_duration(value: timedelta) -> str:
    """``timedelta(days=1, hours=12)`` → ``"1d12h"``; zero → ``"0s"``."""
    seconds = int(value.total_seconds())
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


class Duration(Kind):
    """A length of time written with units: ``1d``, ``12h``, ``90m``, ``1d12h``, ``30s``."""

    def __init__(self, *, minimum: timedelta, maximum: timedelta) -> None:
        self.minimum = minimum
        self.maximum = maximum
        self.expected = (
            f"a duration such as 1d, 12h, 90m or 1d12h, from {format_duration(minimum)} "
            f"to {format_duration(maximum)}"
        )

    def parse(self, raw: object) -> timedelta:
        if isinstance(raw, timedelta):
            value = raw
        elif isinstance(raw, str) and raw.strip():
            text = raw.strip().lower().replace(" ", "")
            match = _DURATION.match(text)
            if not match or not any(match.groups()):
                raise ValueError(f"expected {self.expected}; got {raw!r}")
            d, h, m, s = (int(g or 0) for g in match.groups())
            value = timedelta(days=d, hours=h, minutes=m, seconds=s)
        else:
            hint = " (give a unit: 1d, 12h, 30m)" if isinstance(raw, int) else ""
            raise ValueError(f"expected {self.expected}; got {raw!r}{hint}")
        if not self.minimum <= value <= self.maximum:
            raise ValueError(
                f"{format_duration(value)} is outside {format_duration(self.minimum)}"
                f"..{format_duration(self.maximum)}"
            )
        return value

    def dump(self, value: timedelta) -> str:
        return str(int(value.total_seconds()))

    def load(self, text: str) -> timedelta:
        return timedelta(seconds=int(text))

    def show(self, value: timedelta) -> str:
        return format_duration(value)


class Count(Kind):
    """A whole number in a range."""

    def __init__(self, *, minimum: int, maximum: int) -> None:
        self.minimum = minimum
        self.maximum = maximum
        self.expected = f"a whole number from {minimum} to {maximum}"

    def parse(self, raw: object) -> int:
        if isinstance(raw, int) and not isinstance(raw, bool):
            value = raw
        elif isinstance(raw, str) and re.fullmatch(r"\s*[+-]?\d+\s*", raw):
            value = int(raw)
        else:
            raise ValueError(f"expected {self.expected}; got {raw!r}")
        if not self.minimum <= value <= self.maximum:
            raise ValueError(f"{value} is outside {self.minimum}..{self.maximum}")
        return value

    def dump(self, value: int) -> str:
        return str(int(value))

    def load(self, text: str) -> int:
        return int(text)

    def to_json(self, value: int) -> int:
        return int(value)


class Window(Kind):
    """A daily time window ``HH:MM-HH:MM`` (may wrap past midnight), or ``none``."""

    expected = "HH:MM-HH:MM (e.g. 18:00-08:00, across midnight allowed) or none"

    def parse(self, raw: object) -> DailyWindow | None:
        if isinstance(raw, DailyWindow):
            return raw
        if not isinstance(raw, str):
            raise ValueError(f"expected {self.expected}; got {raw!r}")
        if raw.strip().lower() in ("none", "off", "-"):
            return None
        try:
            return DailyWindow.parse(raw)
        except CalendarError as exc:
            raise ValueError(str(exc)) from None

    def dump(self, value: DailyWindow | None) -> str:
        return str(value) if value is not None else "none"

    def load(self, text: str) -> DailyWindow | None:
        return None if text == "none" else DailyWindow.parse(text)
