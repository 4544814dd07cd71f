"""``feikong demo --check``: the exit status and the listing follow the invariant checks.

The run itself is replaced by a recorded result (the real run is test_demo_run.py);
what is tested here is the command's last step: violations listed, exit 1 with
--check, exit 0 without it, and a note when the checks could not run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from feikong.cli import app
from feikong.demo import runner as runner_module
from feikong.demo.invariants import Violation
from feikong.demo.runner import DemoResult


def _result(out: Path, violations: list[Violation]) -> DemoResult:
    summary: dict[str, Any] = {
        "district": {
            "customers": 20,
            "areas": 1,
            "remote_meters": 19,
            "card_meters": 1,
            "guaranteed": [],
            "without_phone": [],
            "breakers_failing": [],
            "offline_meters": [],
        },
        "episodes": {},
        "messages": {},
        "work_orders": {},
        "customers": None,
    }
    return DemoResult(
        out_dir=out,
        db_url=f"sqlite:///{out}/feikong-demo.db",
        seconds=1.0,
        days=[],
        summary=summary,
        violations=violations,
    )


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, Any]:
    box: dict[str, Any] = {}

    class Recorded:
        def __init__(self, options: Any, **_: Any) -> None:
            box["options"] = options

        def run(self) -> DemoResult:
            return _result(tmp_path, box["violations"])

    monkeypatch.setattr(runner_module, "DemoRunner", Recorded)
    return box


TRIP_AT_NIGHT = Violation(
    "no-trip-in-protected-hours", "job fk-TD1-trip1-1", "trip attempt started at 20:00"
)


def test_check_exits_1_and_lists_the_violations(recorded: dict[str, Any]) -> None:
    recorded["violations"] = [TRIP_AT_NIGHT]
    result = CliRunner().invoke(app, ["demo", "--days", "3", "--customers", "20", "--check"])
    assert result.exit_code == 1, result.output
    assert "1 invariant violation(s):" in result.output
    assert "no-trip-in-protected-hours: job fk-TD1-trip1-1: trip attempt started at 20:00" in (
        result.output
    )
    scenario = recorded["options"].scenario
    assert (scenario.run.days, scenario.district.customers) == (3, 20)


def test_without_check_the_violations_are_listed_but_the_exit_is_0(
    recorded: dict[str, Any],
) -> None:
    recorded["violations"] = [TRIP_AT_NIGHT]
    result = CliRunner().invoke(app, ["demo", "--days", "3", "--customers", "20"])
    assert result.exit_code == 0, result.output
    assert "1 invariant violation(s):" in result.output


def test_check_passes_when_every_invariant_holds(recorded: dict[str, Any]) -> None:
    recorded["violations"] = []
    result = CliRunner().invoke(app, ["demo", "--days", "3", "--customers", "20", "--check"])
    assert result.exit_code == 0, result.output
    assert "invariants: all hold" in result.output
