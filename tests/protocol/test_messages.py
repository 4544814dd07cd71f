"""Every function code, request and reply, round-trips through frames."""

from __future__ import annotations

import contextlib
from datetime import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import (
    Address,
    ControlErrorWord,
    DataError,
    ErrorWord,
    ExecInfoWord,
    Frame,
    SecurityErrorWord,
    decode_frame,
    decode_message,
    encode_frame,
    names,
    to_frame,
)
from protocol.codes import baud_from_word, baud_word
from protocol.messages import (
    AckReply,
    ChangeBaudReply,
    ChangeBaudRequest,
    ChangePasswordReply,
    ChangePasswordRequest,
    ClearDemandRequest,
    ClearEventsRequest,
    ClearMeterRequest,
    ControlErrorReply,
    ControlReply,
    ControlRequest,
    ErrorReply,
    FreezeRequest,
    IdentityAuthReply,
    IdentityAuthRequest,
    Message,
    MultiFunctionReply,
    MultiFunctionRequest,
    ReadAddressReply,
    ReadAddressRequest,
    ReadFollowUpReply,
    ReadFollowUpRequest,
    ReadReply,
    ReadRequest,
    SecureControlRequest,
    SecurityErrorReply,
    SecurityReply,
    SecurityRequest,
    TimeSyncRequest,
    UnknownMessage,
    WriteAddressRequest,
    WriteRequest,
)

hexcode = lambda n: st.text("0123456789ABCDEF", min_size=n, max_size=n)  # noqa: E731
dis = st.integers(0, 0xFFFFFFFF)
times = st.datetimes(datetime(2000, 1, 1), datetime(2099, 12, 31, 23, 59, 59)).map(
    lambda d: d.replace(microsecond=0)
)
bcd_address = st.text("0123456789", min_size=12, max_size=12).map(Address)
levels = st.sampled_from([0, 1, 2, 3, 4, 9])
maybe = lambda s: st.one_of(st.none(), s)  # noqa: E731

MESSAGES = st.one_of(
    st.builds(ReadRequest, dis),
    st.builds(ReadRequest, dis, st.integers(0, 99)),
    st.builds(ReadRequest, dis, st.integers(0, 99), times.map(lambda t: t.replace(second=0))),
    st.builds(ReadFollowUpRequest, dis, st.integers(0, 255)),
    st.just(ReadAddressRequest()),
    st.builds(WriteRequest, dis, st.binary(max_size=200), levels, hexcode(6), hexcode(8)),
    st.builds(WriteAddressRequest, bcd_address),
    st.builds(
        FreezeRequest,
        maybe(st.integers(1, 12)),
        maybe(st.integers(1, 31)),
        maybe(st.integers(0, 23)),
        maybe(st.integers(0, 59)),
    ),
    st.builds(ChangeBaudRequest, st.sampled_from([0x02, 0x04, 0x08, 0x10, 0x20, 0x40])),
    st.builds(ChangePasswordRequest, st.integers(0, 9), hexcode(6), hexcode(6), levels),
    st.builds(ClearDemandRequest, levels, hexcode(6), hexcode(8)),
    st.builds(ClearMeterRequest, levels, hexcode(6), hexcode(8), st.binary(max_size=24)),
    st.builds(ClearEventsRequest, dis, levels, hexcode(6), hexcode(8)),
    st.builds(
        ControlRequest,
        st.sampled_from([0x1A, 0x1B, 0x1C, 0x2A, 0x2B, 0x3A, 0x3B]),
        times,
        levels,
        hexcode(6),
        hexcode(8),
    ),
    st.builds(SecureControlRequest, st.binary(min_size=20, max_size=20), hexcode(8), hexcode(6)),
    st.builds(
        SecurityRequest, dis.filter(lambda d: d != 0x070000FF), st.binary(max_size=40), hexcode(8)
    ),
    st.builds(
        IdentityAuthRequest,
        st.binary(min_size=8, max_size=8),
        st.binary(min_size=8, max_size=8),
        st.binary(min_size=8, max_size=8),
        hexcode(8),
    ),
    st.builds(TimeSyncRequest, times),
    st.builds(MultiFunctionRequest, st.integers(0, 2)),
    st.builds(ReadReply, dis, st.binary(max_size=200), st.booleans()),
    st.builds(ReadFollowUpReply, dis, st.binary(max_size=200), st.integers(0, 255), st.booleans()),
    st.builds(ReadAddressReply, bcd_address),
    st.builds(AckReply, st.sampled_from([0x14, 0x15, 0x16, 0x19, 0x1A, 0x1B])),
    st.builds(ChangeBaudReply, st.sampled_from([0x02, 0x04, 0x08, 0x10, 0x20, 0x40])),
    st.builds(ChangePasswordReply, levels, hexcode(6)),
    st.builds(ControlReply, maybe(st.integers(0, 0xFFFF).map(ExecInfoWord))),
    st.builds(MultiFunctionReply, st.integers(0, 2)),
    st.builds(SecurityReply, dis.filter(lambda d: d != 0x070000FF), st.binary(max_size=40)),
    st.builds(
        IdentityAuthReply, st.binary(min_size=4, max_size=4), st.binary(min_size=8, max_size=8)
    ),
    st.builds(
        ErrorReply,
        st.sampled_from([0x11, 0x12, 0x14, 0x16, 0x17, 0x18, 0x19, 0x1A, 0x1B, 0x1C, 0x1D]),
        st.integers(0, 255).map(ErrorWord),
    ),
    st.builds(SecurityErrorReply, st.integers(0, 0xFFFF).map(SecurityErrorWord)),
    st.builds(ControlErrorReply, st.integers(0, 0xFFFF).map(ControlErrorWord)),
)


@settings(max_examples=1500)
@given(bcd_address, MESSAGES)
def test_every_message_round_trips(address: Address, message: Message) -> None:
    wire = encode_frame(to_frame(address, message))
    frame, _ = decode_frame(wire)
    assert frame.address == address
    assert decode_message(frame) == message
    assert message.describe()


def test_function_codes_of_replies() -> None:
    assert ReadReply(0, b"", follow_up=True).control == 0xB1
    assert ReadFollowUpReply(0, b"", 1, follow_up=False).control == 0x92
    assert ErrorReply(0x1C, ErrorWord.UNAUTHORIZED).control == 0xDC
    assert SecurityErrorReply(SecurityErrorWord.AUTH_FAILED).control == 0xC3
    assert AckReply(0x14).control == 0x94


def test_follow_up_reply_echoes_seq_at_the_end() -> None:
    data = ReadFollowUpReply(0x0001FF00, b"\x01\x02", 7).to_data()
    assert data == bytes.fromhex("00FF0100") + b"\x01\x02\x07"


def test_secure_control_layout() -> None:
    block = bytes(range(20))
    msg = SecureControlRequest(block, operator="12345678")
    data = msg.to_data()
    assert len(data) == 0x1C and data[0] == 0x98  # L = 1CH, PA = 98H
    assert data[8:] == block


def test_identity_auth_layout() -> None:
    req = IdentityAuthRequest(b"C" * 8, b"R" * 8, b"\x00\x00" + bytes(6))
    data = req.to_data()
    assert len(data) == 0x20 and data[:4] == bytes.fromhex("FF000007")
    reply = IdentityAuthReply(b"\x01\x02\x03\x04", b"S" * 8).to_data()
    assert len(reply) == 0x10


def test_control_reply_both_forms() -> None:
    assert decode_message(Frame(Address("123456781012"), 0x9C, b"")) == ControlReply(None)
    info = decode_message(Frame(Address("123456781012"), 0x9C, b"\x04\x00"))
    assert info == ControlReply(ExecInfoWord.DIRECT_TRIP)


def test_control_error_both_forms() -> None:
    one = decode_message(Frame(Address("123456781012"), 0xDC, b"\x04"))
    assert one == ErrorReply(0x1C, ErrorWord.UNAUTHORIZED)
    two = decode_message(Frame(Address("123456781012"), 0xDC, b"\x12\x00"))
    assert isinstance(two, ControlErrorReply)
    assert names(two.error) == ["MAC_ERROR", "EXPIRED"]
    assert "MAC_ERROR" in two.describe()


def test_error_words_by_name() -> None:
    assert names(ErrorWord(0x06)) == ["NO_DATA", "UNAUTHORIZED"]
    assert names(SecurityErrorWord(0x0108)) == ["AUTH_FAILED", "SUSPENDED"]


def test_freeze_kinds() -> None:
    assert FreezeRequest().kind == "instant"
    assert FreezeRequest(minute=30).kind == "hourly"
    assert FreezeRequest(hour=0, minute=0).kind == "daily"
    assert FreezeRequest(day=1, hour=0, minute=0).kind == "monthly"
    assert FreezeRequest().to_data() == b"\x99\x99\x99\x99"
    assert FreezeRequest(hour=0, minute=0).to_data() == b"\x00\x00\x99\x99"


def test_baud_word() -> None:
    assert baud_word(2400) == 0x08 and baud_from_word(0x20) == 9600
    assert baud_from_word(0x81) is None
    with pytest.raises(ValueError):
        baud_word(2500)


def test_unknown_function_kept() -> None:
    msg = decode_message(Frame(Address("123456781012"), 0x0A, b"\x01"))
    assert msg == UnknownMessage(0x0A, b"\x01")


@pytest.mark.parametrize(
    ("control", "data"),
    [
        (0x11, b"\x00"),
        (0x12, b"\x00" * 4),
        (0x13, b"\x00"),
        (0x14, b"\x00" * 11),
        (0x1C, b"\x02" + bytes(14)),
        (0x1C, b"\x98" + bytes(20)),
        (0x08, bytes(6)),
        (0x91, b"\x00"),
        (0x93, b"\x00"),
        (0x9C, b"\x00"),
        (0xC3, b"\x00"),
        (0x94, b"\x00"),
        (0x03, bytes(5)),
        (0x03, bytes.fromhex("FF000007") + bytes(10)),
    ],
)
def test_bad_layouts_are_data_errors(control: int, data: bytes) -> None:
    with pytest.raises(DataError):
        decode_message(Frame(Address("123456781012"), control, data))


@settings(max_examples=800)
@given(st.integers(0, 255), st.binary(max_size=64))
def test_decode_message_raises_only_data_error(control: int, data: bytes) -> None:
    try:
        msg = decode_message(Frame(Address("123456781012"), control, data))
    except DataError:
        return
    if isinstance(msg, ReadReply):
        with contextlib.suppress(DataError):
            _ = msg.value
