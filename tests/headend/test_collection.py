"""Daily collection, 补抄 and success rates against real simulated meters over TCP."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from typer.testing import CliRunner, Result

from feikong.cli import app
from headend.channels import ChannelPool
from headend.collection import (
    CollectionError,
    CollectionStatus,
    collect_day,
    parse_energy_block,
    read_now,
    recollect_missing,
    success_rates,
)
from headend.events import Event, EventBus, ReadingCollected, ReadingMissing
from meter_sim.config import FaultConfig, MeterConfig
from protocol import SteppedClock
from protocol.client import MasterClient
from protocol.frame import Frame
from protocol.transport import TcpTransport

from .fleet_rig import Gateway, Rig

NOW = datetime(2026, 3, 3, 8, 0)
"""Two midnights after the rig's start: meters hold the freezes of 03-02 and 03-03."""
MAR2, MAR3 = date(2026, 3, 2), date(2026, 3, 3)
runner = CliRunner()


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    r = Rig()
    yield r
    await r.aclose()


def statuses(engine: Engine, day: date) -> dict[str, tuple[str, int, str | None]]:
    with engine.connect() as c:
        rows = c.execute(
            text(
                "SELECT meter_address, status, attempts, last_error FROM headend_collection "
                "WHERE day = :day"
            ),
            {"day": day},
        )
        return {r[0]: (r[1], r[2], r[3]) for r in rows}


def freeze_times(engine: Engine, day: date) -> set[datetime | None]:
    """The freeze times kept in the status rows, read back through the ORM model."""
    with Session(engine) as session:
        rows = session.exec(select(CollectionStatus).where(CollectionStatus.day == day))
        return {r.freeze_time for r in rows}


def readings(engine: Engine) -> list[tuple[Any, ...]]:
    with engine.connect() as c:
        rows = c.execute(
            text(
                "SELECT meter_address, di, freeze_date, value, energy_ckwh FROM headend_reading "
                "ORDER BY meter_address, di, freeze_date"
            )
        )
        return [tuple(r) for r in rows]


async def freeze_directly(
    gateway: Gateway, address: str, n: int
) -> tuple[datetime, tuple[Decimal, ...]]:
    """The meter's freeze ``n`` read with the protocol client (the independent path)."""
    transport = TcpTransport("127.0.0.1", gateway.port)
    try:
        client = MasterClient(transport)
        when = (await client.read(address, 0x05060000 | n)).value
        block = (await client.read(address, 0x05060100 | n)).value
    finally:
        await transport.close()
    return when, block


async def test_collect_day_stores_every_active_meters_freeze(rig: Rig, engine: Engine) -> None:
    gateway = await rig.gateway("dtu", 1, 4)
    rig.load_archive(engine, inactive=["000000000004"])
    rig.clock.set(NOW)
    events: list[Event] = []
    bus = EventBus()
    bus.on(events.append)
    async with ChannelPool.from_archive(engine, clock=rig.clock) as pool:
        report = await collect_day(engine, pool, MAR2, bus=bus)
    assert (report.meters, report.collected, report.missing) == (3, 3, 0)
    assert report.readings_written == 3 and report.requests == 3  # one 0506FF02 per meter
    assert "000000000004" not in gateway.handled  # inactive: not read
    stored = readings(engine)
    assert len(stored) == 3
    for address in ("000000000001", "000000000002", "000000000003"):
        when, block = await freeze_directly(gateway, address, 2)  # yesterday's = freeze 2
        assert when == datetime(2026, 3, 2, 0, 0)
        (row,) = (r for r in stored if r[0] == address)
        assert row[1:3] == (0x05060101, "2026-03-02")
        assert parse_energy_block(row[3]) == block  # total, T1..T4 in kWh
        assert row[4] == int(block[0] * 100)  # 0.01 kWh
    assert set(statuses(engine, MAR2).values()) == {("collected", 1, None)}
    assert freeze_times(engine, MAR2) == {datetime(2026, 3, 2, 0, 0)}
    collected = [e for e in events if isinstance(e, ReadingCollected)]
    assert {e.address for e in collected} == {"000000000001", "000000000002", "000000000003"}
    assert all(e.freeze_date == MAR2 and e.di == "05060101" for e in collected)


async def test_the_freeze_index_is_found_from_the_meters_freeze_time(
    rig: Rig, engine: Engine
) -> None:
    await rig.gateway("dtu", 1, 5)
    rig.load_archive(engine, concurrency=1)  # one meter after the other
    rig.clock.set(NOW)
    # The head-end's clock is a day ahead of the meters': its first guess for 03-02 is
    # freeze 3, which these two-day-old meters do not have (ERR 02 to block 0506FF03).
    # The newest freeze (block 0506FF01) is dated 03-03, so 03-02 is freeze 2: block
    # 0506FF02. The next meters start from freeze 2: one read each.
    headend_clock = SteppedClock(datetime(2026, 3, 4, 8, 0))
    async with ChannelPool.from_archive(engine, clock=headend_clock) as pool:
        report = await collect_day(engine, pool, MAR2)
    assert report.collected == 5
    assert report.requests == 3 + 4 * 1
    assert freeze_times(engine, MAR2) == {datetime(2026, 3, 2, 0, 0)}


async def test_a_meter_refusing_the_freeze_block_is_read_item_by_item(
    rig: Rig, engine: Engine
) -> None:
    configs = [
        MeterConfig("000000000001", seed=1),
        MeterConfig("000000000002", seed=2, extra={"freeze_block": False}),  # older firmware
    ]
    gateway = await rig.gateway("dtu", 0, 0, configs=configs)
    rig.load_archive(engine)
    rig.clock.set(NOW)
    async with ChannelPool.from_archive(engine, clock=rig.clock) as pool:
        report = await collect_day(engine, pool, MAR3)
    assert (report.collected, report.missing) == (2, 0)
    # 0506FF01 refused (ERR 02), then 05060001 and 05060101: three frames
    assert gateway.handled == {"000000000001": 1, "000000000002": 3}
    stored = {r[0]: r for r in readings(engine)}
    for address in ("000000000001", "000000000002"):
        when, block = await freeze_directly(gateway, address, 1)
        assert when == datetime(2026, 3, 3, 0, 0)
        assert stored[address][1:3] == (0x05060101, "2026-03-03")
        assert parse_energy_block(stored[address][3]) == block
    assert freeze_times(engine, MAR3) == {datetime(2026, 3, 3, 0, 0)}


async def test_a_freeze_block_without_separators_is_read(rig: Rig, engine: Engine) -> None:
    gateway = await rig.gateway("dtu", 1, 2)
    rig.load_archive(engine)
    rig.clock.set(NOW)

    def packed(reply: Frame) -> Frame:  # items back to back, as some firmware sends them
        return reply._replace(data=reply.data[:4] + reply.data[4:].replace(b"\xaa", b""))

    gateway.tamper["000000000002"] = packed
    async with ChannelPool.from_archive(engine, clock=rig.clock) as pool:
        report = await collect_day(engine, pool, MAR3)
    assert (report.collected, report.requests) == (2, 2)
    stored = {r[0]: r for r in readings(engine)}
    when, block = await freeze_directly(gateway, "000000000002", 1)
    assert parse_energy_block(stored["000000000002"][3]) == block
    assert when == datetime(2026, 3, 3, 0, 0)
    assert freeze_times(engine, MAR3) == {when}


async def test_a_silent_meter_is_missing_then_collected_by_recollection(
    rig: Rig, engine: Engine
) -> None:
    gateway = await rig.gateway("dtu", 1, 3)
    rig.load_archive(engine)
    rig.clock.set(NOW)
    mute = "000000000002"
    gateway.silenced.add(mute)
    events: list[Event] = []
    bus = EventBus()
    bus.on(events.append)
    async with ChannelPool.from_archive(engine, clock=rig.clock, timeout=0.1) as pool:
        first = await collect_day(engine, pool, MAR3, bus=bus)
        assert (first.collected, first.missing, first.reasons) == (2, 1, {"timeout": 1})
        status, attempts, error = statuses(engine, MAR3)[mute]
        assert (status, attempts) == ("missing", 1)
        assert error == f"no reply from meter {mute} within 0.1 s"
        (missing,) = [e for e in events if isinstance(e, ReadingMissing)]
        assert missing.address == mute and missing.freeze_date == MAR3

        still = await recollect_missing(engine, pool, MAR3)  # 补抄 round 1: still silent
        assert (still.meters, still.missing) == (1, 1)
        gateway.silenced.clear()
        handled_before = dict(gateway.handled)
        back = await recollect_missing(engine, pool, MAR3, bus=bus)  # round 2: it answers
    assert (back.meters, back.collected, back.missing) == (1, 1, 0)
    assert statuses(engine, MAR3)[mute] == ("collected", 3, None)
    # only the missing meter was read again
    assert {a: n - handled_before.get(a, 0) for a, n in gateway.handled.items()} == {
        "000000000001": 0,
        mute: 1,  # its daily-freeze block
        "000000000003": 0,
    }
    (rate,) = success_rates(engine, MAR3)
    assert (rate.meters, rate.collected, rate.rate) == (3, 3, 1.0)
    assert any(isinstance(e, ReadingCollected) and e.address == mute for e in events)


async def test_recollection_rounds_stop_once_every_meter_is_in(rig: Rig, engine: Engine) -> None:
    gateway = await rig.gateway("dtu", 1, 2)
    rig.load_archive(engine)
    rig.clock.set(NOW)
    gateway.silenced.add("000000000001")
    async with ChannelPool.from_archive(engine, clock=rig.clock, timeout=0.1) as pool:
        await collect_day(engine, pool, MAR3)

        def progress(done: int, total: int) -> None:
            if total and done == total:  # the end of a round: the meter comes back
                gateway.silenced.clear()

        report = await recollect_missing(
            engine, pool, MAR3, rounds=5, interval_s=0, progress=progress
        )
    assert (report.rounds, report.collected, report.missing) == (2, 1, 0)
    assert statuses(engine, MAR3)["000000000001"][:2] == ("collected", 3)


async def test_collecting_a_day_again_stores_nothing_twice(rig: Rig, engine: Engine) -> None:
    await rig.gateway("dtu", 1, 3)
    rig.load_archive(engine)
    rig.clock.set(NOW)
    async with ChannelPool.from_archive(engine, clock=rig.clock) as pool:
        first = await collect_day(engine, pool, MAR3)
        before = readings(engine)
        again = await collect_day(engine, pool, MAR3)
        nothing = await recollect_missing(engine, pool, MAR3)
    assert (first.readings_written, again.readings_written) == (3, 0)
    assert again.collected == 3
    assert readings(engine) == before and len(before) == 3
    assert set(statuses(engine, MAR3).values()) == {("collected", 2, None)}
    assert nothing.meters == 0 and nothing.rate == 1.0


async def test_a_freeze_the_meter_did_not_take_is_missing(rig: Rig, engine: Engine) -> None:
    configs = [
        MeterConfig("000000000001", seed=1),
        MeterConfig("000000000002", seed=2, faults=FaultConfig(missing_freeze_days=1)),
    ]
    await rig.gateway("dtu", 0, 0, configs=configs)
    rig.load_archive(engine)
    rig.clock.set(NOW)
    async with ChannelPool.from_archive(engine, clock=rig.clock) as pool:
        report = await collect_day(engine, pool, MAR3)
    assert (report.collected, report.reasons) == (1, {"no-freeze": 1})
    status, _, error = statuses(engine, MAR3)["000000000002"]
    assert status == "missing" and error is not None and "05060001" in error
    assert "daily freeze 1 was not taken" in error


async def test_a_meter_answering_garbage_is_missing_and_the_others_are_collected(
    rig: Rig, engine: Engine
) -> None:
    gateway = await rig.gateway("dtu", 1, 3)
    rig.load_archive(engine)
    rig.clock.set(NOW)

    def not_bcd(reply: Frame) -> Frame:  # the value bytes of every read become FF
        return reply._replace(data=reply.data[:4] + b"\xff" * (len(reply.data) - 4))

    gateway.tamper["000000000002"] = not_bcd
    async with ChannelPool.from_archive(engine, clock=rig.clock) as pool:
        report = await collect_day(engine, pool, MAR3)
    assert (report.collected, report.reasons) == (2, {"bad-reply": 1})
    status, _, error = statuses(engine, MAR3)["000000000002"]
    assert status == "missing"
    assert error == "meter 000000000002: freeze time FFFFFFFFFF is not a valid time"


async def test_only_days_whose_freeze_exists_can_be_collected(rig: Rig, engine: Engine) -> None:
    await rig.gateway("dtu", 1, 1)
    rig.load_archive(engine)
    rig.clock.set(NOW)
    async with ChannelPool.from_archive(engine, clock=rig.clock) as pool:
        with pytest.raises(CollectionError, match="still to come"):
            await collect_day(engine, pool, date(2026, 3, 4))
        with pytest.raises(CollectionError, match="62 days"):
            await collect_day(engine, pool, date(2025, 12, 1))
        # listed meters: an unknown one is reported, the known one collected
        report = await collect_day(engine, pool, MAR3, meters=["000000000001", "000000000999"])
    assert report.collected == 1 and report.unknown_meters == ("000000000999",)


async def test_success_rates_per_supply_unit_and_reading_segment(rig: Rig, engine: Engine) -> None:
    gateway = await rig.gateway("dtu", 1, 7)
    units = {
        "000000000001": ("North", "S1"),
        "000000000002": ("North", "S1"),
        "000000000003": ("North", "S2"),
        "000000000004": ("South", "S2"),
        "000000000005": ("South", "S2"),
        "000000000006": ("South", "S3"),  # inactive: not counted anywhere
    }  # 000000000007 has no unit and no segment
    rig.load_archive(engine, units=units, inactive=["000000000006"])
    rig.clock.set(NOW)
    gateway.silenced.update({"000000000002", "000000000004"})
    async with ChannelPool.from_archive(engine, clock=rig.clock, timeout=0.1) as pool:
        await collect_day(engine, pool, MAR3, meters=[f"{n:012d}" for n in (1, 2, 3, 4)])
    # 1, 3 collected; 2, 4 missing; 5 and 7 not tried yet.
    overall = success_rates(engine, MAR3)
    assert [(r.meters, r.collected, r.missing, r.pending) for r in overall] == [(6, 2, 2, 2)]
    assert overall[0].rate == pytest.approx(2 / 6)
    by_unit = {r.group: r for r in success_rates(engine, MAR3, by="supply_unit")}
    # North: 1 ✓, 2 ✗, 3 ✓ → 2/3;  South: 4 ✗, 5 untried → 0/2;  none: 7 untried → 0/1
    assert {g: (r.meters, r.collected, r.missing) for g, r in by_unit.items()} == {
        "North": (3, 2, 1),
        "South": (2, 0, 1),
        None: (1, 0, 0),
    }
    assert by_unit["North"].rate == pytest.approx(2 / 3)
    by_segment = {r.group: r for r in success_rates(engine, MAR3, by="reading_segment")}
    # S1: 1 ✓, 2 ✗ → 1/2;  S2: 3 ✓, 4 ✗, 5 untried → 1/3
    assert by_segment["S1"].rate == pytest.approx(1 / 2)
    assert by_segment["S2"].rate == pytest.approx(1 / 3)
    assert by_segment["S2"].to_dict()["pending"] == 1
    assert success_rates(engine, MAR2)[0].collected == 0


async def test_on_demand_read_of_any_di(rig: Rig, engine: Engine) -> None:
    gateway = await rig.gateway("dtu", 1, 1)
    rig.load_archive(engine)
    rig.clock.set(NOW)
    events: list[Event] = []
    bus = EventBus()
    bus.on(events.append)
    async with ChannelPool.from_archive(engine, clock=rig.clock) as pool:
        energy = await read_now(engine, pool, "000000000001", 0x00010000, bus=bus)
        status = await read_now(engine, pool, "000000000001", 0x04000503)
        frozen = await read_now(engine, pool, "000000000001", 0x05060101)
    transport = TcpTransport("127.0.0.1", gateway.port)
    try:
        direct = await MasterClient(transport).read("000000000001", 0x00010000)
    finally:
        await transport.close()
    assert energy.value == direct.value and energy.unit == "kWh"
    assert frozen.value[0] <= energy.value  # today's freeze ≤ the register now
    stored = {r[1]: r for r in readings(engine)}
    assert stored[0x00010000][2:] == ("2026-03-03", str(energy.value), int(energy.value * 100))
    assert stored[0x04000503][3] == str(int(status.value))
    assert 0x05060101 not in stored  # frozen data is collected, not stored on demand
    (event,) = events
    assert isinstance(event, ReadingCollected) and event.freeze_date is None


async def test_the_collect_command_collects_and_recollects(db_url: str, engine: Engine) -> None:
    today = datetime.now().replace(microsecond=0)
    rig = Rig(start=today - timedelta(days=2))  # meters a few days old, on real time
    try:
        gateway = await rig.gateway("dtu", 1, 3)
        rig.load_archive(engine)
        rig.clock.set(today)
        gateway.silenced.add("000000000003")
        day = today.date().isoformat()
        base = ["headend", "collect", "--db", db_url, "--date", day, "--timeout", "0.2"]

        def invoke(*extra: str) -> Result:
            return runner.invoke(app, [*base, *extra])

        first = await asyncio.to_thread(invoke, "--json")
        assert first.exit_code == 0, first.output
        report = json.loads(first.output)
        assert (report["meters"], report["collected"], report["missing"]) == (3, 2, 1)
        assert report["reasons"] == {"timeout": 1}
        gateway.silenced.clear()
        again = await asyncio.to_thread(invoke, "--missing-only")
        assert again.exit_code == 0, again.output
        # 1 of 1 meter read this round, none missing
        assert f"{day}: collected 1 of 1 meter(s) (100.00%), 0 missing" in again.output
        bad = await asyncio.to_thread(runner.invoke, app, [*base[:4], "--date", "03/02/2026"])
        assert bad.exit_code == 2 and "YYYY-MM-DD" in bad.output
    finally:
        await rig.aclose()
    (rate,) = success_rates(engine, today.date())
    assert (rate.collected, rate.meters) == (3, 3)
