"""Typed messages (the PDU layer): one class per function code and direction.

:func:`decode_message` turns a :class:`~protocol.frame.Frame` into the message
it carries; :func:`to_frame` does the reverse. Requests go master → meter,
replies meter → master. A frame with a function code we do not know becomes an
:class:`UnknownMessage`, so nothing received is lost.

Layouts (data field, before +33H) follow PROTOCOL.md §1 and §3: passwords are
``PA P0 P1 P2`` (level, then the 3 password bytes low first), operator codes
``C0..C3`` low first; both are given as hex digit strings (``"123456"``,
``"12345678"``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime
from enum import IntFlag
from typing import Any, ClassVar, Final

from .address import WILDCARD, Address
from .bcd import (
    bcd_decode,
    bcd_encode,
    decode_expiry,
    decode_hex_code,
    encode_expiry,
    encode_hex_code,
)
from .codes import (
    ABNORMAL,
    DIRECTION,
    FOLLOW_UP,
    FUNCTION_MASK,
    ControlCommand,
    ControlErrorWord,
    ErrorWord,
    ExecInfoWord,
    FunctionCode,
    PasswordLevel,
    SecurityErrorWord,
    names,
)
from .di import DataValue, decode_value, encode_value, format_di
from .errors import DataError
from .frame import Frame

__all__ = [
    "IDENTITY_AUTH_DI",
    "AckReply",
    "ChangeBaudReply",
    "ChangeBaudRequest",
    "ChangePasswordReply",
    "ChangePasswordRequest",
    "ClearDemandRequest",
    "ClearEventsRequest",
    "ClearMeterRequest",
    "ControlErrorReply",
    "ControlReply",
    "ControlRequest",
    "ErrorReply",
    "FreezeRequest",
    "IdentityAuthReply",
    "IdentityAuthRequest",
    "Message",
    "MultiFunctionReply",
    "MultiFunctionRequest",
    "ReadAddressReply",
    "ReadAddressRequest",
    "ReadFollowUpReply",
    "ReadFollowUpRequest",
    "ReadReply",
    "ReadRequest",
    "SecureControlRequest",
    "SecurityErrorReply",
    "SecurityReply",
    "SecurityRequest",
    "TimeSyncRequest",
    "UnknownMessage",
    "WriteAddressRequest",
    "WriteRequest",
    "decode_message",
    "to_frame",
]

IDENTITY_AUTH_DI: Final = 0x070000FF
"""03H DI of identity authentication (身份认证)."""


def _di(data: bytes) -> int:
    return int.from_bytes(data[:4], "little")


def _need(data: bytes, sizes: tuple[int, ...], what: str) -> None:
    if len(data) not in sizes:
        want = " or ".join(str(s) for s in sizes)
        raise DataError(f"{what} has {want} data bytes, got {len(data)}")


def _level(level: int) -> int:
    if not 0 <= level <= 0xFF:
        raise DataError(f"password level {level} must be one byte (00..09, 98, 99)")
    return level


def _password_bytes(level: int, password: str) -> bytes:
    return bytes((_level(level),)) + encode_hex_code(password, 3, "password")


def _operator_bytes(operator: str) -> bytes:
    return encode_hex_code(operator, 4, "operator code")


class Message(ABC):
    """Base of every message; subclasses are frozen dataclasses."""

    __slots__ = ()
    FUNCTION: ClassVar[int]
    REPLY: ClassVar[bool] = False

    @abstractmethod
    def to_data(self) -> bytes:
        """The data field (before +33H)."""

    @property
    def control(self) -> int:
        """The control byte this message is sent with."""
        return self.FUNCTION | (DIRECTION if self.REPLY else 0)

    def describe(self) -> str:
        """One line for people."""
        return repr(self)


# ---------------------------------------------------------------------------
# Requests (master → meter)
# ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReadRequest(Message):
    """11H read data: a DI, optionally a block count N and a load-record start time."""

    FUNCTION: ClassVar[int] = FunctionCode.READ
    di: int
    blocks: int | None = None
    since: datetime | None = None

    def to_data(self) -> bytes:
        data = self.di.to_bytes(4, "little")
        if self.blocks is not None:
            data += bcd_encode(self.blocks, 1)
            if self.since is not None:
                t = self.since
                data += bytes.fromhex(
                    f"{t.minute:02d}{t.hour:02d}{t.day:02d}{t.month:02d}{t.year % 100:02d}"
                )
        elif self.since is not None:
            raise DataError("a load-record read (since=…) needs a block count N")
        return data

    @classmethod
    def parse(cls, data: bytes, control: int) -> ReadRequest:
        _need(data, (4, 5, 10), "a read request (11H)")
        blocks = bcd_decode(data[4:5]) if len(data) >= 5 else None
        since = None
        if len(data) == 10:
            mm, hh, dd, mo, yy = (bcd_decode(data[i : i + 1]) for i in range(5, 10))
            try:
                since = datetime(2000 + yy, mo, dd, hh, mm)
            except ValueError as exc:
                raise DataError(f"load-record start time is invalid: {exc}") from None
        return cls(_di(data), blocks, since)

    def describe(self) -> str:
        extra = f", N={self.blocks}" if self.blocks is not None else ""
        extra += f", since {self.since:%Y-%m-%d %H:%M}" if self.since else ""
        return f"read {format_di(self.di)}{extra}"


@dataclass(frozen=True, slots=True)
class ReadFollowUpRequest(Message):
    """12H read follow-up data: DI and the frame sequence number SEQ (1, 2, …)."""

    FUNCTION: ClassVar[int] = FunctionCode.READ_FOLLOW_UP
    di: int
    seq: int

    def to_data(self) -> bytes:
        if not 0 <= self.seq <= 0xFF:
            raise DataError(f"SEQ {self.seq} must be one byte")
        return self.di.to_bytes(4, "little") + bytes((self.seq,))

    @classmethod
    def parse(cls, data: bytes, control: int) -> ReadFollowUpRequest:
        _need(data, (5,), "a follow-up read request (12H)")
        return cls(_di(data), data[4])

    def describe(self) -> str:
        return f"read follow-up {format_di(self.di)} SEQ={self.seq}"


@dataclass(frozen=True, slots=True)
class ReadAddressRequest(Message):
    """13H read communication address (sent to AA…AA)."""

    FUNCTION: ClassVar[int] = FunctionCode.READ_ADDRESS

    def to_data(self) -> bytes:
        return b""

    @classmethod
    def parse(cls, data: bytes, control: int) -> ReadAddressRequest:
        _need(data, (0,), "a read-address request (13H)")
        return cls()

    def describe(self) -> str:
        return "read communication address"


@dataclass(frozen=True, slots=True)
class WriteRequest(Message):
    """14H write data: DI, password (level + 3 bytes), operator code, value bytes."""

    FUNCTION: ClassVar[int] = FunctionCode.WRITE
    di: int
    value: bytes
    level: int = 2
    password: str = "000000"
    operator: str = "00000000"

    @classmethod
    def for_value(cls, di: int, value: Any, **kw: Any) -> WriteRequest:
        """A write whose value is encoded with the DI's registered format."""
        return cls(di, encode_value(di, value), **kw)

    def to_data(self) -> bytes:
        return (
            self.di.to_bytes(4, "little")
            + _password_bytes(self.level, self.password)
            + _operator_bytes(self.operator)
            + self.value
        )

    @classmethod
    def parse(cls, data: bytes, control: int) -> WriteRequest:
        if len(data) < 12:
            raise DataError(f"a write request (14H) has at least 12 data bytes, got {len(data)}")
        return cls(
            _di(data), data[12:], data[4], decode_hex_code(data[5:8]), decode_hex_code(data[8:12])
        )

    def describe(self) -> str:
        return (
            f"write {format_di(self.di)} = {self.value.hex(' ').upper()} "
            f"(level {self.level:02X}, operator {self.operator})"
        )


@dataclass(frozen=True, slots=True)
class WriteAddressRequest(Message):
    """15H write communication address (sent to AA…AA; needs the programming key)."""

    FUNCTION: ClassVar[int] = FunctionCode.WRITE_ADDRESS
    address: Address

    def to_data(self) -> bytes:
        return Address(self.address).wire

    @classmethod
    def parse(cls, data: bytes, control: int) -> WriteAddressRequest:
        _need(data, (6,), "a write-address request (15H)")
        try:
            return cls(Address.from_wire(data))
        except Exception as exc:
            raise DataError(str(exc)) from None

    def describe(self) -> str:
        return f"write communication address {self.address}"


@dataclass(frozen=True, slots=True)
class FreezeRequest(Message):
    """16H freeze ``mm hh DD MM``; a ``None`` field is sent as 99 (periodic wildcard).

    99DDhhmm = monthly, 9999hhmm = daily, 999999mm = hourly, 99999999 = now.
    """

    FUNCTION: ClassVar[int] = FunctionCode.FREEZE
    month: int | None = None
    day: int | None = None
    hour: int | None = None
    minute: int | None = None

    def to_data(self) -> bytes:
        out = bytearray()
        for v, hi in ((self.minute, 59), (self.hour, 23), (self.day, 31), (self.month, 12)):
            if v is None:
                out.append(0x99)
            elif 0 <= v <= hi:
                out += bcd_encode(v, 1)
            else:
                raise DataError(f"freeze time field {v} is out of range 0..{hi}")
        return bytes(out)

    @classmethod
    def parse(cls, data: bytes, control: int) -> FreezeRequest:
        _need(data, (4,), "a freeze request (16H)")
        vals = [None if b == 0x99 else bcd_decode(bytes((b,))) for b in data]
        mm, hh, dd, mo = vals
        return cls(mo, dd, hh, mm)

    @property
    def kind(self) -> str:
        """``instant``, ``hourly``, ``daily``, ``monthly`` or ``once``."""
        fields = (self.month, self.day, self.hour, self.minute)
        if all(v is None for v in fields):
            return "instant"
        if self.month is None and self.day is None and self.hour is None:
            return "hourly"
        if self.month is None and self.day is None:
            return "daily"
        if self.month is None:
            return "monthly"
        return "once"

    def describe(self) -> str:
        def f(v: int | None) -> str:
            return "99" if v is None else f"{v:02d}"

        return (
            f"freeze ({self.kind}) MMDDhhmm={f(self.month)}{f(self.day)}"
            f"{f(self.hour)}{f(self.minute)}"
        )


@dataclass(frozen=True, slots=True)
class ChangeBaudRequest(Message):
    """17H change baud rate: the baud characteristic word Z."""

    FUNCTION: ClassVar[int] = FunctionCode.CHANGE_BAUD
    word: int

    def to_data(self) -> bytes:
        return bytes((self.word & 0xFF,))

    @classmethod
    def parse(cls, data: bytes, control: int) -> ChangeBaudRequest:
        _need(data, (1,), "a change-baud request (17H)")
        return cls(data[0])

    def describe(self) -> str:
        from .codes import baud_from_word

        return f"change baud rate to {baud_from_word(self.word) or '?'} (Z={self.word:02X})"


@dataclass(frozen=True, slots=True)
class ChangePasswordRequest(Message):
    """18H change password: DI 04000C0n (n = level + 1), old and new ``PA P0P1P2``."""

    FUNCTION: ClassVar[int] = FunctionCode.CHANGE_PASSWORD
    level: int
    old_password: str
    new_password: str
    old_level: int | None = None

    @property
    def di(self) -> int:
        return 0x04000C01 + self.level

    def to_data(self) -> bytes:
        if not 0 <= self.level <= 9:
            raise DataError(f"password level {self.level} must be 0..9")
        old_level = self.level if self.old_level is None else self.old_level
        return (
            self.di.to_bytes(4, "little")
            + _password_bytes(old_level, self.old_password)
            + _password_bytes(self.level, self.new_password)
        )

    @classmethod
    def parse(cls, data: bytes, control: int) -> ChangePasswordRequest:
        _need(data, (12,), "a change-password request (18H)")
        level = _di(data) - 0x04000C01
        if not 0 <= level <= 9:
            raise DataError(f"change-password DI {format_di(_di(data))} is not 04000C01..0A")
        return cls(level, decode_hex_code(data[5:8]), decode_hex_code(data[9:12]), data[4])

    def describe(self) -> str:
        return f"change level-{self.level} password"


@dataclass(frozen=True, slots=True)
class _Authorised(Message):
    """Common shape of 19H/1AH: ``PA P0P1P2 C0..C3`` and optional extra (cipher) bytes."""

    level: int = 2
    password: str = "000000"
    operator: str = "00000000"
    extra: bytes = b""

    def to_data(self) -> bytes:
        return (
            _password_bytes(self.level, self.password) + _operator_bytes(self.operator) + self.extra
        )

    @classmethod
    def _parse_auth(cls, data: bytes) -> tuple[int, str, str, bytes]:
        if len(data) < 8:
            raise DataError(f"{cls.__name__} needs at least 8 data bytes, got {len(data)}")
        return data[0], decode_hex_code(data[1:4]), decode_hex_code(data[4:8]), data[8:]


@dataclass(frozen=True, slots=True)
class ClearDemandRequest(_Authorised):
    """19H clear maximum demand."""

    FUNCTION: ClassVar[int] = FunctionCode.CLEAR_DEMAND

    @classmethod
    def parse(cls, data: bytes, control: int) -> ClearDemandRequest:
        return cls(*cls._parse_auth(data))

    def describe(self) -> str:
        return f"clear maximum demand (level {self.level:02X}, operator {self.operator})"


@dataclass(frozen=True, slots=True)
class ClearMeterRequest(_Authorised):
    """1AH meter clear (fee-control meters need level 98 with ciphertext in ``extra``)."""

    FUNCTION: ClassVar[int] = FunctionCode.CLEAR_METER

    @classmethod
    def parse(cls, data: bytes, control: int) -> ClearMeterRequest:
        return cls(*cls._parse_auth(data))

    def describe(self) -> str:
        return f"meter clear (level {self.level:02X}, operator {self.operator})"


@dataclass(frozen=True, slots=True)
class ClearEventsRequest(Message):
    """1BH event clear: ``PA P0P1P2 C0..C3`` + the event DI (FFFFFFFF = all)."""

    FUNCTION: ClassVar[int] = FunctionCode.CLEAR_EVENTS
    di: int = 0xFFFFFFFF
    level: int = 2
    password: str = "000000"
    operator: str = "00000000"
    extra: bytes = b""

    def to_data(self) -> bytes:
        return (
            _password_bytes(self.level, self.password)
            + _operator_bytes(self.operator)
            + self.di.to_bytes(4, "little")
            + self.extra
        )

    @classmethod
    def parse(cls, data: bytes, control: int) -> ClearEventsRequest:
        if len(data) < 12:
            raise DataError(f"an event-clear request (1BH) has at least 12 bytes, got {len(data)}")
        return cls(
            int.from_bytes(data[8:12], "little"),
            data[0],
            decode_hex_code(data[1:4]),
            decode_hex_code(data[4:8]),
            data[12:],
        )

    def describe(self) -> str:
        what = "all events" if self.di == 0xFFFFFFFF else format_di(self.di)
        return f"event clear: {what}"


def _command_name(command: int) -> str:
    try:
        return ControlCommand(command).name
    except ValueError:
        return f"command {command:02X}H"


@dataclass(frozen=True, slots=True)
class ControlRequest(Message):
    """1CH in plaintext (factory/test mode): ``PA P0P1P2 C0..C3 N1 N2 N3..N8``, L=16.

    N1 is the command, N2 reserved, N3..N8 the expiry ``ss mm hh DD MM YY``.
    """

    FUNCTION: ClassVar[int] = FunctionCode.CONTROL
    command: int
    expiry: datetime
    level: int = 2
    password: str = "000000"
    operator: str = "00000000"
    reserved: int = 0

    def to_data(self) -> bytes:
        if self.level == PasswordLevel.CIPHER_MAC:
            raise DataError("level 98 is the ciphered form: use SecureControlRequest")
        return (
            _password_bytes(self.level, self.password)
            + _operator_bytes(self.operator)
            + bytes((self.command & 0xFF, self.reserved & 0xFF))
            + encode_expiry(self.expiry)
        )

    def describe(self) -> str:
        return (
            f"control {_command_name(self.command)} (plaintext, level {self.level:02X}, "
            f"operator {self.operator}), expires {self.expiry:%Y-%m-%d %H:%M:%S}"
        )


@dataclass(frozen=True, slots=True)
class SecureControlRequest(Message):
    """1CH at level 98: ``98 P0P1P2 C0..C3`` + 16-byte ciphertext + 4-byte MAC, L=28."""

    FUNCTION: ClassVar[int] = FunctionCode.CONTROL
    block: bytes
    operator: str = "00000000"
    password: str = "000000"

    def to_data(self) -> bytes:
        if len(self.block) != 20:
            raise DataError(
                f"a level-98 control block is 16 cipher + 4 MAC bytes, got {len(self.block)}"
            )
        return (
            _password_bytes(PasswordLevel.CIPHER_MAC, self.password)
            + _operator_bytes(self.operator)
            + self.block
        )

    @property
    def ciphertext(self) -> bytes:
        return self.block[:16]

    @property
    def mac(self) -> bytes:
        return self.block[16:]

    def describe(self) -> str:
        return (
            f"control (level 98, ciphertext {self.ciphertext.hex().upper()}, "
            f"MAC {self.mac.hex().upper()}, operator {self.operator})"
        )


def _parse_control(data: bytes, control: int) -> ControlRequest | SecureControlRequest:
    if data[:1] == b"\x98":
        _need(data, (28,), "a level-98 control request (1CH)")
        return SecureControlRequest(
            data[8:], decode_hex_code(data[4:8]), decode_hex_code(data[1:4])
        )
    _need(data, (16,), "a plaintext control request (1CH)")
    return ControlRequest(
        data[8],
        decode_expiry(data[10:16]),
        data[0],
        decode_hex_code(data[1:4]),
        decode_hex_code(data[4:8]),
        data[9],
    )


@dataclass(frozen=True, slots=True)
class SecurityRequest(Message):
    """03H security authentication: DI + operator code + payload (N1..Nm)."""

    FUNCTION: ClassVar[int] = FunctionCode.SECURITY
    di: int
    payload: bytes = b""
    operator: str = "00000000"

    def to_data(self) -> bytes:
        return self.di.to_bytes(4, "little") + _operator_bytes(self.operator) + self.payload

    def describe(self) -> str:
        return (
            f"security {format_di(self.di)} (operator {self.operator}, "
            f"{len(self.payload)} payload bytes)"
        )


@dataclass(frozen=True, slots=True)
class IdentityAuthRequest(Message):
    """03H identity authentication (DI 070000FF): cipher1 (8), random1 (8), factor (8)."""

    FUNCTION: ClassVar[int] = FunctionCode.SECURITY
    cipher1: bytes
    random1: bytes
    factor: bytes
    operator: str = "00000000"

    def to_data(self) -> bytes:
        for name, v in (
            ("cipher1", self.cipher1),
            ("random1", self.random1),
            ("factor", self.factor),
        ):
            if len(v) != 8:
                raise DataError(f"identity authentication {name} must be 8 bytes, got {len(v)}")
        return (
            IDENTITY_AUTH_DI.to_bytes(4, "little")
            + _operator_bytes(self.operator)
            + self.cipher1
            + self.random1
            + self.factor
        )

    def describe(self) -> str:
        return (
            f"identity authentication (factor {self.factor.hex().upper()}, "
            f"operator {self.operator})"
        )


def _parse_security(data: bytes, control: int) -> SecurityRequest | IdentityAuthRequest:
    if len(data) < 8:
        raise DataError(f"a security request (03H) has at least 8 data bytes, got {len(data)}")
    di, operator = _di(data), decode_hex_code(data[4:8])
    if di == IDENTITY_AUTH_DI:
        _need(data, (32,), "an identity authentication request (03H 070000FF)")
        return IdentityAuthRequest(data[8:16], data[16:24], data[24:32], operator)
    return SecurityRequest(di, data[8:], operator)


@dataclass(frozen=True, slots=True)
class TimeSyncRequest(Message):
    """08H broadcast time sync ``ss mm hh DD MM YY`` (meters never reply)."""

    FUNCTION: ClassVar[int] = FunctionCode.BROADCAST_TIME
    when: datetime

    def to_data(self) -> bytes:
        return encode_expiry(self.when)

    @classmethod
    def parse(cls, data: bytes, control: int) -> TimeSyncRequest:
        _need(data, (6,), "a time sync (08H)")
        return cls(decode_expiry(data))

    def describe(self) -> str:
        return f"broadcast time sync to {self.when:%Y-%m-%d %H:%M:%S}"


@dataclass(frozen=True, slots=True)
class MultiFunctionRequest(Message):
    """1DH multi-function terminal output: 00 second pulse, 01 demand period, 02 segment switch."""

    FUNCTION: ClassVar[int] = FunctionCode.MULTI_FUNCTION
    mode: int

    def to_data(self) -> bytes:
        return bytes((self.mode & 0xFF,))

    @classmethod
    def parse(cls, data: bytes, control: int) -> MultiFunctionRequest:
        _need(data, (1,), "a multi-function output request (1DH)")
        return cls(data[0])

    def describe(self) -> str:
        modes = {0: "clock second pulse", 1: "demand period", 2: "time-segment switch"}
        return f"multi-function output: {modes.get(self.mode, f'mode {self.mode:02X}')}"


# ---------------------------------------------------------------------------
# Replies (meter → master)
# ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReadReply(Message):
    """91H (B1H with follow-up) read reply: DI + value bytes."""

    FUNCTION: ClassVar[int] = FunctionCode.READ
    REPLY: ClassVar[bool] = True
    di: int
    raw: bytes
    follow_up: bool = False

    @classmethod
    def for_value(cls, di: int, value: Any, follow_up: bool = False) -> ReadReply:
        return cls(di, encode_value(di, value), follow_up)

    @property
    def control(self) -> int:
        return self.FUNCTION | DIRECTION | (FOLLOW_UP if self.follow_up else 0)

    @property
    def value(self) -> DataValue:
        """The typed value (raw bytes for an unknown DI)."""
        return decode_value(self.di, self.raw)

    def to_data(self) -> bytes:
        return self.di.to_bytes(4, "little") + self.raw

    @classmethod
    def parse(cls, data: bytes, control: int) -> ReadReply:
        if len(data) < 4:
            raise DataError(f"a read reply has at least 4 data bytes (the DI), got {len(data)}")
        return cls(int.from_bytes(data[:4], "little"), data[4:], bool(control & FOLLOW_UP))

    def describe(self) -> str:
        more = " (more follows)" if self.follow_up else ""
        return f"read reply {format_di(self.di)} = {self.raw.hex(' ').upper()}{more}"


@dataclass(frozen=True, slots=True)
class ReadFollowUpReply(Message):
    """92H (B2H with more) follow-up reply: DI + chunk + the request's SEQ echoed."""

    FUNCTION: ClassVar[int] = FunctionCode.READ_FOLLOW_UP
    REPLY: ClassVar[bool] = True
    di: int
    raw: bytes
    seq: int
    follow_up: bool = False

    @property
    def control(self) -> int:
        return self.FUNCTION | DIRECTION | (FOLLOW_UP if self.follow_up else 0)

    def to_data(self) -> bytes:
        return self.di.to_bytes(4, "little") + self.raw + bytes((self.seq & 0xFF,))

    @classmethod
    def parse(cls, data: bytes, control: int) -> ReadFollowUpReply:
        if len(data) < 5:
            raise DataError(f"a follow-up reply has at least 5 data bytes, got {len(data)}")
        return cls(_di(data), data[4:-1], data[-1], bool(control & FOLLOW_UP))

    def describe(self) -> str:
        more = " (more follows)" if self.follow_up else " (last)"
        return f"follow-up reply {format_di(self.di)} SEQ={self.seq}{more}"


@dataclass(frozen=True, slots=True)
class ReadAddressReply(Message):
    """93H: the meter's communication address."""

    FUNCTION: ClassVar[int] = FunctionCode.READ_ADDRESS
    REPLY: ClassVar[bool] = True
    address: Address

    def to_data(self) -> bytes:
        return Address(self.address).wire

    @classmethod
    def parse(cls, data: bytes, control: int) -> ReadAddressReply:
        _need(data, (6,), "a read-address reply (93H)")
        try:
            return cls(Address.from_wire(data))
        except Exception as exc:
            raise DataError(str(exc)) from None

    def describe(self) -> str:
        return f"communication address is {self.address}"


@dataclass(frozen=True, slots=True)
class AckReply(Message):
    """A normal reply without data (94H, 95H, 96H, 99H, 9AH, 9BH)."""

    function: int
    REPLY: ClassVar[bool] = True

    @property
    def control(self) -> int:
        return self.function | DIRECTION

    def to_data(self) -> bytes:
        return b""

    def describe(self) -> str:
        return f"{_function_name(self.function)} done"


@dataclass(frozen=True, slots=True)
class ChangeBaudReply(Message):
    """97H: the new baud word echoed."""

    FUNCTION: ClassVar[int] = FunctionCode.CHANGE_BAUD
    REPLY: ClassVar[bool] = True
    word: int

    def to_data(self) -> bytes:
        return bytes((self.word & 0xFF,))

    @classmethod
    def parse(cls, data: bytes, control: int) -> ChangeBaudReply:
        _need(data, (1,), "a change-baud reply (97H)")
        return cls(data[0])


@dataclass(frozen=True, slots=True)
class ChangePasswordReply(Message):
    """98H: the new ``PA P0P1P2``."""

    FUNCTION: ClassVar[int] = FunctionCode.CHANGE_PASSWORD
    REPLY: ClassVar[bool] = True
    level: int
    password: str

    def to_data(self) -> bytes:
        return _password_bytes(self.level, self.password)

    @classmethod
    def parse(cls, data: bytes, control: int) -> ChangePasswordReply:
        _need(data, (4,), "a change-password reply (98H)")
        return cls(data[0], decode_hex_code(data[1:4]))


@dataclass(frozen=True, slots=True)
class ControlReply(Message):
    """9CH: control done; ``info`` is the 2013 execution-info word when the meter sends one."""

    FUNCTION: ClassVar[int] = FunctionCode.CONTROL
    REPLY: ClassVar[bool] = True
    info: ExecInfoWord | None = None

    def to_data(self) -> bytes:
        return b"" if self.info is None else int(self.info).to_bytes(2, "little")

    @classmethod
    def parse(cls, data: bytes, control: int) -> ControlReply:
        _need(data, (0, 2), "a control reply (9CH)")
        return cls(ExecInfoWord(int.from_bytes(data, "little")) if data else None)

    def describe(self) -> str:
        if self.info is None:
            return "control done"
        return f"control done: {', '.join(names(self.info)) or 'no info bits'}"


@dataclass(frozen=True, slots=True)
class MultiFunctionReply(Message):
    """9DH: the output mode echoed."""

    FUNCTION: ClassVar[int] = FunctionCode.MULTI_FUNCTION
    REPLY: ClassVar[bool] = True
    mode: int

    def to_data(self) -> bytes:
        return bytes((self.mode & 0xFF,))

    @classmethod
    def parse(cls, data: bytes, control: int) -> MultiFunctionReply:
        _need(data, (1,), "a multi-function output reply (9DH)")
        return cls(data[0])


@dataclass(frozen=True, slots=True)
class SecurityReply(Message):
    """83H: DI + result data of a security request."""

    FUNCTION: ClassVar[int] = FunctionCode.SECURITY
    REPLY: ClassVar[bool] = True
    di: int
    payload: bytes = b""

    def to_data(self) -> bytes:
        return self.di.to_bytes(4, "little") + self.payload

    def describe(self) -> str:
        return f"security {format_di(self.di)} done ({len(self.payload)} result bytes)"


@dataclass(frozen=True, slots=True)
class IdentityAuthReply(Message):
    """83H to identity authentication: random2 (4) + ESAM serial number (8), L=16."""

    FUNCTION: ClassVar[int] = FunctionCode.SECURITY
    REPLY: ClassVar[bool] = True
    random2: bytes
    esam_serial: bytes

    def to_data(self) -> bytes:
        if len(self.random2) != 4 or len(self.esam_serial) != 8:
            raise DataError("identity authentication reply needs random2 (4) and ESAM serial (8)")
        return IDENTITY_AUTH_DI.to_bytes(4, "little") + self.random2 + self.esam_serial

    def describe(self) -> str:
        return (
            f"identity authenticated: random2 {self.random2.hex().upper()}, "
            f"ESAM serial {self.esam_serial.hex().upper()}"
        )


def _parse_security_reply(data: bytes, control: int) -> SecurityReply | IdentityAuthReply:
    if len(data) < 4:
        raise DataError(f"a security reply (83H) has at least 4 data bytes, got {len(data)}")
    if _di(data) == IDENTITY_AUTH_DI and len(data) == 16:
        return IdentityAuthReply(data[4:8], data[8:16])
    return SecurityReply(_di(data), data[4:])


@dataclass(frozen=True, slots=True)
class ErrorReply(Message):
    """An abnormal reply (C|C0H) with the 1-byte error word ERR."""

    function: int
    error: ErrorWord
    REPLY: ClassVar[bool] = True

    @property
    def control(self) -> int:
        return self.function | DIRECTION | ABNORMAL

    def to_data(self) -> bytes:
        return bytes((int(self.error),))

    def describe(self) -> str:
        return _refused(_function_name(self.function), "ERR", self.error, 2)


@dataclass(frozen=True, slots=True)
class SecurityErrorReply(Message):
    """C3H, L=2: the security error word SERR."""

    FUNCTION: ClassVar[int] = FunctionCode.SECURITY
    REPLY: ClassVar[bool] = True
    error: SecurityErrorWord

    @property
    def control(self) -> int:
        return self.FUNCTION | DIRECTION | ABNORMAL

    def to_data(self) -> bytes:
        return int(self.error).to_bytes(2, "little")

    def describe(self) -> str:
        return _refused("security request", "SERR", self.error, 4)


@dataclass(frozen=True, slots=True)
class ControlErrorReply(Message):
    """DCH, L=2: the 2013 control-error word."""

    FUNCTION: ClassVar[int] = FunctionCode.CONTROL
    REPLY: ClassVar[bool] = True
    error: ControlErrorWord

    @property
    def control(self) -> int:
        return self.FUNCTION | DIRECTION | ABNORMAL

    def to_data(self) -> bytes:
        return int(self.error).to_bytes(2, "little")

    def describe(self) -> str:
        return _refused("control", "control-error word", self.error, 4)


@dataclass(frozen=True, slots=True)
class UnknownMessage(Message):
    """A frame whose function code this stack does not know; kept as it is."""

    control_byte: int
    data: bytes = field(default=b"")

    @property
    def control(self) -> int:
        return self.control_byte

    def to_data(self) -> bytes:
        return self.data

    def describe(self) -> str:
        return f"unknown function {self.control_byte & FUNCTION_MASK:02X}H ({len(self.data)} bytes)"


def _refused(what: str, word_name: str, word: IntFlag, digits: int) -> str:
    """``<what> refused: <word>=XXH (BIT, BIT)`` — the refusal with its bits by name."""
    bits = ", ".join(names(word)) or "no error bits set"
    sep = " " if " " in word_name else "="
    return f"{what} refused: {word_name}{sep}{int(word):0{digits}X}H ({bits})"


def _function_name(function: int) -> str:
    try:
        return FunctionCode(function).name.lower().replace("_", " ")
    except ValueError:
        return f"function {function:02X}H"


# ---------------------------------------------------------------------------
# Dispatch
# ---------------------------------------------------------------------------

_REQUESTS: Final[dict[int, Any]] = {
    FunctionCode.SECURITY: _parse_security,
    FunctionCode.BROADCAST_TIME: TimeSyncRequest.parse,
    FunctionCode.READ: ReadRequest.parse,
    FunctionCode.READ_FOLLOW_UP: ReadFollowUpRequest.parse,
    FunctionCode.READ_ADDRESS: ReadAddressRequest.parse,
    FunctionCode.WRITE: WriteRequest.parse,
    FunctionCode.WRITE_ADDRESS: WriteAddressRequest.parse,
    FunctionCode.FREEZE: FreezeRequest.parse,
    FunctionCode.CHANGE_BAUD: ChangeBaudRequest.parse,
    FunctionCode.CHANGE_PASSWORD: ChangePasswordRequest.parse,
    FunctionCode.CLEAR_DEMAND: ClearDemandRequest.parse,
    FunctionCode.CLEAR_METER: ClearMeterRequest.parse,
    FunctionCode.CLEAR_EVENTS: ClearEventsRequest.parse,
    FunctionCode.CONTROL: _parse_control,
    FunctionCode.MULTI_FUNCTION: MultiFunctionRequest.parse,
}

_ACK_ONLY: Final = frozenset(
    {
        FunctionCode.WRITE,
        FunctionCode.WRITE_ADDRESS,
        FunctionCode.FREEZE,
        FunctionCode.CLEAR_DEMAND,
        FunctionCode.CLEAR_METER,
        FunctionCode.CLEAR_EVENTS,
    }
)

_REPLIES: Final[dict[int, Any]] = {
    FunctionCode.SECURITY: _parse_security_reply,
    FunctionCode.READ: ReadReply.parse,
    FunctionCode.READ_FOLLOW_UP: ReadFollowUpReply.parse,
    FunctionCode.READ_ADDRESS: ReadAddressReply.parse,
    FunctionCode.CHANGE_BAUD: ChangeBaudReply.parse,
    FunctionCode.CHANGE_PASSWORD: ChangePasswordReply.parse,
    FunctionCode.CONTROL: ControlReply.parse,
    FunctionCode.MULTI_FUNCTION: MultiFunctionReply.parse,
}

_READ_REPLY: Final = FunctionCode.READ | DIRECTION
_READ_REPLY_MORE: Final = FunctionCode.READ | DIRECTION | FOLLOW_UP


def decode_message(frame: Frame) -> Message:
    """The message a frame carries; :class:`DataError` if its data do not fit the layout."""
    control = frame.control
    data = frame.data
    if control in (_READ_REPLY, _READ_REPLY_MORE):  # the hot path
        if len(data) < 4:
            raise DataError(f"a read reply has at least 4 data bytes (the DI), got {len(data)}")
        return ReadReply(int.from_bytes(data[:4], "little"), data[4:], control == _READ_REPLY_MORE)
    function = control & FUNCTION_MASK
    if not control & DIRECTION:
        parse = _REQUESTS.get(function)
        if parse is None:
            return UnknownMessage(control, data)
        result: Message = parse(data, control)
        return result
    if control & ABNORMAL:
        if function == FunctionCode.SECURITY:
            _need(data, (2,), "an abnormal security reply (C3H)")
            return SecurityErrorReply(SecurityErrorWord(int.from_bytes(data, "little")))
        if function == FunctionCode.CONTROL and len(data) == 2:
            return ControlErrorReply(ControlErrorWord(int.from_bytes(data, "little")))
        _need(data, (0, 1), f"an abnormal reply ({control:02X}H)")
        return ErrorReply(function, ErrorWord(data[0] if data else 0))
    if function in _ACK_ONLY:
        _need(data, (0,), f"a reply to {_function_name(function)} ({control:02X}H)")
        return AckReply(function)
    parse = _REPLIES.get(function)
    if parse is None:
        return UnknownMessage(control, data)
    reply: Message = parse(data, control)
    return reply


def to_frame(address: Address | str, message: Message) -> Frame:
    """The frame that carries ``message`` to (or from) ``address``."""
    return Frame(Address(address), message.control, message.to_data())


def read_address_frame() -> Frame:
    """The 13H request to the wildcard address (TV4a)."""
    return to_frame(WILDCARD, ReadAddressRequest())
