"""Codes of DL/T 645-2007: function codes, control bits and the error/status words.

Error and status words are :class:`enum.IntFlag` so that a received word prints
as the names of its set bits (``names(flag)``), including bits we do not know.
"""

from __future__ import annotations

from enum import IntEnum, IntFlag
from typing import Final

__all__ = [
    "BAUD_RATES",
    "ControlCommand",
    "ControlErrorWord",
    "ErrorWord",
    "ExecInfoWord",
    "FunctionCode",
    "PasswordLevel",
    "SecurityErrorWord",
    "StatusWord1",
    "StatusWord3",
    "baud_from_word",
    "baud_word",
    "names",
]

DIRECTION: Final = 0x80
"""Control bit D7: 0 = master→meter, 1 = meter reply."""
ABNORMAL: Final = 0x40
"""Control bit D6: abnormal (refusal) reply."""
FOLLOW_UP: Final = 0x20
"""Control bit D5: follow-up frames exist."""
FUNCTION_MASK: Final = 0x1F


class FunctionCode(IntEnum):
    """Function code: control bits D4..D0."""

    SECURITY = 0x03
    """安全认证 — security authentication (SGCC addition)."""
    BROADCAST_TIME = 0x08
    """广播校时 — broadcast time sync (never answered)."""
    READ = 0x11
    """读数据 — read data."""
    READ_FOLLOW_UP = 0x12
    """读后续数据 — read follow-up data."""
    READ_ADDRESS = 0x13
    """读通信地址 — read communication address."""
    WRITE = 0x14
    """写数据 — write data."""
    WRITE_ADDRESS = 0x15
    """写通信地址 — write communication address."""
    FREEZE = 0x16
    """冻结命令 — freeze."""
    CHANGE_BAUD = 0x17
    """更改通信速率 — change baud rate."""
    CHANGE_PASSWORD = 0x18
    """修改密码 — change password."""
    CLEAR_DEMAND = 0x19
    """最大需量清零 — clear maximum demand."""
    CLEAR_METER = 0x1A
    """电表清零 — meter clear."""
    CLEAR_EVENTS = 0x1B
    """事件清零 — event clear."""
    CONTROL = 0x1C
    """跳合闸、报警、保电 — trip / close / alarm / power guarantee."""
    MULTI_FUNCTION = 0x1D
    """多功能端子输出控制 — multi-function terminal output."""


class ErrorWord(IntFlag):
    """ERR: the 1-byte error word of an abnormal reply (错误信息字)."""

    OTHER = 0x01
    NO_DATA = 0x02
    """No requested data (unknown DI)."""
    UNAUTHORIZED = 0x04
    """Password error / unauthorized; also MAC failure and expired 1C commands."""
    BAUD_UNCHANGEABLE = 0x08
    TIME_ZONES_EXCEEDED = 0x10
    TIME_SEGMENTS_EXCEEDED = 0x20
    TARIFFS_EXCEEDED = 0x40
    RESERVED_7 = 0x80


class SecurityErrorWord(IntFlag):
    """SERR: the 2-byte error word of an abnormal 03H reply (安全认证错误信息字)."""

    OTHER = 0x0001
    DUPLICATE_RECHARGE = 0x0002
    ESAM_VERIFY_FAILED = 0x0004
    """ESAM verification failed (MAC)."""
    AUTH_FAILED = 0x0008
    """Identity authentication failed or timed out."""
    CUSTOMER_MISMATCH = 0x0010
    RECHARGE_COUNT_ERROR = 0x0020
    HOARDING_EXCEEDED = 0x0040
    RESERVED_7 = 0x0080
    SUSPENDED = 0x0100
    """Remote security locked / meter suspended (挂起)."""
    RESERVED_9 = 0x0200
    RESERVED_10 = 0x0400
    RESERVED_11 = 0x0800
    RESERVED_12 = 0x1000
    RESERVED_13 = 0x2000
    RESERVED_14 = 0x4000
    SET_PASSWORD_ERROR = 0x8000


class ControlErrorWord(IntFlag):
    """The 2-byte control-error word of a 2013-style abnormal 1CH reply (控制命令错误信息字)."""

    SUSPENDED = 0x0001
    MAC_ERROR = 0x0002
    UNAUTHORIZED = 0x0004
    """Password error / unauthorized."""
    AUTH_INVALID = 0x0008
    """Identity authentication timed out or not done."""
    EXPIRED = 0x0010
    """Execution (expiry) time invalid."""
    GUARANTEED = 0x0020
    """Trip refused: power guarantee active."""
    AUTO_RESTORE_GUARANTEED = 0x0040
    AUTO_RESTORE_TIME_INVALID = 0x0080
    AUTO_RESTORE_ALREADY_TRIPPED = 0x0100
    RESERVED_9 = 0x0200
    RESERVED_10 = 0x0400
    RESERVED_11 = 0x0800
    RESERVED_12 = 0x1000
    RESERVED_13 = 0x2000
    RESERVED_14 = 0x4000
    RESERVED_15 = 0x8000


class ExecInfoWord(IntFlag):
    """The 2-byte execution-info word of a 2013-style normal 1CH reply (执行信息字)."""

    DIRECT_CLOSE = 0x0001
    CLOSE_PERMITTED = 0x0002
    DIRECT_TRIP = 0x0004
    DELAYED_TRIP = 0x0008
    TRIP_AUTO_RESTORE = 0x0010
    LARGE_CURRENT_DELAYED_TRIP = 0x0020
    RESERVED_6 = 0x0040
    RESERVED_7 = 0x0080
    GUARANTEE = 0x0100
    GUARANTEE_RELEASE = 0x0200
    ALARM = 0x0400
    ALARM_RELEASE = 0x0800
    RESERVED_12 = 0x1000
    RESERVED_13 = 0x2000
    RESERVED_14 = 0x4000
    RESERVED_15 = 0x8000


class StatusWord1(IntFlag):
    """Meter run status word 1 (电表运行状态字1, DI 04000501)."""

    RESERVED_0 = 0x0001
    DEMAND_MODE = 0x0002
    CLOCK_BATTERY_LOW = 0x0004
    READING_BATTERY_LOW = 0x0008
    ACTIVE_REVERSE = 0x0010
    REACTIVE_REVERSE = 0x0020
    REMOTE_MODE = 0x0040
    """Fee-control mode: 0 = local (card), 1 = remote."""
    RESERVED_7 = 0x0080
    CONTROL_CIRCUIT_ERROR = 0x0100
    """Relay/breaker feedback does not match the command."""
    ESAM_ERROR = 0x0200
    RESERVED_10 = 0x0400
    RESERVED_11 = 0x0800
    RESERVED_12 = 0x1000
    MEMORY_FAULT = 0x2000
    OVERDRAFT = 0x4000
    CLOCK_FAULT = 0x8000


class StatusWord3(IntFlag):
    """Meter run status word 3 (电表运行状态字3, DI 04000503), 2013 layout."""

    SEGMENT_TABLE_2 = 0x0001
    SUPPLY_AUX = 0x0002
    SUPPLY_BATTERY = 0x0004
    PROGRAMMING_ALLOWED = 0x0008
    RELAY_OPEN = 0x0010
    """Actual relay/breaker state: 0 = closed (通), 1 = open (断)."""
    ZONE_TABLE_2 = 0x0020
    RELAY_COMMAND_TRIP = 0x0040
    """Relay command state: 0 = close, 1 = trip."""
    PRE_TRIP_ALARM = 0x0080
    PREPAY_ENERGY = 0x0100
    """Meter type bits 8–9 = 01: energy-type prepay."""
    PREPAY_MONEY = 0x0200
    """Meter type bits 8–9 = 10: money-type prepay."""
    LADDER_TABLE_2 = 0x0400
    LADDER_SET_BACKUP = 0x0800
    GUARANTEED = 0x1000
    """Power guarantee (保电) active."""
    AUTH_VALID = 0x2000
    """Identity authentication session valid."""
    LOCAL_NOT_OPENED = 0x4000
    REMOTE_NOT_OPENED = 0x8000


class ControlCommand(IntEnum):
    """N1 of a 1CH control command."""

    TRIP = 0x1A
    """拉闸 — trip."""
    CLOSE_PERMITTED = 0x1B
    """合闸允许 — close permitted (closed by hand afterwards)."""
    DIRECT_CLOSE = 0x1C
    """直接合闸 — direct close (SGCC 2013)."""
    TRIP_AUTO_RESTORE_1 = 0x1D
    TRIP_AUTO_RESTORE_2 = 0x1E
    ALARM = 0x2A
    """报警."""
    ALARM_RELEASE = 0x2B
    """报警解除."""
    GUARANTEE = 0x3A
    """保电 — power guarantee."""
    GUARANTEE_RELEASE = 0x3B
    """保电解除."""


class PasswordLevel(IntEnum):
    """The PA byte: password level (密码权限)."""

    L0 = 0x00
    L1 = 0x01
    L2 = 0x02
    L3 = 0x03
    L4 = 0x04
    L5 = 0x05
    L6 = 0x06
    L7 = 0x07
    L8 = 0x08
    L9 = 0x09
    CIPHER_MAC = 0x98
    """Ciphertext + MAC (remote control, money limits, keys)."""
    PLAIN_MAC = 0x99
    """Plaintext + MAC (e.g. tariff parameters)."""


BAUD_RATES: Final = {0x02: 600, 0x04: 1200, 0x08: 2400, 0x10: 4800, 0x20: 9600, 0x40: 19200}
"""Baud characteristic word Z (通信速率特征字): one bit per rate."""


def baud_word(baud: int) -> int:
    """The Z byte for a baud rate; raises ``ValueError`` for a rate the standard lacks."""
    for bit, rate in BAUD_RATES.items():
        if rate == baud:
            return bit
    rates = sorted(BAUD_RATES.values())
    raise ValueError(f"baud {baud} is not a DL/T 645 rate; use one of {rates}")


def baud_from_word(z: int) -> int | None:
    """The rate named by a Z byte, or ``None`` unless exactly one defined bit is set."""
    return BAUD_RATES.get(z)


def names(flag: IntFlag) -> list[str]:
    """The names of the set bits of a word, low bit first; unknown bits as ``BIT<n>``."""
    value = int(flag)
    out: list[str] = []
    cls = type(flag)
    for bit in range(value.bit_length()):
        if value >> bit & 1:
            try:
                member = cls(1 << bit)
                out.append(member.name or f"BIT{bit}")
            except ValueError:
                out.append(f"BIT{bit}")
    return out
