"""Meter communication addresses (通信地址): 12 BCD digits, sent low byte first."""

from __future__ import annotations

from typing import Final

from .bcd import ADDRESS_BYTES
from .errors import FrameError

__all__ = ["BROADCAST", "WILDCARD", "Address"]


class Address(str):
    """A meter address: 12 characters, each byte pair ``00``..``99`` or ``AA``.

    ``99…99`` is the broadcast address, ``AA…AA`` the wildcard; an abbreviated
    address replaces high bytes by ``AA`` (e.g. ``AAAAAA781012``) and matches any
    meter whose low bytes agree. It is a ``str``, so it compares and hashes like
    its digits.
    """

    __slots__ = ()

    def __new__(cls, value: str | int) -> Address:
        text = f"{value:012d}" if isinstance(value, int) else str(value).strip().upper()
        if len(text) != 12:
            raise FrameError(f"address {value!r} must have 12 digits (BCD), e.g. 123456781012")
        for i in range(0, 12, 2):
            pair = text[i : i + 2]
            if pair != "AA" and not (pair.isdigit() and pair.isascii()):
                raise FrameError(
                    f"address {value!r}: byte {pair!r} is neither two decimal digits nor AA"
                )
        return str.__new__(cls, text)

    @classmethod
    def from_wire(cls, wire: bytes) -> Address:
        """Decode the 6 address bytes as sent (low byte first)."""
        if len(wire) != 6:
            raise FrameError(f"an address has 6 bytes, got {len(wire)}")
        if wire.translate(None, ADDRESS_BYTES):
            raise FrameError(f"address bytes {wire.hex(' ').upper()} are not BCD")
        return str.__new__(cls, wire[::-1].hex().upper())

    @property
    def wire(self) -> bytes:
        """The 6 bytes as sent on the line, low byte first."""
        return bytes.fromhex(self)[::-1]

    @property
    def is_broadcast(self) -> bool:
        return self == "999999999999"

    @property
    def is_wildcard(self) -> bool:
        """``AA…AA``: every byte is a wildcard."""
        return self == "AAAAAAAAAAAA"

    @property
    def is_abbreviated(self) -> bool:
        """Some (not all) high bytes are ``AA``."""
        return "A" in self and not self.is_wildcard

    def matches(self, meter: str) -> bool:
        """True if a frame sent to this address is for ``meter`` (its full address).

        Broadcast matches every meter; ``AA`` bytes match anything.
        """
        if self.is_broadcast:
            return True
        for i in range(0, 12, 2):
            pair = self[i : i + 2]
            if pair != "AA" and pair != meter[i : i + 2]:
                return False
        return True


BROADCAST: Final = Address("999999999999")
WILDCARD: Final = Address("AAAAAAAAAAAA")
