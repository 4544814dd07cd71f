"""``feikong bench fleet`` on a small fleet: the figures are printed and make sense."""

from __future__ import annotations

import os

import pytest
import typer
from typer.testing import CliRunner

from feikong.cmd_bench_fleet import _rss_mib, register

from .test_fleet_cli import _real_meters_exist


def test_rss_of_this_process() -> None:
    assert 1 < _rss_mib(os.getpid()) < 4096


@pytest.mark.skipif(not _real_meters_exist(), reason="meter_sim.remote is not there yet")
def test_small_fleet_bench() -> None:
    app = typer.Typer()
    app.callback()(lambda: None)
    register(app)
    result = CliRunner().invoke(
        app, ["fleet", "--meters", "30", "--seconds", "0.5", "--connections", "3"]
    )
    assert result.exit_code == 0, result.stderr
    figures = dict(line.split("=", 1) for line in result.stdout.split())
    assert figures["meters"] == "30"
    assert 10 < float(figures["rss_mib"]) < 1024
    assert float(figures["reads_per_s"]) > 10
    assert figures["timeouts"] == "0"
