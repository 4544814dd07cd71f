"""The local alarm and trip ladder end to end: money → relay, with an in-process breaker."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from breaker_sim import BreakerState
from meter_sim.config import BreakerKind
from meter_sim.relay import RelayReason
from meter_sim.wallet import AlarmLevel
from protocol import ControlCommand, StatusWord1, StatusWord3
from protocol.security import SimulatedEncryptionMachine

from .meter_rig import OPERATOR, state
from .test_local_rig import LocalRig, card, local_config, local_rig

LIMITS = {
    "alarm1_fen": 2000,
    "alarm2_fen": 1000,
    "overdraft_limit_fen": 500,
    "close_permit_fen": 1000,
}
CFG = local_config(
    mean_daily_kwh=48.0,
    extra={"remaining_fen": 2500, "purchase_count": 1, "prices": ["1"] * 4, "limits": LIMITS},
)


async def run_until(r: LocalRig, done: Callable[[], bool], *, step: float = 300) -> int:
    """Advance the clock (no requests: the meter acts on its own timer) until ``done()``."""
    for n in range(1, 400):
        await r.clock.advance(step)
        if done():
            return n
    raise AssertionError("condition never reached")


async def test_the_local_trip_ladder() -> None:
    async with local_rig(CFG) as r:
        meter, wallet = r.meter, r.meter.wallet

        def level() -> AlarmLevel:  # read afresh (mypy keeps a narrowed property)
            return wallet.level

        assert StatusWord3.PRE_TRIP_ALARM not in await r.read(0x04000503)

        # Alarm 1: shown, the relay stays closed.
        async def level_reached(level: AlarmLevel) -> None:
            for _ in range(400):
                await r.clock.advance(300)
                await meter.refresh()
                if wallet.level >= level:
                    return
            raise AssertionError(f"{level.name} never reached")

        await level_reached(AlarmLevel.ALARM1)
        assert StatusWord3.PRE_TRIP_ALARM in await r.read(0x04000503)
        assert state(r.breaker) is BreakerState.CLOSED

        # Alarm 2: the meter trips by itself, on time, and writes a 1D record (FFFFFFFF).
        await run_until(r, lambda: not r.breaker.contacts_closed)
        assert level() is AlarmLevel.ALARM2
        assert 1000 - 5 <= wallet.remaining_fen <= 1000
        word = await r.read(0x04000503)
        assert StatusWord3.RELAY_OPEN in word and StatusWord3.RELAY_COMMAND_TRIP in word
        assert (await r.read(0x1D00FF01))["operator"] == "FFFFFFFF"
        assert state(r.breaker) is BreakerState.OPEN_LOCKED  # no automatic permit-close

        # No energy while open.
        energy, remaining = await r.read(0x00010000), wallet.remaining_fen
        await r.clock.advance(3 * 3600)
        assert await r.read(0x00010000) == energy and wallet.remaining_fen == remaining

        # The one re-close at alarm 2: the button.
        assert await meter.press_button()
        assert state(r.breaker) is BreakerState.CLOSED
        assert await r.read(0x1E000001) == 1

        # Zero: trips again; one re-close; then the overdraft grows.
        await run_until(r, lambda: not r.breaker.contacts_closed)
        assert level() is AlarmLevel.ZERO and wallet.remaining_fen == 0
        assert await meter.press_button()
        await level_reached(AlarmLevel.ZERO)
        await r.clock.advance(1800)
        assert await r.read(0x00900201) > Decimal(0)
        assert StatusWord1.OVERDRAFT in await r.read(0x04000501)
        assert r.breaker.contacts_closed

        # Max overdraft: open and locked; the button is refused.
        await run_until(r, lambda: not r.breaker.contacts_closed)
        assert level() is AlarmLevel.MAX_OVERDRAFT
        assert 500 <= wallet.overdraft_fen <= 505
        assert not await meter.press_button()
        assert state(r.breaker) is BreakerState.OPEN_LOCKED

        # A purchase that leaves remaining at or below the close-permit amount: still locked.
        back = await meter.insert_card(card(wallet.overdraft_fen + 800, 2))
        assert back.remaining_fen == 800 and back.overdraft_fen == 0
        assert not await meter.press_button()
        assert meter.relay.open_reasons & RelayReason.LOCAL

        # Above the close-permit amount: the card re-closes the relay.
        back = await meter.insert_card(card(5000, 3))
        assert back.remaining_fen == 5800 and back.purchase_count == 3
        assert state(r.breaker) is BreakerState.CLOSED
        assert meter.relay.open_reasons == 0
        word = await r.read(0x04000503)
        assert StatusWord3.RELAY_OPEN not in word and StatusWord3.PRE_TRIP_ALARM not in word
        assert StatusWord1.OVERDRAFT not in await r.read(0x04000501)


async def test_a_purchase_never_trips_a_closed_relay() -> None:
    cfg = local_config(extra={"remaining_fen": 500, "purchase_count": 1, "limits": LIMITS})
    async with local_rig(cfg) as r:
        await r.meter.refresh()
        assert not r.breaker.contacts_closed  # 5.00 ≤ alarm 2: tripped at once
        assert await r.meter.press_button()
        await r.meter.insert_card(card(100, 2))  # still alarm 2 after the purchase
        assert r.breaker.contacts_closed


async def test_money_and_remote_trips_are_independent() -> None:
    cfg = local_config(extra={"remaining_fen": 500, "purchase_count": 1, "limits": LIMITS})
    async with local_rig(cfg) as r:
        session = await r.authenticate()
        machine: SimulatedEncryptionMachine = r.machine
        expiry = r.clock.now().replace(microsecond=0).replace(year=2027)
        await r.client.control_secure(
            session, machine, ControlCommand.TRIP, expiry, operator=OPERATOR
        )
        await r.meter.refresh()
        assert r.meter.relay.open_reasons == RelayReason.LOCAL | RelayReason.REMOTE
        await r.meter.insert_card(card(10_000, 2))  # money fine now: the remote trip stays
        assert r.meter.relay.open_reasons == RelayReason.REMOTE
        assert not await r.meter.press_button()
        await r.client.control_secure(
            session, machine, ControlCommand.CLOSE_PERMITTED, expiry, operator=OPERATOR
        )
        assert await r.meter.press_button()


async def test_guarantee_suspends_money_trips() -> None:
    cfg = local_config(
        breaker=BreakerKind.INTERNAL,
        extra={"remaining_fen": 1200, "purchase_count": 1, "limits": LIMITS},
    )
    async with local_rig(cfg) as r:
        session = await r.authenticate()
        expiry = r.clock.now().replace(microsecond=0).replace(year=2027)
        await r.client.control_secure(
            session, r.machine, ControlCommand.GUARANTEE, expiry, operator=OPERATOR
        )
        await r.clock.advance(12 * 3600)
        await r.meter.refresh()
        assert r.meter.wallet.level >= AlarmLevel.ALARM2
        assert r.breaker.contacts_closed
