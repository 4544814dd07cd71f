"""The DL/T 645 functions other than 1CH: addressing, reads, time sync, writes, passwords."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from meter_sim.meter_clock import MeterClock, from_seconds, to_seconds
from protocol import (
    WILDCARD,
    AckReply,
    Address,
    ErrorReply,
    ErrorWord,
    SteppedClock,
    decode_message,
    encode_value,
    to_frame,
)
from protocol.clock import AcceleratedClock
from protocol.messages import (
    ChangeBaudReply,
    ChangeBaudRequest,
    ChangePasswordReply,
    ChangePasswordRequest,
    ClearEventsRequest,
    ClearMeterRequest,
    FreezeRequest,
    MultiFunctionReply,
    MultiFunctionRequest,
    ReadAddressReply,
    ReadAddressRequest,
    ReadReply,
    ReadRequest,
    TimeSyncRequest,
    UnknownMessage,
    WriteAddressRequest,
    WriteRequest,
)

from .meter_rig import ADDRESS, START, ask, config, make_meter

NO_DATA = ErrorReply(0x11, ErrorWord.NO_DATA)
WRITE_REFUSED = ErrorReply(0x14, ErrorWord.UNAUTHORIZED)


@pytest.fixture
def clock() -> SteppedClock:
    return SteppedClock(START)


async def test_frames_to_other_addresses_and_broadcast_reads_are_ignored(
    clock: SteppedClock,
) -> None:
    meter, _ = make_meter(clock)
    assert await ask(meter, ReadRequest(0x00010000), "123456781013") is None
    assert await ask(meter, ReadRequest(0x00010000), "999999999999") is None
    reply_frame = to_frame(ADDRESS, ReadReply(0x00010000, bytes(4)))
    assert await meter.handle(reply_frame, decode_message(reply_frame)) is None
    # abbreviated address matching the low bytes: reads are answered
    assert isinstance(await ask(meter, ReadRequest(0x00010000), "AAAAAA781012"), ReadReply)
    assert await ask(meter, WriteRequest(0x04001401, b"\x01\x00"), "AAAAAA781012") is None


async def test_read_address(clock: SteppedClock) -> None:
    meter, _ = make_meter(clock)
    assert await ask(meter, ReadAddressRequest(), WILDCARD) == ReadAddressReply(Address(ADDRESS))
    assert await ask(meter, ReadAddressRequest()) == ReadAddressReply(Address(ADDRESS))
    assert await ask(meter, ReadAddressRequest(), "999999999999") is None


async def test_unknown_di_and_unreadable_passwords(clock: SteppedClock) -> None:
    meter, _ = make_meter(clock)
    assert await ask(meter, ReadRequest(0x0F0F0F0F)) == NO_DATA
    assert await ask(meter, ReadRequest(0x00030000)) == NO_DATA
    assert await ask(meter, ReadRequest(0x04000C03)) == ErrorReply(0x11, ErrorWord.UNAUTHORIZED)
    assert await ask(meter, ReadRequest(0x00010000, 1, datetime(2026, 3, 1))) == NO_DATA


async def test_remote_meter_refuses_the_remaining_amount(clock: SteppedClock) -> None:
    meter, _ = make_meter(clock)
    assert await ask(meter, ReadRequest(0x00900200)) == NO_DATA
    assert await ask(meter, ReadRequest(0x00900201)) == NO_DATA


async def test_unsupported_function_is_err_other(clock: SteppedClock) -> None:
    meter, _ = make_meter(clock)
    assert await ask(meter, UnknownMessage(0x1F)) == ErrorReply(0x1F, ErrorWord.OTHER)


async def _sync(meter: object, when: datetime) -> object:
    return await ask(meter, TimeSyncRequest(when), "999999999999")  # type: ignore[arg-type]


async def test_broadcast_time_sync_rules(clock: SteppedClock) -> None:
    meter, _ = make_meter(clock)
    now = clock.now()
    assert await _sync(meter, now + timedelta(minutes=6)) is None  # never a reply …
    assert meter.clock.now() == now  # … and refused: more than 5 min
    assert await _sync(meter, now - timedelta(minutes=4)) is None
    assert meter.clock.now() == now - timedelta(minutes=4)
    await clock.advance(3600)
    assert await _sync(meter, clock.now()) is None  # second sync the same day: refused
    assert meter.clock.now() == clock.now() - timedelta(minutes=4)


async def test_no_time_sync_near_midnight() -> None:
    clock = SteppedClock(datetime(2026, 3, 10, 23, 57))
    meter, _ = make_meter(clock)
    assert await _sync(meter, clock.now() - timedelta(minutes=1)) is None
    assert meter.clock.now() == clock.now()
    await clock.advance(8 * 60)  # 00:05:00 is still too close
    assert await _sync(meter, clock.now() + timedelta(seconds=1)) is None
    assert meter.clock.now() == clock.now()


async def test_point_to_point_time_sync_refusal_is_err_04(clock: SteppedClock) -> None:
    meter, _ = make_meter(clock)
    reply = await ask(meter, TimeSyncRequest(clock.now() + timedelta(hours=1)))
    assert reply == ErrorReply(0x08, ErrorWord.UNAUTHORIZED)
    assert await ask(meter, TimeSyncRequest(clock.now() + timedelta(minutes=1))) is None


async def test_clock_drift_accumulates(clock: SteppedClock) -> None:
    meter, _ = make_meter(clock, config(faults={"clock_drift_s_per_day": -86.4}))
    await clock.advance(10 * 86_400)
    assert meter.clock.now() == clock.now() - timedelta(seconds=864)
    raw = meter.read_value(0x04000102)
    assert raw == encode_value(0x04000102, meter.clock.now().time())


def _write(di: int, value: object, password: str = "000000", level: int = 2) -> WriteRequest:
    return WriteRequest(di, encode_value(di, value), level, password, "12345678")


async def test_write_needs_the_password_and_the_programming_key(clock: SteppedClock) -> None:
    meter, _ = make_meter(clock)
    when = datetime(2026, 3, 10, 11, 30).time()
    assert await ask(meter, _write(0x04000102, when, "111111")) == WRITE_REFUSED
    assert await ask(meter, _write(0x04000102, when)) == WRITE_REFUSED  # no programming key
    meter.press_program_key()
    assert await ask(meter, _write(0x04000102, when, "111111")) == WRITE_REFUSED
    assert await ask(meter, _write(0x04000102, when, level=5)) == WRITE_REFUSED
    assert await ask(meter, _write(0x04000102, when)) == AckReply(0x14)
    assert meter.clock.now() == datetime(2026, 3, 10, 11, 30)


async def test_secure_parameters_need_test_mode(clock: SteppedClock) -> None:
    meter, _ = make_meter(clock)
    meter.press_program_key()
    assert await ask(meter, _write(0x04001401, 3)) == WRITE_REFUSED
    assert await ask(meter, _write(0x04001401, 3, level=0x98)) == WRITE_REFUSED
    test, _ = make_meter(clock, config(test_mode=True))
    assert await ask(test, _write(0x04001401, 3)) == AckReply(0x14)
    assert isinstance(reply := await ask(test, ReadRequest(0x04001401)), ReadReply)
    assert reply.value.value == 3


async def test_write_protected_and_unknown(clock: SteppedClock) -> None:
    meter, _ = make_meter(clock, config(test_mode=True))
    assert await ask(meter, _write(0x04000401, "000000000001")) == WRITE_REFUSED
    assert await ask(meter, _write(0x04000402, "000000000001")) == WRITE_REFUSED
    assert await ask(meter, WriteRequest(0x04000C03, b"\x00" * 4)) == WRITE_REFUSED
    assert await ask(meter, _write(0x00010000, 0)) == ErrorReply(0x14, ErrorWord.NO_DATA)
    bad = WriteRequest(0x04001401, b"\xff\xff")
    assert await ask(meter, bad) == ErrorReply(0x14, ErrorWord.OTHER)


async def test_write_address_needs_programming(clock: SteppedClock) -> None:
    meter, _ = make_meter(clock)
    request = WriteAddressRequest(Address("000000000042"))
    assert await ask(meter, request, WILDCARD) is None
    meter.press_program_key()
    assert await ask(meter, request, WILDCARD) == AckReply(0x15)
    assert meter.address == "000000000042"
    assert await ask(meter, ReadAddressRequest(), WILDCARD) == ReadAddressReply(
        Address("000000000042")
    )


async def test_change_password(clock: SteppedClock) -> None:
    meter, _ = make_meter(clock, config(test_mode=True))
    wrong = ChangePasswordRequest(2, "999999", "123456")
    assert await ask(meter, wrong) == ErrorReply(0x18, ErrorWord.UNAUTHORIZED)
    weaker = ChangePasswordRequest(2, "000000", "123456", old_level=4)
    assert await ask(meter, weaker) == ErrorReply(0x18, ErrorWord.UNAUTHORIZED)
    ok = ChangePasswordRequest(2, "000000", "123456")
    assert await ask(meter, ok) == ChangePasswordReply(2, "123456")
    assert await ask(meter, _write(0x04001401, 1)) == WRITE_REFUSED
    assert await ask(meter, _write(0x04001401, 1, "123456")) == AckReply(0x14)


async def test_change_baud(clock: SteppedClock) -> None:
    meter, _ = make_meter(clock)
    assert await ask(meter, ChangeBaudRequest(0x20)) == ChangeBaudReply(0x20)
    assert meter.baud_rate == 9600
    refused = ErrorReply(0x17, ErrorWord.BAUD_UNCHANGEABLE)
    assert await ask(meter, ChangeBaudRequest(0x40)) == refused
    assert await ask(meter, ChangeBaudRequest(0x28)) == refused


async def test_instant_freeze_and_fixed_periodic_freezes(clock: SteppedClock) -> None:
    meter, _ = make_meter(clock)
    await clock.advance(3600)
    assert await ask(meter, FreezeRequest()) == AckReply(0x16)
    assert meter.read_value(0x05030001) == encode_value(0x05060001, clock.now())
    assert meter.read_value(0x05030101) == meter.read_value(0x0001FF00)
    assert await ask(meter, FreezeRequest(hour=0, minute=0)) == AckReply(0x16)
    assert await ask(meter, FreezeRequest(hour=1, minute=0)) == ErrorReply(0x16, ErrorWord.OTHER)
    assert await ask(meter, FreezeRequest(), "999999999999") is None  # broadcast: acts, silent
    instant = meter.instant_freezes
    assert instant is not None and len(instant) == 2


async def test_multi_function_output(clock: SteppedClock) -> None:
    meter, _ = make_meter(clock)
    assert await ask(meter, MultiFunctionRequest(2)) == MultiFunctionReply(2)
    assert await ask(meter, MultiFunctionRequest(7)) == ErrorReply(0x1D, ErrorWord.OTHER)


async def test_meter_clear_and_event_clear_in_test_mode(clock: SteppedClock) -> None:
    meter, _ = make_meter(clock, config(test_mode=True))
    await clock.advance(3600)
    await meter.refresh()
    assert meter.registers.forward != [0, 0, 0, 0]
    refused = ErrorReply(0x1A, ErrorWord.UNAUTHORIZED)
    assert await ask(meter, ClearMeterRequest(2, "111111", "12345678")) == refused
    assert await ask(meter, ClearMeterRequest(2, "000000", "12345678")) == AckReply(0x1A)
    assert meter.registers.forward == [0, 0, 0, 0]
    assert meter.read_value(0x03300100) == b"\x01\x00\x00"
    record = decode_message(to_frame(ADDRESS, ReadReply(0x03300101, meter.read_value(0x03300101))))
    assert isinstance(record, ReadReply) and record.value.value["operator"] == "12345678"
    meter.trip_log.count = 3
    assert await ask(meter, ClearEventsRequest(0x1D00FF00)) == AckReply(0x1B)
    assert meter.trip_log.count == 0
    assert await ask(meter, ClearEventsRequest(0x01010101)) == ErrorReply(0x1B, ErrorWord.NO_DATA)
    field = meter.read_value(0x1D000101)
    assert field == bytes(6) and from_seconds(0).year == 2000


async def test_meter_clear_outside_test_mode_needs_the_98_level(clock: SteppedClock) -> None:
    meter, _ = make_meter(clock)
    refused = ErrorReply(0x1A, ErrorWord.UNAUTHORIZED)
    assert await ask(meter, ClearMeterRequest(2, "000000", "12345678")) == refused
    assert await ask(meter, ClearMeterRequest(0x98, "000000", "12345678", bytes(20))) == refused


def test_meter_clock_counts_an_accelerated_clock_in_seconds() -> None:
    clock = AcceleratedClock(start=datetime(2026, 3, 9, 12), speed=1.0)
    meter = MeterClock(clock)
    assert meter.shared_s() == pytest.approx(to_seconds(clock.now()), abs=0.05)
    assert abs(meter.now() - clock.now()) < timedelta(seconds=0.05)
