"""Meters screen: status, commands through a confirmation dialog to head-end jobs, roles."""

from __future__ import annotations

from textual.widgets import Button, Input, Static

from console.app import ConsoleApp
from console.screens.meters import MetersScreen
from console.widgets.confirm import ConfirmDialog
from console.widgets.progress import JobProgress
from headend.jobs import JobStore
from headend.models import JobState
from prepaid.audit import AuditLog

from .world import World

SIZE = (160, 48)
METER = "330000000007"


async def _open(app: ConsoleApp, pilot: object) -> MetersScreen:
    await app.workers.wait_for_complete()
    app.go("meters")
    await app.workers.wait_for_complete()
    await pilot.pause()  # type: ignore[attr-defined]
    screen = app.screen
    assert isinstance(screen, MetersScreen)
    screen.query_one("#meter-query", Input).value = METER
    screen.find()
    await app.workers.wait_for_complete()
    await pilot.pause()  # type: ignore[attr-defined]
    return screen


def _app(world: World, login: str) -> ConsoleApp:
    return ConsoleApp(
        world.engine, clock=world.clock, users=world.users, user=world.operator(login)
    )


def _jobs(world: World) -> list[tuple[object, ...]]:
    return world.rows(
        "SELECT kind, meter_address, state, params FROM headend_job ORDER BY created_at"
    )


async def test_a_trip_goes_through_confirmation_and_becomes_a_head_end_job(world: World) -> None:
    app = _app(world, "operator")
    async with app.run_test(size=SIZE) as pilot:
        screen = await _open(app, pilot)
        assert "330000000007" in str(screen.query_one("#meter-status", Static).render())
        trip = screen.query_one("#cmd-trip", Button)
        assert not trip.disabled
        await pilot.click("#cmd-trip")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmDialog)
        # a trip needs a reason: confirming without one sends nothing
        await pilot.click("#confirm-yes")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmDialog)
        assert "type a reason first" in str(app.screen.query_one("#confirm-error").render())
        assert _jobs(world) == []
        await pilot.click("#confirm-reason")
        await pilot.press(*"bench test", "enter")
        await pilot.pause()
        assert isinstance(app.screen, MetersScreen)
        jobs = _jobs(world)
        assert len(jobs) == 1
        kind, meter, state, _ = jobs[0]
        assert (kind, meter, state) == ("trip", METER, "queued")
        assert "queued for the head-end" in str(screen.query_one("#meter-message").render())
        # the head-end (another process) carries it out; the progress follows
        store = JobStore(world.engine)
        job_id = screen.last_jobs[0]
        attempt = store.start_attempt(job_id, world.clock.now())
        store.finish(
            job_id,
            world.clock.now(),
            JobState.SUCCEEDED,
            attempt=attempt,
            result={"relay": "open"},
        )
        progress = screen.query_one(JobProgress)
        progress.poll()
        await pilot.pause()
        assert progress.finished
        assert "trip 330000000007: succeeded" in str(progress.query_one("#job-lines").render())
        assert "relay" in str(screen.query_one("#meter-status", Static).render())
        assert "open (as of" in str(screen.query_one("#meter-status", Static).render())
    audit = AuditLog(world.engine, world.clock).query(action="meter.trip")
    assert [(e.actor, e.target, e.details["reason"]) for e in audit] == [
        ("operator", f"meter:{METER}", "bench test")
    ]


async def test_cancel_sends_nothing_and_read_now_queues_energy_and_relay(world: World) -> None:
    app = _app(world, "fault.handler")  # may read and permit close, not trip
    async with app.run_test(size=SIZE) as pilot:
        screen = await _open(app, pilot)
        await pilot.click("#cmd-permit-close")
        await pilot.pause()
        await pilot.press("escape")
        await pilot.pause()
        assert _jobs(world) == []
        assert "cancelled" in str(screen.query_one("#meter-message").render())
        await pilot.click("#cmd-read")
        await pilot.pause()
        await pilot.click("#confirm-yes")
        await pilot.pause()
        kinds = sorted((str(k), str(p)) for k, _, _, p in _jobs(world))
        assert [k for k, _ in kinds] == ["read", "read"]
        assert any("relay" in p for _, p in kinds) and any("energy" in p for _, p in kinds)


async def test_a_role_without_trip_sees_the_trip_button_disabled(world: World) -> None:
    for login, enabled in (
        ("customer.service", {"read", "permit-close"}),
        ("fault.handler", {"read", "permit-close"}),
        ("operator", {"read", "trip", "permit-close", "guarantee-on", "guarantee-off"}),
        ("auditor", set()),
    ):
        app = _app(world, login)
        async with app.run_test(size=SIZE) as pilot:
            screen = await _open(app, pilot)
            buttons = {
                str(b.id).removeprefix("cmd-"): b for b in screen.query("#meter-commands Button")
            }
            assert {k for k, b in buttons.items() if not b.disabled} == enabled, login
            if "trip" not in enabled:
                # the palette offers no trip either, and asking directly does nothing
                titles = [c.title for c in app.get_system_commands(screen)]
                assert not any(t.startswith("Trip") for t in titles)
                from console.queries.meters import Command

                screen.ask(Command.TRIP)
                await pilot.pause()
                assert isinstance(app.screen, MetersScreen)
    assert _jobs(world) == []
