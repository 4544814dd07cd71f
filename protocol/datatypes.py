"""Value formats of data items: how the bytes of a DI's value map to Python values.

Numbers are :class:`~decimal.Decimal` with the implied decimal point of the
standard's format (``XXXXXX.XX``); signed formats carry the sign in the top bit
of the most significant byte. Every format decodes and encodes, and raises
:class:`~protocol.errors.DataError` (never anything else) on bad input.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation
from enum import IntFlag
from typing import Any, Final, Protocol

from .bcd import ADDRESS_BYTES, BCD_BYTES
from .errors import DataError

__all__ = [
    "Bcd",
    "BcdInt",
    "Bits",
    "DateTime",
    "Digits",
    "Format",
    "HexCode",
    "LadderTable",
    "LadderTableFormat",
    "Raw",
    "Record",
    "Repeat",
]


class Format(Protocol):
    """Encodes and decodes one value; ``size`` is its byte count (None: variable)."""

    @property
    def size(self) -> int | None: ...

    def decode(self, raw: bytes) -> Any: ...

    def encode(self, value: Any) -> bytes: ...

    def describe(self) -> str: ...


def _check_size(raw: bytes, size: int, what: str) -> None:
    if len(raw) != size:
        raise DataError(f"{what} needs {size} bytes, got {len(raw)}")


@dataclass(frozen=True, slots=True)
class Bcd:
    """A BCD number with ``decimals`` implied decimal places, e.g. ``XXXXXX.XX``."""

    size: int
    decimals: int
    signed: bool = False

    def decode(self, raw: bytes) -> Decimal:
        if len(raw) != self.size:
            raise DataError(f"{self.describe()} needs {self.size} bytes, got {len(raw)}")
        if self.signed and raw[-1] & 0x80:
            digits = (bytes((raw[-1] & 0x7F,)) + raw[-2::-1]).hex()
            sign = "-"
        else:
            digits = raw[::-1].hex()
            sign = ""
        if not digits.isdigit():
            raise DataError(f"bytes {raw.hex(' ').upper()} are not BCD ({self.describe()})")
        d = self.decimals
        return Decimal(f"{sign}{digits[:-d]}.{digits[-d:]}" if d else sign + digits)

    def encode(self, value: Any) -> bytes:
        try:
            number = Decimal(value)
            scaled = number.scaleb(self.decimals)
            integral = scaled.to_integral_value()
        except (InvalidOperation, ValueError, TypeError):
            raise DataError(f"{value!r} is not a number for {self.describe()}") from None
        if scaled != integral:
            raise DataError(f"{value} has more than {self.decimals} decimals ({self.describe()})")
        magnitude = abs(int(integral))
        negative = integral < 0
        if negative and not self.signed:
            raise DataError(f"{value} is negative but {self.describe()} is unsigned")
        # Signed: the sign takes the top bit, so the top digit is 0..7.
        limit = (8 if self.signed else 10) * 10 ** (self.size * 2 - 1)
        if magnitude >= limit:
            raise DataError(f"{value} does not fit {self.describe()}")
        raw = bytearray(bytes.fromhex(str(magnitude).zfill(self.size * 2))[::-1])
        if negative:
            raw[-1] |= 0x80
        return bytes(raw)

    def describe(self) -> str:
        digits = self.size * 2
        mask = "X" * (digits - self.decimals) + ("." + "X" * self.decimals if self.decimals else "")
        return f"{mask} ({self.size} B{', signed' if self.signed else ''})"


@dataclass(frozen=True, slots=True)
class BcdInt:
    """A BCD count or duration (``NNNN``) as ``int``."""

    size: int

    def decode(self, raw: bytes) -> int:
        _check_size(raw, self.size, self.describe())
        digits = raw[::-1].hex()
        if not digits.isdigit():
            raise DataError(f"bytes {raw.hex(' ').upper()} are not BCD ({self.describe()})")
        return int(digits)

    def encode(self, value: Any) -> bytes:
        if isinstance(value, bool) or not isinstance(value, int):
            raise DataError(f"{value!r} is not an integer for {self.describe()}")
        if not 0 <= value < 10 ** (self.size * 2):
            raise DataError(f"{value} does not fit {self.describe()}")
        return bytes.fromhex(str(value).zfill(self.size * 2))[::-1]

    def describe(self) -> str:
        return f"{'N' * self.size * 2} ({self.size} B)"


@dataclass(frozen=True, slots=True)
class Digits:
    """A number written as digits, kept as text (addresses, meter and customer numbers)."""

    size: int

    def decode(self, raw: bytes) -> str:
        _check_size(raw, self.size, self.describe())
        digits = raw[::-1].hex().upper()
        if raw.translate(None, ADDRESS_BYTES):
            raise DataError(f"bytes {raw.hex(' ').upper()} are not BCD ({self.describe()})")
        return digits

    def encode(self, value: Any) -> bytes:
        text = str(value).strip().upper()
        if len(text) != self.size * 2 or not all(c in "0123456789A" for c in text):
            raise DataError(f"{value!r} must be {self.size * 2} digits")
        return bytes.fromhex(text)[::-1]

    def describe(self) -> str:
        return f"{'N' * self.size * 2} ({self.size} B, digits)"


@dataclass(frozen=True, slots=True)
class HexCode:
    """A code written as hex digits, kept as text: operator codes (操作者代码), where
    ``FFFFFFFF`` marks an action of the meter itself."""

    size: int

    def decode(self, raw: bytes) -> str:
        _check_size(raw, self.size, self.describe())
        return raw[::-1].hex().upper()

    def encode(self, value: Any) -> bytes:
        text = str(value).strip()
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            raw = b""
        if len(text) != self.size * 2 or len(raw) != self.size:
            raise DataError(f"{value!r} must be {self.size * 2} hex digits")
        return raw[::-1]

    def describe(self) -> str:
        return f"{'H' * self.size * 2} ({self.size} B, hex)"


@dataclass(frozen=True, slots=True)
class Raw:
    """Bytes passed through as they are (hex on display)."""

    size: int | None = None

    def decode(self, raw: bytes) -> bytes:
        if self.size is not None:
            _check_size(raw, self.size, "raw value")
        return bytes(raw)

    def encode(self, value: Any) -> bytes:
        if isinstance(value, str):
            try:
                value = bytes.fromhex(value)
            except ValueError:
                raise DataError(f"{value!r} is not hex") from None
        if not isinstance(value, bytes | bytearray):
            raise DataError(f"{value!r} is not bytes")
        if self.size is not None:
            _check_size(bytes(value), self.size, "raw value")
        return bytes(value)

    def describe(self) -> str:
        return f"raw ({self.size} B)" if self.size else "raw"


_DT_FIELDS: Final = {
    "YY": "year",
    "MM": "month",
    "DD": "day",
    "hh": "hour",
    "mm": "minute",
    "ss": "second",
}


@dataclass(frozen=True, slots=True)
class DateTime:
    """A BCD time written high-first in the standard (``YYMMDDhhmm``), sent low byte first.

    Patterns: any run of ``YY MM DD hh mm ss`` plus ``WW`` (weekday, 0 = Sunday).
    Decodes to ``datetime`` (with a date part and a time part), ``date`` or ``time``;
    an all-zero or all-99 value (not set) decodes to ``None``.
    """

    pattern: str

    @property
    def size(self) -> int:
        return len(self.pattern) // 2

    def _fields(self) -> list[str]:
        return [self.pattern[i : i + 2] for i in range(0, len(self.pattern), 2)]

    def decode(self, raw: bytes) -> datetime | date | time | None:
        _check_size(raw, self.size, self.describe())
        if raw.translate(None, BCD_BYTES):
            raise DataError(f"bytes {raw.hex(' ').upper()} are not BCD ({self.describe()})")
        if "DD" in self.pattern and (not raw.strip(b"\x00") or not raw.strip(b"\x99")):
            return None
        values = dict(zip(self._fields(), (int(f"{b:02x}") for b in raw[::-1]), strict=True))
        try:
            has_date = "DD" in values
            has_time = "hh" in values
            if has_date:
                d = date(2000 + values.get("YY", 0), values.get("MM", 1), values["DD"])
                if "WW" in values and values["WW"] != (d.isoweekday() % 7):
                    raise DataError(
                        f"weekday {values['WW']} does not match {d.isoformat()} ({self.pattern})"
                    )
                if not has_time:
                    return d
                return datetime(
                    d.year,
                    d.month,
                    d.day,
                    values["hh"],
                    values.get("mm", 0),
                    values.get("ss", 0),
                )
            return time(values.get("hh", 0), values.get("mm", 0), values.get("ss", 0))
        except ValueError as exc:
            raise DataError(
                f"bytes {raw.hex(' ').upper()} are not a valid {self.pattern}: {exc}"
            ) from None

    def encode(self, value: Any) -> bytes:
        if value is None:
            return bytes(self.size)
        if not isinstance(value, datetime | date | time):
            raise DataError(f"{value!r} is not a date/time for {self.pattern}")
        parts = []
        for f in self._fields():
            if f == "WW":
                if not isinstance(value, date):
                    raise DataError(f"{self.pattern} needs a date")
                parts.append(value.isoweekday() % 7)
            else:
                attr = _DT_FIELDS[f]
                v = getattr(value, attr, 0)
                if f == "YY":
                    if not 2000 <= v <= 2099:
                        raise DataError(f"year {v} cannot be sent (2000..2099)")
                    v -= 2000
                parts.append(v)
        return bytes.fromhex("".join(f"{p:02d}" for p in parts))[::-1]

    def describe(self) -> str:
        return f"{self.pattern} ({self.size} B)"


@dataclass(frozen=True, slots=True)
class Bits:
    """A status word of named bits (:class:`enum.IntFlag`), sent low byte first."""

    size: int
    flags: type[IntFlag] | None = None

    def decode(self, raw: bytes) -> IntFlag | int:
        _check_size(raw, self.size, self.describe())
        value = int.from_bytes(raw, "little")
        return self.flags(value) if self.flags is not None else value

    def encode(self, value: Any) -> bytes:
        if not isinstance(value, int) or not 0 <= int(value) < 1 << (8 * self.size):
            raise DataError(f"{value!r} does not fit a {self.size}-byte word")
        return int(value).to_bytes(self.size, "little")

    def describe(self) -> str:
        name = self.flags.__name__ if self.flags else "bits"
        return f"{name} ({self.size} B)"


@dataclass(frozen=True, slots=True)
class Repeat:
    """``count`` values of one format back to back (a block); ``count=None``: any number."""

    item: Format
    count: int | None

    @property
    def size(self) -> int | None:
        n = self.item.size
        return None if self.count is None or n is None else n * self.count

    def decode(self, raw: bytes) -> tuple[Any, ...]:
        n = self.item.size
        assert n is not None
        if len(raw) % n or (self.count is not None and len(raw) != n * self.count):
            raise DataError(f"a block of {self.describe()} cannot be {len(raw)} bytes")
        return tuple(self.item.decode(raw[i : i + n]) for i in range(0, len(raw), n))

    def encode(self, value: Any) -> bytes:
        if not isinstance(value, Sequence) or isinstance(value, str | bytes):
            raise DataError(f"a block needs a sequence of values, got {value!r}")
        if self.count is not None and len(value) != self.count:
            raise DataError(f"a block of {self.describe()} needs {self.count} values")
        return b"".join(self.item.encode(v) for v in value)

    def describe(self) -> str:
        return f"{self.count if self.count is not None else 'n'} × {self.item.describe()}"


@dataclass(frozen=True, slots=True)
class Record:
    """Named fields back to back (a record such as a trip record); decodes to a dict."""

    fields: tuple[tuple[str, Format], ...]

    @property
    def size(self) -> int | None:
        total = 0
        for _, f in self.fields:
            if f.size is None:
                return None
            total += f.size
        return total

    def decode(self, raw: bytes) -> dict[str, Any]:
        size = self.size
        if size is not None:
            _check_size(raw, size, self.describe())
        out: dict[str, Any] = {}
        pos = 0
        for name, f in self.fields:
            n = f.size if f.size is not None else len(raw) - pos
            out[name] = f.decode(raw[pos : pos + n])
            pos += n
        return out

    def encode(self, value: Any) -> bytes:
        if not isinstance(value, Mapping):
            raise DataError(f"a record needs a mapping of {[n for n, _ in self.fields]}")
        missing = [n for n, _ in self.fields if n not in value]
        if missing:
            raise DataError(f"record is missing {missing}")
        return b"".join(f.encode(value[n]) for n, f in self.fields)

    def describe(self) -> str:
        return "record(" + ", ".join(n for n, _ in self.fields) + ")"


@dataclass(frozen=True, slots=True)
class LadderTable:
    """A ladder (tier) table as held in a local-prepay meter (阶梯表).

    ``thresholds`` (kWh, 6), ``prices`` (元/kWh, 7) and ``settlement_dates``
    (``MMDDhh`` text, 6; ``999999`` = unused).
    """

    thresholds: tuple[Decimal, ...]
    prices: tuple[Decimal, ...]
    settlement_dates: tuple[str, ...]


_LADDER_VALUE: Final = Bcd(4, 2)
_LADDER_PRICE: Final = Bcd(4, 4)


@dataclass(frozen=True, slots=True)
class LadderTableFormat:
    """70 bytes: 6 ladder values, 7 ladder prices, 6 annual settlement dates (2013 layout)."""

    size: int = 70

    def decode(self, raw: bytes) -> LadderTable:
        _check_size(raw, 70, "ladder table")
        values = tuple(_LADDER_VALUE.decode(raw[i : i + 4]) for i in range(0, 24, 4))
        prices = tuple(_LADDER_PRICE.decode(raw[i : i + 4]) for i in range(24, 52, 4))
        dates = tuple(Digits(3).decode(raw[i : i + 3]) for i in range(52, 70, 3))
        return LadderTable(values, prices, dates)

    def encode(self, value: Any) -> bytes:
        if not isinstance(value, LadderTable):
            raise DataError(f"a ladder table is needed, got {value!r}")
        if len(value.thresholds) != 6 or len(value.prices) != 7 or len(value.settlement_dates) != 6:
            raise DataError("a ladder table has 6 thresholds, 7 prices and 6 settlement dates")
        return (
            b"".join(_LADDER_VALUE.encode(v) for v in value.thresholds)
            + b"".join(_LADDER_PRICE.encode(p) for p in value.prices)
            + b"".join(Digits(3).encode(d) for d in value.settlement_dates)
        )

    def describe(self) -> str:
        return "ladder table (70 B)"
