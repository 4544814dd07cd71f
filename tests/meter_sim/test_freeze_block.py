"""The daily-freeze data block (日冻结数据块, 0506FFnn): every item of a freeze in one reply."""

from __future__ import annotations

from datetime import datetime

import pytest

from meter_sim.freeze import DAILY_BLOCK_SIZE, Freeze, FreezeStore, daily_block
from meter_sim.registers import FORWARD, REVERSE, EnergyRegisters
from protocol import ErrorReply, ErrorWord
from protocol.messages import ReadReply, ReadRequest

from .meter_rig import ask, config, make_meter, rig


def test_block_layout_as_the_firmware_builds_it() -> None:
    # 2026-03-02 00:00 is 9557 days after 2000-01-01 (26 years with 7 leap days = 9497,
    # + 59 days of January and February + 1 of March) = 13,762,080 minutes.
    minute = 9557 * 24 * 60
    freeze = Freeze(minute, (12345678, 1, 20, 300, 12345357), (99, 0, 0, 0, 99))
    raw = daily_block(freeze)
    expected = bytes.fromhex(
        "0000020326"  # mm hh DD MM YY
        "AA"
        "78563412"
        "01000000"
        "20000000"
        "00030000"
        "57533412"  # 123456.78 kWh, T1..T4
        "AA"
        "99000000"
        "00000000"
        "00000000"
        "00000000"
        "99000000"  # reverse
        "AA"
        "AAAAAAAAAAAAAAAA"  # combined reactive 1/2, quadrants I-IV, max demands: not kept
        "AA"  # variable data: not kept
    )
    assert raw == expected
    assert len(raw) == DAILY_BLOCK_SIZE == 57


async def test_the_block_carries_the_same_values_as_the_single_items() -> None:
    async with rig() as r:
        await r.clock.advance(14 * 3600)  # to 00:00 of 2026-03-11: freeze 1
        reply = await ask(r.meter, ReadRequest(0x0506FF01))
        assert isinstance(reply, ReadReply) and reply.di == 0x0506FF01
        items = reply.raw.split(b"\xaa")
        time_item = r.meter.read_value(0x05060001)
        assert items[0] == time_item == bytes.fromhex("0000110326")
        assert items[1] == r.meter.read_value(0x05060101)
        assert items[2] == r.meter.read_value(0x05060201)
        assert items[3:] == [b""] * 10
        assert await r.read(0x05060001) == datetime(2026, 3, 11, 0, 0)
        # freeze 2 is not taken yet: no data, as for the single items
        assert await ask(r.meter, ReadRequest(0x0506FF02)) == ErrorReply(0x11, ErrorWord.NO_DATA)


async def test_a_meter_without_the_block_answers_no_data() -> None:
    async with rig() as r:
        await r.clock.advance(14 * 3600)
        other, _ = make_meter(r.clock, config(extra={"freeze_block": False}))
        await r.clock.advance(24 * 3600)
        await other.refresh()
        assert await ask(other, ReadRequest(0x0506FF01)) == ErrorReply(0x11, ErrorWord.NO_DATA)
        assert other.read_value(0x05060101)  # the single items still answer


def test_a_freeze_holds_the_registers_as_read() -> None:
    registers = EnergyRegisters()
    registers.add_forward([123_456_789, 2_345_678, 999, 100_000_000_000])
    registers.reverse = [1_999, 0, 5_000, 12]
    frozen = registers.frozen()
    assert list(frozen) == (registers.block(FORWARD) or []) + (registers.block(REVERSE) or [])
    assert frozen[:5] == (100_125_801, 123_456, 2_345, 0, 100_000_000)  # T3 under 0.01 kWh
    store = FreezeStore()
    store.take_row(1440, frozen)
    assert store.get(1) == Freeze(1440, frozen[:5], frozen[5:])
    with pytest.raises(ValueError):
        store.take_row(2880, frozen[:5])
