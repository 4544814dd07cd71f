"""The local prepay meter: money registers, status words, prices and state (real frames)."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timedelta
from decimal import Decimal

import pytest

from breaker_sim import Breaker, InProcessBreakerLink
from meter_sim.card import CardError, CardType
from meter_sim.factory import build_meter
from meter_sim.local import LocalMeter
from meter_sim.wallet import AlarmLevel
from protocol import (
    ErrorReply,
    ErrorWord,
    StatusWord1,
    StatusWord3,
    SteppedClock,
    decode_message,
    to_frame,
)
from protocol.datatypes import LadderTable
from protocol.frame import encode_frame
from protocol.messages import ReadRequest
from protocol.security import TEST_MASTER_KEY

from .meter_rig import START, ask
from .test_local_rig import CUSTOMER, card, local_config, local_rig, make_local

TV8 = "FE FE FE FE 68 12 10 78 56 34 12 68 91 08 33 35 C3 33 78 56 34 33 32 16"
FLAT = ["0.5000"] * 4
OPEN = CardType.OPEN


async def test_00900200_answers_like_tv8() -> None:
    clock = SteppedClock(START)
    meter, _ = make_local(clock, local_config(mean_daily_kwh=0.0, extra={"remaining_fen": 12345}))
    request = to_frame(meter.address, ReadRequest(0x00900200))
    reply = await meter.handle(request, decode_message(request))
    assert reply is not None
    assert encode_frame(to_frame(meter.address, reply)) == bytes.fromhex(TV8)


async def test_status_words_of_a_local_meter() -> None:
    async with local_rig() as r:
        assert StatusWord1.REMOTE_MODE not in await r.read(0x04000501)
        word = await r.read(0x04000503)
        assert StatusWord3.PREPAY_MONEY in word and StatusWord3.LOCAL_NOT_OPENED in word
        assert await r.read(0x00900200) == Decimal("0.00")
        await r.meter.insert_card(card(1500, 1, kind=OPEN))
        word = await r.read(0x04000503)
        assert StatusWord3.LOCAL_NOT_OPENED not in word
        assert StatusWord3.PRE_TRIP_ALARM in word  # 15.00 ≤ alarm 1 (20.00)
        assert await r.read(0x0400040E) == CUSTOMER
        assert await r.read(0x04001001) == Decimal("20.00")
        assert await r.read(0x04001003) == Decimal("5.00")
        reply = await ask(r.meter, ReadRequest(0x00900100))
        assert isinstance(reply, ErrorReply) and reply.error == ErrorWord.NO_DATA


async def test_nothing_is_deducted_before_the_account_is_opened() -> None:
    async with local_rig() as r:
        await r.clock.advance(6 * 3600)
        assert await r.read(0x00010000) > 0
        assert r.meter.wallet.remaining_fen == 0 and r.meter.wallet.overdraft_fen == 0
        assert r.breaker.contacts_closed


async def test_deduction_is_exact_at_a_flat_price() -> None:
    cfg = local_config(extra={"remaining_fen": 100_000, "prices": FLAT})
    async with local_rig(cfg) as r:
        for _ in range(7):
            await r.clock.advance(3 * 3600 + 17)
            total = await r.read(0x00010000)
            ckwh = int(total * 100)
            wallet = r.meter.wallet
            spent_e6 = (100_000 - wallet.remaining_fen) * 10_000 + wallet.residue_e6
            assert spent_e6 == ckwh * 5000


async def test_price_is_tou_plus_ladder_and_deduction_follows_it() -> None:
    ladder = {
        "thresholds": ["0.50", "1.20", 0, 0, 0, 0],
        "prices": ["0", "0.0500", "0.3000", 0, 0, 0, 0],
        "settlement_dates": ["999999"] * 6,
    }
    prices = ["0.7000", "0.5500", "0.5000", "0.3000"]
    cfg = local_config(extra={"remaining_fen": 100_000, "prices": prices, "ladder": ladder})
    async with local_rig(cfg) as r:  # 10:00 is peak (tariff 2)
        assert await r.read(0x02800021) == Decimal("0.5500")
        assert await r.read(0x0280000B) == Decimal("0.0000")
        assert await r.read(0x02800020) == Decimal("0.5500")
        assert await r.read(0x040501FF) == tuple(Decimal(p) for p in prices)
        table = await r.read(0x040606FF)
        assert isinstance(table, LadderTable) and table.thresholds[1] == Decimal("1.20")
        expected_e6 = 0
        seen_steps = set()
        for _ in range(40):
            before = list(r.meter.registers.tariffs(1))
            cycle = r.meter.cycle_energy_ckwh
            await r.clock.advance(600)
            await r.meter.refresh()
            after = r.meter.registers.tariffs(1)
            for k in range(4):
                for _ in range(after[k] - before[k]):  # unit by unit, tariffs in order
                    step = sum(1 for t in (50, 120) if cycle >= t)
                    expected_e6 += int(Decimal(prices[k]) * 10_000) + (0, 500, 3000)[step]
                    cycle += 1
            seen_steps.add(r.meter.ladder_step())
            tou = await r.read(0x02800021)
            step_price = await r.read(0x0280000B)
            assert await r.read(0x02800020) == tou + step_price
        assert seen_steps >= {1, 2}
        assert await r.read(0x0280000B) == Decimal("0.3000")
        wallet = r.meter.wallet
        assert (100_000 - wallet.remaining_fen) * 10_000 + wallet.residue_e6 == expected_e6


async def test_the_ladder_cycle_is_settled_on_the_1st() -> None:
    ladder = {"thresholds": ["1.00", 0, 0, 0, 0, 0], "prices": [0, "0.1000", 0, 0, 0, 0, 0]}
    cfg = local_config(extra={"remaining_fen": 100_000, "ladder": ladder})
    async with local_rig(cfg, start=datetime(2026, 3, 31, 8, 0)) as r:
        await r.clock.advance(15 * 3600)
        await r.meter.refresh()
        assert r.meter.ladder_step() == 1
        assert await r.read(0x0280000B) == Decimal("0.1000")
        await r.clock.advance(2 * 3600)  # past 00:00 on the 1st
        assert await r.read(0x0280000B) == Decimal("0.0000")
        assert r.meter.cycle_energy_ckwh < 100


async def test_daily_prepay_freeze() -> None:
    cfg = local_config(extra={"remaining_fen": 5000, "purchase_count": 3})
    async with local_rig(cfg) as r:
        await r.clock.advance(14 * 3600)  # past 00:00
        freeze = await r.read(0x05060801)
        assert freeze["purchase_count"] == 3
        assert Decimal(0) < freeze["remaining"] < Decimal("50.00")
        assert freeze["overdraft"] == Decimal(0)
        reply = await ask(r.meter, ReadRequest(0x05060802))
        assert isinstance(reply, ErrorReply) and reply.error == ErrorWord.NO_DATA


async def test_purchase_records_are_readable() -> None:
    async with local_rig() as r:
        await r.meter.insert_card(card(10_000, 1, kind=OPEN))
        await r.clock.advance(60)
        await r.meter.insert_card(card(2_550, 2))
        assert await r.read(0x03330201) == 2
        assert await r.read(0x03330301) == Decimal("25.50")
        assert await r.read(0x03330601) == Decimal("125.50")
        assert await r.read(0x03330302) == Decimal("100.00")
        assert await r.read(0x03330101) == START + timedelta(seconds=60)
        assert await r.read(0x03330303) == Decimal("0.00")  # no third purchase


async def test_limits_written_in_test_mode() -> None:
    async with local_rig(local_config(test_mode=True)) as r:
        await r.client.write(r.meter.address, 0x04001001, Decimal("30.00"))
        assert r.meter.wallet.limits.alarm1_fen == 3000
        assert await r.read(0x04001001) == Decimal("30.00")
        await r.client.write(r.meter.address, 0x04050102, Decimal("0.8000"))
        assert await r.read(0x02800021) == Decimal("0.8000")


async def test_state_round_trip() -> None:
    cfg = local_config(extra={"prices": FLAT})
    async with local_rig(cfg) as r:
        await r.meter.insert_card(card(3_000, 1, kind=OPEN, alarm1_fen=2500))
        await r.clock.advance(20 * 3600)
        with pytest.raises(CardError, match="MAC"):
            await r.meter.insert_card(dataclasses.replace(card(1, 2), amount_fen=99))
        saved = json.loads(json.dumps(r.meter.to_state()))
        other, _ = make_local(r.clock, cfg)
        other.restore_state(saved)
        assert other.to_state() == saved
        assert other.wallet == r.meter.wallet
        assert other.illegal_inserts == 1
        assert other.cycle_energy_ckwh == r.meter.cycle_energy_ckwh > 0
        assert other.read_value(0x05060801) == r.meter.read_value(0x05060801)
        assert other.read_value(0x00900200) == r.meter.read_value(0x00900200)
        await other.aclose()


def test_factory_builds_local_meters() -> None:
    clock = SteppedClock(START)
    link = InProcessBreakerLink(Breaker(clock))
    meter = build_meter(local_config(), clock, link, master_key=TEST_MASTER_KEY)
    assert isinstance(meter, LocalMeter)
    assert meter.wallet.level is AlarmLevel.ZERO and not meter.wallet.opened


async def test_the_example_scenario_meter() -> None:
    """``extra = { remaining_yuan = 5.0 }`` (meter_sim/scenarios/example.toml)."""
    async with local_rig(local_config(extra={"remaining_yuan": 5.0})) as r:
        assert await r.read(0x00900200) == Decimal("5.00")
        assert r.meter.wallet.opened and r.meter.wallet.level is AlarmLevel.ALARM2
        assert not r.breaker.contacts_closed  # at or below alarm 2: tripped on the first touch
