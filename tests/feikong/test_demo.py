"""``feikong demo --protocol`` — the protocol walkthrough — runs end to end."""

from __future__ import annotations

import subprocess
import sys


def test_demo_runs_the_processes_and_the_trip_sequence() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "feikong", "demo", "--protocol"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "OPEN_LOCKED" in out  # the breaker tripped at once
    assert "close refused" in out  # a manual close before the permit is refused
    assert "OPEN_PERMITTED" in out  # the meter permitted the close 60 s later
    assert "GUARANTEED" in out  # a guaranteed meter refuses a trip
    assert "decode_frames_per_s=" in out
