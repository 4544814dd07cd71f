"""The worked frames of PROTOCOL.md §6, byte-exact in both directions."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest

from protocol import (
    WILDCARD,
    Address,
    ControlCommand,
    ErrorWord,
    StatusWord3,
    decode_frame,
    decode_message,
    encode_frame,
    to_frame,
)
from protocol.messages import (
    ControlReply,
    ControlRequest,
    ErrorReply,
    ReadAddressReply,
    ReadAddressRequest,
    ReadFollowUpRequest,
    ReadReply,
    ReadRequest,
    TimeSyncRequest,
)

METER = Address("123456781012")


def hx(text: str) -> bytes:
    return bytes.fromhex(text)


TV5_TRIP = ControlRequest(
    ControlCommand.TRIP,
    datetime(2026, 12, 31, 23, 59, 59),
    level=0x02,
    password="123456",
    operator="12345678",
)

VECTORS = [
    (
        "TV1",
        METER,
        ReadRequest(0x00000000),
        "FE FE FE FE 68 12 10 78 56 34 12 68 11 04 33 33 33 33 E7 16",
    ),
    (
        "TV2",
        METER,
        ReadReply.for_value(0x00000000, Decimal("50.50")),
        "FE FE FE FE 68 12 10 78 56 34 12 68 91 08 33 33 33 33 83 83 33 33 D7 16",
    ),
    (
        "TV3",
        METER,
        ErrorReply(0x11, ErrorWord.NO_DATA),
        "FE FE FE FE 68 12 10 78 56 34 12 68 D1 01 35 0D 16",
    ),
    ("TV4a", WILDCARD, ReadAddressRequest(), "FE FE FE FE 68 AA AA AA AA AA AA 68 13 00 DF 16"),
    (
        "TV4b",
        METER,
        ReadAddressReply(METER),
        "FE FE FE FE 68 12 10 78 56 34 12 68 93 06 45 43 AB 89 67 45 07 16",
    ),
    (
        "TV5",
        METER,
        TV5_TRIP,
        "FE FE FE FE 68 12 10 78 56 34 12 68 1C 10 35 89 67 45 AB 89 67 45 4D 33 8C 8C 56 64 45 59"
        " 6C 16",
    ),
    (
        "TV5b",
        METER,
        ControlRequest(
            ControlCommand.CLOSE_PERMITTED,
            datetime(2026, 12, 31, 23, 59, 59),
            2,
            "123456",
            "12345678",
        ),
        "FE FE FE FE 68 12 10 78 56 34 12 68 1C 10 35 89 67 45 AB 89 67 45 4E 33 8C 8C 56 64 45 59"
        " 6D 16",
    ),
    ("TV6a", METER, ControlReply(), "FE FE FE FE 68 12 10 78 56 34 12 68 9C 00 A2 16"),
    (
        "TV6b",
        METER,
        ErrorReply(0x1C, ErrorWord.UNAUTHORIZED),
        "FE FE FE FE 68 12 10 78 56 34 12 68 DC 01 37 1A 16",
    ),
    (
        "TV7",
        Address("999999999999"),
        TimeSyncRequest(datetime(2026, 11, 28, 10, 20, 30)),
        "FE FE FE FE 68 99 99 99 99 99 99 68 08 06 63 53 43 5B 44 59 65 16",
    ),
    (
        "TV8",
        METER,
        ReadReply.for_value(0x00900200, Decimal("123.45")),
        "FE FE FE FE 68 12 10 78 56 34 12 68 91 08 33 35 C3 33 78 56 34 33 32 16",
    ),
    (
        "TV9",
        METER,
        ReadReply.for_value(0x04000503, StatusWord3(0x0250)),
        "FE FE FE FE 68 12 10 78 56 34 12 68 91 06 36 38 33 37 83 35 2D 16",
    ),
    (
        "TV10",
        METER,
        ReadFollowUpRequest(0x0001FF00, 1),
        "FE FE FE FE 68 12 10 78 56 34 12 68 12 05 33 32 34 33 34 1D 16",
    ),
]


@pytest.mark.parametrize(
    ("name", "address", "message", "wire"), VECTORS, ids=[v[0] for v in VECTORS]
)
def test_encode_is_byte_exact(name: str, address: Address, message: object, wire: str) -> None:
    assert encode_frame(to_frame(address, message)) == hx(wire)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "address", "message", "wire"), VECTORS, ids=[v[0] for v in VECTORS]
)
def test_decode_gives_the_message(name: str, address: Address, message: object, wire: str) -> None:
    frame, used = decode_frame(hx(wire))
    assert used == len(hx(wire))
    assert frame.address == address
    assert decode_message(frame) == message


def test_tv2_value_is_50_50_kwh() -> None:
    frame, _ = decode_frame(hx(VECTORS[1][3]))
    value = decode_message(frame).value  # type: ignore[attr-defined]
    assert value.value == Decimal("50.50")
    assert value.unit == "kWh"
    assert value.text() == "50.50 kWh"


def test_tv8_remaining_amount_is_123_45_yuan() -> None:
    frame, _ = decode_frame(hx(VECTORS[10][3]))
    value = decode_message(frame).value  # type: ignore[attr-defined]
    assert (value.value, value.unit) == (Decimal("123.45"), "元")


def test_tv9_status_word_3_bits() -> None:
    frame, _ = decode_frame(hx(VECTORS[11][3]))
    word = decode_message(frame).value.value  # type: ignore[attr-defined]
    # 0x0250: money-type prepay (bit 9) + relay commanded off (bit 6) + relay open (bit 4)
    assert (
        word == StatusWord3.PREPAY_MONEY | StatusWord3.RELAY_COMMAND_TRIP | StatusWord3.RELAY_OPEN
    )


def test_tv5_fields() -> None:
    frame, _ = decode_frame(hx(VECTORS[5][3]))
    msg = decode_message(frame)
    assert isinstance(msg, ControlRequest)
    assert msg.command == ControlCommand.TRIP
    assert msg.expiry == datetime(2026, 12, 31, 23, 59, 59)
    assert (msg.level, msg.password, msg.operator) == (2, "123456", "12345678")


def test_tv7_is_broadcast_and_tv4a_is_wildcard() -> None:
    assert decode_frame(hx(VECTORS[9][3]))[0].address.is_broadcast
    assert decode_frame(hx(VECTORS[3][3]))[0].address.is_wildcard


def test_glx_expiry_example() -> None:
    # [GLX]: N3..N8 = 19 56 08 26 09 26 is 2026-09-26 08:56:19
    from protocol.bcd import decode_expiry

    assert decode_expiry(hx("19 56 08 26 09 26")) == datetime(2026, 9, 26, 8, 56, 19)
