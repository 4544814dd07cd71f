"""Remote control of a remote fee-control meter through real frames, on a stepped clock."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from breaker_sim import BreakerState, Outcome
from meter_sim.config import BreakerKind
from protocol import (
    ControlCommand,
    ControlErrorReply,
    ControlErrorWord,
    ControlReply,
    ErrorReply,
    ErrorWord,
    ExecInfoWord,
    SecurityErrorReply,
    SecurityErrorWord,
    StatusWord1,
    StatusWord3,
)
from protocol.messages import ControlRequest, SecureControlRequest

from .meter_rig import OPERATOR, ask, config, rig, state

TRIP = ControlCommand.TRIP


async def test_the_deployed_trip_sequence() -> None:
    """SPEC S1: trip at once, manual close refused, permit after 60 s, manual close accepted."""
    async with rig() as r:
        reply = await r.control(TRIP)
        assert reply.info == ExecInfoWord.DIRECT_TRIP
        assert state(r.breaker) is BreakerState.OPEN_LOCKED
        assert not r.breaker.contacts_closed
        word = await r.read(0x04000503)
        assert StatusWord3.RELAY_OPEN in word and StatusWord3.RELAY_COMMAND_TRIP in word
        assert r.meter.permit_pending

        await r.clock.advance(30)
        assert r.breaker.manual_close() is Outcome.REFUSED_LOCKED
        await r.clock.advance(29)
        assert state(r.breaker) is BreakerState.OPEN_LOCKED
        await r.clock.advance(1)  # 60 s after the trip, on the meter's timer alone
        assert state(r.breaker) is BreakerState.OPEN_PERMITTED
        word = await r.read(0x04000503)
        assert StatusWord3.RELAY_OPEN in word and StatusWord3.RELAY_COMMAND_TRIP in word

        assert r.breaker.manual_close() is Outcome.CLOSED
        word = await r.read(0x04000503)
        assert StatusWord3.RELAY_OPEN not in word
        assert StatusWord3.RELAY_COMMAND_TRIP not in word
        assert StatusWord1.CONTROL_CIRCUIT_ERROR not in await r.read(0x04000501)

        trip = await r.read(0x1D00FF01)
        assert trip["operator"] == OPERATOR
        assert trip["time"] == r.clock.now() - timedelta(seconds=60)
        assert await r.read(0x1D000001) == 1
        close = await r.read(0x1E00FF01)
        assert close["time"] == r.clock.now()
        assert close["forward_active"] == trip["forward_active"]  # no energy while open
        assert await r.read(0x1E000001) == 1
        assert r.meter.relay.open_reasons == 0

        # Repeated trips (SPEC S2): the customer closed by hand, the head-end trips again.
        assert (await r.control(TRIP)).info == ExecInfoWord.DIRECT_TRIP
        assert state(r.breaker) is BreakerState.OPEN_LOCKED
        assert await r.read(0x1D000001) == 2


async def test_close_permitted_releases_at_once() -> None:
    async with rig() as r:
        await r.control(TRIP)
        reply = await r.control(ControlCommand.CLOSE_PERMITTED)
        assert reply.info == ExecInfoWord.CLOSE_PERMITTED
        assert state(r.breaker) is BreakerState.OPEN_PERMITTED
        assert not r.meter.permit_pending
        word = await r.read(0x04000503)
        assert StatusWord3.RELAY_OPEN in word and StatusWord3.RELAY_COMMAND_TRIP not in word
        assert StatusWord1.CONTROL_CIRCUIT_ERROR not in await r.read(0x04000501)
        r.breaker.manual_close()
        assert StatusWord3.RELAY_OPEN not in await r.read(0x04000503)
        assert (await r.read(0x1E00FF01))["operator"] == OPERATOR


async def test_guarantee_blocks_a_trip_until_released() -> None:
    async with rig() as r:
        assert (await r.control(ControlCommand.GUARANTEE)).info == ExecInfoWord.GUARANTEE
        assert StatusWord3.GUARANTEED in await r.read(0x04000503)
        reply = await r.refused(TRIP)
        assert isinstance(reply, ControlErrorReply)
        assert reply.error == ControlErrorWord.GUARANTEED
        assert state(r.breaker) is BreakerState.CLOSED and r.breaker.trip_count == 0
        assert await r.read(0x1D000001) == 0

        release = await r.control(ControlCommand.GUARANTEE_RELEASE)
        assert release.info == ExecInfoWord.GUARANTEE_RELEASE
        assert (await r.control(TRIP)).info == ExecInfoWord.DIRECT_TRIP
        assert state(r.breaker) is BreakerState.OPEN_LOCKED


async def test_wrong_master_key_fails_identity_auth() -> None:
    async with rig(master_key=bytes(16)) as r:
        reply = await r.refused(TRIP)
        assert isinstance(reply, SecurityErrorReply)
        assert reply.error == SecurityErrorWord.AUTH_FAILED
        assert r.breaker.trip_count == 0 and state(r.breaker) is BreakerState.CLOSED


async def test_expired_command_is_refused_by_the_meter_clock() -> None:
    async with rig() as r:
        session = await r.authenticate()
        reply = await r.refused(TRIP, session=session, expiry=r.clock.now() - timedelta(seconds=1))
        assert isinstance(reply, ControlErrorReply)
        assert reply.error == ControlErrorWord.EXPIRED
        assert r.breaker.trip_count == 0


async def test_a_meter_clock_ahead_makes_a_command_expire() -> None:
    """Expiry is checked against the meter's clock, not the head-end's."""
    async with rig(config(faults={"clock_drift_s_per_day": 600})) as r:
        await r.clock.advance(86_400)  # the meter is now 10 minutes ahead
        session = await r.authenticate()
        reply = await r.refused(TRIP, session=session, expiry=r.clock.now() + timedelta(minutes=5))
        assert isinstance(reply, ControlErrorReply) and reply.error == ControlErrorWord.EXPIRED


async def test_replayed_command_is_refused() -> None:
    async with rig() as r:
        session = await r.authenticate()
        block = r.machine.control_block(
            session.session, ControlCommand.ALARM, r.clock.now() + timedelta(minutes=10)
        )
        first = await ask(r.meter, SecureControlRequest(block, OPERATOR))
        assert isinstance(first, ControlReply)
        again = await ask(r.meter, SecureControlRequest(block, OPERATOR))
        assert isinstance(again, ControlErrorReply)
        assert again.error == ControlErrorWord.MAC_ERROR
        assert r.breaker.trip_count == 0


async def test_tampered_block_counts_mac_errors_until_suspended() -> None:
    async with rig() as r:
        session = await r.authenticate()
        expiry = r.clock.now() + timedelta(minutes=10)
        for _ in range(5):
            block = bytearray(r.machine.control_block(session.session, TRIP, expiry))
            block[0] ^= 1
            reply = await ask(r.meter, SecureControlRequest(bytes(block), OPERATOR))
            assert isinstance(reply, ControlErrorReply)
            assert ControlErrorWord.MAC_ERROR in reply.error
        assert isinstance(reply, ControlErrorReply)
        assert ControlErrorWord.SUSPENDED in reply.error
        auth = await r.refused(TRIP)
        assert isinstance(auth, SecurityErrorReply)
        assert auth.error == SecurityErrorWord.SUSPENDED
        assert r.breaker.trip_count == 0
        # The suspension lifts at the meter's next 00:00.
        await r.clock.advance(14 * 3600 + 60)
        assert (await r.control(TRIP)).info == ExecInfoWord.DIRECT_TRIP


async def test_identity_auth_expires_after_five_minutes() -> None:
    async with rig() as r:
        session = await r.authenticate()
        assert await r.read(0x02800022) == 5
        assert StatusWord3.AUTH_VALID in await r.read(0x04000503)
        await r.clock.advance(4 * 60)
        assert await r.read(0x02800022) == 1
        assert (await r.control(ControlCommand.ALARM, session=session)).info
        await r.clock.advance(60)
        assert await r.read(0x02800022) == 0
        assert StatusWord3.AUTH_VALID not in await r.read(0x04000503)
        reply = await r.refused(TRIP, session=session)
        assert isinstance(reply, ControlErrorReply)
        assert reply.error == ControlErrorWord.AUTH_INVALID
        assert r.breaker.trip_count == 0


async def test_invalidate_session_with_070002ff() -> None:
    async with rig() as r:
        session = await r.authenticate()
        payload = await r.client.security(r.meter.address, 0x070002FF, b"")
        assert payload[:6] == bytes(6)  # customer number 000000000000
        reply = await r.refused(TRIP, session=session)
        assert isinstance(reply, ControlErrorReply)
        assert reply.error == ControlErrorWord.AUTH_INVALID


async def test_unknown_security_di_is_serr_other() -> None:
    async with rig() as r:
        try:
            await r.client.security(r.meter.address, 0x070301FF, b"")
        except Exception as exc:
            reply = getattr(exc, "reply", None)
            assert isinstance(reply, SecurityErrorReply)
            assert reply.error == SecurityErrorWord.OTHER
        else:
            raise AssertionError("070301FF was accepted")


async def test_plaintext_control_needs_test_mode() -> None:
    async with rig() as r:
        expiry = r.clock.now() + timedelta(minutes=10)
        reply = await ask(r.meter, ControlRequest(TRIP, expiry, 2, "000000", OPERATOR))
        assert reply == ErrorReply(0x1C, ErrorWord.UNAUTHORIZED)
        assert r.breaker.trip_count == 0
    async with rig(config(test_mode=True)) as r:
        expiry = r.clock.now() + timedelta(minutes=10)
        wrong = await ask(r.meter, ControlRequest(TRIP, expiry, 2, "123456", OPERATOR))
        assert wrong == ErrorReply(0x1C, ErrorWord.UNAUTHORIZED)
        late = await ask(r.meter, ControlRequest(TRIP, r.clock.now() - timedelta(seconds=1)))
        assert late == ErrorReply(0x1C, ErrorWord.UNAUTHORIZED)
        reply = await r.client.control_plain(r.meter.address, TRIP, expiry, operator=OPERATOR)
        assert reply.info == ExecInfoWord.DIRECT_TRIP
        assert state(r.breaker) is BreakerState.OPEN_LOCKED


async def test_direct_close_only_where_the_switch_closes_remotely() -> None:
    async with rig() as r:
        await r.control(TRIP)
        reply = await r.refused(ControlCommand.DIRECT_CLOSE)
        assert isinstance(reply, ControlErrorReply)
        assert reply.error == ControlErrorWord.UNAUTHORIZED
        assert state(r.breaker) is BreakerState.OPEN_LOCKED
    async with rig(config(breaker=BreakerKind.EXTERNAL_REMOTE_CLOSE)) as r:
        await r.control(TRIP)
        reply = await r.control(ControlCommand.DIRECT_CLOSE)
        assert reply.info == ExecInfoWord.DIRECT_CLOSE
        assert state(r.breaker) is BreakerState.CLOSED
        assert await r.read(0x1E000001) == 1
        assert (await r.read(0x1E00FF01))["operator"] == OPERATOR


async def test_internal_relay_closes_on_the_button_after_permit() -> None:
    async with rig(config(breaker=BreakerKind.INTERNAL)) as r:
        await r.control(TRIP)
        await r.clock.advance(120)  # no automatic permit-close for a built-in relay
        assert state(r.breaker) is BreakerState.OPEN_LOCKED
        assert not await r.meter.press_button()
        await r.control(ControlCommand.CLOSE_PERMITTED)
        assert StatusWord3.RELAY_OPEN in await r.read(0x04000503)
        assert await r.meter.press_button()
        assert state(r.breaker) is BreakerState.CLOSED
        assert await r.read(0x1E000001) == 1


async def test_trip_delay_raises_the_pre_trip_alarm_first() -> None:
    params = {"04001401": 2}
    async with rig(config(extra={"parameters": params})) as r:
        assert (await r.control(TRIP)).info == ExecInfoWord.DELAYED_TRIP
        word = await r.read(0x04000503)
        assert StatusWord3.PRE_TRIP_ALARM in word and StatusWord3.RELAY_COMMAND_TRIP in word
        assert StatusWord3.RELAY_OPEN not in word
        await r.clock.advance(119)
        assert state(r.breaker) is BreakerState.CLOSED
        await r.clock.advance(1)
        assert state(r.breaker) is BreakerState.OPEN_LOCKED
        assert StatusWord3.PRE_TRIP_ALARM not in await r.read(0x04000503)
        await r.clock.advance(60)
        assert state(r.breaker) is BreakerState.OPEN_PERMITTED


async def test_large_current_delays_the_trip() -> None:
    params = {"04001402": Decimal("0.001"), "04001403": 3}
    async with rig(config(extra={"parameters": params})) as r:
        assert (await r.control(TRIP)).info == ExecInfoWord.LARGE_CURRENT_DELAYED_TRIP
        await r.clock.advance(179)
        assert state(r.breaker) is BreakerState.CLOSED
        await r.clock.advance(1)
        assert state(r.breaker) is BreakerState.OPEN_LOCKED


async def test_guarantee_cancels_a_pending_delayed_trip() -> None:
    async with rig(config(extra={"parameters": {"04001401": 1}})) as r:
        await r.control(TRIP)
        await r.control(ControlCommand.GUARANTEE)
        await r.clock.advance(120)
        assert state(r.breaker) is BreakerState.CLOSED
        assert not r.meter.trip_pending


async def test_alarm_on_and_off() -> None:
    async with rig() as r:
        assert (await r.control(ControlCommand.ALARM)).info == ExecInfoWord.ALARM
        assert StatusWord3.PRE_TRIP_ALARM in await r.read(0x04000503)
        release = await r.control(ControlCommand.ALARM_RELEASE)
        assert release.info == ExecInfoWord.ALARM_RELEASE
        assert StatusWord3.PRE_TRIP_ALARM not in await r.read(0x04000503)


async def test_auto_restore_is_not_simulated() -> None:
    async with rig() as r:
        reply = await r.refused(ControlCommand.TRIP_AUTO_RESTORE_1)
        assert isinstance(reply, ControlErrorReply)
        assert reply.error == ControlErrorWord.UNAUTHORIZED


async def test_breaker_that_fails_to_trip_sets_control_circuit_error() -> None:
    async with rig(config(faults={"breaker_fault": "fails-to-trip"})) as r:
        assert StatusWord1.CONTROL_CIRCUIT_ERROR not in await r.read(0x04000501)
        await r.control(TRIP)
        assert r.breaker.contacts_closed
        assert StatusWord1.CONTROL_CIRCUIT_ERROR in await r.read(0x04000501)
        word = await r.read(0x04000503)
        assert StatusWord3.RELAY_COMMAND_TRIP in word and StatusWord3.RELAY_OPEN not in word
        before = await r.read(0x00010000)
        await r.clock.advance(3600)
        assert await r.read(0x00010000) > before  # power still flows: energy accrues


async def test_welded_breaker_sets_control_circuit_error_even_after_the_permit() -> None:
    async with rig(config(faults={"breaker_fault": "welded"})) as r:
        await r.control(TRIP)
        assert StatusWord1.CONTROL_CIRCUIT_ERROR in await r.read(0x04000501)
        await r.clock.advance(120)
        assert StatusWord1.CONTROL_CIRCUIT_ERROR in await r.read(0x04000501)
        assert await r.read(0x1E000001) == 0


async def test_missing_feedback_is_an_error_but_metering_goes_on() -> None:
    async with rig(config(faults={"breaker_fault": "no-feedback"})) as r:
        word1 = await r.read(0x04000501)
        assert StatusWord1.CONTROL_CIRCUIT_ERROR in word1
        assert StatusWord3.RELAY_OPEN in await r.read(0x04000503)
        before = await r.read(0x00010000)
        await r.clock.advance(3600)
        assert await r.read(0x00010000) > before
