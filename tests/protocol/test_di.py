"""The data-identifier registry: every format decodes what it encodes, BCD edge cases."""

from __future__ import annotations

from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import DataError, StatusWord1, decode_value, encode_value, lookup
from protocol.datatypes import (
    Bcd,
    BcdInt,
    Bits,
    DateTime,
    Digits,
    HexCode,
    LadderTable,
    LadderTableFormat,
    Raw,
    Record,
    Repeat,
)
from protocol.di import REGISTRY, format_di, parse_di

REQUIRED = [
    # PROTOCOL.md §2, one per row at least
    0x00000000,
    0x00000100,
    0x00000400,
    0x0000FF00,
    0x00010000,
    0x00010400,
    0x0001FF00,
    0x00020000,
    0x00010001,
    0x0001000C,
    0x02010100,
    0x0201FF00,
    0x02020300,
    0x0202FF00,
    0x02030000,
    0x02030200,
    0x02060000,
    0x02800001,
    0x02800002,
    0x02800007,
    0x02800008,
    0x0280000B,
    0x02800020,
    0x02800021,
    0x02800022,
    0x02800023,
    0x00900100,
    0x00900101,
    0x00900200,
    0x00900201,
    0x04000101,
    0x04000102,
    0x04000108,
    0x04000109,
    0x04000401,
    0x04000402,
    0x0400040E,
    0x04000501,
    0x04000503,
    0x04000507,
    0x040005FF,
    0x04001001,
    0x04001002,
    0x04001003,
    0x04001004,
    0x04001005,
    0x04001006,
    0x04001401,
    0x04001402,
    0x04001403,
    0x04050101,
    0x0405013F,
    0x040501FF,
    0x04050201,
    0x040502FF,
    0x040606FF,
    0x040607FF,
    0x04060AFF,
    0x04060BFF,
    0x03330101,
    0x0333010A,
    0x03330201,
    0x03330301,
    0x03330401,
    0x03330501,
    0x03330601,
    0x1D000001,
    0x1D00FF01,
    0x1D00FF0A,
    0x1D000101,
    0x1D000201,
    0x1E000001,
    0x1E00FF01,
    0x03300100,
    0x03300101,
    0x05060001,
    0x0506003E,
    0x05060101,
    0x05060201,
    0x05060801,
    0x04000C01,
    0x04000C0A,
]


@pytest.mark.parametrize("di", REQUIRED, ids=[f"{d:08X}" for d in REQUIRED])
def test_required_di_known(di: int) -> None:
    item = lookup(di)
    assert item is not None
    assert item.name and item.name_zh


def test_units() -> None:
    assert lookup(0x00010000).unit == "kWh"  # type: ignore[union-attr]
    assert lookup(0x00900200).unit == "元"  # type: ignore[union-attr]
    assert lookup(0x02010100).unit == "V"  # type: ignore[union-attr]
    assert lookup(0x02020100).unit == "A"  # type: ignore[union-attr]
    assert lookup(0x02030000).unit == "kW"  # type: ignore[union-attr]
    assert lookup(0x02800020).unit == "元/kWh"  # type: ignore[union-attr]


def test_signed_bcd() -> None:
    # phase A current XXX.XXX signed: -1.234 A is 001234 with the sign bit → 34 12 80
    assert encode_value(0x02020100, Decimal("-1.234")) == bytes([0x34, 0x12, 0x80])
    assert decode_value(0x02020100, bytes([0x34, 0x12, 0x80])).value == Decimal("-1.234")
    # combined energy may be negative
    assert decode_value(0x00000000, bytes([0x00, 0x01, 0x00, 0x80])).value == Decimal("-1.00")


def test_block_values() -> None:
    raw = encode_value(
        0x0001FF00, [Decimal("10.00"), Decimal("1"), Decimal("2"), Decimal("3"), Decimal("4")]
    )
    assert len(raw) == 20
    assert decode_value(0x0001FF00, raw).value == (
        Decimal("10.00"),
        Decimal("1.00"),
        Decimal("2.00"),
        Decimal("3.00"),
        Decimal("4.00"),
    )
    assert decode_value(0x0001FF00, raw).text().startswith("[10.00 kWh, 1.00 kWh")


def test_status_word_1() -> None:
    v = decode_value(
        0x04000501, (StatusWord1.REMOTE_MODE | StatusWord1.OVERDRAFT).to_bytes(2, "little")
    )
    assert v.value & StatusWord1.REMOTE_MODE and v.value & StatusWord1.OVERDRAFT
    assert "REMOTE_MODE" in v.text() and "OVERDRAFT" in v.text()


def test_dates() -> None:
    # 2026-11-28 is a Saturday: WW = 6
    assert encode_value(0x04000101, date(2026, 11, 28)) == bytes.fromhex("06281126")
    assert decode_value(0x04000101, bytes.fromhex("06281126")).value == date(2026, 11, 28)
    with pytest.raises(DataError, match="weekday"):
        decode_value(0x04000101, bytes.fromhex("05281126"))
    assert decode_value(0x04000102, bytes.fromhex("302010")).value == time(10, 20, 30)
    assert decode_value(0x05060001, bytes.fromhex("0000281126")).value == datetime(
        2026, 11, 28, 0, 0
    )
    assert decode_value(0x04000108, bytes(5)).value is None


def test_trip_record() -> None:
    record = {
        "time": datetime(2026, 11, 28, 10, 20, 30),
        "operator": "FFFFFFFF",
        "forward_active": Decimal("1234.56"),
        "reverse_active": Decimal("0"),
    }
    raw = encode_value(0x1D00FF01, record)
    assert len(raw) == 18
    back = decode_value(0x1D00FF01, raw).value
    assert back["time"] == record["time"] and back["forward_active"] == Decimal("1234.56")
    assert back["operator"] == "FFFFFFFF"  # the meter's own action


def test_ladder_table_layout() -> None:
    table = LadderTable(
        thresholds=tuple(Decimal(x) for x in ("2760", "4800", "0", "0", "0", "0")),
        prices=tuple(Decimal(x) for x in ("0.538", "0.588", "0.838", "0", "0", "0", "0")),
        settlement_dates=("010100", "999999", "999999", "999999", "999999", "999999"),
    )
    raw = encode_value(0x040606FF, table)
    assert len(raw) == 70
    assert raw[:4] == bytes.fromhex("00602700")  # 002760.00 low byte first
    assert raw[24:28] == bytes.fromhex("80530000")  # 0000.5380 low byte first
    assert decode_value(0x040606FF, raw).value == table


def test_unknown_di_passes_through() -> None:
    v = decode_value(0x06000001, b"\x01\x02")
    assert v.item is None and v.value == b"\x01\x02"
    assert encode_value(0x06000001, "0102") == b"\x01\x02"


@pytest.mark.parametrize(
    ("di", "raw"),
    [(0x00010000, b"\x0a\x00\x00\x00"), (0x00010000, b"\x00\x00\x00"), (0x04000401, b"\x1f" * 6)],
)
def test_bad_values_raise_data_error(di: int, raw: bytes) -> None:
    with pytest.raises(DataError):
        decode_value(di, raw)


@pytest.mark.parametrize(
    ("di", "value"),
    [
        (0x00010000, Decimal("1000000.00")),
        (0x00010000, Decimal("1.234")),
        (0x00010000, Decimal("-1")),
        (0x00010000, "abc"),
        (0x04001401, -1),
        (0x04000401, "12345"),
        (0x0001FF00, [1, 2]),
    ],
)
def test_bad_encodes_raise_data_error(di: int, value: Any) -> None:
    with pytest.raises(DataError):
        encode_value(di, value)


def test_di_text() -> None:
    assert parse_di("04000503") == 0x04000503
    assert format_di(0x0001FF00) == "0001FF00"
    for bad in ("0400050", "0400050G", ""):
        with pytest.raises(DataError):
            parse_di(bad)


def _strategy(fmt: Any) -> st.SearchStrategy[Any]:
    """Values a format must round-trip."""
    if isinstance(fmt, Bcd):
        # signed: the top bit is the sign, so the top digit is 0..7
        top = (8 if fmt.signed else 10) * 10 ** (fmt.size * 2 - 1) - 1
        lo = -top if fmt.signed else 0
        return st.integers(lo, top).map(lambda v: Decimal(v).scaleb(-fmt.decimals))
    if isinstance(fmt, BcdInt):
        return st.integers(0, 10 ** (fmt.size * 2) - 1)
    if isinstance(fmt, Digits):
        return st.text("0123456789", min_size=fmt.size * 2, max_size=fmt.size * 2)
    if isinstance(fmt, HexCode):
        return st.text("0123456789ABCDEF", min_size=fmt.size * 2, max_size=fmt.size * 2)
    if isinstance(fmt, DateTime):
        if "DD" in fmt.pattern:
            base = st.datetimes(datetime(2000, 1, 1), datetime(2099, 12, 31, 23, 59, 59))
            if "hh" not in fmt.pattern:
                return base.map(lambda d: d.date())
            if "ss" not in fmt.pattern:
                return base.map(lambda d: d.replace(second=0, microsecond=0))
            return base.map(lambda d: d.replace(microsecond=0))
        return st.times().map(lambda t: t.replace(microsecond=0))
    if isinstance(fmt, Bits):
        return st.integers(0, (1 << (8 * fmt.size)) - 1).map(
            lambda v: fmt.flags(v) if fmt.flags else v
        )
    if isinstance(fmt, Raw):
        return st.binary(min_size=fmt.size or 0, max_size=fmt.size or 40)
    if isinstance(fmt, Repeat):
        n = fmt.count if fmt.count is not None else 3
        return st.lists(_strategy(fmt.item), min_size=n, max_size=n).map(tuple)
    if isinstance(fmt, Record):
        return st.fixed_dictionaries({k: _strategy(f) for k, f in fmt.fields})
    if isinstance(fmt, LadderTableFormat):
        return st.builds(
            LadderTable,
            st.lists(_strategy(Bcd(4, 2)), min_size=6, max_size=6).map(tuple),
            st.lists(_strategy(Bcd(4, 4)), min_size=7, max_size=7).map(tuple),
            st.lists(_strategy(Digits(3)), min_size=6, max_size=6).map(tuple),
        )
    raise AssertionError(f"no strategy for {fmt!r}")


def _one_per_format() -> list[int]:
    seen: dict[str, int] = {}
    for di, item in sorted(REGISTRY.items()):
        seen.setdefault(repr(item.format), di)
    return sorted(seen.values())


@pytest.mark.parametrize("di", _one_per_format(), ids=lambda d: f"{d:08X}")
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_every_format_round_trips(di: int, data: st.DataObject) -> None:
    item = lookup(di)
    assert item is not None
    value = data.draw(_strategy(item.format))
    raw = encode_value(di, value)
    assert decode_value(di, raw).value == value
