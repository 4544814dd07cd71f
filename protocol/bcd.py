"""BCD helpers: DL/T 645 sends every multi-byte item low byte first."""

from __future__ import annotations

from datetime import datetime
from typing import Final

from .errors import DataError

__all__ = [
    "ADDRESS_BYTES",
    "BCD_BYTES",
    "bcd_decode",
    "bcd_encode",
    "decode_expiry",
    "decode_hex_code",
    "encode_expiry",
    "encode_hex_code",
]

BCD_BYTES: Final = bytes(t * 16 + u for t in range(10) for u in range(10))
"""Every byte that is two BCD digits (00..99): ``raw.translate(None, BCD_BYTES)`` is empty
exactly when ``raw`` is BCD."""
ADDRESS_BYTES: Final = BCD_BYTES + b"\xaa"
"""BCD bytes plus the ``AA`` wildcard byte of addresses."""


def bcd_encode(value: int, size: int) -> bytes:
    """``value`` as ``size`` BCD bytes, low byte first."""
    if value < 0:
        raise DataError(f"BCD cannot hold the negative value {value}")
    text = str(value)
    if len(text) > size * 2:
        raise DataError(f"{value} needs more than {size * 2} BCD digits")
    return bytes.fromhex(text.zfill(size * 2))[::-1]


def bcd_decode(raw: bytes) -> int:
    """The integer of BCD bytes sent low byte first; :class:`DataError` if not BCD."""
    if raw.translate(None, BCD_BYTES):
        raise DataError(f"bytes {raw.hex(' ').upper()} are not BCD")
    return int(raw[::-1].hex() or "0")


def encode_hex_code(code: str, size: int, what: str) -> bytes:
    """A password or operator code given as hex digits (``"123456"``), low byte first."""
    text = code.strip()
    if len(text) != size * 2:
        raise DataError(f"{what} must be {size * 2} hex digits, got {code!r}")
    try:
        return bytes.fromhex(text)[::-1]
    except ValueError:
        raise DataError(f"{what} must be hex digits, got {code!r}") from None


def decode_hex_code(raw: bytes) -> str:
    """The inverse of :func:`encode_hex_code`."""
    return raw[::-1].hex().upper()


def encode_expiry(when: datetime) -> bytes:
    """A time as ``ss mm hh DD MM YY`` (low byte first), as in 08H and 1CH."""
    if not 2000 <= when.year <= 2099:
        raise DataError(f"year {when.year} cannot be sent: DL/T 645 carries 2000..2099")
    return bytes.fromhex(
        f"{when.second:02d}{when.minute:02d}{when.hour:02d}"
        f"{when.day:02d}{when.month:02d}{when.year - 2000:02d}"
    )


def decode_expiry(raw: bytes) -> datetime:
    """The inverse of :func:`encode_expiry`; :class:`DataError` for an impossible time."""
    if len(raw) != 6:
        raise DataError(f"a time ss mm hh DD MM YY has 6 bytes, got {len(raw)}")
    if raw.translate(None, BCD_BYTES):
        raise DataError(f"time bytes {raw.hex(' ').upper()} are not BCD")
    ss, mi, hh, dd, mo, yy = (int(f"{b:02x}") for b in raw)
    try:
        return datetime(2000 + yy, mo, dd, hh, mi, ss)
    except ValueError as exc:
        raise DataError(f"time bytes {raw.hex(' ').upper()} are not a valid time: {exc}") from None
