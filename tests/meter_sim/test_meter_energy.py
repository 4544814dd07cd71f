"""Metering: accrual from the profile, the breaker's effect, freezes, settlements, follow-ups."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from protocol import ControlCommand, ErrorReply, ErrorWord, SteppedClock
from protocol.messages import ReadFollowUpReply, ReadFollowUpRequest, ReadReply, ReadRequest

from .meter_rig import START, ask, config, make_meter, rig


async def _value(meter: object, di: int) -> bytes:
    reply = await ask(meter, ReadRequest(di))  # type: ignore[arg-type]
    assert isinstance(reply, ReadReply), reply
    return reply.raw


async def test_same_seed_same_registers_however_often_read() -> None:
    """Lazy accrual: reading every minute or once gives the same energy."""
    clock_a, clock_b = SteppedClock(START), SteppedClock(START)
    a, _ = make_meter(clock_a)
    b, _ = make_meter(clock_b)
    for _ in range(3 * 24 * 6):
        await clock_a.advance(600)
        await a.refresh()
    await clock_b.advance(3 * 86_400)
    assert await _value(a, 0x0001FF00) == await _value(b, 0x0001FF00)
    assert a.registers.forward == b.registers.forward
    other, _ = make_meter(SteppedClock(START), config(seed=8))
    assert other.profile.daily_units(9566) != a.profile.daily_units(9566)


async def test_total_is_the_sum_of_the_tariffs_on_the_wire() -> None:
    async with rig() as r:
        await r.clock.advance(5 * 86_400 + 1234)
        total, *tariffs = await r.read(0x0001FF00)
        assert total == sum(tariffs) > 0
        assert await r.read(0x00010000) == total
        assert await r.read(0x00000000) == total  # combined = forward + reverse (0)
        assert await r.read(0x00020000) == 0


async def test_energy_stops_while_open_and_resumes_after_the_manual_close() -> None:
    async with rig() as r:
        await r.clock.advance(3600)
        await r.control(ControlCommand.TRIP)
        at_trip = await r.read(0x00010000)
        assert (await r.read(0x02030000)) == 0  # no power
        await r.clock.advance(6 * 3600)
        assert await r.read(0x00010000) == at_trip
        r.breaker.manual_close()
        await r.meter.refresh()
        assert await r.read(0x00010000) == at_trip
        await r.clock.advance(6 * 3600)
        assert await r.read(0x00010000) > at_trip
        assert (await r.read(0x02030000)) > 0


async def test_energy_while_open_is_never_counted() -> None:
    """The 6 h open are missing: registers = a meter that never tripped, minus those 6 h."""
    async with rig() as r:
        open_at = r.clock.now() + timedelta(hours=1)
        await r.clock.advance(3600)
        await r.control(ControlCommand.TRIP)
        await r.clock.advance(6 * 3600)
        r.breaker.manual_close()
        await r.meter.refresh()
        await r.clock.advance(3600)
        await r.meter.refresh()
        profile = r.meter.profile
        day = (open_at.date() - datetime(2000, 1, 1).date()).days
        s = 10 * 3600
        expected = [
            x + y
            for x, y in zip(
                profile.energy(day, s, s + 3600),
                profile.energy(day, s + 7 * 3600, s + 8 * 3600),
                strict=True,
            )
        ]
        assert r.meter.registers.forward == expected


async def test_daily_freeze_at_midnight() -> None:
    async with rig() as r:
        await r.clock.advance(14 * 3600)  # to 00:00 of 2026-03-11
        assert await r.read(0x05060001) == datetime(2026, 3, 11, 0, 0)
        frozen = await r.read(0x05060101)
        assert frozen == tuple(await r.read(0x0001FF00))
        assert await r.read(0x05060201) == (Decimal(0),) * 5
        await r.clock.advance(3600)
        assert await r.read(0x05060101) == frozen
        assert (await r.read(0x0001FF00))[0] > frozen[0]
        reply = await ask(r.meter, ReadRequest(0x05060002))
        assert reply == ErrorReply(0x11, ErrorWord.NO_DATA)  # no second freeze yet


async def test_62_daily_freezes_are_kept() -> None:
    clock = SteppedClock(START)
    meter, _ = make_meter(clock)
    await clock.advance(70 * 86_400)
    await meter.refresh()
    assert len(meter.daily_freezes) == 62
    oldest = await ask(meter, ReadRequest(0x0506003E))
    assert isinstance(oldest, ReadReply)
    assert oldest.value.value == datetime(2026, 3, 11) + timedelta(days=70 - 62)
    assert await ask(meter, ReadRequest(0x0506003F)) == ErrorReply(0x11, ErrorWord.NO_DATA)


async def test_missing_freeze_days_answer_err_02() -> None:
    clock = SteppedClock(START)
    meter, _ = make_meter(clock, config(faults={"missing_freeze_days": 2}))
    await clock.advance(5 * 86_400)
    for di in (0x05060001, 0x05060101, 0x05060202):
        assert await ask(meter, ReadRequest(di)) == ErrorReply(0x11, ErrorWord.NO_DATA)
    assert isinstance(await ask(meter, ReadRequest(0x05060003)), ReadReply)


async def test_monthly_settlement_on_the_first() -> None:
    async with rig(start=datetime(2026, 3, 30, 12, 0)) as r:
        await r.clock.advance(36 * 3600)  # to 2026-04-01 00:00
        settled = await r.read(0x0001FF01)
        assert settled == tuple(await r.read(0x0001FF00)) and settled[0] > 0
        assert await r.read(0x0001FF02) == (Decimal(0),) * 5
        await r.clock.advance(3600)
        assert await r.read(0x00010001) == settled[0]


async def test_long_value_comes_in_follow_up_frames() -> None:
    """0001FFFF (current + 12 settlement periods, 260 bytes): B1 + 12H SEQ + 92."""
    async with rig() as r:
        await r.clock.advance(3600)
        first = await ask(r.meter, ReadRequest(0x0001FFFF))
        assert isinstance(first, ReadReply) and first.follow_up and len(first.raw) == 170
        last = await ask(r.meter, ReadFollowUpRequest(0x0001FFFF, 1))
        assert isinstance(last, ReadFollowUpReply)
        assert last.seq == 1 and not last.follow_up and len(last.raw) == 90
        raw = await r.client.read_raw(r.meter.address, 0x0001FFFF)
        assert len(raw) == 260 and raw[:20] == await _value(r.meter, 0x0001FF00)
        assert await ask(r.meter, ReadFollowUpRequest(0x0001FFFF, 2)) == ErrorReply(
            0x12, ErrorWord.NO_DATA
        )
