"""``feikong control`` against a real simulated remote meter served over TCP (in a thread)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import typer
from typer.testing import CliRunner, Result

from breaker_sim import Breaker, BreakerState, InProcessBreakerLink
from feikong import cmd_control
from meter_sim.config import MeterConfig
from meter_sim.remote import RemoteMeter
from protocol import (
    ErrorReply,
    ErrorWord,
    Frame,
    ProtocolError,
    RealClock,
    decode_message,
    to_frame,
)
from protocol.security import TEST_MASTER_KEY
from protocol.transport import TcpFrameServer

METER = "000000001234"

app = typer.Typer()


@app.callback()
def _root() -> None:
    """Test app with the control command only."""


cmd_control.register(app)
runner = CliRunner()


@dataclass
class Served:
    meter: RemoteMeter
    breaker: Breaker
    port: int


@pytest.fixture
def served() -> Iterator[Served]:
    clock = RealClock()
    breaker = Breaker(clock)
    meter = RemoteMeter(
        MeterConfig(METER), clock, InProcessBreakerLink(breaker), master_key=TEST_MASTER_KEY
    )

    async def handler(frame: Frame) -> Frame | None:
        try:
            message = decode_message(frame)
        except ProtocolError:
            return to_frame(meter.address, ErrorReply(frame.function, ErrorWord.OTHER))
        reply = await meter.handle(frame, message)
        return None if reply is None else to_frame(meter.address, reply)

    loop = asyncio.new_event_loop()
    server = TcpFrameServer(handler, "127.0.0.1", 0)
    loop.run_until_complete(server.start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield Served(meter, breaker, server.port)
    asyncio.run_coroutine_threadsafe(server.stop(), loop).result(5)
    asyncio.run_coroutine_threadsafe(meter.aclose(), loop).result(5)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()


def state(breaker: Breaker) -> BreakerState:
    return breaker.state


def _run(served: Served, *args: str) -> Result:
    base = ["control", "--tcp", f"127.0.0.1:{served.port}", "--address", METER]
    return runner.invoke(app, [*base, *args])


def test_trip_then_guarantee_refusal(served: Served) -> None:
    result = _run(served, "--operator", "12345678", "trip")
    assert result.exit_code == 0, result.output
    assert "DIRECT_TRIP" in result.output
    assert state(served.breaker) is BreakerState.OPEN_LOCKED

    result = _run(served, "--json", "permit-close")
    assert result.exit_code == 0, result.output
    out = result.output
    data = json.loads(out[out.index("{") :])
    assert data["result"] == "done" and data["exec_info_bits"] == ["CLOSE_PERMITTED"]
    assert state(served.breaker) is BreakerState.OPEN_PERMITTED

    assert _run(served, "guarantee").exit_code == 0
    result = _run(served, "trip")
    assert result.exit_code == 1
    assert "GUARANTEED" in result.output


def test_direct_close_is_refused_for_a_breaker_closed_by_hand(served: Served) -> None:
    result = _run(served, "--json", "close")
    assert result.exit_code == 1
    out = result.output
    data = json.loads(out[out.index("{") :])
    assert data["result"] == "refused" and data["error_bits"] == ["UNAUTHORIZED"]
