"""Scenario files: the example loads; mistakes name the file, the key and the expectation."""

from __future__ import annotations

from pathlib import Path

import pytest

from meter_sim.config import BreakerKind, FaultConfig, MeterKind
from meter_sim.scenario import FleetSpec, ScenarioError, load_scenario

EXAMPLE = Path(__file__).resolve().parents[2] / "meter_sim" / "scenarios" / "example.toml"


def test_example_scenario() -> None:
    scenario = load_scenario(EXAMPLE)
    spec = scenario.spec()
    assert (spec.first_address, spec.count, spec.seed) == (1, 20, 42)
    configs = {c.address: c for c in scenario.configs(spec)}
    assert len(configs) == 20
    assert configs["000000000001"].seed == 42 and configs["000000000020"].seed == 61
    assert configs["000000000002"].breaker is BreakerKind.INTERNAL
    assert configs["000000000002"].mean_daily_kwh == 25.0
    assert configs["000000000003"].kind is MeterKind.LOCAL
    assert configs["000000000003"].extra == {"remaining_yuan": 5.0}
    assert configs["000000000010"].faults.offline
    assert configs["000000000011"].faults.late_reply_s == 1.5
    assert configs["000000000012"].faults.bad_checksum
    assert configs["000000000013"].faults.wrong_address == "000000000099"
    for n in range(15, 20):
        c = configs[f"{n:012d}"]
        assert c.faults.breaker_fault == "welded" and c.faults.missing_freeze_days == 2
        assert c.permit_close_delay_s == 30.0
    assert configs["000000000020"].faults == FaultConfig()


def test_flags_win_over_the_fleet_table() -> None:
    scenario = load_scenario(EXAMPLE)
    spec = scenario.spec(count=5, kind=MeterKind.LOCAL, seed=None)
    assert (spec.count, spec.kind, spec.seed) == (5, MeterKind.LOCAL, 42)
    configs = scenario.configs(spec)
    assert [c.kind for c in configs[:3]] == [MeterKind.LOCAL] * 3  # override kept: still local


def test_overrides_merge_faults_and_extra_later_wins(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(
        """
[fleet]
first_address = 500
count = 4
extra = { a = 1, b = 2 }
faults = { clock_drift_s_per_day = -2.5 }

[[meter]]
range = [500, 503]
faults = { no_reply = true }
extra = { b = 3 }

[[meter]]
address = "000000000502"
faults = { no_reply = false, late_reply_s = 2 }
"""
    )
    scenario = load_scenario(path)
    configs = scenario.configs(scenario.spec())
    assert [c.faults.no_reply for c in configs] == [True, True, False, True]
    assert configs[2].faults.late_reply_s == 2.0
    assert all(c.faults.clock_drift_s_per_day == -2.5 for c in configs)
    assert all(c.extra == {"a": 1, "b": 3} for c in configs)


@pytest.mark.parametrize(
    ("text", "key", "expected"),
    [
        ("[fleet]\ncount = 0", "fleet.count", "an integer >= 1"),
        ("[fleet]\nkind = 'prepaid'", "fleet.kind", 'one of "remote", "local"'),
        ("[fleet]\ncolour = 'red'", "fleet.colour", "one of breaker, count"),
        ("[fleet]\nfirst_address = '12345678901234'", "fleet.first_address", "a meter address"),
        ("[fleet.faults]\nlate_reply_s = -1", "fleet.faults.late_reply_s", "a number >= 0"),
        ("[fleet.faults]\nslow = true", "fleet.faults.slow", "one of bad_checksum"),
        ("[[meter]]\nkind = 'local'", "meter[0]", "exactly one of address"),
        ("[[meter]]\naddress = 1\nbreaker = 'magic'", "meter[0].breaker", 'one of "external"'),
        ("[[meter]]\nrange = [5, 2]", "meter[0].range", "first <= last"),
        ("[[meter]]\nrange = [1]", "meter[0].range", "[first, last]"),
        (
            "[[meter]]\naddress = 1\nfaults = { breaker_fault = 'melted' }",
            "meter[0].faults.breaker_fault",
            "none, fails-to-trip",
        ),
        ("[[meter]]\naddress = 1\nfaults = { wrong_address = 'x' }", "faults.wrong_address", ""),
        ("meter = 3", "meter", "an array of tables"),
        ("[fleet\n", "(file)", "valid TOML"),
    ],
)
def test_mistakes_name_file_key_and_expectation(
    tmp_path: Path, text: str, key: str, expected: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert key in info.value.key
    assert f"expected {expected}" in message


def test_missing_file() -> None:
    with pytest.raises(ScenarioError, match=r"nope\.toml: \(file\): expected an existing"):
        load_scenario("nope.toml")


def test_fleet_past_the_last_address(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text("[fleet]\nfirst_address = 999999999990\ncount = 20\n")
    with pytest.raises(ScenarioError, match=r"s\.toml: fleet\.count: expected meters that fit"):
        load_scenario(path).spec()


def test_override_matching_no_meter_is_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "s.toml"
    path.write_text("[[meter]]\naddress = 77\nkind = 'local'\n")
    scenario = load_scenario(path)
    configs = scenario.configs(FleetSpec(first_address=1, count=2))
    assert [c.kind for c in configs] == [MeterKind.REMOTE] * 2
    assert "meter[0] (000000000077..000000000077) matches no meter" in caplog.text
