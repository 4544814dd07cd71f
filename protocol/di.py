"""Data identifiers (数据标识, DI): the registry of known data items and their formats.

A DI is written ``DI3 DI2 DI1 DI0`` (e.g. ``04000503``) and sent DI0 first. The
registry knows every DI a prepay head-end and meter simulator need (PROTOCOL.md
§2); :func:`decode_value` turns a value's bytes into a typed :class:`DataValue`
and an unknown DI passes through as raw bytes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

from .codes import StatusWord1, StatusWord3, names
from .datatypes import (
    Bcd,
    BcdInt,
    Bits,
    DateTime,
    Digits,
    Format,
    HexCode,
    LadderTable,
    LadderTableFormat,
    Raw,
    Record,
    Repeat,
)
from .errors import DataError

__all__ = [
    "REGISTRY",
    "DataItem",
    "DataValue",
    "decode_value",
    "di_from_wire",
    "di_to_wire",
    "encode_value",
    "format_di",
    "items",
    "lookup",
    "parse_di",
]


@dataclass(frozen=True, slots=True)
class DataItem:
    """One data item: its DI, names, value format and unit."""

    di: int
    name: str
    name_zh: str
    format: Format
    unit: str = ""
    writable: bool = False
    readable: bool = True

    @property
    def code(self) -> str:
        return format_di(self.di)


class DataValue(NamedTuple):
    """A decoded value: the DI, its registry item (None if unknown) and the value.

    ``value`` is a ``Decimal`` for numbers, ``int`` for counts, ``str`` for digit
    strings, ``datetime``/``date``/``time``, an ``IntFlag`` for status words, a
    tuple for blocks, a dict for records — or ``bytes`` when the DI is unknown.
    """

    di: int
    item: DataItem | None
    value: Any

    @property
    def unit(self) -> str:
        return self.item.unit if self.item else ""

    def text(self) -> str:
        """The value with its unit, for people."""
        return _text(self.value, self.unit)


def _text(value: Any, unit: str) -> str:
    if isinstance(value, bytes):
        return value.hex(" ").upper() or "(empty)"
    if isinstance(value, tuple):
        return "[" + ", ".join(_text(v, unit) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_text(v, '')}" for k, v in value.items()) + "}"
    if isinstance(value, LadderTable):
        return (
            f"thresholds {_text(value.thresholds, 'kWh')}; prices {_text(value.prices, '元/kWh')};"
            f" settlement dates {list(value.settlement_dates)}"
        )
    if value is None:
        return "(not set)"
    if hasattr(value, "isoformat"):
        return str(
            value.isoformat(sep=" ")
            if hasattr(value, "hour") and hasattr(value, "day")
            else value.isoformat()
        )
    if hasattr(value, "name") and hasattr(value, "__int__") and not isinstance(value, bool):
        return f"0x{int(value):04X} " + ("[" + ", ".join(names(value)) + "]")
    return f"{value} {unit}".rstrip()


def format_di(di: int) -> str:
    """``0x04000503`` → ``"04000503"``."""
    return f"{di:08X}"


def parse_di(text: str | int) -> int:
    """``"04000503"`` (or an int) → ``0x04000503``; :class:`DataError` for anything else."""
    if isinstance(text, int):
        if not 0 <= text <= 0xFFFFFFFF:
            raise DataError(f"DI {text} is out of range")
        return text
    t = text.strip().upper().removeprefix("0X")
    if len(t) != 8:
        raise DataError(f"a DI has 8 hex digits (DI3 DI2 DI1 DI0, e.g. 00010000), got {text!r}")
    try:
        return int(t, 16)
    except ValueError:
        raise DataError(f"a DI has 8 hex digits, got {text!r}") from None


def di_to_wire(di: int) -> bytes:
    """The DI as sent (DI0 first)."""
    return di.to_bytes(4, "little")


def di_from_wire(raw: bytes) -> int:
    if len(raw) < 4:
        raise DataError(f"a DI has 4 bytes, got {len(raw)}")
    return int.from_bytes(raw[:4], "little")


# ---------------------------------------------------------------------------
# The registry
# ---------------------------------------------------------------------------

REGISTRY: Final[dict[int, DataItem]] = {}


def _add(
    di: int,
    name: str,
    name_zh: str,
    fmt: Format,
    unit: str = "",
    *,
    w: bool = False,
    r: bool = True,
) -> None:
    REGISTRY[di] = DataItem(di, name, name_zh, fmt, unit, writable=w, readable=r)


ENERGY: Final = Bcd(4, 2)
ENERGY_SIGNED: Final = Bcd(4, 2, signed=True)
MONEY: Final = Bcd(4, 2)
PRICE: Final = Bcd(4, 4)
TIME_YMDHM: Final = DateTime("YYMMDDhhmm")
TIME_YMDHMS: Final = DateTime("YYMMDDhhmmss")

_TARIFF_NAMES: Final = {
    0: "total",
    1: "tariff 1 (sharp)",
    2: "tariff 2 (peak)",
    3: "tariff 3 (flat)",
    4: "tariff 4 (valley)",
}
_TARIFF_ZH: Final = {0: "总", 1: "费率1(尖)", 2: "费率2(峰)", 3: "费率3(平)", 4: "费率4(谷)"}


def _energies() -> None:
    kinds = [
        (0x00, "combined active", "组合有功", ENERGY_SIGNED),
        (0x01, "forward active", "正向有功", ENERGY),
        (0x02, "reverse active", "反向有功", ENERGY),
    ]
    for di2, name, zh, fmt in kinds:
        for period in range(0, 13):
            when = "current" if period == 0 else f"settlement period {period} ago"
            when_zh = "当前" if period == 0 else f"上{period}结算日"
            for tariff in range(5):
                _add(
                    (di2 << 16) | (tariff << 8) | period,
                    f"{when} {name} energy, {_TARIFF_NAMES[tariff]}",
                    f"({when_zh}){zh}{_TARIFF_ZH[tariff]}电能",
                    fmt,
                    "kWh",
                )
            _add(
                (di2 << 16) | 0xFF00 | period,
                f"{when} {name} energy block (total + T1..T4)",
                f"({when_zh}){zh}电能数据块",
                Repeat(fmt, 5),
                "kWh",
            )


def _instantaneous() -> None:
    phases = {1: "A", 2: "B", 3: "C"}
    for ph, p in phases.items():
        _add(0x02010000 | ph << 8, f"phase {p} voltage", f"{p}相电压", Bcd(2, 1), "V")
        _add(0x02020000 | ph << 8, f"phase {p} current", f"{p}相电流", Bcd(3, 3, True), "A")
        _add(
            0x02030000 | ph << 8, f"phase {p} active power", f"{p}相有功功率", Bcd(3, 4, True), "kW"
        )
        _add(0x02060000 | ph << 8, f"phase {p} power factor", f"{p}相功率因数", Bcd(2, 3, True))
    _add(0x0201FF00, "voltage block", "电压数据块", Repeat(Bcd(2, 1), 3), "V")
    _add(0x0202FF00, "current block", "电流数据块", Repeat(Bcd(3, 3, True), 3), "A")
    _add(0x02030000, "total active power", "总有功功率", Bcd(3, 4, True), "kW")
    _add(0x0203FF00, "active power block", "有功功率数据块", Repeat(Bcd(3, 4, True), 4), "kW")
    _add(0x02060000, "total power factor", "总功率因数", Bcd(2, 3, True))
    _add(0x0206FF00, "power factor block", "功率因数数据块", Repeat(Bcd(2, 3, True), 4))
    _add(0x02800001, "neutral current", "零线电流", Bcd(3, 3, True), "A")
    _add(0x02800002, "grid frequency", "电网频率", Bcd(2, 2), "Hz")
    _add(0x02800007, "meter temperature", "表内温度", Bcd(2, 1, True), "℃")
    _add(0x02800008, "clock battery voltage", "时钟电池电压", Bcd(2, 2), "V")
    _add(0x0280000B, "current ladder (step) price", "当前阶梯电价", PRICE, "元/kWh")
    _add(0x02800020, "current price", "当前电价", PRICE, "元/kWh")
    _add(0x02800021, "current tariff (TOU) price", "当前费率电价", PRICE, "元/kWh")
    _add(0x02800022, "identity-auth remaining validity", "身份认证时效剩余时间", BcdInt(2), "min")
    _add(0x02800023, "infrared-auth remaining validity", "红外认证时效剩余时间", BcdInt(1), "min")


def _prepay() -> None:
    _add(0x00900100, "remaining energy", "剩余电量", ENERGY, "kWh")
    _add(0x00900101, "overdraft energy", "透支电量", ENERGY, "kWh")
    _add(0x00900200, "remaining amount", "剩余金额", MONEY, "元")
    _add(0x00900201, "overdraft amount", "透支金额", MONEY, "元")
    limits = [
        (1, "alarm amount 1 limit", "报警金额1限值"),
        (2, "alarm amount 2 limit", "报警金额2限值"),
        (3, "overdraft amount limit", "透支金额限值"),
        (4, "hoarding amount limit", "囤积金额限值"),
        (5, "close-permit amount limit", "合闸允许金额限值"),
        (6, "refund amount", "退费金额"),
    ]
    for n, name, zh in limits:
        _add(0x04001000 | n, name, zh, MONEY, "元", w=True)
    _add(0x04001401, "trip delay time", "跳闸延时时间", BcdInt(2), "min", w=True)
    _add(
        0x04001402,
        "relay trip current threshold",
        "继电器拉闸控制电流门限值",
        Bcd(3, 3),
        "A",
        w=True,
    )
    _add(
        0x04001403,
        "large-current delayed-trip time",
        "超拉闸控制电流门限保护延时时间",
        BcdInt(2),
        "min",
        w=True,
    )
    for n in range(1, 64):
        _add(
            0x04050100 | n,
            f"tariff price {n} (current set)",
            f"当前套费率电价{n}",
            PRICE,
            "元/kWh",
            w=True,
        )
        _add(
            0x04050200 | n,
            f"tariff price {n} (backup set)",
            f"备用套费率电价{n}",
            PRICE,
            "元/kWh",
            w=True,
        )
    _add(
        0x040501FF,
        "tariff prices (current set)",
        "当前套费率电价数据块",
        Repeat(PRICE, None),
        "元/kWh",
        w=True,
    )
    _add(
        0x040502FF,
        "tariff prices (backup set)",
        "备用套费率电价数据块",
        Repeat(PRICE, None),
        "元/kWh",
        w=True,
    )
    ladder = LadderTableFormat()
    _add(0x040606FF, "ladder table 1 (current set)", "当前套第1阶梯表", ladder, w=True)
    _add(0x040607FF, "ladder table 2 (current set)", "当前套第2阶梯表", ladder, w=True)
    _add(0x04060AFF, "ladder table 1 (backup set)", "备用套第1阶梯表", ladder, w=True)
    _add(0x04060BFF, "ladder table 2 (backup set)", "备用套第2阶梯表", ladder, w=True)
    for n in range(1, 11):
        _add(0x03330100 | n, f"purchase {n} ago: date", f"上{n}次购电日期", TIME_YMDHM)
        _add(
            0x03330200 | n,
            f"purchase {n} ago: purchase count",
            f"上{n}次购电后总购电次数",
            BcdInt(2),
        )
        _add(0x03330300 | n, f"purchase {n} ago: amount", f"上{n}次购电金额", MONEY, "元")
        _add(
            0x03330400 | n,
            f"purchase {n} ago: remaining before",
            f"上{n}次购电前剩余金额",
            MONEY,
            "元",
        )
        _add(
            0x03330500 | n,
            f"purchase {n} ago: remaining after",
            f"上{n}次购电后剩余金额",
            MONEY,
            "元",
        )
        _add(
            0x03330600 | n,
            f"purchase {n} ago: cumulative purchased",
            f"上{n}次购电后累计购电金额",
            MONEY,
            "元",
        )


def _parameters() -> None:
    _add(0x04000101, "date and week", "日期及星期", DateTime("YYMMDDWW"), w=True)
    _add(0x04000102, "time", "时间", DateTime("hhmmss"), w=True)
    _add(0x04000108, "tariff-price set switch time", "两套费率电价切换时间", TIME_YMDHM, w=True)
    _add(0x04000109, "ladder set switch time", "两套阶梯切换时间", TIME_YMDHM, w=True)
    _add(0x04000401, "communication address", "通信地址", Digits(6), w=True)
    _add(0x04000402, "meter number", "表号", Digits(6), w=True)
    _add(0x0400040E, "customer number", "客户编号", Digits(6), w=True)
    words = {1: StatusWord1, 3: StatusWord3}
    for n in range(1, 8):
        _add(
            0x04000500 | n,
            f"meter run status word {n}",
            f"电表运行状态字{n}",
            Bits(2, words.get(n)),
        )
    _add(0x040005FF, "meter run status word block", "电表运行状态字数据块", Repeat(Bits(2), 7))
    for n in range(0, 10):
        _add(0x04000C01 + n, f"password level {n}", f"第{n}级密码", Raw(4), w=True, r=False)


_EVENT_RECORD: Final = Record(
    (
        ("time", TIME_YMDHMS),
        ("operator", HexCode(4)),
        ("forward_active", ENERGY),
        ("reverse_active", ENERGY),
    )
)


def _records() -> None:
    for base, name, zh in ((0x1D, "trip", "跳闸"), (0x1E, "close", "合闸")):
        _add(base << 24 | 0x000001, f"{name} total count", f"{zh}总次数", BcdInt(3))
        for n in range(1, 11):
            _add(
                base << 24 | 0x00FF00 | n,
                f"{name} record {n} ago",
                f"上{n}次{zh}记录",
                _EVENT_RECORD,
            )
            for idx, (field_name, fmt) in enumerate(_EVENT_RECORD.fields, start=1):
                unit = "kWh" if "active" in field_name else ""
                _add(
                    base << 24 | idx << 8 | n,
                    f"{name} record {n} ago: {field_name}",
                    f"上{n}次{zh}记录字段{idx}",
                    fmt,
                    unit,
                )
    _add(0x03300100, "meter-clear total count", "电表清零总次数", BcdInt(3))
    for n in range(1, 11):
        _add(0x03300100 | n, f"meter-clear record {n} ago", f"上{n}次电表清零记录", _EVENT_RECORD)


def _freezes() -> None:
    for n in range(1, 63):
        _add(0x05060000 | n, f"daily freeze {n} ago: time", f"上{n}次日冻结时间", TIME_YMDHM)
        _add(
            0x05060100 | n,
            f"daily freeze {n} ago: forward active energy block",
            f"上{n}次日冻结正向有功电能数据",
            Repeat(ENERGY, 5),
            "kWh",
        )
        _add(
            0x05060200 | n,
            f"daily freeze {n} ago: reverse active energy block",
            f"上{n}次日冻结反向有功电能数据",
            Repeat(ENERGY, 5),
            "kWh",
        )
        _add(
            0x05060800 | n,
            f"daily freeze {n} ago: prepay (remaining, count, overdraft)",
            f"上{n}次日冻结剩余金额/购电次数/透支金额",
            Record((("remaining", MONEY), ("purchase_count", BcdInt(2)), ("overdraft", MONEY))),
            "元",
        )


_energies()
_instantaneous()
_prepay()
_parameters()
_records()
_freezes()

_RAW: Final = Raw()


def lookup(di: int) -> DataItem | None:
    """The registry item of ``di``, or ``None`` if it is unknown."""
    return REGISTRY.get(di)


def decode_value(di: int, raw: bytes) -> DataValue:
    """Decode a value's (unscrambled) bytes; an unknown DI gives raw bytes."""
    item = REGISTRY.get(di)
    if item is None:
        return _new_value(DataValue, (di, None, bytes(raw)))
    return _new_value(DataValue, (di, item, item.format.decode(raw)))


_new_value: Final = tuple.__new__


def encode_value(di: int, value: Any) -> bytes:
    """Encode ``value`` for ``di``; an unknown DI needs ``bytes`` (or hex text)."""
    item = REGISTRY.get(di)
    if item is None:
        return _RAW.encode(value)
    return item.format.encode(value)


def items() -> Iterator[DataItem]:
    """Every known data item, in DI order."""
    for di in sorted(REGISTRY):
        yield REGISTRY[di]
