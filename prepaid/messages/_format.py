"""Placeholder value types and how each is written in Chinese and in English.

Integers are always the project's integer units, never floats:

- money: ``int`` fen → ``"123.45"`` yuan; a ``Decimal`` is yuan (rounded half-up to fen);
- energy: ``int`` hundredths of a kWh (the register resolution) → ``"450.25"``; a
  ``Decimal`` is kWh;
- price: ``int`` 1e-4 yuan/kWh → ``"0.5200"``; a ``Decimal`` is yuan/kWh;
- datetime / date / month: ``2026年3月5日 09:00`` / ``2026年3月5日`` / ``2026年3月`` in
  Chinese, ``2026-03-05 09:00`` / ``2026-03-05`` / ``March 2026`` in English.

A ``float`` anywhere is refused: a binary float cannot hold 0.1 yuan exactly.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from ._errors import ValueFormatError

__all__ = [
    "Lang",
    "ValueType",
    "format_date",
    "format_datetime",
    "format_energy",
    "format_money",
    "format_month",
    "format_price",
    "format_value",
    "parse_value",
]

_EN_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


class Lang(enum.StrEnum):
    """A template language: Chinese (the default) or English."""

    ZH = "zh"
    EN = "en"


class ValueType(enum.StrEnum):
    """The type of a template placeholder, which decides how its value is written."""

    MONEY = "money"
    ENERGY = "energy"
    PRICE = "price"
    DATETIME = "datetime"
    DATE = "date"
    MONTH = "month"
    INT = "int"
    TEXT = "text"


def _scaled(value: object, *, what: str, places: int, unit: str, small: str) -> str:
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        hint = " (a binary float is not exact)" if isinstance(value, float) else ""
        raise ValueFormatError(
            f"{what} wants an int in {small} or a Decimal in {unit}, got {value!r}{hint}"
        )
    if isinstance(value, int):
        amount = Decimal(value).scaleb(-places)
    else:
        if not value.is_finite():
            raise ValueFormatError(f"{what} wants a finite amount, got {value}")
        amount = value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    text = f"{amount:.{places}f}"
    return "0." + "0" * places if text == "-0." + "0" * places else text


def format_money(value: int | Decimal, *, what: str = "money") -> str:
    """``12345`` (fen) → ``"123.45"``; ``Decimal("7.5")`` (yuan) → ``"7.50"``."""
    return _scaled(value, what=what, places=2, unit="yuan", small="fen")


def format_energy(value: int | Decimal, *, what: str = "energy") -> str:
    """``45025`` (0.01 kWh) → ``"450.25"``; ``Decimal("450.25")`` (kWh) → ``"450.25"``."""
    return _scaled(value, what=what, places=2, unit="kWh", small="0.01 kWh")


def format_price(value: int | Decimal, *, what: str = "price") -> str:
    """``5200`` (1e-4 yuan/kWh) → ``"0.5200"``; ``Decimal("0.52")`` → ``"0.5200"``."""
    return _scaled(value, what=what, places=4, unit="yuan/kWh", small="1e-4 yuan/kWh")


def format_datetime(value: datetime, lang: Lang, *, what: str = "datetime") -> str:
    """``2026年3月5日 09:00`` (zh) or ``2026-03-05 09:00`` (en)."""
    if not isinstance(value, datetime):
        raise ValueFormatError(f"{what} wants a date and time, got {value!r}")
    if lang is Lang.ZH:
        return f"{value.year}年{value.month}月{value.day}日 {value:%H:%M}"
    return f"{value:%Y-%m-%d %H:%M}"


def format_date(value: date, lang: Lang, *, what: str = "date") -> str:
    """``2026年3月5日`` (zh) or ``2026-03-05`` (en); a datetime gives its date."""
    if not isinstance(value, date):
        raise ValueFormatError(f"{what} wants a date, got {value!r}")
    day = value.date() if isinstance(value, datetime) else value
    if lang is Lang.ZH:
        return f"{day.year}年{day.month}月{day.day}日"
    return day.isoformat()


def format_month(value: date, lang: Lang, *, what: str = "month") -> str:
    """``2026年3月`` (zh) or ``March 2026`` (en) from any day of the month."""
    if not isinstance(value, date):
        raise ValueFormatError(f"{what} wants a date in the month, got {value!r}")
    if lang is Lang.ZH:
        return f"{value.year}年{value.month}月"
    return f"{_EN_MONTHS[value.month - 1]} {value.year}"


_SCALED = {
    # type: (decimal places, unit of a Decimal, unit of an int)
    ValueType.MONEY: (2, "yuan", "fen"),
    ValueType.ENERGY: (2, "kWh", "0.01 kWh"),
    ValueType.PRICE: (4, "yuan/kWh", "1e-4 yuan/kWh"),
}
_DATED: dict[ValueType, Callable[..., str]] = {
    ValueType.DATETIME: format_datetime,
    ValueType.DATE: format_date,
    ValueType.MONTH: format_month,
}


def format_value(kind: ValueType, value: object, lang: Lang, *, what: str) -> str:
    """``value`` written as a placeholder of type ``kind`` in ``lang``.

    Raises :class:`ValueFormatError` (naming ``what``) for a value of the wrong type.
    """
    if kind in _SCALED:
        places, unit, small = _SCALED[kind]
        return _scaled(value, what=what, places=places, unit=unit, small=small)
    if kind in _DATED:
        if not isinstance(value, date):
            raise ValueFormatError(f"{what} wants a {kind.value}, got {value!r}")
        return _DATED[kind](value, lang, what=what)
    if kind is ValueType.INT:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueFormatError(f"{what} wants a whole number, got {value!r}")
        return str(value)
    if not isinstance(value, str):
        raise ValueFormatError(f"{what} wants text, got {value!r}")
    return value


def parse_value(kind: ValueType, text: str, *, what: str) -> object:
    """A typed value from command-line text (money, energy and price in yuan / kWh)."""
    raw = text.strip()
    try:
        if kind in (ValueType.MONEY, ValueType.ENERGY, ValueType.PRICE):
            number = Decimal(raw)
            if not number.is_finite():
                raise InvalidOperation
            return number
        if kind is ValueType.DATETIME:
            return datetime.fromisoformat(raw)
        if kind is ValueType.DATE:
            return date.fromisoformat(raw)
        if kind is ValueType.MONTH:
            return date.fromisoformat(raw + "-01" if len(raw) == 7 else raw)
        if kind is ValueType.INT:
            return int(raw)
    except (InvalidOperation, ValueError):
        example = {
            ValueType.MONEY: "123.45 (yuan)",
            ValueType.ENERGY: "450.25 (kWh)",
            ValueType.PRICE: "0.5200 (yuan/kWh)",
            ValueType.DATETIME: "2026-03-05T09:00",
            ValueType.DATE: "2026-03-05",
            ValueType.MONTH: "2026-03",
            ValueType.INT: "2",
        }[kind]
        raise ValueFormatError(f"{what} wants {kind.value} like {example}, got {text!r}") from None
    return text
