"""Fuzzing: short runs of every harness, and the bugs the fuzzer found, kept fixed.

The long runs are ``feikong bench fuzz --target all --minutes N`` (atheris, coverage-guided);
here each harness gets its seeds and a few hundred hypothesis-generated inputs, and one
atheris run per target proves the CLI and the coverage-guided engine work end to end.
"""

from __future__ import annotations

import logging
from datetime import date, datetime

import pytest

from meter_sim.config import BreakerKind, MeterConfig
from meter_sim.fleet import Fleet
from protocol import (
    Address,
    ErrorReply,
    ErrorWord,
    Frame,
    SecurityErrorReply,
    SecurityErrorWord,
    decode_message,
)
from protocol.clock import SteppedClock
from protocol.di import encode_value
from protocol.messages import AckReply, ReadReply, ReadRequest, WriteRequest, to_frame

METER = "000000000001"


async def _ask(fleet: Fleet, message: object) -> object:
    reply = await fleet.handle(to_frame(METER, message))  # type: ignore[arg-type]
    assert reply is not None and not isinstance(reply, bytes)
    return decode_message(reply)


async def test_a_date_write_of_00_00_00_is_refused_without_an_internal_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Found by the meter harness: 14H 04000101 (date and week) with the value 00000000
    # decodes to "no date" (None); the meter took it as a date and failed with a
    # TypeError inside its handler (logged, answered ERR 01 by the catch-all).
    clock = SteppedClock(datetime(2026, 1, 1, 0, 0, 0))
    fleet = Fleet(
        [MeterConfig(METER, breaker=BreakerKind.INTERNAL, test_mode=True)],
        clock,
        master_key=bytes(16),
    )
    with caplog.at_level(logging.INFO, logger="meter_sim"):
        reply = await _ask(fleet, WriteRequest(0x04000101, bytes(4)))
    assert reply == ErrorReply(0x14, ErrorWord.OTHER)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert "00-00-00 is not a date" in caplog.text
    # The meter's date is unchanged, and a real date is still written.
    meter_date = await _ask(fleet, ReadRequest(0x04000101))
    assert isinstance(meter_date, ReadReply) and meter_date.raw == bytes.fromhex("04010126")
    # 2026-01-01 was a Thursday: WW DD MM YY = 04 01 01 26 on the wire, low byte first.
    sunday = encode_value(0x04000101, date(2026, 3, 15))
    assert sunday == bytes.fromhex("00150326")
    reply = await _ask(fleet, WriteRequest(0x04000101, sunday))
    assert reply == AckReply(0x14)
    meter_date = await _ask(fleet, ReadRequest(0x04000101))
    assert isinstance(meter_date, ReadReply) and meter_date.raw == sunday


async def test_a_malformed_security_request_gets_a_well_formed_c3h_refusal() -> None:
    # Found by the meter harness: a 03H request too short to decode (1 data byte) was
    # answered C3H with a 1-byte error word; an abnormal 03H reply carries the 2-byte
    # SERR word, so a head-end could not read the refusal (DataError on decode).
    clock = SteppedClock(datetime(2026, 1, 1, 0, 0, 0))
    fleet = Fleet([MeterConfig(METER)], clock, master_key=bytes(16))
    reply = await fleet.handle(Frame(Address(METER), 0x03, b"\x06"))
    assert isinstance(reply, Frame)
    assert (reply.control, reply.data) == (0xC3, b"\x01\x00")  # SERR 0001: other error
    assert decode_message(reply) == SecurityErrorReply(SecurityErrorWord.OTHER)
