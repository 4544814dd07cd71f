"""The self-test against a real meter on the bench (marker ``hil``).

Runs only with real hardware attached::

    FEIKONG_HIL=1 FEIKONG_HIL_METER="serial:///dev/ttyUSB0?baud=2400&parity=E 123456781012" \
        .venv/bin/pytest tests/headend/test_selftest_hil.py -m hil

``FEIKONG_HIL_METER`` is a transport URL (``tcp://GATEWAY:PORT`` works too) and the
meter's address; ``FEIKONG_HIL_TIMEOUT`` the response timeout (default 2 s). The
meter must be alone on the line and have taken a daily freeze.
"""

from __future__ import annotations

import os

import pytest

from headend.selftest import run_selftest
from protocol.transport import open_transport

pytestmark = pytest.mark.hil

METER = os.environ.get("FEIKONG_HIL_METER", "")


@pytest.mark.skipif(
    not os.environ.get("FEIKONG_HIL") or len(METER.split()) != 2,
    reason="real hardware: set FEIKONG_HIL=1 and FEIKONG_HIL_METER='URL ADDRESS'",
)
async def test_the_meter_on_the_bench_passes_every_mandatory_check() -> None:
    url, address = METER.split()
    timeout = float(os.environ.get("FEIKONG_HIL_TIMEOUT", "2"))
    link = open_transport(url, response_timeout=timeout)
    try:
        report = await run_selftest(link, address, timeout=timeout, capture_frames=True)
    finally:
        await link.close()
    problems = [
        f"{c.key} {c.di or ''}: {c.status.value}: {c.detail} {[f.hex for f in c.frames]}"
        for c in report.failed_mandatory
    ]
    assert report.ok, "\n".join(problems)
