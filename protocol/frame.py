"""The DL/T 645-2007 frame (帧): sans-IO encode and decode.

::

    [FE..]  68  A0..A5  68  C  L  DATA(L bytes, each +33H)  CS  16

``Frame.data`` holds the data field *unscrambled* (33H already subtracted);
scrambling happens only in :func:`encode_frame` / :func:`decode_frame`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final, NamedTuple
from zlib import adler32

from .address import Address
from .codes import ABNORMAL, DIRECTION, FOLLOW_UP, FUNCTION_MASK, FunctionCode
from .errors import ChecksumError, FrameError, IncompleteFrameError

__all__ = [
    "HEADER_SIZE",
    "MAX_DATA",
    "MAX_FRAME",
    "PREAMBLE",
    "Frame",
    "checksum",
    "decode_frame",
    "encode_frame",
    "remember_addresses",
    "scramble",
    "unscramble",
]

START: Final = 0x68
END: Final = 0x16
WAKE: Final = 0xFE
PREAMBLE: Final = b"\xfe\xfe\xfe\xfe"
HEADER_SIZE: Final = 10
"""Bytes before DATA: 68, 6 address bytes, 68, C, L."""
MAX_DATA: Final = 255
MAX_FRAME: Final = HEADER_SIZE + MAX_DATA + 2

_SCRAMBLE: Final = bytes((b + 0x33) & 0xFF for b in range(256))
_UNSCRAMBLE: Final = bytes((b - 0x33) & 0xFF for b in range(256))


_SHORT_SUM: Final = 256
"""Up to this many bytes (at most 255 each) sum to less than 65521, Adler-32's modulus."""


def checksum(data: bytes | bytearray) -> int:
    """CS: the sum of the bytes, modulo 256.

    Computed with :func:`zlib.adler32` in C: its low half is 1 + the sum of the
    bytes modulo 65521, which is the sum itself while that stays below 65520.
    """
    if len(data) <= _SHORT_SUM:
        return ((adler32(data) & 0xFFFF) - 1) & 0xFF
    return sum(data) & 0xFF


def scramble(data: bytes) -> bytes:
    """Add 33H to every byte (as sent on the line)."""
    return data.translate(_SCRAMBLE)


def unscramble(data: bytes) -> bytes:
    """Subtract 33H from every byte (as received)."""
    return data.translate(_UNSCRAMBLE)


class Frame(NamedTuple):
    """One frame: address, control byte and the unscrambled data field."""

    address: Address
    control: int
    data: bytes = b""

    @property
    def function(self) -> int:
        """Function code (D4..D0); a :class:`FunctionCode` value when known."""
        return self.control & FUNCTION_MASK

    @property
    def is_reply(self) -> bool:
        """D7: sent by a meter."""
        return bool(self.control & DIRECTION)

    @property
    def is_abnormal(self) -> bool:
        """D6 on a reply: the meter refused the request."""
        return bool(self.control & ABNORMAL) and self.is_reply

    @property
    def has_follow_up(self) -> bool:
        """D5: more frames follow."""
        return bool(self.control & FOLLOW_UP)

    def describe_control(self) -> str:
        """A short text of the control byte, e.g. ``91 (reply, READ)``."""
        try:
            fname = FunctionCode(self.function).name
        except ValueError:
            fname = f"function {self.function:02X}H"
        parts = ["reply" if self.is_reply else "request"]
        if self.is_abnormal:
            parts.append("abnormal")
        if self.has_follow_up:
            parts.append("follow-up")
        parts.append(fname)
        return f"{self.control:02X} ({', '.join(parts)})"


def encode_frame(frame: Frame, preamble: int = 4) -> bytes:
    """The bytes of ``frame`` with ``preamble`` (0–4) wake-up ``FE`` bytes in front."""
    if not 0 <= preamble <= 4:
        raise FrameError(f"preamble must be 0..4 FE bytes, got {preamble}")
    data = frame.data
    if len(data) > MAX_DATA:
        raise FrameError(f"data field of {len(data)} bytes exceeds {MAX_DATA}")
    control = frame.control
    if not 0 <= control <= 0xFF:
        raise FrameError(f"control byte {control} is out of range")
    address = frame.address
    head = _HEADS.get(address) if type(address) is Address else None
    if head is None:
        if type(address) is not Address:
            address = Address(address)  # validated once; an Address is valid by construction
        wire = address.wire
        head = b"\x68" + wire + b"\x68"
        if len(_HEADS) >= _ADDRESS_CACHE_SIZE:
            _HEADS.clear()
        _HEADS[address] = head
        if address.isdigit():  # a meter's own address: its reply is decoded from the cache
            _remember(wire, address)
    body = head + bytes((control, len(data))) + data.translate(_SCRAMBLE)
    return PREAMBLE[:preamble] + body + bytes((checksum(body), END))


def decode_frame(buf: bytes | bytearray) -> tuple[Frame, int]:
    """Decode the first frame of ``buf``; return it and the number of bytes used.

    Leading ``FE`` bytes (any number) are skipped; anything else before the frame
    is an error. Raises :class:`IncompleteFrameError` when ``buf`` ends early,
    :class:`ChecksumError` on a bad CS and :class:`FrameError` otherwise.
    """
    if type(buf) is not bytes:
        buf = bytes(buf)
    n = len(buf)
    i = n - len(buf.lstrip(b"\xfe")) if n and buf[0] == WAKE else 0
    if i == n:
        raise IncompleteFrameError("no frame start (68H) yet: only wake-up bytes")
    if buf[i] != START:
        raise FrameError(f"a frame starts with 68H, found {buf[i]:02X}H at byte {i}")
    if n < i + HEADER_SIZE:
        raise IncompleteFrameError(f"frame header needs {HEADER_SIZE} bytes, have {n - i}")
    if buf[i + 7] != START:
        raise FrameError(f"second 68H missing after the address (found {buf[i + 7]:02X}H)")
    length = buf[i + 9]
    end = i + HEADER_SIZE + length
    if n < end + 2:
        raise IncompleteFrameError(f"frame of {length} data bytes needs {end + 2 - i} bytes")
    cs = checksum(buf[i:end])
    if buf[end] != cs:
        raise ChecksumError(
            f"checksum error: frame says {buf[end]:02X}H, bytes sum to {cs:02X}H", cs, buf[end]
        )
    if buf[end + 1] != END:
        raise FrameError(f"frame must end with 16H, found {buf[end + 1]:02X}H")
    wire = buf[i + 1 : i + 7]
    address = _ADDRESS_CACHE.get(wire)
    if address is None:
        address = _address(wire)
    return (
        _new_frame(Frame, (address, buf[i + 8], buf[i + HEADER_SIZE : end].translate(_UNSCRAMBLE))),
        end + 2,
    )


_ADDRESS_CACHE: Final[dict[bytes, Address]] = {}
"""Addresses decoded from their wire bytes (valid ones only)."""
_HEADS: Final[dict[str, bytes]] = {}
"""``68 A0..A5 68`` of the addresses encoded (a master and a fleet send to the same
meters again)."""
_ADDRESS_CACHE_SIZE: Final = 1 << 16
_new_frame: Final = tuple.__new__


def _address(wire: bytes) -> Address:
    """Decode (and remember) a wire address: a head-end talks to the same meters again."""
    address = Address.from_wire(wire)
    _remember(wire, address)
    return address


def _remember(wire: bytes, address: Address) -> None:
    if len(_ADDRESS_CACHE) >= _ADDRESS_CACHE_SIZE:
        _ADDRESS_CACHE.clear()
    _ADDRESS_CACHE[wire] = address


def remember_addresses(addresses: Iterable[Address]) -> None:
    """Addresses frames will come from (a fleet's meters): their frames are decoded from
    a cache from the first one on (at most 65,536 are kept)."""
    for address in addresses:
        if type(address) is Address and address.isdigit():
            _remember(address.wire, address)
