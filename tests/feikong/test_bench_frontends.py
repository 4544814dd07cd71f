"""``feikong bench reads --frontends K`` on a small fleet: real meter-sim processes,
front-end processes, PostgreSQL and mosquitto, all started by the bench on loopback."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from feikong._servers import ServerUnavailableError, mosquitto_binary, postgres_tools
from feikong.cli import app

runner = CliRunner()


@pytest.fixture(autouse=True)
def _servers() -> None:
    try:
        mosquitto_binary()
        postgres_tools()
    except ServerUnavailableError as exc:  # CI installs both (.ci/debian-packages)
        pytest.skip(str(exc))


def test_rounds_of_one_and_two_front_ends_collect_every_meter_once() -> None:
    # a fleet day of 3 s: its first freeze comes within 3 s of starting
    result = runner.invoke(
        app,
        ["bench", "reads", "--meters", "80", "--gateways", "2", "--frontends", "2",
         "--day-s", "3", "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    rounds = out["rounds"]
    assert [r["frontends"] for r in rounds] == [1, 2]
    for r in rounds:
        # every reading written once per round (the bench clears them between rounds)
        assert (r["meters"], r["collected"], r["missing"], r["readings_written"]) == (80, 80, 0, 80)
        assert 80 <= r["reads"] <= 160  # one or two requests per meter (time, block)
        assert r["reads_per_s"] > 0 and r["frontend_cpu_us_per_read"] >= 0
        # CPU is counted in clock ticks (10 ms): a part may show 0 on so small a fleet
        assert r["postgres_cpu_us_per_read"] >= 0 and r["fleet_cpu_us_per_read"] >= 0
    two = rounds[1]["shards"]
    assert [s["shard"] for s in two] == [0, 1]
    assert sum(s["meters"] for s in two) == 80 and all(s["meters"] > 0 for s in two)
    assert out["cores"] >= 1 and out["reading_events"] is False
