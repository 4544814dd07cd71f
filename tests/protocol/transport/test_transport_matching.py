"""Which received frame is the reply to a request (pure logic, no I/O)."""

from __future__ import annotations

import pytest

from protocol.address import Address
from protocol.frame import Frame
from protocol.transport import is_reply_to

METER = Address("123456781012")
READ = Frame(METER, 0x11, bytes(4))


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        (Frame(METER, 0x91, bytes(4) + b"\x50\x50\x00\x00"), True),
        (Frame(METER, 0xB1, bytes(4) + b"\x50\x50\x00\x00"), True),  # follow-up flag
        (Frame(METER, 0xD1, b"\x02"), True),  # abnormal reply: no DI to compare
        (READ, False),  # our own echo
        (Frame(Address("123456781013"), 0x91, bytes(4) + bytes(4)), False),
        (Frame(METER, 0x94, b""), False),  # another function
        (Frame(METER, 0x91, bytes.fromhex("00FF0000") + bytes(4)), False),  # another DI
    ],
)
def test_reply_to_a_read(frame: Frame, expected: bool) -> None:
    assert is_reply_to(READ, frame) is expected


def test_wildcard_and_abbreviated_requests_match_full_addresses() -> None:
    answer = Frame(METER, 0x93, METER.wire)
    assert is_reply_to(Frame(Address("AAAAAAAAAAAA"), 0x13), answer)
    assert is_reply_to(Frame(Address("AAAAAA781012"), 0x13), answer)
    assert not is_reply_to(Frame(Address("AAAAAA781099"), 0x13), answer)


def test_di_is_not_compared_for_other_functions() -> None:
    control = Frame(METER, 0x1C, bytes(16))
    assert is_reply_to(control, Frame(METER, 0x9C, b""))
