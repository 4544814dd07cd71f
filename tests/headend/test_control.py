"""The control sequence against simulated meters over real TCP (issue 4 items 5 and 11).

Each test runs a job runner on a stepped clock; the meters and their breakers are
real simulations behind a TCP gateway on loopback.
"""

from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path

from breaker_sim import BreakerState
from headend.control import KeyRing
from headend.events import CommandFailed, CommandSucceeded, MeterAlarm
from headend.jobs import JobSpec, RetryPolicy
from headend.models import JobKind, JobState
from meter_sim.config import BreakerKind
from meter_sim.scenario import FleetSpec
from protocol import ErrorWord, FunctionCode, StatusWord3, decode_value
from protocol.errors import SecurityError
from protocol.frame import Frame, decode_frame
from protocol.messages import ControlReply, ErrorReply, Message, to_frame

from .fleet_rig import KEY
from .jobs_rig import FIRST, SECOND, headend


def functions(frames: list[str]) -> list[str]:
    """``TX 03``, ``RX 83``… : direction and control byte of each logged frame."""
    out = []
    for line in frames:
        direction, hexes = line.split(" ", 1)
        frame, _ = decode_frame(bytes.fromhex(hexes))
        out.append(f"{direction} {frame.control:02X}")
    return out


async def test_a_trip_opens_the_breaker_and_is_confirmed_by_status_word_3(
    tmp_path: Path,
) -> None:
    async with headend(tmp_path) as he:
        await he.clock.advance(3600)  # an hour of consumption before the trip
        start = he.clock.now()
        job, created = he.runner.submit(
            JobSpec(JobKind.TRIP, FIRST, id="order-1", params={"reason": "arrears"})
        )
        assert created and job.state is JobState.QUEUED
        event = await he.finish("order-1")

        assert isinstance(event, CommandSucceeded), event
        assert (event.relay, event.reason, event.attempts) == ("open", "arrears", 1)
        assert he.breaker(FIRST).state is BreakerState.OPEN_LOCKED
        assert he.breaker(SECOND).state is BreakerState.CLOSED
        # the settle delay (3 s by default) passed on the clock before the status read
        stored = he.runner.store.require("order-1")
        assert stored.state is JobState.SUCCEEDED and stored.result is not None
        assert stored.result["relay"] == "open" and stored.result["n1"] == "1A"
        assert stored.result["info"] == ["DIRECT_TRIP"]  # the 9C 02 form
        word = StatusWord3(int(stored.result["status_word3"], 16))
        assert word & StatusWord3.RELAY_OPEN and word & StatusWord3.RELAY_COMMAND_TRIP
        assert (he.clock.now() - start).total_seconds() >= 3
        # the settlement reading is the meter's register (it no longer moves: relay open)
        register = decode_value(0x00010000, he.meter(FIRST).read_value(0x00010000)).value
        assert register > 0
        assert stored.result["energy_kwh"] == str(register)
        assert event.energy_ckwh == stored.result["energy_ckwh"] == int(register * 100)

        (attempt,) = he.runner.store.attempts("order-1")
        assert attempt.outcome == "succeeded" and attempt.error is None
        # 03H auth, 1CH trip, 11H status word 3, 11H energy — each answered
        assert functions(attempt.frames) == [
            "TX 03",
            "RX 83",
            "TX 1C",
            "RX 9C",
            "TX 11",
            "RX 91",
            "TX 11",
            "RX 91",
        ]


async def test_a_trip_whose_confirmation_fails_is_retried_and_then_succeeds(
    tmp_path: Path,
) -> None:
    async with headend(tmp_path, retry=RetryPolicy(base_s=10)) as he:
        he.breaker(FIRST).set_fault("fails-to-trip")
        he.runner.submit(JobSpec(JobKind.TRIP, FIRST, id="t"))
        await he.run_until(lambda: he.runner.store.require("t").error is not None)
        first = he.runner.store.attempts("t")[0]
        assert first.outcome == "failed"
        assert first.error is not None and "relay is still closed" in first.error
        assert "control-circuit error" in first.error  # status word 1 bit8 reported
        job = he.runner.store.require("t")
        assert job.state is JobState.QUEUED and job.error == "relay-not-open"
        assert job.next_attempt_at is not None
        assert (job.next_attempt_at - he.clock.now()).total_seconds() == 10

        he.breaker(FIRST).set_fault("none")  # the breaker mechanism is freed
        event = await he.finish("t")
        assert isinstance(event, CommandSucceeded) and event.attempts == 2
        assert he.breaker(FIRST).state is BreakerState.OPEN_LOCKED
        assert [a.outcome for a in he.runner.store.attempts("t")] == ["failed", "succeeded"]


async def test_a_welded_breaker_fails_after_every_retry_with_the_reason(tmp_path: Path) -> None:
    async with headend(tmp_path) as he:
        he.breaker(FIRST).set_fault("welded")
        event = await he.finish(
            he.runner.submit(JobSpec(JobKind.TRIP, FIRST, max_attempts=3))[0].id
        )
        assert isinstance(event, CommandFailed)
        assert event.error == "relay-not-open" and event.attempts == 3
        assert "gave up after 3 attempt(s)" in event.reason
        assert "relay is still closed" in event.reason


async def test_a_wrong_key_fails_at_once_with_a_clear_reason(tmp_path: Path) -> None:
    wrong = KeyRing(bytes(range(16)))
    async with headend(tmp_path, keys=wrong) as he:
        he.runner.submit(JobSpec(JobKind.TRIP, FIRST, id="k"))
        event = await he.finish("k")
        assert isinstance(event, CommandFailed)
        assert event.error == "auth-refused" and event.attempts == 1  # never retried
        assert "refused identity authentication" in event.reason
        assert "key for this meter (the default key) does not match" in event.reason
        assert he.breaker(FIRST).state is BreakerState.CLOSED
        assert he.runner.store.require("k").state is JobState.FAILED


async def test_an_unknown_key_reference_names_the_missing_key_file(tmp_path: Path) -> None:
    keys_dir = tmp_path / "keys"
    keys_dir.mkdir()
    (keys_dir / "default.key").write_text(KEY.hex())
    async with headend(tmp_path, keys=KeyRing.from_dir(keys_dir)) as he:
        with he.engine.begin() as c:
            c.exec_driver_sql(
                "UPDATE headend_meter SET key_ref = 'area-7' WHERE address = ?", (FIRST,)
            )
        he.runner.submit(JobSpec(JobKind.TRIP, FIRST, id="k"))
        event = await he.finish("k")
        assert isinstance(event, CommandFailed) and event.error == "no-key"
        assert "add area-7.key to the key directory" in event.reason


async def test_a_guaranteed_meter_refuses_a_trip_and_it_is_not_retried(tmp_path: Path) -> None:
    async with headend(tmp_path) as he:
        he.runner.submit(JobSpec(JobKind.GUARANTEE_ON, FIRST, id="g"))
        on = await he.finish("g")
        assert isinstance(on, CommandSucceeded) and on.guarantee is True
        he.runner.submit(JobSpec(JobKind.TRIP, FIRST, id="t"))
        event = await he.finish("t")
        assert isinstance(event, CommandFailed) and event.error == "guaranteed"
        assert "power guarantee (保电)" in event.reason and event.attempts == 1
        assert he.breaker(FIRST).state is BreakerState.CLOSED

        he.runner.submit(JobSpec(JobKind.GUARANTEE_OFF, FIRST, id="g-off"))
        off = await he.finish("g-off")
        assert isinstance(off, CommandSucceeded) and off.guarantee is False
        he.runner.submit(JobSpec(JobKind.TRIP, FIRST, id="t2"))
        assert isinstance(await he.finish("t2"), CommandSucceeded)


async def test_permit_close_and_direct_close(tmp_path: Path) -> None:
    configs = [
        dataclasses.replace(c, breaker=BreakerKind.EXTERNAL_REMOTE_CLOSE)
        for c in FleetSpec(first_address=1, count=2, seed=7).configs()
    ]
    async with headend(tmp_path, configs=configs) as he:
        for job_id, kind in (("t", JobKind.TRIP), ("p", JobKind.PERMIT_CLOSE)):
            he.runner.submit(JobSpec(kind, FIRST, id=job_id))
            assert isinstance(await he.finish(job_id), CommandSucceeded)
        permit = he.runner.store.require("p").result
        assert permit is not None
        # permit-close clears the trip command; the breaker stays open until closed
        assert permit["relay"] == "open" and "RELAY_COMMAND_TRIP" not in permit["status_bits"]
        he.runner.submit(JobSpec(JobKind.CLOSE, FIRST, id="c"))
        close = await he.finish("c")
        assert isinstance(close, CommandSucceeded) and close.relay == "closed"
        assert he.breaker(FIRST).state is BreakerState.CLOSED


async def test_direct_close_on_a_breaker_that_cannot_close_remotely(tmp_path: Path) -> None:
    async with headend(tmp_path) as he:  # default: external breakers (SPEC S1)
        he.runner.submit(JobSpec(JobKind.TRIP, FIRST, id="t"))
        await he.finish("t")
        he.runner.submit(JobSpec(JobKind.CLOSE, FIRST, id="c"))
        event = await he.finish("c")
        assert isinstance(event, CommandFailed) and event.error == "unauthorized"
        assert "use permit-close" in event.reason


async def test_repeated_mac_errors_are_not_retried_and_a_suspension_raises_an_alarm(
    tmp_path: Path,
) -> None:
    """A meter whose ESAM is suspended refuses everything: the job fails with an alarm."""
    async with headend(tmp_path) as he:
        esam = he.meter(FIRST).auth.esam
        for _ in range(esam.max_mac_errors):  # someone tries with the wrong key
            with contextlib.suppress(SecurityError):
                esam.identity_auth(bytes(8), bytes(8), esam.factor)
        assert esam.suspended
        he.runner.submit(JobSpec(JobKind.TRIP, FIRST, id="s"))
        event = await he.finish("s")
        assert isinstance(event, CommandFailed) and event.error == "esam-suspended"
        alarms = [e for e in he.events if isinstance(e, MeterAlarm)]
        assert [(a.address, a.alarm, a.job_id) for a in alarms] == [(FIRST, "esam-suspended", "s")]


async def test_the_plain_success_and_error_forms_are_accepted(tmp_path: Path) -> None:
    """Older firmware answers ``9C 00`` and ``DC 01 ERR``: the meter's replies are rewritten."""
    async with headend(tmp_path, count=1) as he:
        fleet = he.gateway.fleet
        real = fleet.handle
        forms: list[Message] = [
            ControlReply(None),
            ErrorReply(FunctionCode.CONTROL, ErrorWord.UNAUTHORIZED),
        ]

        async def old_firmware(frame: Frame) -> Frame | bytes | None:
            reply = await real(frame)
            if frame.function == FunctionCode.CONTROL and forms:
                return to_frame(frame.address, forms.pop(0))
            return reply

        fleet.handle = old_firmware  # type: ignore[method-assign]
        he.runner.submit(JobSpec(JobKind.GUARANTEE_ON, FIRST, id="a"))
        ok = await he.finish("a")
        assert isinstance(ok, CommandSucceeded) and ok.info == () and ok.guarantee is True
        stored = he.runner.store.require("a").result
        assert stored is not None and stored["info_word"] is None
        he.runner.submit(JobSpec(JobKind.GUARANTEE_OFF, FIRST, id="b"))
        refused = await he.finish("b")
        assert isinstance(refused, CommandFailed) and refused.error == "unauthorized"
        assert "ERR 04: UNAUTHORIZED" in refused.reason and refused.attempts == 1
