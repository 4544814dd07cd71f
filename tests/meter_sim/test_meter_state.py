"""to_state / restore_state, and the factory."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from breaker_sim import Breaker, BreakerState, InProcessBreakerLink
from meter_sim.config import SimulatedMeter
from meter_sim.errors import MeterStateError
from meter_sim.factory import build_meter
from meter_sim.remote import RemoteMeter
from protocol import ControlCommand, SteppedClock
from protocol.messages import (
    ChangePasswordRequest,
    ControlReply,
    FreezeRequest,
    ReadReply,
    ReadRequest,
    SecureControlRequest,
)
from protocol.security import TEST_MASTER_KEY

from .meter_rig import START, ask, config, make_meter, rig, state

DIS = [
    0x0001FF00,
    0x0002FF00,
    0x0000FF00,
    0x0001FF01,
    0x0001FFFF,
    0x05060001,
    0x05060101,
    0x0506001E,
    0x05030101,
    0x1D00FF01,
    0x1D000001,
    0x1E00FF01,
    0x1E000001,
    0x04000501,
    0x04000503,
    0x04000101,
    0x04000102,
    0x02800022,
    0x02030000,
    0x02020100,
    0x04001401,
    0x0400040E,
]


async def _reads(meter: RemoteMeter) -> list[object]:
    out: list[object] = []
    for di in DIS:
        reply = await ask(meter, ReadRequest(di))
        out.append(reply.raw if isinstance(reply, ReadReply) else reply)
    return out


async def test_round_trip_gives_identical_reads() -> None:
    cfg = config(test_mode=True, extra={"parameters": {"04001401": 0}})
    async with rig(cfg, start=START - timedelta(days=40)) as r:
        await r.clock.advance(40 * 86_400)  # freezes, a settlement
        await ask(r.meter, FreezeRequest())
        await ask(r.meter, ChangePasswordRequest(4, "000000", "424242"))
        await r.control(ControlCommand.GUARANTEE)
        await r.control(ControlCommand.GUARANTEE_RELEASE)
        await r.control(ControlCommand.TRIP)
        await r.clock.advance(30)  # permit-close still 30 s away
        session = await r.authenticate()
        saved = json.loads(json.dumps(r.meter.to_state()))
        before = await _reads(r.meter)
        await r.meter.aclose()

        restored, _ = make_meter(r.clock, cfg, breaker=r.breaker)
        restored.restore_state(saved)
        assert await _reads(restored) == before
        assert restored.to_state() == saved
        # the ESAM session and the pending permit-close survive too
        block = r.machine.control_block(
            session.session, ControlCommand.ALARM, r.clock.now() + timedelta(minutes=5)
        )
        reply = await ask(restored, SecureControlRequest(block, "12345678"))
        assert isinstance(reply, ControlReply)
        await r.clock.advance(30)
        assert state(r.breaker) is BreakerState.OPEN_PERMITTED
        await restored.aclose()


async def test_bad_states_are_refused() -> None:
    clock = SteppedClock(START)
    meter, _ = make_meter(clock)
    saved = meter.to_state()
    with pytest.raises(MeterStateError, match="version"):
        meter.restore_state({**saved, "version": 99})
    with pytest.raises(MeterStateError, match="cannot be restored"):
        meter.restore_state({**saved, "meter_number": "000000000001"})
    with pytest.raises(MeterStateError, match="malformed"):
        meter.restore_state({**saved, "energy": {"forward": [1]}})
    broken = json.loads(json.dumps(saved))
    del broken["relay"]
    with pytest.raises(MeterStateError):
        meter.restore_state(broken)


def test_factory_builds_remote_meters() -> None:
    clock = SteppedClock(START)
    link = InProcessBreakerLink(Breaker(clock))
    meter = build_meter(config(), clock, link, master_key=TEST_MASTER_KEY)
    assert isinstance(meter, RemoteMeter) and isinstance(meter, SimulatedMeter)
    assert meter.address == "123456781012"
