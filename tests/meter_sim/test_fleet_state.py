"""The fleet's state file: round trip, atomic writes, unknown meters, corrupt files."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from meter_sim.fleet import Fleet
from meter_sim.scenario import FleetSpec
from meter_sim.state import StateFileError, StateKeeper, read_state, write_state
from protocol import Address, SteppedClock

from .fleet_doubles import FakeMeter


def fleet_of(count: int, first: int = 1) -> Fleet:
    configs = FleetSpec(first_address=first, count=count).configs()
    return Fleet(configs, SteppedClock(), master_key=bytes(16), meter_factory=FakeMeter)


def energies(fleet: Fleet) -> list[float]:
    return [m.energy for m in fleet if isinstance(m, FakeMeter)]


async def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "fleet.json"
    fleet = fleet_of(3)
    for i, meter in enumerate(fleet):
        assert isinstance(meter, FakeMeter)
        meter.energy = 100.0 + i
    keeper = StateKeeper(fleet, path, interval_s=3600)
    keeper.start()
    await keeper.stop()  # saves on the way out
    assert keeper.saves == 1
    assert [p.name for p in tmp_path.iterdir()] == ["fleet.json"]  # no temporary left
    document = json.loads(path.read_text())
    assert document["format"] == "feikong-meter-sim-state" and document["version"] == 1

    again = fleet_of(3)
    assert StateKeeper(again, path).load() == 3
    assert energies(again) == [100.0, 101.0, 102.0]


async def test_no_file_yet_starts_fresh(tmp_path: Path) -> None:
    fleet = fleet_of(2)
    assert StateKeeper(fleet, tmp_path / "new.json").load() == 0
    assert energies(fleet) == [0.5, 1.5]  # seeds 0 and 1


async def test_unknown_addresses_are_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "fleet.json"
    write_state(path, {"000000000001": {"energy": 7.0}, "000000000042": {"energy": 1.0}})
    fleet = fleet_of(2)
    with caplog.at_level(logging.WARNING, logger="meter_sim.state"):
        assert StateKeeper(fleet, path).load() == 1
    assert energies(fleet) == [7.0, 1.5]
    assert "1 meter(s) not in this fleet, ignored: 000000000042" in caplog.text


@pytest.mark.parametrize(
    ("content", "error"),
    [
        ("{not json", "is corrupt"),
        ('{"format": "other", "meters": {}}', "is not a meter-sim state file"),
        ('{"format": "feikong-meter-sim-state", "version": 9, "meters": {}}', "has version 9"),
        (
            '{"format": "feikong-meter-sim-state", "version": 1, "meters": {"1": 5}}',
            "meter 1 is not an object",
        ),
        (
            '{"format": "feikong-meter-sim-state", "version": 1,'
            ' "meters": {"000000000001": {"energy": "lots"}}}',
            "meter 000000000001: energy must be a number",
        ),
    ],
)
async def test_corrupt_file_is_a_clear_error_and_never_overwritten(
    tmp_path: Path, content: str, error: str
) -> None:
    path = tmp_path / "fleet.json"
    path.write_text(content)
    keeper = StateKeeper(fleet_of(1), path)
    with pytest.raises(StateFileError, match=error) as info:
        keeper.load()
    assert "left untouched" in str(info.value)
    assert path.read_text() == content


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path: Path) -> None:
    path = tmp_path / "fleet.json"
    write_state(path, {"000000000001": {"energy": 1.0}})
    with pytest.raises(TypeError):
        write_state(path, {"000000000001": {"energy": object()}})
    assert read_state(path) == {"000000000001": {"energy": 1.0}}
    assert [p.name for p in tmp_path.iterdir()] == ["fleet.json"]


def test_restore_by_address() -> None:
    fleet = fleet_of(2, first=7)
    assert fleet.restore_state({"000000000008": {"energy": 3.0}, "junk": {}}) == ["junk"]
    meter = fleet.meters[Address(8)]
    assert isinstance(meter, FakeMeter) and meter.energy == 3.0


async def test_round_trip_of_real_meters(tmp_path: Path) -> None:
    from datetime import datetime

    clock = SteppedClock(datetime(2026, 1, 1))
    configs = FleetSpec(first_address=1, count=3, seed=3).configs()
    fleet = Fleet(configs, clock, master_key=bytes(16))
    await clock.advance(3 * 86400)  # energy and daily freezes accumulate
    for meter in fleet:
        await meter.refresh()  # type: ignore[attr-defined]
    path = tmp_path / "fleet.json"
    await StateKeeper(fleet, path).save()
    again = Fleet(configs, clock, master_key=bytes(16))
    assert StateKeeper(again, path).load() == 3
    assert again.to_state() == fleet.to_state()
