"""``feikong bench reads`` on a small fleet: a real meter-sim process, real TCP, real SQLite."""

from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy import text
from typer.testing import CliRunner

from feikong.cli import app
from headend.db import open_database

runner = CliRunner()


def test_bench_reads_collects_every_meter_and_prints_the_figures(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'bench.db'}"
    # a fleet day of 2 s: its first freeze comes within 2 s of starting
    result = runner.invoke(
        app, ["bench", "reads", "--meters", "60", "--gateways", "2", "--day-s", "2", "--db", db]
    )
    assert result.exit_code == 0, result.output
    figures = dict(re.findall(r"^(\w+)=(\S+)$", result.output, re.M))
    assert (figures["meters"], figures["collected"], figures["missing"]) == ("60", "60", "0")
    assert figures["reads"] == "60"  # daily freezes collected and stored
    assert figures["frames"] == "60"  # one 0506FF block per meter
    assert float(figures["reads_per_s"]) > 0 and float(figures["p99_ms"]) > 0
    assert figures["gateways"] == "2"
    engine = open_database(db)
    try:
        with engine.connect() as c:
            day = figures["day"]
            stored = c.execute(
                text("SELECT count(*) FROM headend_reading WHERE freeze_date = :d"), {"d": day}
            ).scalar()
            collected = c.execute(
                text("SELECT count(*) FROM headend_collection WHERE status = 'collected'")
            ).scalar()
            channels = c.execute(text("SELECT count(*) FROM headend_channel")).scalar()
    finally:
        engine.dispose()
    assert (stored, collected, channels) == (60, 60, 2)


def test_bench_reads_refuses_an_empty_fleet() -> None:
    result = runner.invoke(app, ["bench", "reads", "--meters", "0"])
    assert result.exit_code == 2 and "--meters" in result.output
