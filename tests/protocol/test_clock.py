"""The shared clock: an accelerated clock counted in seconds agrees with its datetimes."""

from __future__ import annotations

import time
from datetime import datetime

import pytest

from protocol.clock import AcceleratedClock

EPOCH = datetime(2000, 1, 1)


def _seconds(when: datetime, epoch: datetime = EPOCH) -> float:
    return (when - epoch).total_seconds()


def test_accelerated_seconds_agree_with_now() -> None:
    start = datetime(2026, 3, 9, 23, 59, 58, 250_000)
    clock = AcceleratedClock(start=start, speed=3600.0)
    before = _seconds(clock.now())
    seconds = clock.seconds_since(EPOCH)
    after = _seconds(clock.now())
    assert before <= seconds + 1e-6 and seconds <= after + 1e-6
    assert after - before < 60  # a simulated minute at most between the calls
    time.sleep(0.01)  # 36 simulated seconds and more: past 00:00
    midnight = datetime(2026, 3, 10)
    assert clock.now() >= midnight
    assert clock.seconds_since(midnight) == pytest.approx(_seconds(clock.now(), midnight), abs=60)
