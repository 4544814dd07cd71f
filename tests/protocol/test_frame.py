"""Frame codec: preamble, address forms, control bits, length, scrambling, checksum."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol import (
    Address,
    ChecksumError,
    Frame,
    FrameError,
    IncompleteFrameError,
    decode_frame,
    encode_frame,
)

TV1 = bytes.fromhex("FEFEFEFE6812107856341268110433333333E716")

addresses = st.lists(
    st.one_of(st.integers(0, 99).map(lambda v: f"{v:02d}"), st.just("AA")), min_size=6, max_size=6
).map(lambda parts: Address("".join(parts)))


@given(addresses, st.integers(0, 255), st.binary(max_size=255), st.integers(0, 4))
def test_round_trip(address: Address, control: int, data: bytes, preamble: int) -> None:
    wire = encode_frame(Frame(address, control, data), preamble=preamble)
    assert wire[:preamble] == b"\xfe" * preamble
    assert len(wire) == preamble + 12 + len(data)
    frame, used = decode_frame(wire)
    assert used == len(wire)
    assert frame == Frame(address, control, data)


def test_any_number_of_fe_is_skipped() -> None:
    frame, used = decode_frame(b"\xfe" * 17 + TV1[4:])
    assert frame.address == "123456781012"
    assert used == 17 + len(TV1) - 4


def test_checksum_is_sum_mod_256_without_preamble() -> None:
    body = TV1[4:-2]
    assert sum(body) % 256 == TV1[-2] == 0xE7


def test_scrambling_adds_33h() -> None:
    wire = encode_frame(Frame(Address("123456781012"), 0x11, b"\x00\x01\xcd\xff"), preamble=0)
    assert wire[10:14] == bytes([0x33, 0x34, 0x00, 0x32])


def test_control_bits() -> None:
    f = Frame(Address("123456781012"), 0xB1, b"")
    assert f.is_reply and f.has_follow_up and not f.is_abnormal and f.function == 0x11
    g = Frame(Address("123456781012"), 0xD1, b"\x02")
    assert g.is_reply and g.is_abnormal and g.function == 0x11
    assert "abnormal" in g.describe_control()
    # D6 only means abnormal on a reply
    assert not Frame(Address("123456781012"), 0x51, b"").is_abnormal


def test_bad_checksum() -> None:
    bad = bytearray(TV1)
    bad[-2] ^= 0xFF
    with pytest.raises(ChecksumError) as err:
        decode_frame(bytes(bad))
    assert err.value.expected == 0xE7
    assert "checksum" in str(err.value)


@pytest.mark.parametrize(
    ("wire", "error", "words"),
    [
        (TV1[:-1], IncompleteFrameError, "needs"),
        (TV1[:9], IncompleteFrameError, "header"),
        (b"\xfe\xfe", IncompleteFrameError, "wake-up"),
        (b"\x00" + TV1[4:], FrameError, "starts with 68H"),
        (TV1[:-1] + b"\x17", FrameError, "end with 16H"),
        (TV1[:11] + b"\x69" + TV1[12:], FrameError, "second 68H"),
    ],
)
def test_malformed(wire: bytes, error: type[Exception], words: str) -> None:
    with pytest.raises(error, match=words):
        decode_frame(wire)


def test_non_bcd_address_rejected() -> None:
    body = bytearray(TV1[4:-2])
    body[1] = 0x1F
    wire = bytes(body) + bytes([sum(body) & 0xFF, 0x16])
    with pytest.raises(FrameError, match="not BCD"):
        decode_frame(wire)


def test_encode_limits() -> None:
    with pytest.raises(FrameError, match="255"):
        encode_frame(Frame(Address("123456781012"), 0x11, bytes(256)))
    with pytest.raises(FrameError, match="preamble"):
        encode_frame(Frame(Address("123456781012"), 0x11, b""), preamble=5)


def test_address_forms() -> None:
    assert Address(123456781012) == "123456781012"
    assert Address("123456781012").wire == bytes.fromhex("121078563412")
    assert Address("999999999999").is_broadcast
    short = Address("AAAAAA781012")
    assert short.is_abbreviated and not short.is_wildcard
    assert short.matches("123456781012")
    assert not short.matches("123456781013")
    assert Address("AAAAAAAAAAAA").matches("000000000001")
    assert Address("999999999999").matches("000000000001")
    for bad in ("12345678101", "12345678101X", "1234567810AB"):
        with pytest.raises(FrameError):
            Address(bad)
